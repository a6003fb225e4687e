//! Serving one request line: the protocol's answers, for a session's [`Core`].
//!
//! Everything here is synchronous and writes its answer into the connection's output buffer;
//! what goes to other users goes through the directory. Broadcasts are the one exception to
//! "answer at once": those of one read are gathered into the session's pending [`Run`] and
//! fanned out together at the end of the read. Every answer is written through
//! [`Core::answer`], which fans out the pending run first, so answers keep request order by
//! construction: nothing else here touches the output buffer.

use super::Core;
use super::phase::{Close, Phase};
use crate::connection::Handler;
use crate::directory::{Audience, ClaimError, Delivery, Lines};
use crate::logins::Refusal;
use crate::rate::Charge;
use crate::stats::Stats;
use bytes::Bytes;
use proto::codec::Frame;
use proto::request::{self, Parsed, Raw, Request, Target};
use proto::{ErrorCode, Name, encode};
use std::time::Instant;
use tracing::info;

/// One read's lines as they are served: the clock, read once, and the counts, added to the
/// shared counters once at the end so that sessions on different cores do not fight over
/// those cache lines for every message.
pub(super) struct Batch {
    now: Instant,
    /// Wall-clock milliseconds, the `ts` of this read's messages, formatted once.
    ts: encode::Ts,
    bytes: usize,
    messages: u64,
    delivered: u64,
}

impl Handler for Core {
    type Batch = Batch;

    /// What others queued before these requests were read goes out before their answers:
    /// a `join` that came first is seen before the `ok` whose `delivered` counts that user.
    fn begin_batch(&mut self, bytes: usize, out: &mut Vec<u8>) -> Batch {
        self.pump(out);
        Batch {
            now: Instant::now(),
            ts: encode::Ts::new(crate::now_ms()),
            bytes,
            messages: 0,
            delivered: 0,
        }
    }

    /// `max` is the limit this connection's decoder enforces (a reload changes it only for
    /// new connections), so `too_large` names the limit that applied.
    fn frame(&mut self, b: &mut Batch, frame: Frame<'_>, max: usize, out: &mut Vec<u8>) {
        match frame {
            Frame::TooLong => {
                let msg = format!("line longer than {max} bytes; it was discarded");
                self.error(b, out, None, ErrorCode::TooLarge, &msg);
            }
            Frame::Line(line) => match request::parse(line) {
                Ok(None) => {}
                Ok(Some(parsed)) => self.serve(b, parsed, out),
                Err(e) => self.error(b, out, e.id, e.code, &e.message),
            },
        }
    }

    /// No broadcast waits for more input.
    fn end_batch(&mut self, mut b: Batch, out: &mut Vec<u8>) {
        self.fan_out_pending(&mut b, out);
        self.guard.conn.record_batch(b.now, b.messages);
        let stats = &self.guard.server.stats;
        Stats::add(&stats.bytes_in, b.bytes as u64);
        Stats::add(&stats.messages, b.messages);
        Stats::add(&stats.delivered, b.delivered);
    }

    fn open(&self) -> bool {
        self.phase.is_open()
    }

    fn paused(&self) -> bool {
        self.held.is_some()
    }
}

/// An answer held back until `until` (a failed login past the free ones), with whatever
/// the session wrote before it in the same read.
pub(super) struct Held {
    pub until: Instant,
    pub answer: Vec<u8>,
}

