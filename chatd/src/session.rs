//! One task per connection: read requests, answer them, write what other sessions queued.
//!
//! The task owns its [`Connection`] alone (over any stream: TCP, TLS) and waits in one poll
//! on four things, in this order: the stream taking output (only while output is pending),
//! the stream having requests, its [`Mailbox`](crate::mailbox::Mailbox) (lines from other
//! sessions, a close request), and one timer (login timeout, slow-consumer grace, or the
//! drain deadline while closing). The client's own requests come before the mailbox, so a
//! steady stream of lines from others cannot keep them waiting (`session_order.rs`).
//! Requests are served inside the read's poll, synchronously, by `Core` (see
//! `requests.rs`); every reply of one read and every line taken from the mailbox go into
//! the connection's one output buffer. Where the session is in its life is
//! its `Phase`; how it ends is a `Close`.

use crate::config::Config;
use crate::connection::{Connection, Io, OUT_HIGH_WATER, READ_PER_TURN, Read};
use crate::directory::Route;
use crate::mailbox::{Bounds, CloseRequest, Taken};
use crate::rate::TokenBucket;
use crate::server::{ConnGuard, Server};
use crate::stats::Stats;
use error_log::ErrorLog;
use phase::{Close, Closing, Phase};
use proto::encode;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tracing::{debug, info, warn};

mod error_log;
mod phase;
mod requests;

/// After the last byte is written, how long to wait for the client's own close, so that
/// unread input does not make the kernel reset the connection and destroy the `bye`.
const LINGER: Duration = Duration::from_millis(500);

/// Serves one connection until it closes. `slot` is this connection's place under the
/// connection limit, freed just before the final log line so that a client which saw that
/// line can count on the slot being free.
///
/// The connection is entered in the table at once; the returned future (to spawn) holds only
/// the session: an `async fn` would also keep its arguments, moved-from, for its whole life.
pub fn run<S>(
    stream: S,
    peer: SocketAddr,
    server: Arc<Server>,
    slot: OwnedSemaphorePermit,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // What a connection takes from the config in force when it opens (a reload applies to
    // the ones opened after it).
    let (max_line, rate, queue) = {
        let config = server.config.load();
        let queue = Bounds {
            lines: config.queue_len,
            bytes: config.settings.queue_bytes,
        };
        (config.max_line_bytes, bucket(&config), queue)
    };
    let guard = ConnGuard::open(server, peer, queue);
    info!(%peer, "connected");
    guard.server.events.connect(peer);
    let mut session = Session {
        conn: Connection::new(stream, max_line),
        core: Core {
            guard,
            phase: Phase::Connected,
            rate,
            full_since: None,
            backlog_since: None,
            errors_logged: ErrorLog::default(),
            held: None,
            pending: None,
            route: Route::default(),
        },
    };
    async move {
        session.serve().await;
        // Boxed: the closing handshake's timer and read future would otherwise sit, unused,
        // in every live session's future.
        Box::pin(session.finish(slot)).await;
    }
}

/// The rate a session starts with: a reload applies only to new sessions.
fn bucket(config: &Config) -> TokenBucket {
    TokenBucket::new(config.rate, config.rate_burst, Instant::now())
}

struct Session<S> {
    conn: Connection<S>,
    core: Core,
}

/// Everything a request touches (the connection stays outside, so it can lend each line to
/// the core without a copy).
struct Core {
    guard: ConnGuard,
    phase: Phase,
    rate: TokenBucket,
    /// When the mailbox became full, as last reported by it.
    full_since: Option<Instant>,
    /// Since when the output buffer has stayed at its high-water mark: the client does not
    /// read its replies (pipelined `users`, say).
    backlog_since: Option<Instant>,
    errors_logged: ErrorLog,
    /// An answer held back (see `requests::Held`); boxed, as most sessions never have one.
    held: Option<Box<requests::Held>>,
    /// Broadcasts of this read not yet fanned out (see `requests.rs`). Boxed: most reads
    /// have none, and every byte here is paid by every idle connection.
    pending: Option<Box<requests::Run>>,
    route: Route,
}

