//! Who is connected and who is logged in, and the only way messages reach another session.
//!
//! [`Registry`] is a cheap handle over shared state behind std locks. Every method is a short
//! synchronous critical section: nothing here awaits, so no lock is ever held across an
//! `.await`. A message is encoded once, outside the locks where it can be, and handed to each
//! recipient's [`Mailbox`] as a shared `Bytes`. The API (join, leave, deliver, broadcast, list,
//! kick, notice) is what sessions and the admin channel see; a remote backplane can later sit
//! behind it without touching either.

use crate::admin::Events;
use crate::mailbox::{CloseRequest, Mailbox, Push};
use crate::stats::Stats;
use bytes::Bytes;
use proto::request::Raw;
use proto::{LeaveReason, Name, NameKey, encode};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Instant, SystemTime};

/// One connection as the rest of the server sees it.
#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    pub connected_at: SystemTime,
    pub connected_instant: Instant,
    /// Set once, at login.
    name: OnceLock<Name>,
    pub mailbox: Mailbox,
    /// Messages this session sent (accepted `msg` requests).
    pub sent: AtomicU64,
    /// Lines handed to this session's socket from its queue.
    pub received: AtomicU64,
    /// Milliseconds after `connected_instant` of the last request read.
    pub last_active_ms: AtomicU64,
}

impl Conn {
    pub fn name(&self) -> Option<&Name> {
        self.name.get()
    }
}

/// A session's memory of whom it last wrote to; see [`Registry::deliver_cached`].
#[derive(Debug, Default)]
pub struct RecipientCache(Option<Arc<Conn>>);

/// Why a login was refused by the registry.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinError {
    NameTaken,
    AlreadyLoggedIn,
}

/// Why a private message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum DeliverError {
    UnknownUser,
    /// The recipient's queue is full.
    Busy,
}

#[derive(Clone, Debug)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    users: RwLock<Users>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    /// Atomic so a config reload can change it for connections made afterwards.
    queue_len: AtomicUsize,
    shutting_down: AtomicBool,
    stats: Stats,
    /// What `chatctl watch` sees; free while nobody watches.
    events: Events,
}

#[derive(Debug, Default)]
struct Users {
    by_key: HashMap<NameKey, Arc<Conn>>,
    /// Names in byte order of their registered spelling, for the sorted `users` lists.
    sorted: BTreeSet<Name>,
}

impl Registry {
    /// `queue_len` bounds each session's outgoing queue, in lines.
    pub fn new(queue_len: usize) -> Registry {
        Registry {
            inner: Arc::new(Inner {
                users: RwLock::new(Users::default()),
                conns: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                queue_len: AtomicUsize::new(queue_len),
                shutting_down: AtomicBool::new(false),
                stats: Stats::default(),
                events: Events::new(),
            }),
        }
    }

    /// Sets the queue length of connections made from now on (a reload).
    pub fn set_queue_len(&self, queue_len: usize) {
        self.inner.queue_len.store(queue_len, Ordering::Relaxed);
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The admin event stream (logins, leaves, error replies) behind `chatctl watch`.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// The bound of each session's outgoing queue, in lines.
    pub fn queue_len(&self) -> usize {
        self.inner.queue_len.load(Ordering::Relaxed)
    }

    fn users_read(&self) -> std::sync::RwLockReadGuard<'_, Users> {
        self.inner.users.read().unwrap_or_else(|p| p.into_inner())
    }

