//! chatd as a library: the daemon's parts, and [`run`], which serves already-bound listeners
//! until a shutdown future completes. `main.rs` only parses flags, sets up logging, binds and
//! calls `run`; tests can do the same in-process.
//!
//! - [`server`]: the context every task shares (config, directory, connections, counters).
//! - [`directory`]: who holds which name; the only way a line reaches another user.
//! - [`conns`]: the connection table and what others may touch of a connection.
//! - [`connection`]: line framing, output buffering and closing over any byte stream.
//! - [`session`]: one task per chat connection, and the protocol's answers.
//! - [`mailbox`]: a session's bounded outgoing queue and its close requests.
//! - [`listener`], [`accept`]: binding, the accept loop, the connection limit; [`tls`],
//!   the certificate and the handshake of the TLS listeners.
//! - [`admin`]: the admin channel's Unix socket and credential check; [`events`], the
//!   stream behind `chatctl watch`.
//! - [`config`], [`config_file`], [`live`]: settings, the config file, the config in force.
//! - [`rate`], [`logins`], [`stats`]: the per-session token bucket, logins counted per
//!   source address, server-wide counters.
//!
//! `docs/ARCHITECTURE.md` follows a line through these and says where each coming feature
//! plugs in.

pub mod accept;
pub mod admin;
pub mod alloc;
pub mod config;
pub mod config_file;
pub mod connection;
pub mod conns;
pub mod daemon;
pub mod directory;
pub mod events;
pub mod listener;
pub mod live;
pub mod logging;
pub mod logins;
pub mod mailbox;
pub mod per_address;
pub mod rate;
pub mod server;
pub mod service;
pub mod session;
pub mod stats;
pub mod tls;

use directory::local::LocalDirectory;
use listener::Listener;
use live::Live;
use server::Server;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The server's name and version, sent in the `login` reply.
pub const SERVER_ID: &str = concat!("chatd/", env!("CARGO_PKG_VERSION"));

/// Milliseconds since the Unix epoch, for message timestamps.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Serves `listeners` until `shutdown` completes, then stops accepting, sends every client
/// `bye shutdown` after what it was already owed, and returns once every session has ended
/// (each within the drain timeout).
pub async fn run(
    listeners: Vec<TcpListener>,
    config: impl Into<Live>,
    shutdown: impl Future<Output = ()>,
) {
    // Yields the "stop now" future on purpose; `run` has no second signal, so it never comes.
    #[allow(clippy::async_yields_async)]
    let stop = async {
        shutdown.await;
        std::future::pending::<()>()
    };
    let listeners = listeners.into_iter().map(Listener::from).collect();
    run_with_admin(listeners, None, config, stop).await
}

/// [`run`], also serving the admin channel on `admin` (whose socket file is removed when
/// this returns). The future `shutdown` yields is the administrator losing patience (a
/// second SIGTERM): when it completes during the drain, this returns at once and the
/// sessions still draining are dropped.
pub async fn run_with_admin<H: Future<Output = ()>>(
    listeners: Vec<Listener>,
    admin: Option<admin::AdminListener>,
    config: impl Into<Live>,
    shutdown: impl Future<Output = H>,
) {
    let live: Live = config.into();
    let slots = Arc::new(Semaphore::new(live.load().max_clients));
    let server = Arc::new(Server::new(live.clone(), Box::new(LocalDirectory::new())));
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    tracker.spawn(live::apply_limits(
        server.clone(),
        slots.clone(),
        stop.clone(),
    ));
    let acceptor = tls::acceptor(&live);
    for l in listeners {
        tracker.spawn(listener::run(
            l.tcp,
            l.tls.then(|| acceptor.clone()),
            server.clone(),
            slots.clone(),
            tracker.clone(),
            stop.clone(),
        ));
    }
    if let Some(admin) = admin {
        tracker.spawn(admin::run(
            admin,
            server.clone(),
            tracker.clone(),
            stop.clone(),
        ));
    }
    let hurry = shutdown.await;
    info!(connections = server.conns.len(), "shutting down");
    stop.cancel();
    server.conns.shutdown();
    tracker.close();
    // Each session bounds its own drain; this only guards against a bug hanging the exit.
    let grace = live.load().drain_timeout + std::time::Duration::from_secs(2);
    tokio::select! {
        drained = tokio::time::timeout(grace, tracker.wait()) => {
            if drained.is_err() {
                warn!(
                    left = server.conns.len(),
                    "sessions still open after the drain timeout"
                );
            }
        }
        () = hurry => {
            warn!(
                left = server.conns.len(),
                "stopping without waiting for the drain; what was still queued is dropped"
            );
        }
    }
    info!("stopped");
}