/// What woke the session.
enum Wake {
    Io(Io),
    Mailbox,
    Deadline,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn serve(&mut self) {
        // Allocated only while a deadline exists (before login, while the queue is full,
        // while closing): an idle logged-in session carries no timer, neither in its memory
        // nor in the timer wheel.
        let mut timer: Option<Pin<Box<Sleep>>> = None;
        loop {
            if self.conn.can_serve_deferred() && self.core.held.is_none() {
                self.conn.serve_deferred(&mut self.core);
            }
            self.core.pump(self.conn.out());
            if self.conn.wants_write() && !self.core.is_gone() {
                // Write what is there now, without waiting; the poll below waits for room.
                let stats = &self.core.guard.server.stats;
                let written = |n| Stats::add(&stats.bytes_out, n as u64);
                let r = poll_fn(|cx| Poll::Ready(self.conn.poll_write(cx, written))).await;
                if let Poll::Ready(Err(e)) = r {
                    self.core.fail(&e);
                }
            }
            if self.core.is_gone() || self.core.finished(&self.conn) {
                break;
            }
            self.core.note_backlog(self.conn.has_room());
            if self.conn.can_serve_deferred() && self.core.held.is_none() {
                // The write made room: serve what waits before anything else; no readiness
                // event would come for it.
                continue;
            }
            match (
                self.core.deadline().map(tokio::time::Instant::from),
                &mut timer,
            ) {
                (None, _) => timer = None,
                (Some(d), Some(sleep)) if sleep.deadline() == d => {}
                (Some(d), Some(sleep)) => sleep.as_mut().reset(d),
                (Some(d), None) => timer = Some(Box::pin(tokio::time::sleep_until(d))),
            }
            let room = self.conn.has_room();
            let want_read =
                self.core.phase.is_open() && self.conn.wants_read() && self.core.held.is_none();
            let (conn, core) = (&mut self.conn, &mut self.core);
            // Every turn spends from the task's budget, so a session whose mailbox is never
            // empty still lets the other tasks of its worker run.
            tokio::task::consume_budget().await;
            // Output and the client's own requests before the mailbox: under a steady stream
            // of lines from others, polling the mailbox first left the requests waiting
            // (`pump` takes the lines every turn anyway; the mailbox's readiness only matters
            // to wake an idle session).
            let wake = poll_fn(|cx| {
                let mut written = 0;
                let io = conn.poll_io(cx, want_read, core, |n| written += n as u64);
                Stats::add(&core.guard.server.stats.bytes_out, written);
                if let Poll::Ready(io) = io {
                    return Poll::Ready(Wake::Io(io));
                }
                if core.guard.conn.mailbox.poll_ready(cx, room).is_ready() {
                    return Poll::Ready(Wake::Mailbox);
                }
                if let Some(sleep) = &mut timer
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Wake::Deadline);
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Io(Io::Read(Ok(Read::Data(n)))) if n >= READ_PER_TURN => {
                    // A client sending faster than it is served: without this, the task
                    // would go on for as many turns as tokio's budget allows (megabytes of
                    // requests, tens of milliseconds in a debug build) while the other
                    // sessions of this worker, a bystander's `ping`, wait.
                    tokio::task::yield_now().await;
                }
                Wake::Mailbox | Wake::Io(Io::Wrote(Ok(())) | Io::Read(Ok(Read::Data(_)))) => {}
                Wake::Io(Io::Read(Ok(Read::Eof { mid_line }))) => {
                    let peer = self.core.guard.conn.peer;
                    if mid_line {
                        debug!(%peer, "client closed mid-line; the partial line is dropped");
                    } else {
                        debug!(%peer, "client closed its side");
                    }
                    self.core.begin_close(Close::ClientClosed, Instant::now());
                }
                Wake::Io(Io::Read(Err(e)) | Io::Wrote(Err(e))) => self.core.fail(&e),
                Wake::Deadline => {
                    timer = None;
                    let unsent = self.conn.out().len();
                    self.core.on_deadline(Instant::now(), unsent);
                }
            }
        }
    }

    /// Ends the connection: closes gracefully unless the socket failed, frees the slot, then
    /// logs why.
    async fn finish(&mut self, slot: OwnedSemaphorePermit) {
        let core = &self.core;
        let reason = core.phase.reason();
        let conn = &core.guard.conn;
        if let Phase::Gone { reason } = core.phase {
            // The user may not have left yet (a socket failure while logged in).
            core.guard.server.release(conn, reason);
        } else {
            self.conn.close(LINGER).await;
        }
        core.guard.forget();
        drop(slot);
        let peer = conn.peer;
        core.errors_logged.summary(peer, core.user());
        match conn.name() {
            Some(user) => info!(%peer, %user, %reason, "disconnected"),
            None => {
                info!(%peer, %reason, "disconnected before login");
                core.guard.server.events.disconnect(peer, reason);
            }
        }
    }
}

impl Core {
    fn server(&self) -> &Server {
        &self.guard.server
    }

    fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.guard.server.config.load()
    }

    /// The user name for log lines, `-` before login.
    fn user(&self) -> &str {
        self.guard.conn.name().map_or("-", |n| n.as_str())
    }

    fn is_gone(&self) -> bool {
        matches!(self.phase, Phase::Gone { .. })
    }

    fn login_deadline(&self) -> Instant {
        self.guard.conn.connected_instant + self.config().login_timeout
    }

    /// Moves queued lines into the output buffer and reacts to what the mailbox reports.
    fn pump(&mut self, out: &mut Vec<u8>) {
        if self.is_gone() {
            return;
        }
        if let Some(held) = &self.held
            && (!self.phase.is_open() || Instant::now() >= held.until)
        {
            out.extend_from_slice(&held.answer);
            self.held = None;
        }
        // Takes nothing once the output buffer is at its high-water mark.
        let taken: Taken = self.guard.conn.mailbox.take(out, OUT_HIGH_WATER);
        self.guard.conn.record_received(taken.lines);
        self.full_since = taken.full_since;
        match taken.close {
            Some(CloseRequest::Kicked(message)) => {
                info!(peer = %self.guard.conn.peer, user = %self.user(), "kicked by the administrator");
                self.begin_close(Close::Kicked(message), Instant::now());
            }
            Some(CloseRequest::Shutdown) => self.begin_close(Close::Shutdown, Instant::now()),
            None => {}
        }
        if let Phase::Closing(closing) = &mut self.phase
            && !closing.bye_written
            && taken.remaining == 0
            && out.len() < OUT_HIGH_WATER
        {
            closing.bye_written = true;
            if let Some((reason, message)) = closing.close.bye() {
                encode::bye(out, reason, message);
            }
        }
    }

    fn finished<S: AsyncRead + AsyncWrite + Unpin>(&self, conn: &Connection<S>) -> bool {
        matches!(&self.phase, Phase::Closing(c) if c.bye_written) && !conn.wants_write()
    }

    fn deadline(&self) -> Option<Instant> {
        let login = match &self.phase {
            Phase::Closing(c) => return Some(c.deadline),
            Phase::Gone { .. } => return None,
            Phase::Connected => Some(self.login_deadline()),
            Phase::LoggedIn(_) => None,
        };
        let slow = self
            .stalled_since()
            .map(|t| t + self.config().slow_consumer_grace);
        let held = self.held.as_ref().map(|h| h.until);
        [login, slow, held].into_iter().flatten().min()
    }

    /// `unsent` is what the output buffer holds, dropped if the drain deadline has passed.
    fn on_deadline(&mut self, now: Instant, unsent: usize) {
        match &self.phase {
            Phase::Closing(c) => {
                if now >= c.deadline {
                    let (lines, bytes) = self.guard.conn.mailbox.queued();
                    let (peer, user) = (self.guard.conn.peer, self.user());
                    warn!(%peer, %user, queued_lines = lines, queued_bytes = bytes, output_bytes = unsent,
                        "drain timeout passed; closing without flushing, what the client did not read is dropped");
                    self.phase = Phase::Gone {
                        reason: c.close.leave(),
                    };
                }
                return;
            }
            Phase::Gone { .. } => return,
            Phase::Connected if now >= self.login_deadline() => {
                info!(peer = %self.guard.conn.peer, "no login in time");
                return self.begin_close(Close::LoginTimeout, now);
            }
            Phase::Connected | Phase::LoggedIn(_) => {}
        }
        let grace = self.config().slow_consumer_grace;
        let (peer, user) = (self.guard.conn.peer, self.user());
        if self.full_since.is_some_and(|t| now >= t + grace) {
            info!(%peer, %user, "slow consumer: queue full too long, cutting off");
            self.begin_close(Close::SlowConsumer, now);
        } else if self.backlog_since.is_some_and(|t| now >= t + grace) {
            info!(%peer, %user, "slow consumer: replies not read for too long, cutting off");
            self.begin_close(Close::SlowConsumer, now);
        }
    }

    /// Remembers since when the output buffer has been full (no `room`).
    fn note_backlog(&mut self, room: bool) {
        if room {
            self.backlog_since = None;
        } else if self.backlog_since.is_none() {
            self.backlog_since = Some(Instant::now());
        }
    }

    /// Since when the client has not kept up, by its queue or by its own replies.
    fn stalled_since(&self) -> Option<Instant> {
        match (self.full_since, self.backlog_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts closing: leaves the directory at once (others see `leave`), accepts no more
    /// lines, and owes the client its queue (unless the close drops it) and then `bye`.
    fn begin_close(&mut self, close: Close, now: Instant) {
        if !self.phase.is_open() {
            return;
        }
        let conn = &self.guard.conn;
        conn.mailbox.seal();
        if close.drops_queue() {
            conn.mailbox.clear();
        }
        self.guard.server.release(conn, close.leave());
        self.phase = Phase::Closing(Box::new(Closing {
            close,
            deadline: now + self.config().drain_timeout,
            bye_written: false,
        }));
    }

    /// The socket failed: end without flushing.
    fn fail(&mut self, e: &io::Error) {
        let reason = match &self.phase {
            Phase::Closing(c) => c.close.leave(),
            _ if e.kind() == io::ErrorKind::TimedOut => proto::LeaveReason::Timeout,
            _ => proto::LeaveReason::Disconnect,
        };
        debug!(peer = %self.guard.conn.peer, error = %e, "socket error");
        self.phase = Phase::Gone { reason };
    }
}
