//! Binding the chat listeners, and the accept loop that bounds and spawns sessions.
//!
//! Each accepted connection takes a permit from a semaphore sized `max_clients`; the permit
//! moves into the session task and its drop frees the slot. When none is left, or the
//! connection's descriptor is one of those [`accept::reserve`] keeps (the process is nearly
//! out of them), the connection gets `server_full` and `bye` and is closed, by a short task of
//! its own so the accept loop never waits on a client. A task holds a descriptor for up to
//! [`REFUSE_TIMEOUT`]; so when [`MAX_REFUSING`] are at work, or the descriptor is in the upper
//! half of the reserve (the admin channel's), the answer is written at once and the socket
//! closed without waiting. The loop itself, with its back-off and spare descriptor, is
//! [`crate::accept`]. On a TLS listener a session starts after its handshake
//! ([`crate::tls::serve`]), and a refusal is said over TLS when a handshake can be had in
//! time, else the close is the answer.

use crate::accept;
use crate::connection::Connection;
use crate::server::Server;
use crate::session;
use crate::stats::Stats;
use proto::{ByeReason, ErrorCode, encode};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Connections being turned away at once by a task that waits for the client to close;
/// past this, they are answered and closed at once.
const MAX_REFUSING: usize = 64;
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);
const LISTEN_BACKLOG: i32 = 1024;

/// Binds a chat listener. Must run inside the tokio runtime.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // So [::]:7878 and 0.0.0.0:7878 can both be given.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// A bound chat listener, and whether it speaks TLS.
#[derive(Debug)]
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: bool,
}

impl From<TcpListener> for Listener {
    /// A plain TCP listener.
    fn from(tcp: TcpListener) -> Listener {
        Listener { tcp, tls: false }
    }
}

/// Accepts until `stop` is cancelled, spawning sessions on `tracker`; with `tls`, each
/// session after its handshake (see [`crate::tls::serve`]).
pub async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    server: Arc<Server>,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let what = if tls.is_some() {
        "TLS chat listener"
    } else {
        "chat listener"
    };
    accept::run(&listener, what, &stop, |stream, peer| {
        Stats::add(&server.stats.accepted, 1);
        let (headroom, reserve) = (accept::headroom(stream.as_raw_fd()), accept::reserve());
        let has_room = headroom >= reserve;
        let permit = if has_room {
            slots.clone().try_acquire_owned().ok()
        } else {
            None
        };
        // Past half the descriptor reserve, a refusal is written at once rather than waited on.
        let may_wait = headroom >= reserve / 2;
        let refuse_with = |stream, msg: String| {
            Stats::add(&server.stats.refused, 1);
            server.stats.error(ErrorCode::ServerFull);
            server.events.error(peer, None, ErrorCode::ServerFull);
            let task = may_wait
                .then(|| refusing.clone().try_acquire_owned().ok())
                .flatten();
            match (task, &tls) {
                (Some(p), None) => {
                    tracker.spawn(async move {
                        let _p = p;
                        refuse(stream, &msg).await;
                    });
                }
                // The refusal is said over TLS, so a TLS client can read it.
                (Some(p), Some(acceptor)) => {
                    let acceptor = acceptor.clone();
                    tracker.spawn(async move {
                        let _p = p;
                        let handshake = acceptor.accept(stream);
                        if let Ok(Ok(tls)) = tokio::time::timeout(REFUSE_TIMEOUT, handshake).await {
                            refuse(tls, &msg).await;
                        }
                    });
                }
                (None, None) => refuse_at_once(stream, &msg),
                // Too many refusals at work to afford a handshake: the close is the answer.
                (None, Some(_)) => drop(stream),
            }
        };
        let Some(permit) = permit else {
            let max = server.config.load().max_clients;
            let msg = if has_room {
                warn!(%peer, max_clients = max, "server full, refusing connection");
                format!("server is full ({max} connections); try again later")
            } else {
                let limit = accept::fd_limit();
                warn!(%peer, fd_limit = limit, "out of file descriptors, refusing connection; raise LimitNOFILE (ulimit -n) or lower max_clients");
                "server is full (out of file descriptors); try again later".to_owned()
            };
            return refuse_with(stream, msg);
        };
        let max_per_ip = server.config.load().settings.max_per_ip;
        if !server.per_address.admit(peer.ip(), max_per_ip) {
            drop(permit);
            info!(%peer, max_per_ip, "too many connections from one address, refusing connection");
            let msg = format!(
                "too many connections from your address (at most {max_per_ip}); close one and retry"
            );
            return refuse_with(stream, msg);
        }
        configure(&stream, &server);
        match &tls {
            None => tracker.spawn(session::run(stream, peer, server.clone(), permit)),
            Some(acceptor) => tracker.spawn(crate::tls::serve(
                stream,
                peer,
                server.clone(),
                permit,
                acceptor.clone(),
                stop.clone(),
            )),
        };
    })
    .await;
}

