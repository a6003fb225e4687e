//! The accept loop every listener shares (chat over TCP, the admin channel's Unix socket):
//! accept until stopped, hand each connection on, and back off instead of spinning when
//! accepting fails for a reason that is not one connection's (out of descriptors, say).

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::error;

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A listening socket, as far as the loop needs it.
pub trait Accept {
    type Stream;
    type Addr;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Stream, Self::Addr)>>;
}

impl Accept for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Stream, Self::Addr)>> {
        tokio::net::TcpListener::poll_accept(self, cx)
    }
}

impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Stream, Self::Addr)>> {
        tokio::net::UnixListener::poll_accept(self, cx)
    }
}

/// Accepts on `listener` until `stop` is cancelled, giving each connection to `on_accept`
/// (which must not wait: spawn). `what` names the listener in the log.
pub async fn run<L: Accept>(
    listener: &L,
    what: &str,
    stop: &CancellationToken,
    mut on_accept: impl FnMut(L::Stream, L::Addr),
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = poll_fn(|cx| listener.poll_accept(cx)) => r,
        };
        match accepted {
            Ok((stream, addr)) => {
                backoff = BACKOFF_MIN;
                on_accept(stream, addr);
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                error!(error = %e, retry_in = ?backoff, "{what}: accept failed");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Errors that concern one connection only (it was reset before we took it).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
