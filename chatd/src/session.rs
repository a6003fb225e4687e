//! One task per connection: read requests, answer them, write what other sessions queued.
//!
//! The task owns its socket alone and waits in one `select!` on four things: the socket being
//! readable, the socket being writable (only while output is pending), its [`Mailbox`](crate::mailbox::Mailbox)
//! (lines from other sessions, a close request), and one timer (login timeout, slow-consumer
//! grace, or the drain deadline while closing). Reads go into a stack buffer inside a
//! synchronous function, so an idle session keeps no read buffer; every reply produced by one
//! read batch and every line taken from the mailbox go into one output buffer written with
//! one `write`. The output buffer has a high-water mark: past it the session stops reading
//! requests and stops taking from its mailbox, so memory per connection stays bounded and a
//! client that does not read its replies slows only itself.

use crate::live::Live;
use crate::mailbox::{CloseRequest, Taken};
use crate::rate::TokenBucket;
use crate::registry::{Conn, ConnGuard, RecipientCache, Registry};
use crate::stats::Stats;
use proto::codec::LineDecoder;
use proto::{ByeReason, LeaveReason, Name, encode};
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tracing::{debug, info};

mod requests;

/// Output bytes pending before the session stops reading requests and taking queued lines.
const OUT_HIGH_WATER: usize = 64 * 1024;
/// What an empty output buffer reserves when a batch starts: room for a few dozen replies.
const OUT_INITIAL: usize = 2048;
/// One read's stack buffer.
const READ_CHUNK: usize = 16 * 1024;
/// Reads per wake-up before the session lets its output and other tasks have a turn.
const READS_PER_WAKE: usize = 4;
/// After the last byte is written, how long to wait for the client's own close, so that
/// unread input does not make the kernel reset the connection and destroy the `bye`.
const LINGER: Duration = Duration::from_millis(500);

/// What every session shares.
#[derive(Debug)]
pub struct Shared {
    pub registry: Registry,
    /// The config in force; a reload swaps it (see [`crate::live`]).
    pub config: Live,
}

/// Serves one connection until it closes. `slot` is this connection's place under the
/// connection limit, freed just before the final log line so that a client which saw that
/// line can count on the slot being free.
pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: OwnedSemaphorePermit,
) {
    let guard = shared.registry.connect(peer);
    info!(%peer, "connected");
    shared.registry.events().connect(peer);
    let now = Instant::now();
    let mut session = Session {
        stream,
        decoder: LineDecoder::new(shared.config.load().max_line_bytes),
        core: Core {
            rate: {
                let config = shared.config.load();
                TokenBucket::new(config.rate, config.rate_burst, now)
            },
            shared,
            guard,
            out: Vec::new(),
            name: None,
            full_since: None,
            closing: None,
            dead: None,
            batch: Batch::default(),
            recipient: RecipientCache::default(),
            deferred: None,
        },
    };
    session.serve().await;
    // Boxed: the closing handshake's timer and read future would otherwise sit, unused, in
    // every live session's future.
    Box::pin(session.finish(slot)).await;
}

struct Session {
    stream: TcpStream,
    decoder: LineDecoder,
    core: Core,
}

/// Everything a request handler touches (the socket and the decoder stay outside, so the
/// decoder can lend lines to the handler without a copy).
struct Core {
    shared: Arc<Shared>,
    guard: ConnGuard,
    out: Vec<u8>,
    name: Option<Name>,
    rate: TokenBucket,
    /// When the mailbox became full, as last reported by it.
    full_since: Option<Instant>,
    /// Boxed: only a closing session needs it, and every byte of this struct is paid by every
    /// idle connection.
    closing: Option<Box<Closing>>,
    /// The socket failed; the session ends without flushing.
    dead: Option<LeaveReason>,
    batch: Batch,
    recipient: RecipientCache,
    /// Requests read past the output high-water mark, served once there is room again.
    deferred: Option<Box<requests::Deferred>>,
}