impl Core {
    /// The output buffer, for an answer: the broadcasts gathered before this request go out
    /// (with their own answers) first.
    fn answer<'o>(&mut self, b: &mut Batch, out: &'o mut Vec<u8>) -> &'o mut Vec<u8> {
        self.fan_out_pending(b, out);
        out
    }

    fn error(
        &mut self,
        b: &mut Batch,
        out: &mut Vec<u8>,
        id: Option<Raw<'_>>,
        code: ErrorCode,
        message: &str,
    ) {
        let out = self.answer(b, out);
        let peer = self.guard.conn.peer;
        let user = self.guard.conn.name().map_or("-", |n| n.as_str());
        if self.errors_logged.note(b.now, peer, user) {
            info!(%peer, %user, %code, "error reply");
        }
        let server = self.server();
        server.stats.error(code);
        server.events.error(peer, self.guard.conn.name(), code);
        encode::error(out, id, code, message);
        // A refusal costs what a message costs, so garbage cannot be sent for free.
        if self.rate.charge(b.now) == Charge::OverLimit {
            let rate = self.rate.rate();
            info!(%peer, user = %self.user(), rate, "still sending after being refused; cutting off");
            self.begin_close(Close::Flooding, b.now);
        }
    }

    fn serve(&mut self, b: &mut Batch, Parsed { id, request }: Parsed<'_>, out: &mut Vec<u8>) {
        match request {
            Request::Ping => encode::ok(self.answer(b, out), id),
            Request::Login { name, password } => self.login(b, out, id, &name, password.as_deref()),
            Request::Msg { to, body, from } => {
                if self.phase.name().is_none() {
                    return self.not_logged_in(b, out, id);
                }
                // The name is borrowed from the connection for the rest, not cloned: a clone
                // writes its shared reference count for every message.
                if let Some(from) = from.filter(|f| !f.eq_ignore_ascii_case(self.user())) {
                    let me = self.user();
                    let msg = format!("you are logged in as {me} and cannot send as {from}");
                    return self.error(b, out, id, ErrorCode::Forbidden, &msg);
                }
                if let Err(wait) = self.rate.take(b.now) {
                    let msg = format!(
                        "over the limit of {} messages per second; nothing was delivered, retry in {} ms",
                        // This connection's limit: a reload applies only to new ones.
                        self.rate.rate(),
                        wait.as_millis().max(1)
                    );
                    return self.error(b, out, id, ErrorCode::RateLimited, &msg);
                }
                match to {
                    Target::All => self.gather_broadcast(b, id, body),
                    Target::User(to) => self.send(b, out, id, &to, body),
                }
            }
            Request::Users => {
                if self.phase.name().is_none() {
                    return self.not_logged_in(b, out, id);
                }
                let users = self.server().directory.list(Audience::Everyone);
                encode::ok_users(self.answer(b, out), id, users.iter().map(Name::as_str));
            }
            Request::Logout => {
                let Some(user) = self.phase.name() else {
                    return self.not_logged_in(b, out, id);
                };
                info!(peer = %self.guard.conn.peer, %user, "logged out");
                encode::ok(self.answer(b, out), id);
                self.begin_close(Close::Logout, b.now);
            }
        }
    }

    fn not_logged_in(&mut self, b: &mut Batch, out: &mut Vec<u8>, id: Option<Raw<'_>>) {
        let msg = "log in first: {\"type\":\"login\",\"from\":\"NAME\"}";
        self.error(b, out, id, ErrorCode::NotLoggedIn, msg);
    }

    fn login(
        &mut self,
        b: &mut Batch,
        out: &mut Vec<u8>,
        id: Option<Raw<'_>>,
        name: &str,
        password: Option<&str>,
    ) {
        if let Some(me) = self.phase.name() {
            let msg = format!("this connection is already logged in as {me}");
            return self.error(b, out, id, ErrorCode::AlreadyLoggedIn, &msg);
        }
        let (ip, config) = (self.guard.conn.peer.ip(), self.config());
        if let Err(refusal) = self.server().logins.admit(ip, b.now, &config) {
            let msg = match refusal {
                Refusal::TooFast { wait, rate } => format!(
                    "too many logins from your address (over {rate} a second); retry in {} ms",
                    wait.as_millis().max(1)
                ),
                Refusal::TooManyFailures { wait, failures } => format!(
                    "{failures} failed logins from your address; logins from it are refused for \
                     {} s more",
                    wait.as_secs().max(1)
                ),
            };
            return self.error(b, out, id, ErrorCode::RateLimited, &msg);
        }
        if let Some(expected) = &config.password
            && !password.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes()))
        {
            let msg = if password.is_some() {
                "wrong password"
            } else {
                "this server requires a password"
            };
            let delay = self.server().logins.failed(ip, b.now, &config);
            if delay.is_zero() {
                return self.error(b, out, id, ErrorCode::AuthFailed, msg);
            }
            // Only this connection waits: its answer (and everything after it) is held back
            // while the worker serves others.
            let mut answer = Vec::new();
            self.error(b, &mut answer, id, ErrorCode::AuthFailed, msg);
            self.held = Some(Box::new(Held {
                until: b.now + delay,
                answer,
            }));
            return;
        }
        let name = match Name::new(name) {
            Ok(n) => n,
            Err(e) => return self.error(b, out, id, ErrorCode::InvalidName, &e.to_string()),
        };
        match self.server().claim(&self.guard.conn, name.clone()) {
            Ok(users) => {
                info!(peer = %self.guard.conn.peer, user = %name, "logged in");
                self.server().logins.succeeded(ip, b.now, &config);
                let users = users.iter().map(Name::as_str);
                encode::ok_login(
                    self.answer(b, out),
                    id,
                    name.as_str(),
                    users,
                    crate::SERVER_ID,
                );
                self.phase = Phase::LoggedIn(name);
            }
            Err(ClaimError::Taken) => {
                let msg = format!("{name} is already logged in; choose another name");
                self.error(b, out, id, ErrorCode::NameTaken, &msg);
            }
            Err(ClaimError::AlreadyLoggedIn) => {
                let msg = "this connection is already logged in";
                self.error(b, out, id, ErrorCode::AlreadyLoggedIn, msg);
            }
        }
    }

    fn send(
        &mut self,
        b: &mut Batch,
        out: &mut Vec<u8>,
        id: Option<Raw<'_>>,
        to: &str,
        body: Raw<'_>,
    ) {
        let Some(me) = self.guard.conn.name() else {
            return self.not_logged_in(b, out, id);
        };
        let server = &self.guard.server;
        match server.directory.send(&mut self.route, me, to, body, &b.ts) {
            Delivery::Queued => {
                b.messages += 1;
                b.delivered += 1;
                encode::ok_delivered(self.answer(b, out), id, 1);
            }
            Delivery::Unknown => {
                let msg = format!("{to} is not logged in");
                self.error(b, out, id, ErrorCode::UnknownUser, &msg);
            }
            Delivery::Busy => {
                let msg =
                    format!("{to} is not reading fast enough; nothing was queued, try again later");
                self.error(b, out, id, ErrorCode::RecipientBusy, &msg);
            }
            Delivery::TooLarge { queue_bytes } => {
                // Retrying would never help: say what would.
                let msg = format!(
                    "{to}'s queue holds at most {queue_bytes} bytes and this message takes more; \
                     it was not queued and never can be: send a shorter one"
                );
                self.error(b, out, id, ErrorCode::RecipientBusy, &msg);
            }
        }
    }

    fn gather_broadcast(&mut self, b: &Batch, id: Option<Raw<'_>>, body: Raw<'_>) {
        let me = self.guard.conn.name().map_or("-", Name::as_str);
        let run = self.pending.get_or_insert_default();
        encode::msg_event_into(&mut run.events, me, "*", body, &b.ts);
        run.ends.push(run.events.len());
        encode::ok_delivered_start(&mut run.oks, id);
        run.ok_ends.push(run.oks.len());
    }

    /// Fans the gathered broadcasts out to everyone at once and writes their answers.
    fn fan_out_pending(&mut self, b: &mut Batch, out: &mut Vec<u8>) {
        let Some(run) = self.pending.take() else {
            return;
        };
        let Run {
            mut events,
            ends,
            oks,
            ok_ends,
        } = *run;
        // Exact size: a recipient that stops reading holds these bytes for as long as its
        // queue keeps any line of the run, and grown-by-doubling slack would double that.
        events.shrink_to_fit();
        let lines = Lines {
            bytes: Bytes::from(events),
            ends,
        };
        let conn = &self.guard.conn;
        let delivered = self
            .guard
            .server
            .directory
            .fan_out(Some(conn), Audience::Everyone, &lines);
        let mut start = 0;
        for (&end, &n) in ok_ends.iter().zip(&delivered) {
            out.extend_from_slice(&oks[start..end]);
            encode::ok_delivered_end(out, n);
            start = end;
        }
        b.messages += delivered.len() as u64;
        b.delivered += delivered.iter().sum::<usize>() as u64;
    }
}

/// Broadcasts accepted from one read and not yet fanned out. Fanned out together, they cost
/// each recipient one lock and one shared reference for the whole run.
#[derive(Default)]
pub(super) struct Run {
    /// The `msg` events, back to back.
    events: Vec<u8>,
    /// Where each event ends in `events`.
    ends: Vec<usize>,
    /// The `ok` answers, each up to its `delivered` count, back to back.
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