    fn users_write(&self) -> std::sync::RwLockWriteGuard<'_, Users> {
        self.inner.users.write().unwrap_or_else(|p| p.into_inner())
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.inner.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new connection; the returned guard removes it when dropped.
    pub fn connect(&self, peer: SocketAddr) -> ConnGuard {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            peer,
            connected_at: SystemTime::now(),
            connected_instant: Instant::now(),
            name: OnceLock::new(),
            mailbox: Mailbox::new(self.inner.queue_len.load(Ordering::Relaxed)),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            last_active_ms: AtomicU64::new(0),
        });
        self.conns().insert(id, conn.clone());
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            conn.mailbox.close(CloseRequest::Shutdown);
        }
        ConnGuard {
            registry: self.clone(),
            conn,
        }
    }

    /// Number of open connections, logged in or not.
    pub fn connections(&self) -> usize {
        self.conns().len()
    }

    /// Logs `conn` in as `name`, tells everyone else, and returns who is now logged in
    /// (sorted, including `name`).
    pub fn join(&self, conn: &Arc<Conn>, name: Name) -> Result<Vec<Name>, JoinError> {
        if conn.name.get().is_some() {
            return Err(JoinError::AlreadyLoggedIn);
        }
        let key = name.key();
        let event = encode::join_event(name.as_str());
        let mut users = self.users_write();
        if users.by_key.contains_key(&key) {
            return Err(JoinError::NameTaken);
        }
        conn.name
            .set(name.clone())
            .map_err(|_| JoinError::AlreadyLoggedIn)?;
        // Under the write lock, so every peer sees this join before any message or leave
        // of the new user, and the list below matches the joins others were sent.
        for other in users.by_key.values() {
            other.mailbox.push(event.clone());
        }
        users.by_key.insert(key, conn.clone());
        users.sorted.insert(name);
        let list = users.sorted.iter().cloned().collect();
        drop(users);
        if let Some(name) = conn.name() {
            self.inner.events.login(conn, name);
        }
        Ok(list)
    }

    /// Logs `conn` out, if it was logged in, and tells the others why (no one is told while
    /// the server shuts down: everyone is leaving).
    pub fn leave(&self, conn: &Conn, reason: LeaveReason) {
        let Some(name) = conn.name.get() else { return };
        let key = name.key();
        let mut users = self.users_write();
        match users.by_key.get(&key) {
            Some(c) if c.id == conn.id => {}
            _ => return,
        }
        users.by_key.remove(&key);
        users.sorted.remove(name);
        // Under the lock, before anyone can look the name up again: a sender holding this
        // connection in its RecipientCache is refused from now on and looks the name up.
        conn.mailbox.seal();
        if !self.inner.shutting_down.load(Ordering::SeqCst) {
            let event = encode::leave_event(name.as_str(), reason);
            for other in users.by_key.values() {
                other.mailbox.push(event.clone());
            }
        }
        drop(users);
        self.inner.events.logout(conn, name, reason);
    }

    /// Queues a private message from `from` to the user named `to` (any ASCII case).
    pub fn deliver(
        &self,
        from: &Name,
        to: &str,
        body: Raw<'_>,
        ts_ms: u64,
    ) -> Result<(), DeliverError> {
        self.deliver_cached(&mut RecipientCache::default(), from, to, body, ts_ms)
    }

    /// [`Registry::deliver`], remembering the recipient in `cache` so that a sender writing to
    /// the same user again skips the shared lock: under load that lock's counter, bounced
    /// between cores on every message, was the largest cost of a private message. A cached
    /// recipient that has left has a sealed mailbox, which refuses the push; the name is then
    /// looked up afresh (it may belong to someone new by now).
    pub fn deliver_cached(
        &self,
        cache: &mut RecipientCache,
        from: &Name,
        to: &str,
        body: Raw<'_>,
        ts_ms: u64,
    ) -> Result<(), DeliverError> {
        let mut fresh = false;
        loop {
            // The cache is checked by comparing spellings, which costs less than building the
            // name's key; the key (and its validation) is only needed for a lookup.
            let cached = cache.0.as_ref().filter(|c| {
                c.name()
                    .is_some_and(|n| n.as_str().eq_ignore_ascii_case(to))
            });
            let recipient = match cached {
                Some(conn) => conn.clone(),
                None => {
                    let key = NameKey::new(to).ok_or(DeliverError::UnknownUser)?;
                    let found = self.users_read().by_key.get(&key).cloned();
                    let Some(conn) = found else {
                        cache.0 = None;
                        return Err(DeliverError::UnknownUser);
                    };
                    cache.0 = Some(conn.clone());
                    fresh = true;
                    conn
                }
            };
            let to_name = recipient.name().ok_or(DeliverError::UnknownUser)?;
            let line = encode::msg_event(from.as_str(), to_name.as_str(), body, ts_ms);
            match recipient.mailbox.push(line) {
                Push::Queued => return Ok(()),
                Push::Full => return Err(DeliverError::Busy),
                Push::Closed if fresh => return Err(DeliverError::UnknownUser),
                Push::Closed => cache.0 = None,
            }
        }
    }

    /// Queues a run of broadcasts from `from` for everyone else: `run` holds the `msg` events
    /// back to back, event `i` ending at `ends[i]`. Sets `delivered[i]` to how many queues took
    /// event `i`. One lock and one shared reference per recipient for the whole run, instead
    /// of one per event: that is most of what a broadcast costs per copy. A queue with room
    /// for only some takes the first ones, so a recipient never sees a later one without the
    /// earlier.
    pub fn broadcast(&self, from: &Conn, run: &Bytes, ends: &[usize], delivered: &mut [usize]) {
        delivered.fill(0);
        if ends.is_empty() {
            return;
        }
        {
            let users = self.users_read();
            for c in users.by_key.values().filter(|c| c.id != from.id) {
                // delivered[n - 1] first counts the recipients that took exactly n events.
                if let Some(n) = c.mailbox.push_run(run, ends).checked_sub(1) {
                    delivered[n] += 1;
                }
            }
        }
        let mut took = 0;
        for d in delivered.iter_mut().rev() {
            took += *d;
            *d = took;
        }
    }

    /// Sends an administrator's notice to everyone logged in; returns how many queues took it.
    pub fn notice(&self, body: &str) -> usize {
        let line = encode::notice_event(body, crate::now_ms());
        let users = self.users_read();
        users
            .by_key
            .values()
            .filter(|c| c.mailbox.push(line.clone()) == Push::Queued)
            .count()
    }

    /// Everyone logged in, sorted by name.
    pub fn list(&self) -> Vec<Name> {
        self.users_read().sorted.iter().cloned().collect()
    }

    /// The logged-in sessions, sorted by name, for the admin channel.
    pub fn sessions(&self) -> Vec<Arc<Conn>> {
        let users = self.users_read();
        users
            .sorted
            .iter()
            .filter_map(|n| users.by_key.get(&n.key()).cloned())
            .collect()
    }

    /// Ends the session of `name` (any ASCII case) with `bye kicked`; returns the name as
    /// registered, or `None` if nobody by that name is logged in.
    pub fn kick(&self, name: &str, reason: Option<String>) -> Option<Name> {
        let key = NameKey::new(name)?;
        let conn = self.users_read().by_key.get(&key).cloned()?;
        conn.mailbox.close(CloseRequest::Kicked(reason));
        conn.name().cloned()
    }

    /// Asks every connection to close with `bye shutdown`, and refuses new ones the same way.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let conns: Vec<Arc<Conn>> = self.conns().values().cloned().collect();
        for c in conns {
            c.mailbox.close(CloseRequest::Shutdown);
        }
    }
}

