//! chatd as a library: the daemon's parts, and [`run`], which serves already-bound listeners
//! until a shutdown future completes. `main.rs` only parses flags, sets up logging, binds and
//! calls `run`; tests can do the same in-process.
//!
//! - [`admin`]: the admin channel's Unix socket, credential check and event stream.
//! - [`config`]: flags into a validated [`Config`](config::Config).
//! - [`config_file`]: the config file under the flags, `--check-config`.
//! - [`live`]: the config in force, swapped by a reload.
//! - [`listener`]: binding, the accept loop, the connection limit.
//! - [`session`]: one task per connection.
//! - [`registry`]: who is logged in; the only way a message reaches another session.
//! - [`mailbox`]: a session's bounded outgoing queue and its close requests.
//! - [`rate`]: the per-session token bucket.
//! - [`stats`]: server-wide counters.

pub mod admin;
pub mod alloc;
pub mod config;
pub mod config_file;
pub mod daemon;
pub mod listener;
pub mod live;
pub mod logging;
pub mod mailbox;
pub mod rate;
pub mod registry;
pub mod service;
pub mod session;
pub mod stats;

use live::Live;
use registry::Registry;
use session::Shared;
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
    run_with_admin(listeners, None, config, stop).await
}

/// [`run`], also serving the admin channel on `admin` (whose socket file is removed when
/// this returns). The future `shutdown` yields is the administrator losing patience (a
/// second SIGTERM): when it completes during the drain, this returns at once and the
/// sessions still draining are dropped.
pub async fn run_with_admin<H: Future<Output = ()>>(
    listeners: Vec<TcpListener>,
    admin: Option<admin::AdminListener>,
    config: impl Into<Live>,
    shutdown: impl Future<Output = H>,
) {
    let live: Live = config.into();
    let config = live.get();
    let registry = Registry::new(config.queue_len);
    let slots = Arc::new(Semaphore::new(config.max_clients));
    let shared = Arc::new(Shared {
        registry: registry.clone(),
        config: live.clone(),
    });
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    tracker.spawn(live::apply_limits(
        live.clone(),
        registry.clone(),
        slots.clone(),
        stop.clone(),
    ));
    for l in listeners {
        tracker.spawn(listener::run(
            l,
            shared.clone(),
            slots.clone(),
            tracker.clone(),
            stop.clone(),
        ));
    }
    if let Some(admin) = admin {
        tracker.spawn(admin::run(
            admin,
            registry.clone(),
            tracker.clone(),
            stop.clone(),
        ));
    }
    let hurry = shutdown.await;
    info!(connections = registry.connections(), "shutting down");
    stop.cancel();
    registry.shutdown();
    tracker.close();
    // Each session bounds its own drain; this only guards against a bug hanging the exit.
    let grace = live.load().drain_timeout + std::time::Duration::from_secs(2);
    tokio::select! {
        drained = tokio::time::timeout(grace, tracker.wait()) => {
            if drained.is_err() {
                warn!(
                    left = registry.connections(),
                    "sessions still open after the drain timeout"
                );
            }
        }
        () = hurry => {
            warn!(
                left = registry.connections(),
                "stopping without waiting for the drain; what was still queued is dropped"
            );
        }
    }
    info!("stopped");
}
