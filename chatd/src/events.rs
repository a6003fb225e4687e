//! What `chatctl watch` sees: a bounded broadcast of admin events, fed by the sessions and
//! the server context.
//!
//! Publishing sits on the hot path (every login, leave and error reply), so it must cost
//! nothing when nobody watches, which is nearly always: every publisher first reads one
//! relaxed atomic counting the watchers and returns before building anything. (tokio's
//! `Sender::receiver_count` takes a mutex; the counter does not.) With watchers, an event is
//! a few short strings, built once and cloned per watcher by the channel. The channel is
//! bounded: a watcher that falls behind loses the oldest events and is told how many, so
//! no watcher can make the daemon hold memory for it. Events never carry a message body.

use proto::admin::{Event, EventKind};
use proto::{ErrorCode, LeaveReason, Name};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast;

/// Events kept for the slowest watcher before it starts missing them.
pub const EVENT_BACKLOG: usize = 1024;

/// The publishing side, owned by the server context.
#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    /// Live [`Watcher`]s; publishers skip all work while it is zero.
    watchers: Arc<AtomicUsize>,
}

impl Default for Events {
    fn default() -> Events {
        Events::new()
    }
}

impl Events {
    pub fn new() -> Events {
        let (tx, _) = broadcast::channel(EVENT_BACKLOG);
        Events {
            tx,
            watchers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// True when at least one watcher listens; publishers check this before building.
    #[inline]
    pub fn active(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Starts watching: events published from now on reach the returned receiver.
    pub fn subscribe(&self) -> Watcher {
        let rx = self.tx.subscribe();
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher {
            rx,
            count: self.watchers.clone(),
        }
    }

    fn publish(&self, kind: EventKind) {
        // An error only means every receiver was dropped meanwhile: nobody to tell.
        let _ = self.tx.send(Event {
            ts: crate::now_ms(),
            kind,
        });
    }

    /// A client connected from `peer`.
    #[inline]
    pub fn connect(&self, peer: SocketAddr) {
        if self.active() {
            self.publish(EventKind::Connect {
                peer: peer.to_string(),
            });
        }
    }

    /// The client at `peer` went away without ever logging in.
    #[inline]
    pub fn disconnect(&self, peer: SocketAddr, reason: LeaveReason) {
        if self.active() {
            self.publish(EventKind::Disconnect {
                peer: peer.to_string(),
                reason,
            });
        }
    }

    /// The client at `peer` logged in as `name`.
    #[inline]
    pub fn login(&self, peer: SocketAddr, name: &Name) {
        if self.active() {
            self.publish(EventKind::Login {
                user: name.to_string(),
                peer: peer.to_string(),
            });
        }
    }

    /// The client at `peer`, logged in as `name`, left for `reason`.
    #[inline]
    pub fn logout(&self, peer: SocketAddr, name: &Name, reason: LeaveReason) {
        if self.active() {
            self.publish(EventKind::Logout {
                user: name.to_string(),
                peer: peer.to_string(),
                reason,
            });
        }
    }

    /// The server sent `peer` (logged in as `user`, if at all) an error reply.
    #[inline]
    pub fn error(&self, peer: SocketAddr, user: Option<&Name>, code: ErrorCode) {
        if self.active() {
            self.publish(EventKind::Error {
                code,
                user: user.map(Name::to_string),
                peer: peer.to_string(),
            });
        }
    }

    /// An administrator with uid `by` kicked `user`.
    pub fn kick(&self, user: &Name, reason: Option<&str>, by: u32) {
        if self.active() {
            self.publish(EventKind::Kick {
                user: user.to_string(),
                reason: reason.map(str::to_owned),
                by,
            });
        }
    }

    /// An administrator with uid `by` sent a notice that `delivered` sessions took.
    pub fn notice(&self, delivered: u64, by: u32) {
        if self.active() {
            self.publish(EventKind::Notice { delivered, by });
        }
    }
}

/// One watcher's end of the broadcast; dropping it stops the publishers' work when it was the
/// last.
#[derive(Debug)]
pub struct Watcher {
    pub rx: broadcast::Receiver<Event>,
    count: Arc<AtomicUsize>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast::error::TryRecvError;

    #[test]
    fn nothing_is_built_without_watchers_and_watchers_see_what_follows() {
        let ev = Events::new();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(!ev.active());
        ev.error(peer, None, ErrorCode::BadRequest);
        let mut w = ev.subscribe();
        assert!(ev.active());
        ev.error(peer, None, ErrorCode::RateLimited);
        let got = w.rx.try_recv().unwrap();
        assert!(matches!(
            got.kind,
            EventKind::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        ));
        assert!(matches!(w.rx.try_recv(), Err(TryRecvError::Empty)));
        drop(w);
        assert!(!ev.active());
    }

    #[test]
    fn a_slow_watcher_is_told_how_many_it_missed() {
        let ev = Events::new();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut w = ev.subscribe();
        for _ in 0..EVENT_BACKLOG + 3 {
            ev.error(peer, None, ErrorCode::BadRequest);
        }
        assert!(matches!(w.rx.try_recv(), Err(TryRecvError::Lagged(3))));
        assert!(w.rx.try_recv().is_ok());
    }
}
