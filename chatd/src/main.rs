//! The chatd binary: flags, logging, binding, then [`chatd::run`] until SIGTERM or SIGINT.
//! Exit codes are listed in `--help` and the README.

use anyhow::Context;
use chatd::config::{Args, Config};
use clap::Parser;
use clap::error::ErrorKind;
use std::io::{self, IsTerminal};
use std::process::ExitCode;
use tracing::info;
use tracing_subscriber::EnvFilter;

const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_LISTEN: u8 = 3;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's own text spans several lines; one line naming the flag is what a log
            // or a shell user wants.
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            eprintln!("chatd: {first} (see chatd --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let config = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chatd: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = init_logging(config.log_level.as_deref()) {
        eprintln!("chatd: --log-level: {e:#}");
        return ExitCode::from(EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chatd: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let mut listeners = Vec::new();
    for addr in &config.listen {
        match chatd::listener::bind(*addr) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("chatd: cannot listen on {addr}: {}", explain_bind(&e));
                return ExitCode::from(EXIT_LISTEN);
            }
        }
    }
    let admin = match bind_admin(&config) {
        Ok(a) => a,
        Err(code) => return code,
    };
    for l in &listeners {
        match l.local_addr() {
            Ok(a) => info!("listening on {a}"),
            Err(e) => info!("listening (address unknown: {e})"),
        }
    }
    let stop = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chatd: {e:#}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    chatd::run_with_admin(listeners, Some(admin), config, stop).await;
    ExitCode::SUCCESS
}

/// Sets up the admin socket (before the "listening on" lines, so whoever waits for those can
/// use chatctl at once).
fn bind_admin(config: &Config) -> Result<chatd::admin::AdminListener, ExitCode> {
    chatd::admin::bind(config.admin_socket.as_deref()).map_err(|e| {
        eprintln!("chatd: {e}");
        ExitCode::from(if e.is_usage() {
            EXIT_USAGE
        } else {
            EXIT_LISTEN
        })
    })
}

/// A future that completes on SIGTERM (systemd's stop) or SIGINT (Ctrl-C).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
        }
    })
}

fn explain_bind(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            "address already in use — stop the other process or choose another --listen address".into()
        }
        io::ErrorKind::PermissionDenied => {
            "permission denied — ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port above 1023".into()
        }
        io::ErrorKind::AddrNotAvailable => {
            "address not available — no local interface has this address; check --listen".into()
        }
        _ => format!("{e} — check --listen"),
    }
}

fn init_logging(level: Option<&str>) -> anyhow::Result<()> {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).with_context(|| format!("invalid filter {l:?}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(io::stderr().is_terminal())
        .init();
    Ok(())
}
