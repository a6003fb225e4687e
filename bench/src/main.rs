//! chatbench: the load generator and benchmark of chatd.
//!
//! It speaks only the wire protocol, so it measures any chatd. Each scenario runs against a
//! relay that chatbench starts itself in a child process (the ceiling, [`relay`]) and then
//! against the server under test, and prints both plus their ratios. The README's Performance section says how to run it and
//! what it measured.

mod cli;
mod client;
mod flow;
mod idle;
mod order;
mod pacer;
mod relay;
mod report;
mod scenario;
mod stats;
mod target;
mod tasks;
mod verdict;
mod wire;

use anyhow::{Context, Result};
use clap::Parser;
use cli::{Cli, Scenario};
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
        relay::run(cli.listen, cli.queue_len)?;
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

/// Which servers to measure, in order: the relay first, then the server under test.
#[derive(Clone, Copy, PartialEq)]
enum Which {
    Relay,
    Target,
}

fn start(cli: &Cli, which: Which) -> Result<Target> {
    match which {
        Which::Relay => {
            let mut cmd = Command::new(std::env::current_exe().context("find chatbench")?);
            cmd.args(["relay-server", "--listen", "127.0.0.1:0", "--queue-len"])
                .arg(cli.queue_len.to_string());
            Target::spawn("relay", cmd)
        }
        Which::Target => match &cli.spawn {
            Some(path) => {
                let socket = spawn_admin_socket();
                let mut cmd = Command::new(path);
                cmd.args([
                    "--listen",
                    "127.0.0.1:0",
                    "--rate",
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
        let mut pairs: Vec<(Report, Report)> = Vec::new();
        for conns in rounds {
            let mut reports: Vec<Report> = Vec::new();
            for &w in &whiches {
                // A fresh server per run: memory freed by one run must not flatter the next.
                let t = start(cli, w)?;
                let r = match s {
                    Scenario::Pairs => scenario::pairs(cli, &t).await,
                    Scenario::Fanout => scenario::fanout(cli, &t).await,
                    Scenario::Latency => scenario::latency(cli, &t).await,
                    Scenario::Slow => scenario::slow(cli, &t, start(cli, w)?).await,
                    _ => idle::idle(cli, &t, conns.unwrap_or(0)).await,
                }
                .with_context(|| format!("{s:?} against {}", t.name))?;
                r.print();
                // The verdict is about the server under test (the relay's is printed, not
                // judged): every copy its `delivered` counts promised arrived, once and in
                // order. Copies it skipped for full queues were never promised.
                if w == Which::Target || cli.relay_only {
                    clean &= r.passes();
                }
                reports.push(r);
            }
            if let [_, _] = &reports[..] {
                let t = reports.pop().expect("two reports");
                let relay = reports.pop().expect("two reports");
                report::ratios(&t, &relay, keys);
                pairs.push((relay, t));
            }
        }
        if pairs.len() > 1 && s != Scenario::Idle {
            report::medians(&pairs, keys);
        }
    }
    Ok(clean)
}
