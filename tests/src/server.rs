//! chatd in this process, the way mini-redis's `tests/server.rs` runs its server: the
//! library's [`chatd::run_with_admin`] on a tokio runtime of its own, on a thread of its own,
//! listening on `127.0.0.1:0` with its admin socket in a private temp dir, and stopped when
//! the [`Server`] is dropped. Starting one costs a runtime, not a process and a log scrape.
//!
//! Its `tracing` output is captured per server: the runtime's threads (and the server's own)
//! carry a thread-local default subscriber writing into a [`Lines`], so tests running in
//! parallel in one test binary never see each other's log lines.

use crate::admin::socket_dir;
use crate::serving::Serving;
use crate::wait::{DEADLINE, LineSink, Lines};
use chatd::config::{Args, Config};
use chatd::listener::Listener;
use clap::Parser;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch as state;
use tracing::Dispatch;
use tracing::dispatcher::DefaultGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;

/// Flags that only the binary acts on (`main.rs`, not the library): a test giving one wants
/// [`crate::Chatd`].
const BINARY_ONLY: &[&str] = &[
    "--config",
    "--check-config",
    "--daemon",
    "--pid-file",
    "--log-dir",
    "--log-timestamps",
    "--log-max-files",
];

/// Where a server is in its life. Phases only move forward; a kill may come in any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Accepting and serving.
    Open,
    /// The shutdown future has completed: stop accepting, drain every session.
    Draining,
    /// The second future has completed too: stop without waiting for the drain.
    Hurrying,
    /// Drop everything at once, as if the process were killed: no `bye` to anyone.
    Killed,
}