/// Counts gathered over one read batch and added to the shared counters once, so that
/// sessions on different cores do not fight over those cache lines for every message.
#[derive(Default)]
struct Batch {
    bytes_in: u64,
    messages: u64,
    delivered: u64,
}

/// A session on its way out: it reads nothing more and owes its client what was queued,
/// then `bye` (if any), within the drain deadline.
struct Closing {
    bye: Option<(ByeReason, Option<String>)>,
    reason: LeaveReason,
    deadline: Instant,
    bye_written: bool,
}

impl Session {
    async fn serve(&mut self) {
        let conn = self.core.guard.conn.clone();
        // Allocated only while a deadline exists (before login, while the queue is full,
        // while closing): an idle logged-in session carries no timer, neither in its memory
        // nor in the timer wheel.
        let mut timer: Option<(Instant, Pin<Box<Sleep>>)> = None;
        loop {
            if self.core.deferred.is_some() {
                self.core
                    .serve_deferred(self.decoder.max(), Instant::now(), crate::now_ms());
            }
            self.core.pump();
            if !self.core.out.is_empty() && self.core.dead.is_none() {
                self.write();
            }
            if self.core.dead.is_some() || self.core.finished() {
                break;
            }
            if self.core.deferred.is_some() && self.core.out.len() < OUT_HIGH_WATER {
                // The write made room: serve what waits before anything else; no readiness
                // event would come for it.
                continue;
            }
            match (self.core.deadline(), &mut timer) {
                (None, _) => timer = None,
                (Some(d), Some((at, _))) if *at == d => {}
                (Some(d), Some((at, sleep))) => {
                    sleep.as_mut().reset(d.into());
                    *at = d;
                }
                (Some(d), None) => timer = Some((d, Box::pin(tokio::time::sleep_until(d.into())))),
            }
            let room = self.core.out.len() < OUT_HIGH_WATER;
            let want_read = room && self.core.closing.is_none() && self.core.deferred.is_none();
            let want_write = !self.core.out.is_empty();
            tokio::select! {
                biased;
                _ = poll_fn(|cx| conn.mailbox.poll_ready(cx, room)) => {}
                // poll_*_ready keep one waker slot per direction in the socket's registration,
                // where readable()/writable() would add and remove a waiter list node on every
                // turn of this loop.
                r = poll_fn(|cx| self.stream.poll_read_ready(cx)), if want_read => match r {
                    Ok(()) => self.read(),
                    Err(e) => self.core.fail(&e),
                },
                r = poll_fn(|cx| self.stream.poll_write_ready(cx)), if want_write => match r {
                    Ok(()) => self.write(),
                    Err(e) => self.core.fail(&e),
                },
                _ = poll_fn(|cx| match &mut timer {
                    Some((_, sleep)) => sleep.as_mut().poll(cx),
                    None => Poll::Pending,
                }), if timer.is_some() => {
                    timer = None;
                    self.core.on_deadline(Instant::now());
                }
            }
        }
    }

