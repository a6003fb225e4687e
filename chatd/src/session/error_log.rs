//! Which of a connection's error replies reach the log: the first few of each window, then
//! a count of the rest, so that a client sending garbage in a loop cannot fill the disk, or
//! stall chatd on a slow log, with a line per reply.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::info;

/// Error replies logged per window and connection: a client sending garbage in a loop must
/// not fill the log (or stall on it) with a line per reply.
const ERROR_LOG_LINES: u32 = 5;
const ERROR_LOG_WINDOW: Duration = Duration::from_secs(10);

/// Which of a connection's error replies are logged: the first few of each window, then a
/// count of the rest. Boxed: most connections never get one.
#[derive(Default)]
pub(super) struct ErrorLog(Option<Box<ErrorWindow>>);

struct ErrorWindow {
    since: Instant,
    logged: u32,
    unlogged: u64,
}

impl ErrorLog {
    /// Counts one error reply at `now`; true if it is to be logged.
    pub(super) fn note(&mut self, now: Instant, peer: SocketAddr, user: &str) -> bool {
        let w = self.0.get_or_insert_with(|| {
            Box::new(ErrorWindow {
                since: now,
                logged: 0,
                unlogged: 0,
            })
        });
        if now.saturating_duration_since(w.since) >= ERROR_LOG_WINDOW {
            if w.unlogged > 0 {
                info!(%peer, %user, unlogged = w.unlogged, "more error replies to this connection, not logged one by one");
            }
            **w = ErrorWindow {
                since: now,
                logged: 0,
                unlogged: 0,
            };
        }
        if w.logged < ERROR_LOG_LINES {
            w.logged += 1;
            true
        } else {
            w.unlogged += 1;
            false
        }
    }

    /// Logs how many error replies went unlogged since the last count.
    pub(super) fn summary(&self, peer: SocketAddr, user: &str) {
        if let Some(w) = &self.0
            && w.unlogged > 0
        {
            info!(%peer, %user, unlogged = w.unlogged, "more error replies to this connection, not logged one by one");
        }
    }
}