/// A chatd serving in this process; stopped (without waiting for the drain) when dropped.
/// Its addresses, admin socket and log are [`Serving`]'s.
pub struct Server {
    serving: Serving,
    phase: state::Sender<Phase>,
    /// Says the server thread is done (or, disconnected, that it panicked).
    done: mpsc::Receiver<()>,
    /// `None` once stopped.
    thread: Option<JoinHandle<()>>,
    /// Holds the admin socket when the test did not choose a path.
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts chatd with the flags a test would give the binary, on a free loopback port
    /// (unless they include `--listen`), and returns once it listens.
    pub fn start(flags: &[&str]) -> Server {
        if let Some(f) = flags.iter().find(|f| BINARY_ONLY.contains(f)) {
            panic!("{f} is for the chatd binary, not the library: use e2e::Chatd");
        }
        let args = Args::try_parse_from(std::iter::once("chatd").chain(flags.iter().copied()))
            .unwrap_or_else(|e| panic!("chatd flags {flags:?}: {e}"));
        let mut config =
            Config::from_args(&args).unwrap_or_else(|e| panic!("chatd flags {flags:?}: {e}"));
        // Only what the test said counts: the clap definition also reads CHATD_ADMIN_SOCKET
        // from this process's environment, which is not the test's to choose.
        let dir = socket_dir();
        if !flags.contains(&"--admin-socket") {
            config.admin_socket = Some(dir.path().join("admin.sock"));
        }
        // TLS alone stays TLS alone.
        if !flags.contains(&"--listen") && !config.listen.is_empty() {
            config.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        }
        let (sink, log) = Lines::channel("chatd");
        let dispatch = dispatch(&config, sink);
        let (phase, phase_rx) = state::channel(Phase::Open);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("chatd-server".into())
            .spawn(move || {
                serve(config, dispatch, phase_rx, ready_tx);
                let _ = done_tx.send(());
            })
            .expect("spawn the server thread");
        let (bound, admin_socket) = match ready_rx.recv_timeout(DEADLINE) {
            Ok(Ok(bound)) => bound,
            Ok(Err(e)) => panic!("chatd could not start: {e}"),
            Err(_) => panic!(
                "chatd did not start in {DEADLINE:?}; log:\n{}",
                log.all().join("\n")
            ),
        };
        let (tls, plain): (Vec<_>, Vec<_>) = bound.into_iter().partition(|(_, tls)| *tls);
        Server {
            serving: Serving {
                addrs: plain.into_iter().map(|(a, _)| a).collect(),
                tls_addrs: tls.into_iter().map(|(a, _)| a).collect(),
                admin_socket,
                log,
            },
            phase,
            done,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// The process serving, which is this one: what chatd reports as its pid.
    pub fn pid(&self) -> u32 {
        std::process::id()
    }

    /// Begins the stop SIGTERM begins in the binary: no more connections, every session gets
    /// what it was owed and `bye shutdown`. Returns at once, as `kill -TERM` does.
    pub fn begin_stop(&self) {
        self.enter(Phase::Draining);
    }

    /// Stops as [`Server::begin_stop`] does and waits for the end of the drain, failing the
    /// test unless it comes within the deadline.
    pub fn stop(&mut self) {
        assert!(
            self.end(Phase::Draining),
            "chatd did not stop within {DEADLINE:?}; log:\n{}",
            self.log().join("\n")
        );
    }

    /// Drops every connection at once without a word, the way SIGKILL ends the binary.
    pub fn kill(&mut self) {
        self.end(Phase::Killed);
    }

    /// Moves the server to `phase` and waits for its thread; true if it ended within the
    /// deadline (else it is killed, which cannot take long).
    fn end(&mut self, phase: Phase) -> bool {
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let in_time = self.advance(phase);
        if !in_time {
            self.advance(Phase::Killed);
        }
        if thread.join().is_err() && !std::thread::panicking() {
            panic!("the chatd server thread panicked");
        }
        in_time
    }

    /// Moves the server to `phase`, unless it is there or past it already.
    fn enter(&self, phase: Phase) {
        self.phase.send_if_modified(|p| {
            let later = *p < phase;
            *p = (*p).max(phase);
            later
        });
    }

    /// Moves the server to `phase` (unless it is past it) and waits, within the deadline, for
    /// its thread to be done; true if it was.
    fn advance(&self, phase: Phase) -> bool {
        self.enter(phase);
        // Disconnected: the thread ended by a panic, which joining it reports.
        !matches!(
            self.done.recv_timeout(DEADLINE),
            Err(RecvTimeoutError::Timeout)
        )
    }
}

impl Deref for Server {
    type Target = Serving;

    fn deref(&self) -> &Serving {
        &self.serving
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Without the drain: the test is over, and a client it still holds (or one owned by a
        // task of its runtime, which this drop blocks) must not keep it for the drain timeout.
        self.end(Phase::Hurrying);
    }
}

/// The server thread: binds, reports where (or why not) on `ready`, and serves until the
/// phase says otherwise.
fn serve(
    config: Config,
    dispatch: Dispatch,
    mut phase: state::Receiver<Phase>,
    ready: mpsc::Sender<Result<Bound, String>>,
) {
    let _log = tracing::dispatcher::set_default(&dispatch);
    let runtime = match runtime(dispatch) {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start a runtime: {e}")));
            return;
        }
    };
    let mut killed = phase.clone();
    runtime.block_on(async move {
        // Both need the runtime: they register with its reactor.
        let (listeners, admin) = match bind(&config) {
            Ok(bound) => bound,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let addrs = listeners
            .iter()
            .map(|l| {
                (
                    l.tcp.local_addr().expect("a bound listener's address"),
                    l.tls,
                )
            })
            .collect();
        let _ = ready.send(Ok((addrs, admin.path().to_owned())));
        // Yields, on purpose, the future of the second stop (as chatd's main.rs does).
        #[allow(clippy::async_yields_async)]
        let shutdown = async move {
            // Not on a kill, which skips the phases between: a killed chatd must not begin
            // the drain, nor send anyone `bye shutdown`, while the kill takes effect.
            let _ = phase
                .wait_for(|p| matches!(p, Phase::Draining | Phase::Hurrying))
                .await;
            async move { reached(&mut phase, Phase::Hurrying).await }
        };
        tokio::select! {
            () = chatd::run_with_admin(listeners, Some(admin), config, shutdown) => {}
            () = reached(&mut killed, Phase::Killed) => {}
        }
    });
    // After a kill the sessions are still spawned: this drops them, closing their sockets.
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// What a started server bound: each chat address (and whether it is TLS), the admin socket.
type Bound = (Vec<(SocketAddr, bool)>, PathBuf);

fn bind(config: &Config) -> Result<(Vec<Listener>, chatd::admin::AdminListener), String> {
    let mut listeners = Vec::new();
    let plain = config.listen.iter().map(|a| (a, false));
    for (addr, tls) in plain.chain(config.tls_listen.iter().map(|a| (a, true))) {
        let tcp =
            chatd::listener::bind(*addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        listeners.push(Listener { tcp, tls });
    }
    let admin = chatd::admin::bind(config.admin_socket.as_deref()).map_err(|e| e.to_string())?;
    Ok((listeners, admin))
}

/// Completes once the server is at `phase` or past it, or its [`Server`] is gone.
async fn reached(rx: &mut state::Receiver<Phase>, phase: Phase) {
    let _ = rx.wait_for(|p| *p >= phase).await;
}

thread_local! {
    /// The log subscriber of the server whose runtime owns this thread.
    static LOG: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

/// A runtime like chatd's own (multi-thread, two workers for our two cores) whose threads all
/// log to `dispatch`.
fn runtime(dispatch: Dispatch) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("chatd-worker")
        .enable_all()
        .on_thread_start(move || {
            let guard = tracing::dispatcher::set_default(&dispatch);
            LOG.with(|l| *l.borrow_mut() = Some(guard));
        })
        .on_thread_stop(|| LOG.with(|l| drop(l.borrow_mut().take())))
        .build()
}

/// A subscriber formatting lines as the binary does on stderr (no target, no colour), into
/// `sink`, at the level the flags ask for (info by default, as the process harness sets
/// `RUST_LOG`).
fn dispatch(config: &Config, sink: LineSink) -> Dispatch {
    let filter = EnvFilter::try_new(config.log_level.as_deref().unwrap_or("info"))
        .expect("a filter chatd's own validation accepted");
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(move || LineWriter {
            sink: sink.clone(),
            partial: String::new(),
        })
        .with_target(false)
        .with_ansi(false);
    Dispatch::new(tracing_subscriber::registry().with(filter).with(layer))
}

/// Writes one formatted event into a [`LineSink`], a line at a time.
struct LineWriter {
    sink: LineSink,
    /// A line not yet ended by `\n`: fmt writes an event at once, but need not.
    partial: String,
}

impl io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.push_str(&String::from_utf8_lossy(buf));
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.sink.push(line.trim_end_matches('\n').to_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.sink.push(std::mem::take(&mut self.partial));
        }
    }
}