    /// Reads what is there (a bounded amount) and serves every complete line in it.
    fn read(&mut self) {
        let mut buf = [0u8; READ_CHUNK];
        if self.core.out.capacity() == 0 {
            // One allocation for this batch's replies instead of a realloc per doubling.
            self.core.out.reserve(OUT_INITIAL);
        }
        let now = Instant::now();
        let ts = crate::now_ms();
        for _ in 0..READS_PER_WAKE {
            match self.stream.try_read(&mut buf) {
                Ok(0) => {
                    if self.decoder.at_boundary() {
                        debug!(peer = %self.core.guard.conn.peer, "client closed its side");
                    } else {
                        debug!(peer = %self.core.guard.conn.peer, "client closed mid-line; the partial line is dropped");
                    }
                    self.core
                        .begin_close(None, LeaveReason::Disconnect, false, now);
                    break;
                }
                Ok(n) => {
                    self.core.batch.bytes_in += n as u64;
                    let core = &mut self.core;
                    let max = self.decoder.max();
                    self.decoder
                        .feed(&buf[..n], |frame| core.on_frame(frame, max, now, ts));
                    self.core.flush_broadcasts();
                    if self.core.closing.is_some()
                        || self.core.out.len() >= OUT_HIGH_WATER
                        || self.core.deferred.is_some()
                    {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.core.fail(&e);
                    break;
                }
            }
        }
        let conn = &self.core.guard.conn;
        let since_connect = now.saturating_duration_since(conn.connected_instant);
        conn.last_active_ms
            .store(since_connect.as_millis() as u64, Ordering::Relaxed);
        let batch = std::mem::take(&mut self.core.batch);
        conn.sent.fetch_add(batch.messages, Ordering::Relaxed);
        let stats = self.core.shared.registry.stats();
        Stats::add(&stats.bytes_in, batch.bytes_in);
        Stats::add(&stats.messages, batch.messages);
        Stats::add(&stats.delivered, batch.delivered);
    }

    /// Writes as much pending output as the socket takes without waiting.
    fn write(&mut self) {
        let out = &mut self.core.out;
        match self.stream.try_write(out) {
            Ok(n) => {
                if n == out.len() {
                    // Give the buffer back: an idle session should hold no output memory, and
                    // the next burst's allocation costs far less than the write that follows.
                    *out = Vec::new();
                } else {
                    out.drain(..n);
                }
                Stats::add(&self.core.shared.registry.stats().bytes_out, n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => self.core.fail(&e),
        }
    }

    /// Ends the connection: closes gracefully unless the socket failed, frees the slot, then
    /// logs why.
    async fn finish(&mut self, slot: OwnedSemaphorePermit) {
        let core = &self.core;
        // Why it was closing (what the others were told) wins over a later socket failure or
        // drain timeout.
        let reason = core
            .closing
            .as_ref()
            .map(|c| c.reason)
            .or(core.dead)
            .unwrap_or(LeaveReason::Disconnect);
        if let Some(reason) = core.dead {
            core.shared.registry.leave(&core.guard.conn, reason);
        } else {
            self.linger().await;
        }
        drop(slot);
        match &self.core.name {
            Some(user) => info!(peer = %self.core.guard.conn.peer, %user, %reason, "disconnected"),
            None => {
                let peer = self.core.guard.conn.peer;
                info!(%peer, %reason, "disconnected before login");
                self.core.shared.registry.events().disconnect(peer, reason);
            }
        }
    }

    /// Sends our FIN, then waits briefly for the client's, discarding anything it still
    /// sends: closing with unread input would reset the connection and could destroy the
    /// last lines (the `bye`) before the client reads them.
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        let _ = tokio::time::timeout(LINGER, async {
            loop {
                if self.stream.readable().await.is_err() || !self.discard_input() {
                    return;
                }
            }
        })
        .await;
    }

    /// Reads and drops what the client sent; false once it closed or failed. Synchronous, so
    /// the buffer lives on the thread's stack, not in every session's future.
    fn discard_input(&mut self) -> bool {
        let mut sink = [0u8; 4096];
        match self.stream.try_read(&mut sink) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        }
    }
}

impl Core {
    fn login_deadline(&self) -> Instant {
        self.guard.conn.connected_instant + self.shared.config.load().login_timeout
    }

    /// The user name for log lines, `-` before login.
    fn user(&self) -> &str {
        self.name.as_ref().map_or("-", Name::as_str)
    }

    fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    fn conn(&self) -> &Arc<Conn> {
        &self.guard.conn
    }