/// Owns a connection's place in the registry; dropping it logs the connection out (if the
/// session did not already say why) and forgets it.
#[derive(Debug)]
pub struct ConnGuard {
    registry: Registry,
    pub conn: Arc<Conn>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.registry.leave(&self.conn, LeaveReason::Disconnect);
        // Another session's recipient cache may keep this `Conn` alive until that session
        // next sends a private message; what was queued here must not live as long.
        self.conn.mailbox.clear();
        self.registry.conns().remove(&self.conn.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Raw<'_> {
        Raw::parse(s).unwrap()
    }

    fn drain(c: &Conn) -> String {
        let mut out = Vec::new();
        c.mailbox.take(&mut out, usize::MAX);
        String::from_utf8(out).unwrap()
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn join_is_unique_ignoring_case_and_announced_to_others() {
        let r = Registry::new(8);
        let a = r.connect(addr());
        let b = r.connect(addr());
        assert_eq!(
            r.join(&a.conn, Name::new("alice").unwrap()).unwrap().len(),
            1
        );
        assert_eq!(
            r.join(&b.conn, Name::new("ALICE").unwrap()),
            Err(JoinError::NameTaken)
        );
        let users = r.join(&b.conn, Name::new("Bob").unwrap()).unwrap();
        assert_eq!(
            users.iter().map(Name::as_str).collect::<Vec<_>>(),
            ["Bob", "alice"]
        );
        assert_eq!(drain(&a.conn), "{\"type\":\"join\",\"user\":\"Bob\"}\n");
        assert_eq!(drain(&b.conn), "");
        assert_eq!(
            r.join(&b.conn, Name::new("x").unwrap()),
            Err(JoinError::AlreadyLoggedIn)
        );
    }

    #[test]
    fn deliver_matches_case_and_reports_unknown_and_busy() {
        let r = Registry::new(1);
        let a = r.connect(addr());
        let b = r.connect(addr());
        let alice = Name::new("alice").unwrap();
        r.join(&a.conn, alice.clone()).unwrap();
        r.join(&b.conn, Name::new("Bob").unwrap()).unwrap();
        drain(&a.conn);
        assert_eq!(
            r.deliver(&alice, "carol", raw("\"x\""), 1),
            Err(DeliverError::UnknownUser)
        );
        assert_eq!(r.deliver(&alice, "bob", raw("\"hi\""), 5), Ok(()));
        assert_eq!(
            r.deliver(&alice, "bob", raw("\"again\""), 6),
            Err(DeliverError::Busy)
        );
        assert_eq!(
            drain(&b.conn),
            "{\"type\":\"msg\",\"from\":\"alice\",\"to\":\"Bob\",\"body\":\"hi\",\"ts\":5}\n"
        );
    }

    #[test]
    fn broadcast_skips_sender_and_gives_each_queue_the_prefix_that_fits() {
        let r = Registry::new(3);
        let guards: Vec<_> = (0..4).map(|_| r.connect(addr())).collect();
        for (i, g) in guards.iter().enumerate() {
            r.join(&g.conn, Name::new(&format!("u{i}")).unwrap())
                .unwrap();
        }
        // Each holds the joins of those after it: room 0, 1, 2 and 3 of 3.
        let (mut run, mut ends) = (Vec::new(), Vec::new());
        for body in ["\"a\"", "\"b\"", "\"c\""] {
            encode::msg_event_into(&mut run, "u3", "*", raw(body), 1);
            ends.push(run.len());
        }
        let mut delivered = [9; 3];
        r.broadcast(&guards[3].conn, &Bytes::from(run), &ends, &mut delivered);
        assert_eq!(delivered, [2, 1, 0]);
        let bodies = |c: &Conn| {
            let text = drain(c);
            text.lines()
                .filter(|l| l.contains("\"to\":\"*\""))
                .map(|l| l[l.find("body").unwrap() + 7..][..1].to_string())
                .collect::<Vec<_>>()
        };
        assert!(bodies(&guards[0].conn).is_empty());
        assert_eq!(bodies(&guards[1].conn), ["a"]);
        assert_eq!(bodies(&guards[2].conn), ["a", "b"]);
        assert!(bodies(&guards[3].conn).is_empty(), "not to the sender");
        assert_eq!(guards[2].conn.mailbox.depth(), 0);
    }

    #[test]
    fn a_dropped_connection_frees_its_queue_even_while_a_sender_still_caches_it() {
        let r = Registry::new(8);
        let a = r.connect(addr());
        let b = r.connect(addr());
        let alice = Name::new("alice").unwrap();
        r.join(&a.conn, alice.clone()).unwrap();
        r.join(&b.conn, Name::new("bob").unwrap()).unwrap();
        let mut cache = RecipientCache::default();
        r.deliver_cached(&mut cache, &alice, "bob", raw("\"hi\""), 1)
            .unwrap();
        let bob = b.conn.clone();
        assert_eq!(bob.mailbox.depth(), 1);
        drop(b);
        assert_eq!(bob.mailbox.depth(), 0);
        assert!(cache.0.is_some(), "the cache still holds bob's Conn");
    }

    #[test]
    fn leave_and_kick_and_guard_drop() {
        let r = Registry::new(8);
        let a = r.connect(addr());
        let b = r.connect(addr());
        r.join(&a.conn, Name::new("a").unwrap()).unwrap();
        r.join(&b.conn, Name::new("b").unwrap()).unwrap();
        drain(&a.conn);
        assert_eq!(r.kick("B", Some("bye".into())).unwrap().as_str(), "b");
        assert_eq!(r.kick("nobody", None), None);
        r.leave(&b.conn, LeaveReason::Kicked);
        assert_eq!(
            drain(&a.conn),
            "{\"type\":\"leave\",\"user\":\"b\",\"reason\":\"kicked\"}\n"
        );
        drop(b);
        assert_eq!(r.list().len(), 1);
        assert_eq!(drain(&a.conn), "", "leave is told once");
        drop(a);
        assert_eq!(r.connections(), 0);
        assert!(r.list().is_empty());
    }

    #[test]
    fn a_cached_recipient_that_left_is_looked_up_again() {
        let r = Registry::new(8);
        let a = r.connect(addr());
        let alice = Name::new("alice").unwrap();
        r.join(&a.conn, alice.clone()).unwrap();
        let b1 = r.connect(addr());
        r.join(&b1.conn, Name::new("bob").unwrap()).unwrap();
        let mut cache = RecipientCache::default();
        assert_eq!(
            r.deliver_cached(&mut cache, &alice, "bob", raw("\"1\""), 1),
            Ok(())
        );
        assert!(drain(&b1.conn).contains("\"1\""));
        drop(b1);
        assert_eq!(
            r.deliver_cached(&mut cache, &alice, "bob", raw("\"2\""), 2),
            Err(DeliverError::UnknownUser)
        );
        let b2 = r.connect(addr());
        r.join(&b2.conn, Name::new("Bob").unwrap()).unwrap();
        assert_eq!(
            r.deliver_cached(&mut cache, &alice, "BOB", raw("\"3\""), 3),
            Ok(())
        );
        assert_eq!(
            drain(&b2.conn),
            "{\"type\":\"msg\",\"from\":\"alice\",\"to\":\"Bob\",\"body\":\"3\",\"ts\":3}\n"
        );
    }
}
