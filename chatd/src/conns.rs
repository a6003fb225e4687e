//! The connection table: every open connection, logged in or not, as the rest of the server
//! sees it.
//!
//! A [`Conn`] is what other tasks may touch of a session: its [`Mailbox`] (the only way a line
//! reaches it), its name once logged in, and a few relaxed counters for the administrator.
//! The session task owns everything else. [`Conns`] maps ids to them so that a shutdown can
//! reach every connection and `chatctl users` can read a [`snapshot`](Conns::sessions) of each
//! one; nobody outside this module reads a `Conn`'s atomics.

use crate::mailbox::{Bounds, CloseRequest, Mailbox};
use proto::Name;
use proto::admin::Session;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One connection, shared between its session and whoever delivers to it.
#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    connected_at: SystemTime,
    pub connected_instant: Instant,
    /// Set once, when the directory has granted the name.
    name: OnceLock<Name>,
    pub mailbox: Mailbox,
    /// Messages this session sent (accepted `msg` requests).
    sent: AtomicU64,
    /// Lines handed to this session's socket from its queue.
    received: AtomicU64,
    /// Milliseconds after `connected_instant` of the last request read.
    last_active_ms: AtomicU64,
}

impl Conn {
    pub fn name(&self) -> Option<&Name> {
        self.name.get()
    }

    /// Records the name the directory granted; false if this connection already had one.
    pub(crate) fn set_name(&self, name: Name) -> bool {
        self.name.set(name).is_ok()
    }

    /// What one read batch did, added once per batch so that sessions on different cores
    /// touch these cache lines rarely.
    pub(crate) fn record_batch(&self, now: Instant, messages: u64) {
        let since = now.saturating_duration_since(self.connected_instant);
        self.last_active_ms
            .store(since.as_millis() as u64, Ordering::Relaxed);
        if messages > 0 {
            self.sent.fetch_add(messages, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_received(&self, lines: u64) {
        if lines > 0 {
            self.received.fetch_add(lines, Ordering::Relaxed);
        }
    }

    /// This session as the administrator sees it, while it is logged in (a closing session
    /// has left already, and its sealed mailbox says so).
    fn snapshot(&self) -> Option<Session> {
        let name = self.name()?;
        if self.mailbox.is_sealed() {
            return None;
        }
        let age = self.connected_instant.elapsed().as_millis() as u64;
        let ((lines, bytes), bounds) = (self.mailbox.queued(), self.mailbox.bounds());
        let active = self.last_active_ms.load(Ordering::Relaxed);
        Some(Session {
            user: name.to_string(),
            peer: self.peer.to_string(),
            connected_at: self
                .connected_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            connected_ms: age,
            idle_ms: age.saturating_sub(active),
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            queue: lines as u64,
            queue_max: bounds.lines as u64,
            queue_bytes: bytes as u64,
            queue_bytes_max: bounds.bytes as u64,
        })
    }
}

/// Every open connection, and what a new one starts with.
#[derive(Debug, Default)]
pub struct Conns {
    map: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    shutting_down: AtomicBool,
}

impl Conns {
    pub fn new() -> Conns {
        Conns {
            map: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connection from `peer` whose queue holds what `queue` allows. During a shutdown
    /// it is asked to close at once.
    pub fn open(&self, peer: SocketAddr, queue: Bounds) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            connected_at: SystemTime::now(),
            connected_instant: Instant::now(),
            name: OnceLock::new(),
            mailbox: Mailbox::new(queue),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            last_active_ms: AtomicU64::new(0),
        });
        self.map().insert(conn.id, conn.clone());
        if self.shutting_down() {
            conn.mailbox.close(CloseRequest::Shutdown);
        }
        conn
    }

    /// Forgets a closed connection; false if it was forgotten already. What was queued for
    /// it is dropped: another session may keep the `Conn` alive a while (a cached route), its
    /// lines must not live as long.
    pub fn remove(&self, conn: &Conn) -> bool {
        conn.mailbox.clear();
        self.map().remove(&conn.id).is_some()
    }

    /// Open connections, logged in or not.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The logged-in sessions, sorted by name.
    pub fn sessions(&self) -> Vec<Session> {
        let conns: Vec<Arc<Conn>> = self.map().values().cloned().collect();
        let mut list: Vec<Session> = conns.iter().filter_map(|c| c.snapshot()).collect();
        list.sort_by(|a, b| a.user.cmp(&b.user));
        list
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Asks every connection to close with `bye shutdown`, and new ones from now on.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let conns: Vec<Arc<Conn>> = self.map().values().cloned().collect();
        for c in conns {
            c.mailbox.close(CloseRequest::Shutdown);
        }
    }
}
