//! A bench connection: connect, log in, and read lines with a reused buffer.
//!
//! Reading uses proto's [`LineDecoder`], which lends complete lines straight out of the read
//! buffer, so the common case copies nothing. The clock is read once per read, not per line:
//! lines that arrived together arrived at the same time.

use crate::wire::{self, Incoming};
use anyhow::{Context, Result, bail};
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

/// One connection to the server under test.
pub struct Conn {
    pub stream: TcpStream,
    decoder: LineDecoder,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects with `TCP_NODELAY` (as any interactive chat client would) and a read buffer of
    /// `buf_len` bytes.
    pub async fn connect(addr: SocketAddr, buf_len: usize) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            decoder: LineDecoder::new(MAX_LINE),
            buf: vec![0; buf_len],
        })
    }

    /// Logs in as `name` and waits for the reply. Nothing but the reply can come first: the
    /// server sends events only to logged-in sessions. Lines after it in the same read (join
    /// events) are dropped; the decoder keeps any partial line.
    pub async fn login(&mut self, name: &str) -> Result<()> {
        let mut line = Vec::with_capacity(64);
        wire::login(&mut line, name);
        self.stream.write_all(&line).await?;
        let mut reply: Option<Result<()>> = None;
        while reply.is_none() {
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                bail!("server closed the connection during login of {name}");
            }
            self.decoder.feed(&self.buf[..n], |f| {
                if reply.is_some() {
                    return;
                }
                reply = Some(match f {
                    Frame::Line(l) => match wire::classify(l) {
                        Incoming::Ok { .. } => Ok(()),
                        _ => Err(anyhow::anyhow!(
                            "login of {name} refused: {}",
                            String::from_utf8_lossy(l)
                        )),
                    },
                    Frame::TooLong => Err(anyhow::anyhow!("login reply too long")),
                });
            });
        }
        reply.expect("loop ends with a reply")
    }

    /// Waits for data, then calls `on_line` for each complete line with the arrival time.
    /// Returns false at end of stream.
    pub async fn read_lines(&mut self, mut on_line: impl FnMut(&[u8], u64)) -> Result<bool> {
        let n = self.stream.read(&mut self.buf).await?;
        if n == 0 {
            return Ok(false);
        }
        let now = now_ns();
        self.decoder.feed(&self.buf[..n], |f| {
            if let Frame::Line(l) = f {
                on_line(l, now)
            }
        });
        Ok(true)
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
