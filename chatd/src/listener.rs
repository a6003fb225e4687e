//! Binding the chat listeners, and the accept loop that bounds and spawns sessions.
//!
//! Each accepted connection takes a permit from a semaphore sized `max_clients`; the permit
//! moves into the session task and its drop frees the slot. When none is left the connection
//! gets `server_full` and `bye` and is closed, by a short task of its own so the accept loop
//! never waits on a client. Failed accepts (out of descriptors, say) back off, doubling up to
//! a second, instead of spinning.

use crate::session::{self, Shared};
use proto::{ByeReason, ErrorCode, encode};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// Connections being turned away at once; past this they are closed without a word.
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

/// Accepts until `stop` is cancelled, spawning sessions on `tracker`.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                error!(error = %e, retry_in = ?backoff, "accept failed");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        crate::stats::Stats::add(&shared.registry.stats().accepted, 1);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            crate::stats::Stats::add(&shared.registry.stats().refused, 1);
            shared.registry.stats().error(ErrorCode::ServerFull);
            shared
                .registry
                .events()
                .error(peer, None, ErrorCode::ServerFull);
            warn!(%peer, max_clients = shared.config.load().max_clients, "server full, refusing connection");
            if let Ok(p) = refusing.clone().try_acquire_owned() {
                let max = shared.config.load().max_clients;
                tracker.spawn(async move {
                    let _p = p;
                    let _ = tokio::time::timeout(REFUSE_TIMEOUT, refuse(stream, max)).await;
                });
            }
            continue;
        };
        configure(&stream, &shared);
        let shared = shared.clone();
        tracker.spawn(session::run(stream, peer, shared, permit));
    }
}

/// Errors that concern one connection only (it was reset before we took it).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

fn configure(stream: &TcpStream, shared: &Shared) {
    // Replies are batched by the session, so Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    if let Some(ka) = shared.config.load().keepalive {
        let sock = SockRef::from(stream);
        let params = TcpKeepalive::new()
            .with_time(ka.idle)
            .with_interval(ka.interval)
            .with_retries(ka.retries);
        if let Err(e) = sock.set_tcp_keepalive(&params) {
            warn!(error = %e, "cannot enable TCP keepalive");
        }
        // Keepalive probes only run while nothing is unacknowledged; the user timeout also
        // ends a peer that vanished with our data in flight.
        let _ = sock.set_tcp_user_timeout(Some(ka.idle + ka.interval * ka.retries));
    }
}

async fn refuse(mut stream: TcpStream, max: usize) {
    let mut buf = Vec::new();
    encode::error(
        &mut buf,
        None,
        ErrorCode::ServerFull,
        &format!("server is full ({max} connections); try again later"),
    );
    encode::bye(&mut buf, ByeReason::ServerFull, None);
    if stream.write_all(&buf).await.is_ok() {
        let _ = stream.shutdown().await;
        // Read until the client closes, so unread input does not reset the connection
        // before it reads the reason.
        let mut sink = [0u8; 1024];
        loop {
            match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    info!("refused connection closed");
}
