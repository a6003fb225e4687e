//! A bench connection: connect, log in, and read what the server sends with a reused buffer.
//!
//! Reading uses proto's [`LineDecoder`], which lends complete lines straight out of the read
//! buffer, so the common case copies nothing; each line reaches the caller already classified
//! as an [`Incoming`] of the server's wire. The clock is read once per read, not per line:
//! lines that arrived together arrived at the same time.

use crate::wire::{Incoming, Wire};
use anyhow::{Context, Result, anyhow, bail};
use proto::codec::{Frame, LineDecoder};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest line the bench accepts: a login reply lists every user (19 000 names fit easily).
const MAX_LINE: usize = 16 << 20;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the bench started: the timestamp carried in message bodies. Sender and
/// receiver share this process, so no clock synchronisation is involved.
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Where a server listens and what it speaks.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub wire: Wire,
}

/// One connection to the server under test.
pub struct Conn {
    pub stream: TcpStream,
    wire: Wire,
    decoder: LineDecoder,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects with `TCP_NODELAY` (as any interactive chat client would) and a read buffer of
    /// `buf_len` bytes.
    pub async fn connect(ep: Endpoint, buf_len: usize) -> Result<Conn> {
        let stream = TcpStream::connect(ep.addr)
            .await
            .with_context(|| format!("connect to {}", ep.addr))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            wire: ep.wire,
            decoder: LineDecoder::new(MAX_LINE),
            buf: vec![0; buf_len],
        })
    }

    /// Logs in as `name` and waits for the reply. Nothing but the reply can come first: the
    /// server sends events only to logged-in sessions. Lines after it in the same read (join
    /// events) are dropped; the decoder keeps any partial line.
    pub async fn login(&mut self, name: &str) -> Result<()> {
        let mut req = Vec::with_capacity(64);
        self.wire.login(&mut req, name);
        self.stream.write_all(&req).await?;
        let mut answer: Option<Result<()>> = None;
        while answer.is_none() {
            let n = self
                .read_events(|ev, _| {
                    if answer.is_none() {
                        answer = Some(match ev {
                            Incoming::Ok { .. } => Ok(()),
                            ev => Err(anyhow!("login of {name} refused: {ev:?}")),
                        });
                    }
                })
                .await?;
            if n == 0 {
                bail!("server closed the connection during login of {name}");
            }
        }
        answer.expect("loop ends with an answer")
    }

    /// Waits for data, then calls `on_event` for each complete line, classified, with the
    /// arrival time. Returns the bytes read: 0 at end of stream.
    pub async fn read_events(
        &mut self,
        mut on_event: impl FnMut(Incoming<'_>, u64),
    ) -> Result<usize> {
        let n = self.stream.read(&mut self.buf).await?;
        if n == 0 {
            return Ok(0);
        }
        let now = now_ns();
        let wire = self.wire;
        self.decoder.feed(&self.buf[..n], |f| match f {
            Frame::Line(l) => on_event(wire.classify_line(l), now),
            Frame::TooLong => on_event(Incoming::Other, now),
        });
        Ok(n)
    }

    /// Reads and discards whatever the server sends, adding the bytes to `total`, until EOF or
    /// error.
    pub async fn drain(&mut self, total: &mut u64) {
        while let Ok(n) = self.stream.read(&mut self.buf).await {
            if n == 0 {
                break;
            }
            *total += n as u64;
        }
    }

    /// Makes the close send RST rather than FIN: the bench opens and closes tens of thousands
    /// of connections per run, and this keeps TIME_WAIT sockets from using up local ports.
    pub fn abort_on_close(&self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }
}
