//! The directory: who holds which name, and the only way a line reaches another user.
//!
//! Sessions and the admin channel see the [`Directory`] trait and nothing behind it: claim a
//! name (getting the roster back), release it, route a private line, fan lines out to an
//! [`Audience`], list and count, kick. Every outcome is a value ([`Delivery`], [`ClaimError`],
//! counts), because the protocol promises the sender an answer (`delivered`, `recipient_busy`,
//! `unknown_user`), so a private message is a request with an answer, never a fire-and-forget
//! publish.
//!
//! [`local::LocalDirectory`] is the single-node implementation: a map behind a std lock.
//! Where the next ones plug in:
//! - rooms: an `Audience::Room` and members per room, beside the name map;
//! - several nodes: an implementation that claims names in a NATS key-value bucket, routes a
//!   private line to the node holding the recipient by request/reply (gathered per batch, so
//!   `Delivery::Remote` answers can arrive later), and sums the counts each node reports.
//!
//! Every call is synchronous, so the single-node path never awaits. An implementation that
//! must ask the network (a NATS key-value `create` for a claim, a request to another node for
//! a private line) answers at once that the outcome is on its way (`Delivery::Remote`, and
//! a pending claim likewise), and the session holds that request's answer back until the
//! outcome arrives in its mailbox: the mechanism a delayed `auth_failed` already uses
//! (`session::Core::held`, with later lines deferred in order).
//!
//! A [`Route`] is the sender's memory of where its last private line went; only directory
//! implementations look inside it.

pub mod local;

use crate::conns::Conn;
use bytes::Bytes;
use proto::encode::Ts;
use proto::request::Raw;
use proto::{LeaveReason, Name};
use std::sync::Arc;

/// What became of a private line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// In the recipient's queue.
    Queued,
    /// The recipient's queue is full; nothing was queued.
    Busy,
    /// Nobody by that name is logged in.
    Unknown,
    /// The message is longer than the recipient's whole queue (`queue_bytes`): it can never
    /// be queued, however fast they read.
    TooLarge { queue_bytes: usize },
}

/// Why a name was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    /// Someone holds the name (in any ASCII case).
    Taken,
    /// This connection already holds a name.
    AlreadyLoggedIn,
}

/// Who a fan-out reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Everyone logged in.
    Everyone,
}

/// Encoded lines queued together: back to back in one shared buffer, line `i` ending at
/// `ends[i]`. A recipient's queue holds a slice of the buffer, so the lines are encoded once
/// however many receive them, and a run of one sender's broadcasts costs each recipient one
/// lock and one reference count instead of one per line.
#[derive(Debug, Clone)]
pub struct Lines {
    pub bytes: Bytes,
    pub ends: Vec<usize>,
}

impl Lines {
    /// One line.
    pub fn one(line: Bytes) -> Lines {
        let ends = vec![line.len()];
        Lines { bytes: line, ends }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// A sender's memory of its last recipient, so that writing to the same user again skips
/// the shared lock. Opaque outside the directory implementations.
#[derive(Debug, Default)]
pub struct Route {
    pub(crate) last: Option<Arc<Conn>>,
}

/// The name directory. Every method is a short synchronous call: nothing here awaits, so no
/// caller can hold a lock across an `.await` through it.
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// Grants `name` to `conn` and tells every other user it joined; returns who is logged in
    /// now, sorted, `name` included.
    fn claim(&self, conn: &Arc<Conn>, name: Name) -> Result<Vec<Name>, ClaimError>;

    /// Takes back the name `conn` holds, if any, and, when `announce`, tells the others it
    /// left for `reason`. The connection accepts no more lines from then on. Returns the name
    /// released.
    fn release(&self, conn: &Conn, reason: LeaveReason, announce: bool) -> Option<Name>;

    /// Queues a private message from `from` for the user named `to` (any ASCII case).
    fn send(&self, route: &mut Route, from: &Name, to: &str, body: Raw<'_>, ts: &Ts) -> Delivery;

    /// Queues `lines` for every member of `to` except `from`; element `i` of the result is
    /// how many queues took line `i`. A queue with room for only some takes the first ones,
    /// so nobody sees a later line of a run without the earlier.
    fn fan_out(&self, from: Option<&Conn>, to: Audience, lines: &Lines) -> Vec<usize>;

    /// The members of `of`, sorted by name.
    fn list(&self, of: Audience) -> Vec<Name>;

    /// How many members `of` has, without listing them (`chatctl status` on a big server).
    fn count(&self, of: Audience) -> usize;

    /// Ends the session of `name` (any ASCII case) with `bye kicked`; returns the name as
    /// registered, or `None` if nobody by that name is logged in.
    fn kick(&self, name: &str, reason: Option<String>) -> Option<Name>;
}