    /// Moves queued lines into the output buffer and reacts to what the mailbox reports.
    fn pump(&mut self) {
        if self.dead.is_some() {
            return;
        }
        // Takes nothing once the output buffer is at its high-water mark.
        let taken: Taken = self.guard.conn.mailbox.take(&mut self.out, OUT_HIGH_WATER);
        if taken.lines > 0 {
            self.guard
                .conn
                .received
                .fetch_add(taken.lines, Ordering::Relaxed);
        }
        self.full_since = taken.full_since;
        let now = Instant::now();
        match taken.close {
            Some(CloseRequest::Kicked(message)) => {
                info!(peer = %self.guard.conn.peer, user = %self.user(), "kicked by the administrator");
                self.begin_close(
                    Some((ByeReason::Kicked, message)),
                    LeaveReason::Kicked,
                    false,
                    now,
                );
            }
            Some(CloseRequest::Shutdown) => {
                self.begin_close(
                    Some((ByeReason::Shutdown, None)),
                    LeaveReason::Disconnect,
                    false,
                    now,
                );
            }
            None => {}
        }
        if let Some(closing) = &mut self.closing
            && !closing.bye_written
            && taken.remaining == 0
            && self.out.len() < OUT_HIGH_WATER
        {
            closing.bye_written = true;
            if let Some((reason, message)) = &closing.bye {
                encode::bye(&mut self.out, *reason, message.as_deref());
            }
        }
    }

    fn finished(&self) -> bool {
        matches!(&self.closing, Some(c) if c.bye_written && self.out.is_empty())
    }

    fn deadline(&self) -> Option<Instant> {
        if let Some(c) = &self.closing {
            return Some(c.deadline);
        }
        let login = self.name.is_none().then(|| self.login_deadline());
        let slow = self
            .full_since
            .map(|t| t + self.shared.config.load().slow_consumer_grace);
        match (login, slow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_deadline(&mut self, now: Instant) {
        if let Some(c) = &self.closing {
            if now >= c.deadline {
                debug!(peer = %self.guard.conn.peer, "drain deadline passed; closing without flushing");
                self.dead = Some(LeaveReason::Disconnect);
            }
            return;
        }
        if self.name.is_none() && now >= self.login_deadline() {
            info!(peer = %self.guard.conn.peer, "no login in time");
            self.begin_close(
                Some((ByeReason::Timeout, None)),
                LeaveReason::Timeout,
                false,
                now,
            );
            return;
        }
        if let Some(since) = self.full_since
            && now >= since + self.shared.config.load().slow_consumer_grace
        {
            info!(peer = %self.guard.conn.peer, user = %self.user(), "slow consumer: queue full too long, cutting off");
            self.begin_close(
                Some((ByeReason::SlowConsumer, None)),
                LeaveReason::SlowConsumer,
                true,
                now,
            );
        }
    }

    /// Starts closing: leaves the registry at once (others see `leave`), accepts no more
    /// lines, and owes the client its queue (unless `drop_queue`) and then `bye`.
    fn begin_close(
        &mut self,
        bye: Option<(ByeReason, Option<String>)>,
        reason: LeaveReason,
        drop_queue: bool,
        now: Instant,
    ) {
        if self.closing.is_some() {
            return;
        }
        let conn = self.guard.conn.clone();
        conn.mailbox.seal();
        if drop_queue {
            conn.mailbox.clear();
        }
        self.registry().leave(&conn, reason);
        self.closing = Some(Box::new(Closing {
            bye,
            reason,
            deadline: now + self.shared.config.load().drain_timeout,
            bye_written: false,
        }));
    }

    /// The socket failed: end without flushing.
    fn fail(&mut self, e: &io::Error) {
        let reason = if e.kind() == io::ErrorKind::TimedOut {
            LeaveReason::Timeout
        } else {
            LeaveReason::Disconnect
        };
        debug!(peer = %self.guard.conn.peer, error = %e, "socket error");
        self.dead = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    /// Every idle connection pays for this future; the idle-memory target (chatbench's idle
    /// scenario) depends on it staying small. A growth here should be a decision.
    #[tokio::test]
    async fn a_session_future_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let shared = Arc::new(Shared {
            registry: Registry::new(8),
            config: crate::config::Config::default().into(),
        });
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let fut = run(stream, peer, shared, slot);
        let size = std::mem::size_of_val(&fut);
        eprintln!("session future: {size} bytes");
        assert!(size <= 600, "the session future grew to {size} bytes");
    }
}
