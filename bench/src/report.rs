//! What a run prints: one human summary line and one machine line of `key=value` pairs per
//! scenario and server, then a ratio line comparing the server under test with the relay
//! measured in the same run (absolute numbers on a shared machine move; ratios much less).

use crate::flow::FlowResult;
use std::fmt::Write;

/// The figures that must all be 0 (or absent) for a run to pass: see [`crate::verdict`].
const VERDICT_KEYS: &[&str] = &[
    "missing",
    "uncounted",
    "unanswered",
    "dups",
    "reordered",
    "out_of_range",
    "foreign",
];

/// The figures of one scenario against one server.
#[derive(Clone)]
pub struct Report {
    pub scenario: &'static str,
    pub target: String,
    pub summary: String,
    pub fields: Vec<(&'static str, String)>,
}

impl Report {
    pub fn new(scenario: &'static str, target: &str) -> Report {
        Report {
            scenario,
            target: target.to_string(),
            summary: String::new(),
            fields: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &'static str, v: impl ToString) {
        self.fields.push((key, v.to_string()));
    }

    /// Sets a float with three significant decimals, or `na` when unknown.
    pub fn set_f(&mut self, key: &'static str, v: Option<f64>) {
        self.set(key, v.map_or("na".into(), |v| format!("{v:.3}")));
    }

    /// True when every copy the server promised arrived, once and in order (the exit code's
    /// verdict).
    pub fn passes(&self) -> bool {
        VERDICT_KEYS
            .iter()
            .all(|k| self.get(k).unwrap_or(0.0) == 0.0)
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
    }

    pub fn print(&self) {
        println!("[{} / {}] {}", self.scenario, self.target, self.summary);
        // Other work on a shared machine moves every figure: say how busy it was.
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load1 = load.split_whitespace().next().unwrap_or("na");
        let mut line = format!(
            "chatbench scenario={} target={} load1={load1}",
            self.scenario, self.target
        );
        for (k, v) in &self.fields {
            let _ = write!(line, " {k}={v}");
        }
        println!("{line}");
    }
}

/// Fills the message figures of a flow run: rate, latency, order, errors, costs.
/// `unit` names what was counted (`msg` for a private message, `copy` for a broadcast copy).
pub fn flow(r: &mut Report, f: &FlowResult, unit: &str) {
    let us = |ns: u64| ns as f64 / 1000.0;
    let got = f.order.unique;
    let rate = got as f64 / f.elapsed;
    let cpu_per = f.server_cpu.map(|c| c * 1e6 / got.max(1) as f64);
    let errors: u64 = f.errors.values().sum();
    let (o, c) = (&f.order, &f.copies);
    let mut verdict = if o.in_order() && c.is_clean() && f.foreign == 0 {
        "exactly-once in order".to_string()
    } else {
        format!(
            "ORDER/LOSS: lost={} uncounted={} unanswered={} dups={} reordered={} \
             out_of_range={} foreign={}",
            c.lost, c.uncounted, c.unanswered, o.dups, o.reordered, o.out_of_range, f.foreign
        )
    };
    if c.skipped > 0 || c.to_stalled > 0 {
        // Not lost: the server said so in `delivered` (and a stalled receiver may drop what
        // its queue took when it is cut off).
        let _ = write!(
            verdict,
            " (not delivered, as the replies said: {} skipped for full queues, {} queued \
             for the stalled receiver)",
            c.skipped, c.to_stalled
        );
    }
    r.summary = format!(
        "{got}/{} {unit} in {:.2} s = {:.0} {unit}/s; latency p50 {:.0} us, p99 {:.0} us, \
         p99.9 {:.0} us, max {:.0} us; server CPU {} us/{unit}; {verdict}{}",
        o.expected,
        f.elapsed,
        rate,
        us(f.hist.quantile(0.5)),
        us(f.hist.quantile(0.99)),
        us(f.hist.quantile(0.999)),
        us(f.hist.max()),
        cpu_per.map_or("na".into(), |c| format!("{c:.3}")),
        if errors > 0 {
            format!("; errors {:?}", f.errors)
        } else {
            String::new()
        }
    );
    r.set("expected", o.expected);
    r.set("received", got);
    r.set_f("elapsed_s", Some(f.elapsed));
    r.set("rate", format!("{rate:.0}"));
    r.set_f("p50_us", Some(us(f.hist.quantile(0.5))));
    r.set_f("p99_us", Some(us(f.hist.quantile(0.99))));
    r.set_f("p999_us", Some(us(f.hist.quantile(0.999))));
    r.set_f("max_us", Some(us(f.hist.max())));
    r.set_f("mean_us", Some(us(f.hist.mean())));
    let counts = [
        // What the verdict judges: `missing` is the promised copies no reader got.
        ("missing", c.lost),
        ("uncounted", c.uncounted),
        ("unanswered", c.unanswered),
        ("skipped", c.skipped),
        ("to_stalled", c.to_stalled),
        // Copies not received for any reason, skipped ones included.
        ("not_received", o.missing),
        ("dups", o.dups),
        ("reordered", o.reordered),
        ("gaps", o.gaps),
        ("out_of_range", o.out_of_range),
        ("foreign", f.foreign),
        ("acked", f.sent_acked),
        ("delivered", f.delivered),
        ("errors", errors),
    ];
    for (key, n) in counts {
        r.set(key, n);
    }
    for (code, n) in &f.errors {
        r.fields.push(("error", format!("{code}:{n}")));
    }
    r.set("byes", f.byes);
    r.set_f("server_cpu_s", f.server_cpu);
    let (faults, switches) = f.server_faults_switches.unzip();
    r.set(
        "server_minflt",
        faults.map_or("na".into(), |v| v.to_string()),
    );
    r.set(
        "server_ctxsw",
        switches.map_or("na".into(), |v| v.to_string()),
    );
    r.set_f("cpu_us_per_unit", cpu_per);
    r.set_f("bench_cpu_s", Some(f.bench_cpu));
    r.set_f(
        "bench_cpu_us_per_unit",
        Some(f.bench_cpu * 1e6 / got.max(1) as f64),
    );
    r.set(
        "rss_before_kib",
        f.rss_before.map_or("na".into(), |v| v.to_string()),
    );
    r.set(
        "rss_peak_kib",
        f.rss_peak.map_or("na".into(), |v| v.to_string()),
    );
}

/// Prints how `t` compares with `relay` on the keys both have: a ratio above 1 means
/// "more than the relay" (good for rates, bad for costs and latencies).
pub fn ratios(t: &Report, relay: &Report, keys: &[&'static str]) {
    let mut line = format!(
        "chatbench-ratio scenario={} of={}/relay",
        t.scenario, t.target
    );
    let mut human = Vec::new();
    for &k in keys {
        if let (Some(a), Some(b)) = (t.get(k), relay.get(k))
            && b > 0.0
        {
            let _ = write!(line, " {k}={:.3}", a / b);
            human.push(format!("{k} x{:.2}", a / b));
        }
    }
    println!(
        "[{} / {} vs relay] {}",
        t.scenario,
        t.target,
        human.join(", ")
    );
    println!("{line}");
}

/// The median of `v` (the mean of the middle two for an even count); `None` when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// After repeated alternating runs: the median of each figure for both servers, and the
/// median of the per-run ratios (each ratio taken within one alternation).
pub fn medians(runs: &[(Report, Report)], keys: &[&'static str]) {
    let (scenario, target) = (runs[0].1.scenario, runs[0].1.target.clone());
    let mut line = format!(
        "chatbench-median scenario={scenario} of={target}/relay runs={}",
        runs.len()
    );
    let mut human = Vec::new();
    for &k in keys {
        let pick = |f: &dyn Fn(&(Report, Report)) -> Option<f64>| {
            median(runs.iter().filter_map(f).collect())
        };
        let relay = pick(&|(r, _)| r.get(k));
        let t = pick(&|(_, t)| t.get(k));
        let ratio = pick(&|(r, t)| Some(t.get(k)? / r.get(k).filter(|&v| v > 0.0)?));
        if let (Some(relay), Some(t), Some(ratio)) = (relay, t, ratio) {
            let _ = write!(
                line,
                " {k}={t:.3} relay_{k}={relay:.3} ratio_{k}={ratio:.3}"
            );
            human.push(format!("{k} {t:.3} (relay {relay:.3}, x{ratio:.2})"));
        }
    }
    println!(
        "[{scenario} / {target} vs relay, median of {}] {}",
        runs.len(),
        human.join(", ")
    );
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    fn judged(copies: crate::verdict::Copies) -> Report {
        let f = FlowResult {
            copies,
            elapsed: 1.0,
            ..FlowResult::default()
        };
        let mut r = Report::new("slow", "chatd");
        flow(&mut r, &f, "copy");
        r
    }

    #[test]
    fn copies_skipped_or_held_by_the_stalled_receiver_pass() {
        let r = judged(crate::verdict::Copies {
            promised: 10,
            skipped: 3,
            to_stalled: 2,
            ..Default::default()
        });
        assert!(r.passes(), "{}", r.summary);
        assert!(r.summary.contains("exactly-once in order"), "{}", r.summary);
        assert!(
            r.summary.contains("3 skipped for full queues, 2 queued"),
            "{}",
            r.summary
        );
        assert_eq!((r.get("skipped"), r.get("missing")), (Some(3.0), Some(0.0)));
    }

    #[test]
    fn a_lost_uncounted_or_unanswered_copy_fails() {
        use crate::verdict::Copies;
        for c in [
            Copies {
                lost: 1,
                ..Default::default()
            },
            Copies {
                uncounted: 1,
                ..Default::default()
            },
            Copies {
                unanswered: 1,
                ..Default::default()
            },
        ] {
            let r = judged(c);
            assert!(!r.passes(), "{c:?}");
            assert!(r.summary.contains("ORDER/LOSS"), "{}", r.summary);
        }
    }

    #[test]
    fn reports_give_back_their_numbers() {
        let mut r = Report::new("pairs", "chatd");
        r.set("rate", 1000);
        r.set_f("p99_us", Some(12.3456));
        r.set_f("cpu", None);
        assert_eq!(r.get("rate"), Some(1000.0));
        assert_eq!(r.get("p99_us"), Some(12.346));
        assert_eq!(r.get("cpu"), None);
    }
}
