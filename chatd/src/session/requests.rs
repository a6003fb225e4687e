//! Serving one request line: the protocol's answers, for a session's [`Core`].
//!
//! Everything here is synchronous and writes its reply into the session's output buffer; what
//! goes to other users goes through the registry. Broadcasts are the one exception to "answer
//! at once": those of one read chunk are gathered into a [`Run`] and queued to everyone
//! together, and any other reply first flushes the run so replies keep request order. Split
//! from `session.rs`, which keeps the connection's life (its loop, reading, writing, closing).

use super::{Core, OUT_HIGH_WATER};
use crate::registry::{DeliverError, JoinError};
use bytes::Bytes;
use proto::codec::Frame;
use proto::request::{self, Parsed, Raw, Request, Target};
use proto::{ByeReason, ErrorCode, LeaveReason, Name, encode};
use std::time::Instant;
use tracing::info;

impl Core {
    /// `max` is the limit this connection's decoder enforces (a reload changes it only for
    /// new connections), so `too_large` names the limit that applied.
    pub(super) fn on_frame(&mut self, frame: Frame<'_>, max: usize, now: Instant, ts: u64) {
        if self.closing.is_some() {
            // Lines after `logout` (or a close) in the same read are not served.
            return;
        }
        if self.out.len() >= OUT_HIGH_WATER || self.deferred.is_some() {
            // One read chunk can hold hundreds of requests with large replies (`users` on a
            // big server): past the high-water mark the rest wait, copied, for the client to
            // read, and nothing more is read meanwhile (see `serve_deferred`).
            let line = match frame {
                Frame::Line(line) => Some(line.into()),
                Frame::TooLong => None,
            };
            self.deferred.get_or_insert_default().push_back(line);
            return;
        }
        self.serve_frame(frame, max, now, ts);
    }

    /// Serves the lines deferred by [`Core::on_frame`], in order, while the output buffer has
    /// room.
    pub(super) fn serve_deferred(&mut self, max: usize, now: Instant, ts: u64) {
        while self.out.len() < OUT_HIGH_WATER && self.closing.is_none() {
            let Some(deferred) = &mut self.deferred else {
                break;
            };
            let Some(line) = deferred.pop_front() else {
                break;
            };
            if deferred.is_empty() {
                self.deferred = None;
            }
            match line {
                Some(line) => self.serve_frame(Frame::Line(&line), max, now, ts),
                None => self.serve_frame(Frame::TooLong, max, now, ts),
            }
        }
        if self.closing.is_some() {
            self.deferred = None;
        }
        self.flush_broadcasts();
    }

    fn serve_frame(&mut self, frame: Frame<'_>, max: usize, now: Instant, ts: u64) {
        match frame {
            Frame::TooLong => {
                self.error(
                    None,
                    ErrorCode::TooLarge,
                    &format!("line longer than {max} bytes; it was discarded"),
                );
            }
            Frame::Line(line) => match request::parse(line) {
                Ok(None) => {}
                Ok(Some(parsed)) => self.serve(parsed, now, ts),
                Err(e) => self.error(e.id, e.code, &e.message),
            },
        }
    }

    fn error(&mut self, id: Option<Raw<'_>>, code: ErrorCode, message: &str) {
        self.flush_broadcasts();
        info!(peer = %self.guard.conn.peer, user = %self.user(), %code, "error reply");
        self.registry().stats().error(code);
        self.registry()
            .events()
            .error(self.guard.conn.peer, self.name.as_ref(), code);
        encode::error(&mut self.out, id, code, message);
    }

    fn serve(&mut self, Parsed { id, request }: Parsed<'_>, now: Instant, ts: u64) {
        if !matches!(
            request,
            Request::Msg {
                to: Target::All,
                ..
            }
        ) {
            self.flush_broadcasts();
        }
        match request {
            Request::Ping => encode::ok(&mut self.out, id),
            Request::Login { name, password } => self.login(id, &name, password.as_deref()),
            Request::Msg { to, body, from } => {
                let Some(me) = self.name.clone() else {
                    return self.not_logged_in(id);
                };
                if let Some(from) = from.filter(|f| !f.eq_ignore_ascii_case(me.as_str())) {
                    let msg = format!("you are logged in as {me} and cannot send as {from}");
                    return self.error(id, ErrorCode::Forbidden, &msg);
                }
                if let Err(wait) = self.rate.take(now) {
                    let msg = format!(
                        "over the limit of {} messages per second; nothing was delivered, retry in {} ms",
                        // This connection's limit: a reload applies only to new ones.
                        self.rate.rate(),
                        wait.as_millis().max(1)
                    );
                    return self.error(id, ErrorCode::RateLimited, &msg);
                }
                self.send(id, &me, to, body, ts);
            }
            Request::Users => {
                if self.name.is_none() {
                    return self.not_logged_in(id);
                }
                let users = self.registry().list();
                encode::ok_users(&mut self.out, id, users.iter().map(Name::as_str));
            }
            Request::Logout => {
                let Some(user) = &self.name else {
                    return self.not_logged_in(id);
                };
                info!(peer = %self.guard.conn.peer, %user, "logged out");
                encode::ok(&mut self.out, id);
                self.begin_close(
                    Some((ByeReason::Logout, None)),
                    LeaveReason::Logout,
                    false,
                    now,
                );
            }
        }
    }

