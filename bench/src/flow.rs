//! The engine shared by the message scenarios: senders, receivers, and the measurements.
//!
//! Every receiver logs in and starts reading first (it must drain the `join` events of the
//! logins after it), then the senders log in, and only when everyone is ready does the clock
//! start. A sender keeps at most `window` requests in flight, counted by the replies (`ok` or
//! `error`), and may also be paced at a fixed rate. Each message carries its sender, number
//! and send time; each receiver records latency and runs an [`OrderCheck`] per sender.
//! The run ends when every receiver has everything, or at the deadline, or a short grace after
//! the last reply if some never came; what was missing by then is judged against the replies'
//! `delivered` counts by [`crate::verdict`] (a copy the server skipped for a full queue was
//! never promised). The clients themselves are in [`crate::tasks`].

use crate::client::{Conn, now_ns};
use crate::order::{OrderCheck, OrderSummary};
use crate::pacer;
use crate::stats::Histogram;
use crate::target::Target;
use crate::tasks::{Who, receiver, sender};
use crate::verdict::{self, Copies};
use crate::wire::Role;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// At most this many connects and logins at once: a burst of thousands overflows the
/// server's accept backlog and turns into SYN retries, which measures the kernel, not chatd.
pub const LOGIN_CONCURRENCY: usize = 128;
/// Numbers the flow runs of this process. Names carry it and the process id, so a run never
/// collides with the sessions of the previous one (of this chatbench or of the one before,
/// against a long-running server) that the server may still be closing.
static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A fresh run tag for client names.
pub fn next_run() -> String {
    let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Base 36 keeps names about as short as a user's (the idle scenario's memory per
    // connection includes them).
    format!("{}.{}", base36(std::process::id()), base36(n))
}

fn base36(mut n: u32) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// How long receivers wait for stragglers after the last reply.
const GRACE: Duration = Duration::from_secs(3);

/// One sending connection.
pub struct SenderSpec {
    /// A receiver's index, or `None` to broadcast (`*`).
    pub to: Option<u32>,
    pub msgs: u64,
    pub window: u64,
    /// Bytes of padding per body.
    pub pad: usize,
}

/// The whole flow: who sends what to whom.
pub struct FlowSpec {
    pub senders: Vec<SenderSpec>,
    /// For each receiver, the indices of the senders it hears from.
    pub receivers: Vec<Vec<u32>>,
    /// Receivers that log in and then never read again.
    pub stalled: usize,
    /// How long stalled receivers keep not reading after the run.
    pub stalled_hold: Duration,
    /// Total messages per second, written by the [`pacer`] thread; `None`: each sender
    /// writes as fast as its window allows.
    pub rate: Option<f64>,
    pub deadline: Duration,
}

#[derive(Default)]
pub struct FlowResult {
    pub hist: Histogram,
    pub order: OrderSummary,
    /// The copies judged against the `delivered` counts.
    pub copies: Copies,
    pub sent_acked: u64,
    pub delivered: u64,
    pub errors: BTreeMap<String, u64>,
    pub foreign: u64,
    pub byes: u64,
    pub elapsed: f64,
    pub server_cpu: Option<f64>,
    pub bench_cpu: f64,
    pub rss_before: Option<u64>,
    pub rss_peak: Option<u64>,
    /// The server's minor page faults and context switches during the run.
    pub server_faults_switches: Option<(u64, u64)>,
    /// Worst lateness of a paced write behind its due time, and writes that found the
    /// socket full.
    pub max_lag_ns: u64,
    pub pacer_stalls: u64,
    /// Bytes the stalled receivers found waiting when they finally read.
    pub stalled_bytes: u64,
    /// Stalled receivers the server had closed (slow consumer cut off).
    pub stalled_closed: u64,
}

