//! The admin accept loop and one task per admin connection.
//!
//! A connection is checked against the [`Policy`] first; a refused peer gets one `error` line
//! (`forbidden`) and is closed, and the refusal is logged with its uid and pid. An accepted
//! peer sends JSON lines and gets one answer each; `watch` turns the connection into an event
//! stream until the peer closes it. Every answer is computed by short synchronous calls into
//! the server context (the directory, the same API the sessions use, and snapshots of the
//! connection table), so nothing here holds a lock across an `.await`. Framing, the accept
//! loop and the lingering close are the chat listener's own ([`Connection`], [`accept`]). Admin traffic is rare, so plain `serde_json` serialization is fine here.

use super::AdminListener;
use super::creds::{self, Peer, Policy};
use crate::accept;
use crate::connection::{Connection, Handler, Io, Read};
use crate::directory::{Audience, Lines};
use crate::server::Server;
use proto::admin::{AdminError, MAX_ADMIN_LINE, Request, Response, Stats, Status};
use proto::codec::Frame;
use proto::{ErrorCode, encode};
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// How long a refused peer gets to close its side before we close ours.
const LINGER: Duration = Duration::from_secs(1);

/// What every admin connection shares.
#[derive(Debug)]
struct Ctx {
    server: Arc<Server>,
    policy: Policy,
}

/// Accepts admin connections until `stop` is cancelled, then removes the socket file.
pub async fn run(
    admin: AdminListener,
    server: Arc<Server>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let ctx = Arc::new(Ctx {
        server,
        policy: Policy::current(),
    });
    accept::run(&admin.listener, "admin socket", &stop, |stream, _| {
        tracker.spawn(connection(stream, ctx.clone(), stop.clone()));
    })
    .await;
    debug!(path = %admin.path().display(), "admin socket closing");
    drop(admin);
}

/// Answers an admin connection's requests as they are read, into the connection's output
/// buffer: the chat sessions' bound applies (past its high-water mark the rest of a read
/// waits and nothing more is read), so a client that pipelines requests and never reads the
/// answers holds a bounded amount of memory. `watch` ends the request phase.
struct Answers<'a> {
    ctx: &'a Ctx,
    peer: &'a Peer,
    watch: bool,
}

impl Handler for Answers<'_> {
    type Batch = ();
    fn begin_batch(&mut self, _: usize, _: &mut Vec<u8>) {}

    fn frame(&mut self, _: &mut (), frame: Frame<'_>, _max: usize, out: &mut Vec<u8>) {
        let reply = match frame {
            Frame::TooLong => error(
                AdminError::BadRequest,
                format!("request longer than {MAX_ADMIN_LINE} bytes"),
            ),
            Frame::Line(l) if l.trim_ascii().is_empty() => return,
            Frame::Line(l) => match serde_json::from_slice::<Request>(l) {
                Ok(Request::Watch) => {
                    self.watch = true;
                    return;
                }
                Ok(req) => answer(self.ctx, self.peer, req),
                Err(e) => error(
                    AdminError::BadRequest,
                    format!("not an admin request ({e}); see docs/ADMIN-PROTOCOL.md"),
                ),
            },
        };
        put(out, &reply);
    }

    /// Input after `watch` is not served.
    fn open(&self) -> bool {
        !self.watch
    }
}

async fn connection(stream: UnixStream, ctx: Arc<Ctx>, stop: CancellationToken) {
    let peer = match creds::peer(&stream) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "admin connection without readable credentials; closed");
            return;
        }
    };
    let mut conn = Connection::new(stream, MAX_ADMIN_LINE);
    if !ctx.policy.allows(&peer) {
        let message = ctx.policy.refusal(&peer);
        let pid = peer.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
        warn!(uid = peer.uid, gid = peer.gid, %pid, "admin connection refused: {message}");
        put(conn.out(), &error(AdminError::Forbidden, message));
        // Closing with its request unread would make the peer's write fail or its read see
        // a reset before it reads why it was turned away.
        conn.close(LINGER).await;
        return;
    }
    debug!(uid = peer.uid, "admin connection");
    let mut answers = Answers {
        ctx: &ctx,
        peer: &peer,
        watch: false,
    };
    loop {
        if conn.can_serve_deferred() {
            conn.serve_deferred(&mut answers);
        }
        if answers.watch && !conn.wants_write() {
            return watch(conn, &ctx, &peer, stop).await;
        }
        let want_read = conn.wants_read() && !answers.watch;
        // Stop is raced against writing too: a client that never reads must not hold up a
        // shutdown.
        let wake = tokio::select! {
            _ = stop.cancelled() => return,
            w = poll_fn(|cx| conn.poll_io(cx, want_read, &mut answers, |_| {})) => w,
        };
        match wake {
            Io::Read(Ok(Read::Data(_))) | Io::Wrote(Ok(())) => {}
            Io::Read(Ok(Read::Eof { .. })) => {
                // Answers still owed go out first (`printf ... | nc -N` reads them after
                // closing its side), within the drain timeout, as for a chat session.
                let drain = async {
                    while conn.has_deferred() || conn.wants_write() {
                        conn.serve_deferred(&mut answers);
                        if conn.write_all().await.is_err() {
                            return;
                        }
                    }
                    conn.close(LINGER).await;
                };
                let within = ctx.server.config.load().drain_timeout;
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::timeout(within, drain) => {}
                }
                return;
            }
            Io::Read(Err(_)) | Io::Wrote(Err(_)) => return,
        }
    }
}