    fn not_logged_in(&mut self, id: Option<Raw<'_>>) {
        self.error(
            id,
            ErrorCode::NotLoggedIn,
            "log in first: {\"type\":\"login\",\"from\":\"NAME\"}",
        );
    }

    fn login(&mut self, id: Option<Raw<'_>>, name: &str, password: Option<&str>) {
        if let Some(me) = &self.name {
            let msg = format!("this connection is already logged in as {me}");
            return self.error(id, ErrorCode::AlreadyLoggedIn, &msg);
        }
        if let Some(expected) = &self.shared.config.load().password
            && !password.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes()))
        {
            let msg = if password.is_some() {
                "wrong password"
            } else {
                "this server requires a password"
            };
            return self.error(id, ErrorCode::AuthFailed, msg);
        }
        let name = match Name::new(name) {
            Ok(n) => n,
            Err(e) => return self.error(id, ErrorCode::InvalidName, &e.to_string()),
        };
        let conn = self.conn().clone();
        match self.registry().join(&conn, name.clone()) {
            Ok(users) => {
                info!(peer = %self.guard.conn.peer, user = %name, "logged in");
                encode::ok_login(
                    &mut self.out,
                    id,
                    name.as_str(),
                    users.iter().map(Name::as_str),
                    crate::SERVER_ID,
                );
                self.name = Some(name);
            }
            Err(JoinError::NameTaken) => {
                let msg = format!("{name} is already logged in; choose another name");
                self.error(id, ErrorCode::NameTaken, &msg);
            }
            Err(JoinError::AlreadyLoggedIn) => {
                self.error(
                    id,
                    ErrorCode::AlreadyLoggedIn,
                    "this connection is already logged in",
                );
            }
        }
    }

    fn send(&mut self, id: Option<Raw<'_>>, me: &Name, to: Target<'_>, body: Raw<'_>, ts: u64) {
        let delivered = match to {
            Target::All => return self.gather_broadcast(id, me, body, ts),
            Target::User(to) => {
                match self
                    .shared
                    .registry
                    .deliver_cached(&mut self.recipient, me, &to, body, ts)
                {
                    Ok(()) => 1,
                    Err(DeliverError::UnknownUser) => {
                        return self.error(
                            id,
                            ErrorCode::UnknownUser,
                            &format!("{to} is not logged in"),
                        );
                    }
                    Err(DeliverError::Busy) => {
                        let msg = format!(
                            "{to} is not reading fast enough; nothing was queued, try again later"
                        );
                        return self.error(id, ErrorCode::RecipientBusy, &msg);
                    }
                }
            }
        };
        self.batch.messages += 1;
        self.batch.delivered += delivered as u64;
        encode::ok_delivered(&mut self.out, id, delivered);
    }
}

thread_local! {
    /// The run being gathered by the session this worker is serving. It lives only inside one
    /// synchronous read (flushed before the read returns), so no other session can meet it,
    /// and it costs the session future nothing while idle.
    static RUN: std::cell::Cell<Option<Box<Run>>> = const { std::cell::Cell::new(None) };
}

impl Core {
    fn gather_broadcast(&mut self, id: Option<Raw<'_>>, me: &Name, body: Raw<'_>, ts: u64) {
        let mut run = RUN.take().unwrap_or_default();
        encode::msg_event_into(&mut run.events, me.as_str(), "*", body, ts);
        run.ends.push(run.events.len());
        encode::ok_delivered_start(&mut run.oks, id);
        run.ok_ends.push(run.oks.len());
        RUN.set(Some(run));
    }

    /// Queues the gathered broadcasts for everyone at once and writes their `ok` replies.
    /// Called before any other reply is written, so replies stay in request order, and at the
    /// end of every read chunk, so no broadcast waits for more input.
    pub(super) fn flush_broadcasts(&mut self) {
        let Some(mut run) = RUN.take() else {
            return;
        };
        // Exact size: a recipient that stops reading holds these bytes for as long as its
        // queue keeps any line of the run, and grown-by-doubling slack would double that.
        run.events.shrink_to_fit();
        let events = Bytes::from(run.events);
        let mut delivered = vec![0; run.ends.len()];
        self.registry()
            .broadcast(self.conn(), &events, &run.ends, &mut delivered);
        let mut start = 0;
        for (&end, &n) in run.ok_ends.iter().zip(&delivered) {
            self.out.extend_from_slice(&run.oks[start..end]);
            encode::ok_delivered_end(&mut self.out, n);
            start = end;
        }
        self.batch.messages += delivered.len() as u64;
        self.batch.delivered += delivered.iter().sum::<usize>() as u64;
    }
}

/// Request lines read past the output buffer's high-water mark, in order; `None` stands for a
/// line that was too long. At most one read chunk's worth, since nothing more is read while
/// any wait.
pub(super) type Deferred = std::collections::VecDeque<Option<Box<[u8]>>>;

/// Broadcasts accepted from one read chunk and not yet queued. Queued together, they cost
/// each recipient one lock and one shared reference for the whole run (see
/// [`crate::registry::Registry::broadcast`]).
#[derive(Default)]
pub(super) struct Run {
    /// The `msg` events, back to back.
    events: Vec<u8>,
    /// Where each event ends in `events`.
    ends: Vec<usize>,
    /// The `ok` replies, each up to its `delivered` count, back to back.
    oks: Vec<u8>,
    ok_ends: Vec<usize>,
}

/// Compares secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