fn configure(stream: &TcpStream, server: &Server) {
    // Replies are batched by the session, so Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    if let Some(ka) = server.config.load().keepalive {
        let sock = SockRef::from(stream);
        let params = TcpKeepalive::new()
            .with_time(ka.idle)
            .with_interval(ka.interval)
            .with_retries(ka.retries);
        if let Err(e) = sock.set_tcp_keepalive(&params) {
            warn!(error = %e, "cannot enable TCP keepalive");
        }
        let _ = sock.set_tcp_user_timeout(Some(user_timeout(&ka)));
    }
}

/// How long data may stay unacknowledged before the kernel gives up on the peer: the time
/// keepalive takes to declare it dead. Keepalive probes only run while nothing is
/// unacknowledged; the user timeout also ends a peer that vanished with our data in flight.
///
/// The settings' ranges keep this far from overflowing (at most 2h + 100 * 10m); the
/// saturating sums are only there so that no value could ever stop the accept loop.
fn user_timeout(ka: &crate::config::Keepalive) -> Duration {
    ka.idle
        .saturating_add(ka.interval.saturating_mul(ka.retries))
}

/// The refusal's two lines: `server_full` saying `msg`, then `bye`.
fn refusal(out: &mut Vec<u8>, msg: &str) {
    encode::error(out, None, ErrorCode::ServerFull, msg);
    encode::bye(out, ByeReason::ServerFull, None);
}

/// Tells a client the server is full and closes, within [`REFUSE_TIMEOUT`] in all, waiting
/// for the client to close first so that what it sent meanwhile cannot turn our close into
/// a reset that discards the answer.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(stream: S, msg: &str) {
    let mut conn = Connection::new(stream, 0);
    refusal(conn.out(), msg);
    conn.close(REFUSE_TIMEOUT).await;
    info!("refused connection closed");
}

/// Tells a client the server is full and closes at once, holding no descriptor: a fresh
/// socket's send buffer takes the two lines whole. What the client already sent is read
/// away first, so that the close is a FIN; something sent later may still reset it.
fn refuse_at_once(stream: TcpStream, msg: &str) {
    use std::io::{Read, Write};
    let mut out = Vec::new();
    refusal(&mut out, msg);
    // Straight on the socket: tokio's try_write would wait for a readiness event that a
    // socket accepted a moment ago has not had yet.
    let sock = SockRef::from(&stream);
    let mut s: &Socket = &sock;
    let _ = s.write(&out);
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match s.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = sock.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Keepalive;

    #[test]
    fn the_user_timeout_of_the_longest_keepalive_fits_the_kernels_milliseconds() {
        let longest = Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(600),
            retries: 100,
        };
        assert_eq!(user_timeout(&longest), Duration::from_secs(67_200));
        assert!(user_timeout(&longest).as_millis() < u128::from(u32::MAX));
        let absurd = Keepalive {
            idle: Duration::MAX,
            interval: Duration::MAX,
            retries: u32::MAX,
        };
        assert_eq!(user_timeout(&absurd), Duration::MAX);
    }
}
