//! The message scenarios, each a [`FlowSpec`] plus the figures that matter for it.
//!
//! - `pairs`: P senders, each to its own receiver, a window of W in flight.
//! - `fanout`: one sender broadcasting to R receivers, a window of W in flight.
//! - `latency`: P pairs paced to a fixed total rate the server can hold.
//! - `slow`: `fanout` with one more receiver that stops reading, run next to the same
//!   broadcast without it: the others' rate and latency must not suffer, and the server's
//!   memory must not grow past the stalled receiver's queue bound.

use crate::cli::Cli;
use crate::flow::{self, FlowSpec, SenderSpec};
use crate::report::{self, Report};
use crate::target::Target;
use anyhow::Result;
use std::time::Duration;

/// chatd's default `--queue-bytes`: a spawned chatd is not given the flag, so that chatbench
/// still measures the binaries from before it (`--spawn-arg=--queue-bytes=N` changes it).
const CHATD_QUEUE_BYTES: u64 = 1 << 20;

/// Keys compared with the relay for the message scenarios.
pub const FLOW_RATIOS: &[&str] = &["rate", "cpu_us_per_unit", "p50_us", "p99_us", "p999_us"];

fn deadline(cli: &Cli) -> Duration {
    Duration::from_secs(cli.deadline)
}

pub async fn pairs(cli: &Cli, t: &Target) -> Result<Report> {
    let spec = FlowSpec {
        senders: (0..cli.pairs)
            .map(|i| SenderSpec {
                to: Some(i),
                msgs: cli.msgs,
                window: cli.window,
                pad: 0,
            })
            .collect(),
        receivers: (0..cli.pairs).map(|i| vec![i]).collect(),
        stalled: 0,
        stalled_hold: Duration::ZERO,
        rate: None,
        deadline: deadline(cli),
    };
    let f = flow::run(t, spec).await?;
    let mut r = Report::new("pairs", &t.name);
    r.set("pairs", cli.pairs);
    r.set("msgs", cli.msgs);
    r.set("window", cli.window);
    report::flow(&mut r, &f, "msg");
    Ok(r)
}

fn broadcast(cli: &Cli, receivers: u32, msgs: u64, pad: usize, stalled: usize) -> FlowSpec {
    FlowSpec {
        senders: vec![SenderSpec {
            to: None,
            msgs,
            window: cli.window,
            pad,
        }],
        receivers: (0..receivers).map(|_| vec![0]).collect(),
        stalled,
        stalled_hold: Duration::from_secs(cli.slow_hold),
        rate: None,
        deadline: deadline(cli),
    }
}

pub async fn fanout(cli: &Cli, t: &Target) -> Result<Report> {
    let f = flow::run(t, broadcast(cli, cli.receivers, cli.fanout_msgs, 0, 0)).await?;
    let mut r = Report::new("fanout", &t.name);
    r.set("receivers", cli.receivers);
    r.set("msgs", cli.fanout_msgs);
    r.set("window", cli.window);
    report::flow(&mut r, &f, "copy");
    Ok(r)
}

pub async fn latency(cli: &Cli, t: &Target) -> Result<Report> {
    let per_sender = (cli.latency_msgs / u64::from(cli.pairs)).max(1);
    let spec = FlowSpec {
        senders: (0..cli.pairs)
            .map(|i| SenderSpec {
                to: Some(i),
                msgs: per_sender,
                // The pacer writes on schedule; replies are only counted.
                window: per_sender,
                pad: 0,
            })
            .collect(),
        receivers: (0..cli.pairs).map(|i| vec![i]).collect(),
        stalled: 0,
        stalled_hold: Duration::ZERO,
        rate: Some(cli.rate),
        deadline: deadline(cli),
    };
    let f = flow::run(t, spec).await?;
    let mut r = Report::new("latency", &t.name);
    r.set("pairs", cli.pairs);
    r.set("target_rate", cli.rate);
    report::flow(&mut r, &f, "msg");
    r.set_f("pacing_max_lag_us", Some(f.max_lag_ns as f64 / 1000.0));
    r.set("pacer_stalls", f.pacer_stalls);
    Ok(r)
}

/// `fresh` is a second server like `t` for the run without the stalled receiver, so that
/// neither run starts on an allocator the other has warmed.
pub async fn slow(cli: &Cli, t: &Target, fresh: Target) -> Result<Report> {
    let (n, m, pad) = (cli.slow_receivers, cli.slow_msgs, cli.slow_pad);
    let base = flow::run(&fresh, broadcast(cli, n, m, pad, 0)).await?;
    drop(fresh);
    let f = flow::run(t, broadcast(cli, n, m, pad, 1)).await?;
    let mut r = Report::new("slow", &t.name);
    r.set("receivers", n);
    r.set("msgs", m);
    r.set("body_bytes", pad + 24);
    report::flow(&mut r, &f, "copy");
    let base_rate = base.order.unique as f64 / base.elapsed;
    let rate = f.order.unique as f64 / f.elapsed;
    r.set_f("rate_vs_no_slow", Some(rate / base_rate));
    let p99 = |f: &flow::FlowResult| f.hist.quantile(0.99) as f64;
    r.set_f("p99_vs_no_slow", Some(p99(&f) / p99(&base).max(1.0)));
    let growth = f
        .rss_peak
        .zip(f.rss_before)
        .map(|(p, b)| p.saturating_sub(b));
    let base_growth = base
        .rss_peak
        .zip(base.rss_before)
        .map(|(p, b)| p.saturating_sub(b));
    r.set(
        "rss_growth_kib",
        growth.map_or("na".into(), |g| g.to_string()),
    );
    r.set(
        "rss_growth_no_slow_kib",
        base_growth.map_or("na".into(), |g| g.to_string()),
    );
    // Copies the stalled receiver's queue accepted: those counted in `delivered` that no
    // reader got (a reader that fell behind was skipped and not counted).
    let stalled_accepted = f.copies.to_stalled;
    r.set("stalled_accepted", stalled_accepted);
    // What the stalled receiver's queue may hold: queue_len event lines of about this size,
    // or chatd's byte bound if that comes first.
    let line_bytes = pad as u64 + 110;
    let queue_bound = (cli.queue_len as u64 * line_bytes).min(CHATD_QUEUE_BYTES);
    r.set("queue_bound_kib", queue_bound / 1024);
    r.set("stalled_bytes_read_after", f.stalled_bytes);
    r.set("stalled_cut_off", f.stalled_closed);
    r.summary = format!(
        "{}; with one stalled receiver: others' rate x{:.2} and p99 x{:.2} of the run \
         without it; server RSS grew {} KiB (vs {} KiB without; queue bound ~{} KiB); stalled \
         queue accepted {} copies, {} bytes waited for it, cut off: {}",
        r.summary,
        rate / base_rate,
        p99(&f) / p99(&base).max(1.0),
        growth.map_or("na".into(), |g| g.to_string()),
        base_growth.map_or("na".into(), |g| g.to_string()),
        queue_bound / 1024,
        stalled_accepted,
        f.stalled_bytes,
        if f.stalled_closed > 0 { "yes" } else { "no" },
    );
    Ok(r)
}
