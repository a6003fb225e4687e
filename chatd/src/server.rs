//! The server context: what every session, listener and admin connection shares.
//!
//! It sits beside the [`Directory`], not inside it: the config in force, the counters, the
//! admin event stream and the connection table are this node's, whatever directory routes the
//! lines. [`Server::claim`] and [`Server::release`] are the one place a login or a leave is
//! both put into the directory and told to the administrator.

use crate::conns::{Conn, Conns};
use crate::directory::{ClaimError, Directory};
use crate::events::Events;
use crate::live::Live;
use crate::logins::Logins;
use crate::mailbox::Bounds;
use crate::per_address::PerAddress;
use crate::stats::Stats;
use proto::{LeaveReason, Name};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
pub struct Server {
    /// The config in force; a reload swaps it (see [`crate::live`]).
    pub config: Live,
    pub directory: Box<dyn Directory>,
    pub conns: Conns,
    /// Logins and failed passwords per source address.
    pub logins: Logins,
    /// Connections open per source address (`max_per_ip`).
    pub per_address: PerAddress,
    pub stats: Stats,
    /// What `chatctl watch` sees; free while nobody watches.
    pub events: Events,
    pub started: Instant,
}

impl Server {
    pub fn new(config: Live, directory: Box<dyn Directory>) -> Server {
        Server {
            config,
            directory,
            conns: Conns::new(),
            logins: Logins::new(),
            per_address: PerAddress::default(),
            stats: Stats::default(),
            events: Events::new(),
            started: Instant::now(),
        }
    }

    /// Logs `conn` in as `name`: the directory grants it and tells the others.
    pub fn claim(&self, conn: &Arc<Conn>, name: Name) -> Result<Vec<Name>, ClaimError> {
        let roster = self.directory.claim(conn, name)?;
        if let Some(name) = conn.name() {
            self.events.login(conn.peer, name);
        }
        Ok(roster)
    }

    /// Logs `conn` out, if it holds a name, and tells the others why (no one is told while
    /// the server shuts down: everyone is leaving).
    pub fn release(&self, conn: &Conn, reason: LeaveReason) {
        let announce = !self.conns.shutting_down();
        if let Some(name) = self.directory.release(conn, reason, announce) {
            self.events.logout(conn.peer, &name, reason);
        }
    }
}

/// A connection's place in the table; dropping it logs the connection out (if the session
/// did not already say why) and forgets it, whatever way the session ended.
#[derive(Debug)]
pub struct ConnGuard {
    pub server: Arc<Server>,
    pub conn: Arc<Conn>,
}

impl ConnGuard {
    /// Enters a connection from `peer` whose queue holds what `queue` allows.
    pub fn open(server: Arc<Server>, peer: std::net::SocketAddr, queue: Bounds) -> ConnGuard {
        let conn = server.conns.open(peer, queue);
        ConnGuard { server, conn }
    }

    /// Takes the connection out of the table and gives its address's place back
    /// (`max_per_ip`) now rather than when the guard drops: the session calls it before its
    /// last log line, so that a client that saw that line can count on the place being free,
    /// as it can on the connection slot.
    pub fn forget(&self) {
        if self.server.conns.remove(&self.conn) {
            self.server.per_address.release(self.conn.peer.ip());
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.server.release(&self.conn, LeaveReason::Disconnect);
        // However the session ended, if it did not forget itself.
        self.forget();
    }
}
