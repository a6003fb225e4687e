//! A bench connection: connect, log in, and read what the server sends with a reused buffer.
//!
//! Reading frames with proto's [`LineDecoder`] (chatd, the relays) or the bench's own
//! [`Reassembler`] (NATS, Redis), both of which lend complete frames straight out of the read
//! buffer, so the common case copies nothing; each frame reaches the caller already classified
//! as an [`Incoming`]. The clock is read once per read, not per frame: frames that arrived
//! together arrived at the same time. A server's `PING` is answered here, so callers never
//! see it.

use crate::wire::frames::Reassembler;
use crate::wire::{Incoming, Role, Wire};
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

/// How a connection cuts what it reads into frames.
enum Decoder {
    Lines(LineDecoder),
    Frames(Reassembler),
}

/// One connection to the server under test.
pub struct Conn {
    pub stream: TcpStream,
    wire: Wire,
    decoder: Decoder,
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
        let decoder = if ep.wire.is_lines() {
            Decoder::Lines(LineDecoder::new(MAX_LINE))
        } else {
            Decoder::Frames(Reassembler::new(MAX_LINE))
        };
        Ok(Conn {
            stream,
            wire: ep.wire,
            decoder,
            buf: vec![0; buf_len],
        })
    }

    /// Logs in as `name` (for NATS and Redis: connects, and subscribes a receiver) and waits
    /// for the answer ([`Wire::login_done`]). Nothing for the bench can come first: servers
    /// send events only to logged-in sessions. Frames after the answer in the same read (join
    /// events) are dropped; the decoder keeps any partial frame.
    pub async fn login(&mut self, name: &str, role: Role) -> Result<()> {
        let mut req = Vec::with_capacity(256);
        self.wire.login(&mut req, name, role);
        self.stream.write_all(&req).await?;
        let wire = self.wire;
        let mut answer: Option<Result<()>> = None;
        while answer.is_none() {
            let n = self
                .read_events(|ev, _| {
                    if answer.is_none() {
                        answer = wire.login_done(&ev).map(|ok| match ok {
                            true => Ok(()),
                            false => Err(anyhow!("login of {name} refused: {ev:?}")),
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

    /// Waits for data, then calls `on_event` for each complete frame with the arrival time.
    /// Returns the bytes read: 0 at end of stream. A server's `PING` is answered with `PONG`
    /// after the read's frames. A stream that breaks its protocol is an error.
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
        let mut pings = 0;
        let mut on = |ev: Incoming<'_>| match ev {
            Incoming::Ping => pings += 1,
            ev => on_event(ev, now),
        };
        match &mut self.decoder {
            Decoder::Lines(d) => d.feed(&self.buf[..n], |f| match f {
                Frame::Line(l) => on(wire.classify_line(l)),
                Frame::TooLong => on(Incoming::Other),
            }),
            Decoder::Frames(r) => r
                .feed(&self.buf[..n], wire.parser(), on)
                .map_err(|why| anyhow!("{why} ({wire:?} wire)"))?,
        }
        for _ in 0..pings {
            // The paced writer of `latency` may write on this socket too; a PONG lands
            // between two of its whole writes unless the socket buffer is full (then the
            // pacer retries the rest of its line after ours, and the stream is broken):
            // servers ping every few minutes and a latency run is short.
            self.stream.write_all(b"PONG\r\n").await?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that speaks first (`INFO`), then follows `script`: for each step it reads
    /// until it has seen `expect`, then writes `reply`.
    async fn fake_server(script: Vec<(&'static str, &'static str)>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"INFO {\"max_payload\":1048576}\r\n")
                .await
                .unwrap();
            let mut seen = Vec::new();
            for (expect, reply) in script {
                while !String::from_utf8_lossy(&seen).contains(expect) {
                    let mut buf = [0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0, "client left before sending {expect:?}");
                    seen.extend_from_slice(&buf[..n]);
                }
                seen.clear();
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        addr
    }

    fn nats(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            wire: Wire::Nats,
        }
    }

    #[tokio::test]
    async fn a_nats_ping_is_answered_and_messages_come_through() {
        let addr = fake_server(vec![
            ("PING\r\n", "PONG\r\nPING\r\n"),
            // The PONG must arrive before anything else is sent.
            ("PONG\r\n", "MSG r1 1 13\r\nk=0 s=0 t=1\r\n\r\n"),
        ])
        .await;
        let mut c = Conn::connect(nats(addr), 4096).await.unwrap();
        c.login("r1", Role::Receiver).await.unwrap();
        let mut got = Vec::new();
        while got.is_empty() {
            let n = c
                .read_events(|ev, _| got.push(format!("{ev:?}")))
                .await
                .unwrap();
            assert!(n > 0);
        }
        assert_eq!(got, ["Msg { sender: 0, seq: 0, t_ns: 1 }"]);
    }

    #[tokio::test]
    async fn an_err_before_the_pong_refuses_the_login() {
        let addr = fake_server(vec![("PING\r\n", "-ERR 'Authorization Violation'\r\n")]).await;
        let mut c = Conn::connect(nats(addr), 4096).await.unwrap();
        let e = c.login("s1", Role::Sender).await.unwrap_err();
        assert!(format!("{e}").contains("Authorization Violation"), "{e}");
    }
}
