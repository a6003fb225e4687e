//! The `idle` scenario: C connections logged in and held, and what they cost the server.
//!
//! Every login gets the full users list and every earlier user gets a `join`, so C logins move
//! O(C^2) bytes. Each idle client therefore keeps reading (into a small buffer, discarding) so
//! the server never sees a slow consumer. The server's RSS is read before the first connect
//! and again once the traffic has settled (no byte received for a while); the difference over
//! C is the memory per logged-in connection. CPU is then measured over a quiet period.

use crate::cli::Cli;
use crate::client::Conn;
use crate::flow::LOGIN_CONCURRENCY;
use crate::report::Report;
use crate::target::Target;
use crate::wire::Role;
use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};

/// Read buffer of an idle client: small, since 19 000 of them live in the bench.
const IDLE_BUF: usize = 4096;
/// Traffic is settled once no byte has arrived for this long.
const SETTLE: Duration = Duration::from_millis(500);

pub async fn idle(cli: &Cli, t: &Target, conns: u32) -> Result<Report> {
    let deadline = Instant::now() + Duration::from_secs(cli.deadline);
    let rss0 = t.rss_kib();
    let cpu0 = t.cpu_secs();
    let bytes = Arc::new(AtomicU64::new(0));
    let logins = Arc::new(Semaphore::new(LOGIN_CONCURRENCY));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<()>>(1024);
    let run = crate::flow::next_run();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        let (bytes, logins, ready, mut stop) = (
            bytes.clone(),
            logins.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        );
        let ep = t.endpoint();
        let name = format!("i{run}x{i}");
        tasks.spawn(async move {
            let permit = logins.acquire_owned().await;
            let conn = async {
                let mut c = Conn::connect(ep, IDLE_BUF).await?;
                c.login(&name, Role::Receiver).await?;
                Ok::<_, anyhow::Error>(c)
            }
            .await;
            drop(permit);
            let mut c = match conn {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready.send(Err(e)).await;
                    return;
                }
            };
            let _ = ready.send(Ok(())).await;
            let mut closed = false;
            while !closed {
                tokio::select! {
                    r = c.read_events(|_, _| {}) => {
                        let n = r.unwrap_or(0);
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                        closed = n == 0;
                    }
                    _ = stop.changed() => break,
                }
            }
            // 10 000s of closes: RST keeps TIME_WAIT from eating the local port range.
            c.abort_on_close();
        });
    }
    drop(ready_tx);
    for _ in 0..conns {
        match tokio::time::timeout_at(deadline.into(), ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => {
                let _ = stop_tx.send(true);
                return Err(e.context("logging in idle clients"));
            }
            _ => bail!("deadline passed while logging in {conns} idle clients"),
        }
    }
    let login_secs = started.elapsed().as_secs_f64();
    // Wait for the join storm to settle.
    let mut last = bytes.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(SETTLE).await;
        let now = bytes.load(Ordering::Relaxed);
        if now == last || Instant::now() >= deadline {
            break;
        }
        last = now;
    }
    let settle_secs = started.elapsed().as_secs_f64();
    let cpu_logins = cpu0.zip(t.cpu_secs()).map(|(a, b)| b - a);
    let rss1 = t.rss_kib();
    let quiet = Duration::from_secs(cli.idle_secs);
    let c0 = t.cpu_secs();
    tokio::time::sleep(quiet).await;
    let idle_cpu = c0
        .zip(t.cpu_secs())
        .map(|(a, b)| (b - a) / quiet.as_secs_f64());
    // Idle memory is what the server holds once it has been idle a while (after the hold),
    // not the residue of the join storm a moment after it ended; both are reported.
    let rss2 = t.rss_kib();
    let per_conn_of = |rss: Option<u64>| {
        rss0.zip(rss)
            .map(|(a, b)| b.saturating_sub(a) as f64 / f64::from(conns.max(1)))
    };
    let per_conn_settled = per_conn_of(rss1);
    let per_conn = per_conn_of(rss2);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}

    let mut r = Report::new("idle", &t.name);
    r.set("conns", conns);
    r.set_f("login_s", Some(login_secs));
    r.set_f("settle_s", Some(settle_secs));
    r.set("bytes_received", bytes.load(Ordering::Relaxed));
    r.set(
        "rss_before_kib",
        rss0.map_or("na".into(), |v| v.to_string()),
    );
    r.set(
        "rss_settled_kib",
        rss1.map_or("na".into(), |v| v.to_string()),
    );
    r.set("rss_after_kib", rss2.map_or("na".into(), |v| v.to_string()));
    r.set_f("rss_kib_per_conn_settled", per_conn_settled);
    r.set_f("rss_kib_per_conn", per_conn);
    r.set_f("login_cpu_s", cpu_logins);
    r.set_f("idle_cpu_pct", idle_cpu.map(|c| c * 100.0));
    r.summary = format!(
        "{conns} logged in ({:.1} s, settled at {:.1} s, {} MB received); server RSS {} KiB per \
         connection after {} s idle ({} when the logins settled); server CPU {} s for the logins, \
         {}% while idle",
        login_secs,
        settle_secs,
        bytes.load(Ordering::Relaxed) / 1_000_000,
        per_conn.map_or("na".into(), |v| format!("{v:.2}")),
        quiet.as_secs(),
        per_conn_settled.map_or("na".into(), |v| format!("{v:.2}")),
        cpu_logins.map_or("na".into(), |v| format!("{v:.2}")),
        idle_cpu.map_or("na".into(), |v| format!("{:.2}", v * 100.0)),
    );
    Ok(r)
}
