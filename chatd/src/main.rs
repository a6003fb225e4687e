//! The chatd binary: flags and config file, optional fork, logging, binding, then
//! [`chatd::run`] until SIGTERM or SIGINT (SIGHUP reloads). Exit codes are listed in `--help`
//! and the README. Service plumbing lives in `chatd::{config_file, daemon, logging, service}`.

use chatd::config::{Args, Config};
use chatd::daemon::{Detach, Role};
use chatd::listener::Listener;
use chatd::live::Live;
use chatd::logging::Logging;
use chatd::service;
use clap::Parser;
use clap::error::ErrorKind;
use std::io;
use std::process::ExitCode;
use tracing::{info, warn};

/// See `chatd::alloc` for why mimalloc, measured.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_LISTEN: u8 = 3;

fn main() -> ExitCode {
    chatd::alloc::configure();
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
    let mut args = args;
    chatd::daemon::absolute_paths(&mut args);
    let config = match chatd::config_file::load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chatd: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.check_config {
        print!("{}", chatd::config_file::render(&config));
        return ExitCode::SUCCESS;
    }
    // Fork before the runtime and the log writer start threads (see chatd::daemon).
    let mut detach = None;
    if config.daemon {
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            eprintln!(
                "chatd: --daemon: NOTIFY_SOCKET is set, so a service manager runs chatd and wants it in the foreground; remove --daemon (daemon = false)"
            );
            return ExitCode::from(EXIT_USAGE);
        }
        if config.log_dir.is_none() {
            eprintln!(
                "chatd: warning: --daemon without log_dir: logs after start-up are discarded"
            );
        }
        match chatd::daemon::daemonize() {
            Ok(Role::Parent(code)) => return ExitCode::from(code),
            Ok(Role::Daemon(d)) => detach = Some(d),
            Err(e) => {
                eprintln!("chatd: {e}");
                return ExitCode::from(EXIT_RUNTIME);
            }
        }
    }
    let code = start(&args, config, &mut detach);
    if let Some(d) = detach {
        d.failed(code);
    }
    ExitCode::from(code)
}

/// Logging, runtime, serving; returns the exit code. `detach` is taken once start-up worked.
fn start(args: &Args, config: Config, detach: &mut Option<Detach>) -> u8 {
    let logging = match chatd::logging::init(&config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("chatd: {e}");
            return EXIT_USAGE;
        }
    };
    service::raise_fd_limit(config.max_clients);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(chatd::alloc::worker_parking)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chatd: cannot start the async runtime: {e}");
            return EXIT_RUNTIME;
        }
    };
    let outcome = runtime.block_on(serve(args, config, &logging, detach));
    // Sessions are done; what is left of the runtime (the signal bridge) need not linger.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    // Flushes the log (for a bounded time), so that a failure printed next is the last line.
    drop(logging);
    match outcome {
        Ok(()) => 0,
        Err(Failed(code, message)) => {
            eprintln!("chatd: {message}");
            code
        }
    }
}

/// Start-up failed: the exit code, and the line to print once the log is flushed.
struct Failed(u8, String);

async fn serve(
    args: &Args,
    config: Config,
    logging: &Logging,
    detach: &mut Option<Detach>,
) -> Result<(), Failed> {
    let mut listeners = Vec::new();
    let plain = config.listen.iter().map(|a| (a, false));
    for (addr, tls) in plain.chain(config.tls_listen.iter().map(|a| (a, true))) {
        let tcp = chatd::listener::bind(*addr).map_err(|e| {
            let why = explain_bind(&e, tls);
            Failed(EXIT_LISTEN, format!("cannot listen on {addr}: {why}"))
        })?;
        listeners.push(Listener { tcp, tls });
    }
    if config.tls.is_none() && config.settings.tls_cert.is_some() {
        warn!("tls_cert is set but no tls_listen address: the certificate is not used");
    }
    let admin = bind_admin(&config)?;
    // Only now: a chatd that found another one on its admin socket must not have replaced
    // that one's pid file (and then removed it on the way out).
    let _pid_file = match &config.pid_file {
        Some(p) => Some(service::PidFileGuard::create(p).map_err(|e| {
            let message = format!("pid_file: cannot write {}: {e}", p.display());
            Failed(EXIT_RUNTIME, message)
        })?),
        None => None,
    };
    // Before the "listening on" lines: whoever waits for them may send a SIGHUP at once,
    // and an unwatched one would kill chatd.
    let mut signals = service::Signals::watch()
        .map_err(|e| Failed(EXIT_RUNTIME, format!("cannot watch signals: {e}")))?;
    let mut addrs = Vec::new();
    for l in &listeners {
        let tls = if l.tls { " (TLS)" } else { "" };
        match l.tcp.local_addr() {
            Ok(a) => {
                info!("listening on {a}{tls}");
                addrs.push(format!("{a}{tls}"));
            }
            Err(e) => info!("listening{tls} (address unknown: {e})"),
        }
    }
    // Every listener (the admin socket included) is bound: the service is up.
    service::notify_ready(&format!("listening on {}", addrs.join(", ")));
    if let Some(d) = detach.take() {
        d.ready();
    }
    let live = Live::new(config);
    // Yields, on purpose, the future of a second stop signal (see `run_with_admin`).
    #[allow(clippy::async_yields_async)]
    let stop = async {
        service::until_stopped(&mut signals, args, &live, logging).await;
        service::stopped_again(&mut signals)
    };
    chatd::run_with_admin(listeners, Some(admin), live.clone(), stop).await;
    Ok(())
}

/// Sets up the admin socket (before the "listening on" lines, so whoever waits for those can
/// use chatctl at once).
fn bind_admin(config: &Config) -> Result<chatd::admin::AdminListener, Failed> {
    chatd::admin::bind(config.admin_socket.as_deref()).map_err(|e| {
        let code = if e.is_usage() {
            EXIT_USAGE
        } else {
            EXIT_LISTEN
        };
        Failed(code, e.to_string())
    })
}

fn explain_bind(e: &io::Error, tls: bool) -> String {
    let flag = if tls { "--tls-listen" } else { "--listen" };
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            format!("address already in use — stop the other process or choose another {flag} address")
        }
        io::ErrorKind::PermissionDenied => {
            "permission denied — ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port above 1023".into()
        }
        io::ErrorKind::AddrNotAvailable => {
            format!("address not available — no local interface has this address; check {flag}")
        }
        _ => format!("{e} — check {flag}"),
    }
}
