//! The admin accept loop and one task per admin connection.
//!
//! A connection is checked against the [`Policy`] first; a refused peer gets one `error` line
//! (`forbidden`) and is closed, and the refusal is logged with its uid and pid. An accepted
//! peer sends JSON lines and gets one answer each; `watch` turns the connection into an event
//! stream until the peer closes it. Every answer is computed by short synchronous calls into
//! the [`Registry`], the same API the sessions use, so nothing here holds a lock across an
//! `.await`. Admin traffic is rare, so plain `serde_json` serialization is fine here.

use super::AdminListener;
use super::creds::{self, Peer, Policy};
use crate::registry::Registry;
use proto::ErrorCode;
use proto::admin::{AdminError, MAX_ADMIN_LINE, Request, Response, Session, Stats, Status};
use proto::codec::{Frame, LineDecoder};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

/// How long a refused peer gets to close its side before we close ours.
const LINGER: Duration = Duration::from_secs(1);

/// What every admin connection shares.
#[derive(Debug)]
struct Ctx {
    registry: Registry,
    started: Instant,
    policy: Policy,
}

/// Accepts admin connections until `stop` is cancelled, then removes the socket file.
pub async fn run(
    admin: AdminListener,
    registry: Registry,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let ctx = Arc::new(Ctx {
        registry,
        started: Instant::now(),
        policy: Policy::current(),
    });
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = admin.listener.accept() => r,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                tracker.spawn(connection(stream, ctx.clone(), stop.clone()));
            }
            Err(e) => {
                error!(error = %e, retry_in = ?backoff, "admin accept failed");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    debug!(path = %admin.path().display(), "admin socket closing");
    drop(admin);
}

async fn connection(mut stream: UnixStream, ctx: Arc<Ctx>, stop: CancellationToken) {
    let peer = match creds::peer(&stream) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "admin connection without readable credentials; closed");
            return;
        }
    };
    if !ctx.policy.allows(&peer) {
        let message = ctx.policy.refusal(&peer);
        let pid = peer.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
        warn!(uid = peer.uid, gid = peer.gid, %pid, "admin connection refused: {message}");
        if send(&mut stream, &error(AdminError::Forbidden, message))
            .await
            .is_ok()
        {
            linger(stream).await;
        }
        return;
    }
    debug!(uid = peer.uid, "admin connection");
    let mut decoder = LineDecoder::new(MAX_ADMIN_LINE);
    let mut buf = vec![0u8; 8192];
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => return,
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        let mut lines = Vec::new();
        decoder.feed(&buf[..n], |f| {
            lines.push(match f {
                Frame::Line(l) => Some(l.to_vec()),
                Frame::TooLong => None,
            })
        });
        for line in lines {
            let reply = match line {
                None => error(
                    AdminError::BadRequest,
                    format!("request longer than {MAX_ADMIN_LINE} bytes"),
                ),
                Some(l) if l.trim_ascii().is_empty() => continue,
                Some(l) => match serde_json::from_slice::<Request>(&l) {
                    Ok(Request::Watch) => return watch(stream, &ctx, &peer, stop).await,
                    Ok(req) => answer(&ctx, &peer, req),
                    Err(e) => error(
                        AdminError::BadRequest,
                        format!("not an admin request ({e}); see docs/ADMIN-PROTOCOL.md"),
                    ),
                },
            };
            if send(&mut stream, &reply).await.is_err() {
                return;
            }
        }
    }
}

/// After a final answer: closes our side, then discards what the peer still sends until it
/// closes (or a second passes). Closing with its request unread would make the peer's write
/// fail or its read see a reset before it reads why it was turned away.
async fn linger(mut stream: UnixStream) {
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 1024];
        while let Ok(1..) = stream.read(&mut sink).await {}
    })
    .await;
}

fn error(code: AdminError, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

async fn send(stream: &mut UnixStream, r: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await
}

/// Answers one request other than `watch`.
fn answer(ctx: &Ctx, peer: &Peer, req: Request) -> Response {
    let r = &ctx.registry;
    match req {
        Request::Users => Response::Users { users: sessions(r) },
        Request::Kick { user, reason } => match r.kick(&user, reason.clone()) {
            Some(name) => {
                info!(user = %name, admin_uid = peer.uid, reason = reason.as_deref().unwrap_or(""), "admin kick");
                r.events().kick(&name, reason.as_deref(), peer.uid);
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
            let delivered = r.notice(&body) as u64;
            info!(delivered, admin_uid = peer.uid, "admin notice");
            r.events().notice(delivered, peer.uid);
            Response::NoticeSent { delivered }
        }
        Request::Stats => Response::Stats(stats(ctx)),
        Request::Status => Response::Status(Status {
            server: crate::SERVER_ID.to_owned(),
            pid: std::process::id(),
            uptime_ms: ctx.started.elapsed().as_millis() as u64,
            connections: r.connections() as u64,
            users: r.list().len() as u64,
        }),
        Request::Watch => unreachable!("watch is served by the connection loop"),
    }
}

fn sessions(r: &Registry) -> Vec<Session> {
    r.sessions()
        .iter()
        .filter_map(|c| {
            let name = c.name()?;
            let age = c.connected_instant.elapsed().as_millis() as u64;
            let active = c.last_active_ms.load(Ordering::Relaxed);
            Some(Session {
                user: name.to_string(),
                peer: c.peer.to_string(),
                connected_at: c
                    .connected_at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                connected_ms: age,
                idle_ms: age.saturating_sub(active),
                sent: c.sent.load(Ordering::Relaxed),
                received: c.received.load(Ordering::Relaxed),
                queue: c.mailbox.depth() as u64,
                queue_max: c.mailbox.capacity() as u64,
            })
        })
        .collect()
}

fn stats(ctx: &Ctx) -> Stats {
    let r = &ctx.registry;
    let s = r.stats();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Stats {
        server: crate::SERVER_ID.to_owned(),
        pid: std::process::id(),
        uptime_ms: ctx.started.elapsed().as_millis() as u64,
        connections: r.connections() as u64,
        users: r.list().len() as u64,
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

/// Streams events to the peer until it closes the connection or the server stops.
async fn watch(mut stream: UnixStream, ctx: &Ctx, peer: &Peer, stop: CancellationToken) {
    // Subscribe before answering, so that every event after `watching` reaches the peer.
    let mut watcher = ctx.registry.events().subscribe();
    if send(&mut stream, &Response::Watching).await.is_err() {
        return;
    }
    info!(admin_uid = peer.uid, "admin watching");
    let mut sink = [0u8; 512];
    loop {
        let reply = tokio::select! {
            _ = stop.cancelled() => return,
            // Input after `watch` is ignored; reading it notices the peer leaving at once.
            r = stream.read(&mut sink) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            },
            ev = watcher.rx.recv() => match ev {
                Ok(ev) => Response::Event(ev),
                Err(RecvError::Lagged(missed)) => Response::Lagged { missed },
                Err(RecvError::Closed) => return,
            },
        };
        if send(&mut stream, &reply).await.is_err() {
            break;
        }
    }
    debug!(admin_uid = peer.uid, "admin watch ended");
}
