//! The single-node directory: names map to this process's connections behind one std
//! `RwLock`, and a line reaches a user by a push into that connection's mailbox.
//!
//! Every method is one short critical section. A message is encoded once, outside the lock
//! where it can be, and handed to each recipient as a shared `Bytes`. Joins and leaves are
//! queued under the write lock, so every member sees a user's `join` before any of its
//! messages and its `leave` after all of them.

use super::{Audience, ClaimError, Delivery, Directory, Lines, Route};
use crate::conns::Conn;
use crate::mailbox::{CloseRequest, Push};
use proto::encode::Ts;
use proto::request::Raw;
use proto::{LeaveReason, Name, NameKey, encode};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
pub struct LocalDirectory {
    users: RwLock<Users>,
}

#[derive(Debug, Default)]
struct Users {
    by_key: HashMap<NameKey, Arc<Conn>>,
    /// Names in byte order of their registered spelling, for the sorted `users` lists.
    sorted: BTreeSet<Name>,
}

impl LocalDirectory {
    pub fn new() -> LocalDirectory {
        LocalDirectory::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Users> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.users.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Users> {
        self.users.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Directory for LocalDirectory {
    fn claim(&self, conn: &Arc<Conn>, name: Name) -> Result<Vec<Name>, ClaimError> {
        if conn.name().is_some() {
            return Err(ClaimError::AlreadyLoggedIn);
        }
        let key = name.key();
        let event = encode::join_event(name.as_str());
        let mut users = self.write();
        if users.by_key.contains_key(&key) {
            return Err(ClaimError::Taken);
        }
        if !conn.set_name(name.clone()) {
            return Err(ClaimError::AlreadyLoggedIn);
        }
        // Under the write lock, so every peer sees this join before any message or leave
        // of the new user, and the list below matches the joins others were sent.
        for other in users.by_key.values() {
            other.mailbox.push(event.clone());
        }
        users.by_key.insert(key, conn.clone());
        users.sorted.insert(name);
        Ok(users.sorted.iter().cloned().collect())
    }

    fn release(&self, conn: &Conn, reason: LeaveReason, announce: bool) -> Option<Name> {
        let name = conn.name()?;
        let key = name.key();
        let mut users = self.write();
        match users.by_key.get(&key) {
            Some(c) if c.id == conn.id => {}
            _ => return None,
        }
        users.by_key.remove(&key);
        users.sorted.remove(name);
        // Under the lock, before anyone can look the name up again: a sender whose route
        // still holds this connection is refused from now on and looks the name up.
        conn.mailbox.seal();
        if announce {
            let event = encode::leave_event(name.as_str(), reason);
            for other in users.by_key.values() {
                other.mailbox.push(event.clone());
            }
        }
        Some(name.clone())
    }

    /// The route is checked by comparing spellings, which costs less than building the
    /// name's key: under load the lock's shared counter, bounced between cores on every
    /// message, was the largest cost of a private message. A remembered recipient that has
    /// left has a sealed mailbox, which refuses the push; the name is then looked up afresh
    /// (it may belong to someone new by now).
    fn send(&self, route: &mut Route, from: &Name, to: &str, body: Raw<'_>, ts: &Ts) -> Delivery {
        // The remembered recipient is used through the route's own reference: cloning it
        // would write its reference count, on a cache line the recipient's own core keeps
        // touching, for every message. Clients nearly always spell a name as it was
        // registered, so the exact comparison comes first.
        let cached = route.last.as_ref().filter(|c| {
            c.name().is_some_and(|n| {
                let n = n.as_str();
                n == to || n.eq_ignore_ascii_case(to)
            })
        });
        if let Some(conn) = cached {
            match deliver(conn, from, body, ts) {
                Some(delivery) => return delivery,
                // It has left: the name may belong to someone new by now.
                None => route.last = None,
            }
        }
        let found = NameKey::new(to).and_then(|key| self.read().by_key.get(&key).cloned());
        let Some(conn) = found else {
            route.last = None;
            return Delivery::Unknown;
        };
        let delivery = deliver(&conn, from, body, ts).unwrap_or(Delivery::Unknown);
        route.last = Some(conn);
        delivery
    }

    fn fan_out(&self, from: Option<&Conn>, to: Audience, lines: &Lines) -> Vec<usize> {
        let Audience::Everyone = to;
        let mut delivered = vec![0; lines.len()];
        if lines.is_empty() {
            return delivered;
        }
        {
            let users = self.read();
            let from = from.map(|c| c.id);
            for c in users.by_key.values().filter(|c| Some(c.id) != from) {
                // delivered[n - 1] first counts the recipients that took exactly n lines.
                if let Some(n) = c.mailbox.push_run(&lines.bytes, &lines.ends).checked_sub(1) {
                    delivered[n] += 1;
                }
            }
        }
        let mut took = 0;
        for d in delivered.iter_mut().rev() {
            took += *d;
            *d = took;
        }
        delivered
    }

    fn list(&self, of: Audience) -> Vec<Name> {
        let Audience::Everyone = of;
        self.read().sorted.iter().cloned().collect()
    }

    fn count(&self, of: Audience) -> usize {
        let Audience::Everyone = of;
        self.read().by_key.len()
    }

    fn kick(&self, name: &str, reason: Option<String>) -> Option<Name> {
        let key = NameKey::new(name)?;
        let conn = self.read().by_key.get(&key).cloned()?;
        conn.mailbox.close(CloseRequest::Kicked(reason));
        conn.name().cloned()
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;

/// Queues a private message for `conn`: `None` if it is closing (or has no name yet).
fn deliver(conn: &Conn, from: &Name, body: Raw<'_>, ts: &Ts) -> Option<Delivery> {
    let to = conn.name()?;
    let line = encode::msg_event(from.as_str(), to.as_str(), body, ts);
    match conn.mailbox.push(line) {
        Push::Queued => Some(Delivery::Queued),
        Push::Full => Some(Delivery::Busy),
        Push::NeverFits { bound } => Some(Delivery::TooLarge { queue_bytes: bound }),
        Push::Closed => None,
    }
}
