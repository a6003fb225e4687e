//! chatbench: the load generator and benchmark of chatd.
//!
//! It speaks only the wire protocol, so it measures any chatd. Each scenario runs against a
//! relay that chatbench starts itself in a child process (the ceiling: [`relay_raw`], or
//! [`relay`] with `--relay json`), then against the server under test and any `--peer`
//! ([`peer`]), and prints each plus its ratios to the relay. The README's Performance section says how to run it and
//! what it measured.

mod cli;
mod client;
mod flow;
mod idle;
mod order;
mod pacer;
mod peer;
mod relay;
mod relay_raw;
mod report;
mod scenario;
mod stats;
mod target;
mod tasks;
mod verdict;
mod wire;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, RelayKind, Scenario};
use report::Report;
use std::process::{Command, ExitCode};
use target::Target;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chatbench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    if cli.scenario == Scenario::RelayServer {
        match cli.relay {
            RelayKind::Raw => relay_raw::run(cli.listen)?,
            RelayKind::Json => relay::run(cli.listen, cli.queue_len)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    client::now_ns(); // start the bench clock
    let nofile = target::raise_nofile();
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    let max_idle = cli.idle_conns.iter().copied().max().unwrap_or(0);
    if matches!(cli.scenario, Scenario::Idle | Scenario::All) && u64::from(max_idle) + 64 > nofile {
        eprintln!(
            "chatbench: warning: {max_idle} idle connections need more than the {nofile} open files allowed"
        );
    }
    let clean = rt.block_on(all(&cli))?;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Which servers to measure, in order: the relay first, then the server under test, then
/// the peers (by their index in `--peer`).
#[derive(Clone, Copy, PartialEq)]
enum Which {
    Relay,
    Target,
    Peer(usize),
}

fn start(cli: &Cli, which: Which) -> Result<Target> {
    match which {
        Which::Relay => {
            let mut cmd = Command::new(std::env::current_exe().context("find chatbench")?);
            cmd.args(["relay-server", "--listen", "127.0.0.1:0", "--queue-len"])
                .arg(cli.queue_len.to_string())
                .args(["--relay", cli.relay.name()]);
            Ok(Target::spawn("relay", cmd)?.with_wire(cli.relay.wire()))
        }
        Which::Peer(i) => Ok(peer::target(&cli.peer[i], &peer::names(&cli.peer)[i])),
        Which::Target => match &cli.spawn {
            Some(path) => {
                let socket = spawn_admin_socket();
                let mut cmd = Command::new(path);
                cmd.args([
                    "--listen",
                    "127.0.0.1:0",
                    "--rate",
                    "0",
                    "--login-rate",
                    "0",
                    "--max-per-ip",
                    "0",
                    "--max-clients",
                    "25000",
                ])
                .arg("--queue-len")
                .arg(cli.queue_len.to_string())
                // Its own admin socket and no config file: a spawned chatd must neither take
                // (nor, killed at the end, leave behind) the system's /run/chatd/admin.sock,
                // nor pick up an installed /etc/chatd/chatd.toml.
                .arg("--admin-socket")
                .arg(&socket)
                .args(["--config", "/dev/null"])
                .args(&cli.spawn_arg);
                Ok(Target::spawn("chatd", cmd)?.remove_on_drop(socket))
            }
            None => Ok(Target::external(cli.server, cli.server_pid)),
        },
    }
}

/// A fresh admin socket path for each spawned chatd, in the temp directory. The file goes when
/// the directory is cleaned; chatd replaces a stale one at start anyway.
fn spawn_admin_socket() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("chatbench-{}-{n}.sock", std::process::id()))
}

/// Runs the scenarios asked for. Returns false when any run lost, duplicated or reordered
/// a message (the exit code says so).
async fn all(cli: &Cli) -> Result<bool> {
    let mut whiches = Vec::new();
    if !cli.no_relay {
        whiches.push(Which::Relay);
    }
    if !cli.relay_only {
        whiches.push(Which::Target);
    }
    whiches.extend((0..cli.peer.len()).map(Which::Peer));
    let scenarios: &[Scenario] = match cli.scenario {
        Scenario::All => &[
            Scenario::Pairs,
            Scenario::Fanout,
            Scenario::Latency,
            Scenario::Slow,
            Scenario::Idle,
        ],
        s => std::slice::from_ref(match s {
            Scenario::Pairs => &Scenario::Pairs,
            Scenario::Fanout => &Scenario::Fanout,
            Scenario::Latency => &Scenario::Latency,
            Scenario::Idle => &Scenario::Idle,
            _ => &Scenario::Slow,
        }),
    };
    let mut clean = true;
    for &s in scenarios {
        // Idle runs once per size; message scenarios alternate relay and target `repeat`
        // times, so a change in the machine's load hits both alike.
        let rounds: Vec<Option<u32>> = if s == Scenario::Idle {
            cli.idle_conns.iter().map(|&c| Some(c)).collect()
        } else {
            vec![None; cli.repeat.max(1)]
        };
        let keys: &[&str] = if s == Scenario::Idle {
            &["rss_kib_per_conn", "login_s", "idle_cpu_pct"]
        } else {
            scenario::FLOW_RATIOS
        };
        // For each server after the relay, its (relay, server) reports of every round.
        let mut pairs: Vec<Vec<(Report, Report)>> = Vec::new();
        for conns in rounds {
            let mut reports: Vec<Report> = Vec::new();
            for &w in &whiches {
                if s == Scenario::Slow && matches!(w, Which::Peer(_)) {
                    continue;
                }
                // A fresh server per run: memory freed by one run must not flatter the next.
                let t = start(cli, w)?;
                let mut r = match s {
                    Scenario::Pairs => scenario::pairs(cli, &t).await,
                    Scenario::Fanout => scenario::fanout(cli, &t).await,
                    Scenario::Latency => scenario::latency(cli, &t).await,
                    Scenario::Slow => scenario::slow(cli, &t, start(cli, w)?).await,
                    _ => idle::idle(cli, &t, conns.unwrap_or(0)).await,
                }
                .with_context(|| format!("{s:?} against {}", t.name))?;
                if w == Which::Relay {
                    r.set("relay", cli.relay.name());
                }
                r.print();
                // The verdict is about the server under test (the relay's is printed, not
                // judged): every copy its `delivered` counts promised arrived, once and in
                // order. Copies it skipped for full queues were never promised.
                if w == Which::Target || cli.relay_only {
                    clean &= r.passes();
                }
                reports.push(r);
            }
            if !cli.no_relay && reports.len() > 1 {
                let relay = reports.remove(0);
                pairs.resize_with(reports.len(), Vec::new);
                for (t, runs) in reports.into_iter().zip(&mut pairs) {
                    report::ratios(&t, &relay, keys);
                    runs.push((relay.clone(), t));
                }
            }
        }
        for runs in &pairs {
            if runs.len() > 1 && s != Scenario::Idle {
                report::medians(runs, keys);
            }
        }
    }
    Ok(clean)
}