fn error(code: AdminError, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

/// Writes one answer line into `out`.
fn put(out: &mut Vec<u8>, r: &Response) {
    // Serialising these plain types into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, r);
    out.push(b'\n');
}

/// Answers one request other than `watch`.
fn answer(ctx: &Ctx, peer: &Peer, req: Request) -> Response {
    let server = &ctx.server;
    match req {
        Request::Users => Response::Users {
            users: server.conns.sessions(),
        },
        Request::Kick { user, reason } => match server.directory.kick(&user, reason.clone()) {
            Some(name) => {
                info!(user = %name, admin_uid = peer.uid, reason = reason.as_deref().unwrap_or(""), "admin kick");
                server.events.kick(&name, reason.as_deref(), peer.uid);
                Response::Kicked {
                    user: name.to_string(),
                }
            }
            None => error(
                AdminError::UnknownUser,
                format!("nobody named {user} is logged in"),
            ),
        },
        Request::Notice { body } => {
            let line = Lines::one(encode::notice_event(&body, crate::now_ms()));
            let delivered = server.directory.fan_out(None, Audience::Everyone, &line)[0] as u64;
            info!(delivered, admin_uid = peer.uid, "admin notice");
            server.events.notice(delivered, peer.uid);
            Response::NoticeSent { delivered }
        }
        Request::Stats => Response::Stats(stats(ctx)),
        Request::Status => Response::Status(Status {
            server: crate::SERVER_ID.to_owned(),
            pid: std::process::id(),
            uptime_ms: server.started.elapsed().as_millis() as u64,
            connections: server.conns.len() as u64,
            users: server.directory.count(Audience::Everyone) as u64,
        }),
        Request::Watch => unreachable!("watch is served by the connection loop"),
    }
}

fn stats(ctx: &Ctx) -> Stats {
    let server = &ctx.server;
    let s = &server.stats;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Stats {
        server: crate::SERVER_ID.to_owned(),
        pid: std::process::id(),
        uptime_ms: server.started.elapsed().as_millis() as u64,
        connections: server.conns.len() as u64,
        users: server.directory.count(Audience::Everyone) as u64,
        accepted: get(&s.accepted),
        refused: get(&s.refused),
        messages: get(&s.messages),
        delivered: get(&s.delivered),
        bytes_in: get(&s.bytes_in),
        bytes_out: get(&s.bytes_out),
        errors: ErrorCode::ALL
            .iter()
            .zip(&s.errors)
            .map(|(code, n)| (code.as_str().to_owned(), get(n)))
            .collect(),
    }
}

/// Streams events to the peer until it closes the connection or the server stops. A peer
/// that does not read gets no more than the output bound: events wait in the broadcast
/// channel meanwhile, and past its backlog the peer is told how many it missed.
async fn watch(mut conn: Connection<UnixStream>, ctx: &Ctx, peer: &Peer, stop: CancellationToken) {
    // Subscribe before answering, so that every event after `watching` reaches the peer.
    let mut watcher = ctx.server.events.subscribe();
    put(conn.out(), &Response::Watching);
    info!(admin_uid = peer.uid, "admin watching");
    loop {
        let room = conn.has_room();
        let reply = tokio::select! {
            _ = stop.cancelled() => return,
            // Input after `watch` is ignored; reading it notices the peer leaving at once.
            w = poll_fn(|cx| conn.poll_io(cx, true, &mut (), |_| {})) => match w {
                Io::Read(Ok(Read::Data(_))) | Io::Wrote(Ok(())) => continue,
                _ => break,
            },
            ev = watcher.rx.recv(), if room => match ev {
                Ok(ev) => Response::Event(ev),
                Err(RecvError::Lagged(missed)) => Response::Lagged { missed },
                Err(RecvError::Closed) => return,
            },
        };
        put(conn.out(), &reply);
    }
    debug!(admin_uid = peer.uid, "admin watch ended");
}