/// Runs `spec` against `target`.
pub async fn run(target: &Target, spec: FlowSpec) -> Result<FlowResult> {
    let ep = target.endpoint();
    let run = next_run();
    let deadline = Instant::now() + spec.deadline;
    let logins = Arc::new(Semaphore::new(LOGIN_CONCURRENCY));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (go_tx, go_rx) = watch::channel(Stage::LoggingIn);
    let (settled_tx, mut settled_rx) = mpsc::unbounded_channel::<()>();
    let (ready_tx, mut ready_rx) = mpsc::channel::<Ready>(1024);

    let msgs_of: Vec<u64> = spec.senders.iter().map(|s| s.msgs).collect();
    // Stalled receivers hear every broadcast, no private message.
    let stalled_of: Vec<u64> = spec
        .senders
        .iter()
        .map(|s| {
            if s.to.is_none() {
                spec.stalled as u64
            } else {
                0
            }
        })
        .collect();
    let mut receivers = JoinSet::new();
    for (i, from) in spec.receivers.into_iter().enumerate() {
        let checks = from
            .into_iter()
            .map(|k| (k, OrderCheck::new(msgs_of[k as usize])))
            .collect();
        let (ready, stop, logins) = (ready_tx.clone(), stop_rx.clone(), logins.clone());
        receivers.spawn(receiver(
            ep,
            format!("r{run}x{i}"),
            checks,
            (ready, settled_tx.clone()),
            stop,
            logins,
        ));
    }
    let mut stalled = Vec::new();
    for i in 0..spec.stalled {
        let mut c = Conn::connect(ep, 64 * 1024).await?;
        c.login(&format!("stall{run}x{i}"), Role::Receiver).await?;
        stalled.push(c);
    }
    let paced = spec.rate.is_some();
    let to: Vec<String> = spec
        .senders
        .iter()
        .map(|s| s.to.map_or("*".into(), |i| format!("r{run}x{i}")))
        .collect();
    let per_sender = spec.senders.first().map_or(0, |s| s.msgs);
    let mut senders = JoinSet::new();
    for (k, s) in spec.senders.into_iter().enumerate() {
        let (ready, go, logins) = (ready_tx.clone(), go_rx.clone(), logins.clone());
        let who = Who {
            k: k as u32,
            name: format!("s{run}x{k}"),
            to: to[k].clone(),
        };
        let ready = (ready, settled_tx.clone());
        senders.spawn(sender(ep, who, s, paced, ready, go, logins, deadline));
    }
    drop(ready_tx);
    let expected_ready = receivers.len() + senders.len();
    let mut writers: Vec<Option<std::net::TcpStream>> = (0..to.len()).map(|_| None).collect();
    for _ in 0..expected_ready {
        match tokio::time::timeout_at(deadline.into(), ready_rx.recv()).await {
            Ok(Some(Ok(None))) => {}
            Ok(Some(Ok(Some((k, w))))) => writers[k as usize] = Some(w),
            Ok(Some(Err(e))) => return Err(e.context("logging in the bench's clients")),
            Ok(None) => bail!("a client task ended before logging in"),
            Err(_) => bail!("the deadline passed while logging in {expected_ready} clients"),
        }
    }

    drop(settled_tx);
    go_tx.send_replace(Stage::WarmUp);
    for settled in 0..expected_ready {
        match tokio::time::timeout_at(deadline.into(), settled_rx.recv()).await {
            Ok(Some(())) => {}
            Ok(None) => bail!("a client task ended during the warm-up"),
            Err(_) => bail!(
                "the deadline passed during the warm-up: {settled} of {expected_ready} clients \
                 had their warm-up message"
            ),
        }
    }

    let (cpu0, bench0, rss0) = (target.cpu_secs(), bench_cpu(), target.rss_kib());
    let fs0 = target.faults_and_switches();
    let sampler = target
        .pid
        .map(|pid| tokio::spawn(sample_rss(pid, stop_rx.clone())));
    let t0 = now_ns();
    go_tx.send_replace(Stage::Go);
    let pacer = match spec.rate {
        Some(rate) => {
            let w: Option<Vec<_>> = writers.into_iter().collect();
            let w = w.context("a paced sender gave no write handle")?;
            Some(pacer::spawn(w, ep.wire, to, per_sender, rate, deadline))
        }
        None => None,
    };

    let mut out = FlowResult::default();
    // Every client's connection, closed only after the server's figures are read.
    let mut held = Vec::new();
    let mut first_send = u64::MAX;
    let mut last_reply = 0;
    let mut replies: Vec<Vec<verdict::Delivered>> = vec![Vec::new(); msgs_of.len()];
    while let Some(r) = senders.join_next().await {
        let mut s = r.context("sender task")??;
        held.extend(s.held.take());
        replies[s.k as usize] = std::mem::take(&mut s.per_seq);
        out.sent_acked += s.acked;
        out.delivered += s.delivered;
        for (code, n) in s.errors {
            *out.errors.entry(code).or_default() += n;
        }
        first_send = first_send.min(s.first_send);
        last_reply = last_reply.max(s.last_reply);
    }
    if let Some(p) = pacer {
        // Every sender has all its replies (or the deadline passed): the pacer is done.
        let p = p
            .join()
            .map_err(|_| anyhow::anyhow!("the pacer thread panicked"))?;
        out.max_lag_ns = p.max_lag;
        out.pacer_stalls = p.stalls;
    }
    // Receivers stop by themselves when complete; stragglers get a grace period.
    let grace_end = (Instant::now() + GRACE).min(deadline);
    let mut last_recv = 0;
    let mut pending = Some(stop_tx);
    let mut heard: Vec<Vec<OrderCheck>> = vec![Vec::new(); msgs_of.len()];
    loop {
        let next = if pending.is_some() {
            match tokio::time::timeout_at(grace_end.into(), receivers.join_next()).await {
                Ok(r) => r,
                Err(_) => {
                    pending.take().map(|s| s.send_replace(true));
                    continue;
                }
            }
        } else {
            receivers.join_next().await
        };
        let Some(r) = next else { break };
        let mut s = r.context("receiver task")??;
        held.extend(s.held.take());
        out.hist.merge(&s.hist);
        out.order.add(&s.order);
        for (k, c) in std::mem::take(&mut s.checks) {
            heard[k as usize].push(c);
        }
        out.foreign += s.foreign;
        out.byes += s.byes;
        last_recv = last_recv.max(s.last_recv);
    }
    if let Some(s) = pending.take() {
        s.send_replace(true);
    }
    for (k, readers) in heard.iter().enumerate() {
        let readers: Vec<&OrderCheck> = readers.iter().collect();
        let c = verdict::judge(&replies[k], msgs_of[k], &readers, stalled_of[k]);
        out.copies.add(&c);
    }
    let begin = if first_send == u64::MAX {
        t0
    } else {
        first_send
    };
    let end = last_recv.max(last_reply);
    out.elapsed = end.saturating_sub(begin).max(1) as f64 / 1e9;
    out.server_cpu = cpu0.zip(target.cpu_secs()).map(|(a, b)| b - a);
    out.server_faults_switches = fs0
        .zip(target.faults_and_switches())
        .map(|((f0, s0), (f1, s1))| (f1.saturating_sub(f0), s1.saturating_sub(s0)));
    drop(held);
    out.bench_cpu = bench_cpu() - bench0;
    out.rss_before = rss0;
    if let Some(h) = sampler {
        out.rss_peak = h.await.ok();
    }
    if !stalled.is_empty() {
        // Keep not reading for longer than the server's slow-consumer grace, watching its
        // memory, so a server that cuts slow consumers off has had the time to.
        let (hold_tx, hold_rx) = watch::channel(false);
        let sampler = target.pid.map(|pid| tokio::spawn(sample_rss(pid, hold_rx)));
        tokio::time::sleep(spec.stalled_hold).await;
        hold_tx.send_replace(true);
        if let Some(h) = sampler {
            out.rss_peak = out.rss_peak.max(h.await.ok());
        }
    }
    for mut c in stalled {
        // Read what waited for the stalled receiver, briefly: the server either kept it
        // (bounded by its queue and socket buffers) or cut the receiver off.
        let drained = tokio::time::timeout(Duration::from_secs(2), c.drain(&mut out.stalled_bytes));
        if drained.await.is_ok() {
            out.stalled_closed += 1;
        }
    }
    Ok(out)
}

/// A client's news when logged in: paced senders hand over a duplicate of their socket for
/// the pacer thread to write on.
pub type Ready = Result<Option<(u32, std::net::TcpStream)>>;

/// Where a flow run is; senders follow it through a watch channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Clients are logging in.
    LoggingIn,
    /// Everyone is logged in: each sender sends its [`crate::wire::WARM_UP`] message.
    WarmUp,
    /// Every warm-up message has arrived: the measured run.
    Go,
}

/// Peak RSS of `pid` sampled every 20 ms until `stop`.
async fn sample_rss(pid: u32, mut stop: watch::Receiver<bool>) -> u64 {
    let mut peak = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        if let Some(r) = crate::target::rss_kib(pid) {
            peak = peak.max(r);
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return peak,
        }
    }
}

/// CPU seconds used by the bench itself so far.
pub fn bench_cpu() -> f64 {
    crate::target::cpu_secs(std::process::id()).unwrap_or(0.0)
}
