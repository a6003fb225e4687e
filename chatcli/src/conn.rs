//! One connection to chatd: connect, log in, write requests, read server lines.
//!
//! Reading goes through `proto`'s capped [`LineDecoder`], so a misbehaving server cannot make
//! the client buffer without limit. [`Conn::recv`] is cancel-safe (the only await is a socket
//! `read`, and decoded lines wait in a queue), which lets every mode race it in `select!`
//! against stdin, the terminal or a timer. Writes are queued and flushed in one go, so a batch
//! of pipelined messages is one syscall.

use crate::fatal::Fatal;
use proto::ErrorCode;
use proto::codec::{Frame, LineDecoder};
use proto::message::{ClientRequest, Id, OkReply, ServerMessage};
use std::collections::VecDeque;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long a clean logout may take before we stop waiting for the server's `bye`.
pub const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// Cap on one line from the server. A `users` reply lists everyone, so this is far above the
/// request cap; it only guards against a server gone mad.
const MAX_SERVER_LINE: usize = 16 << 20;

/// One line received from the server: the exact text (for `--json`) and its meaning, if it
/// parsed as protocol version 1.
#[derive(Debug)]
pub struct Received {
    pub raw: String,
    pub msg: Option<ServerMessage>,
}

/// A connected (and, after [`Conn::login`], logged-in) session.
pub struct Conn {
    addr: String,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    /// Requests queued by [`Conn::queue`] and not yet written.
    out: Vec<u8>,
    decoder: LineDecoder,
    /// Lines decoded from the last read and not yet handed out.
    lines: VecDeque<Received>,
    next_id: i64,
    /// Sent with every login when the server wants one.
    password: Option<String>,
    timeout: Duration,
}

/// The answer to `login`.
pub enum Login {
    Accepted(OkReply),
    Refused { code: ErrorCode, message: String },
}

impl Conn {
    /// Resolves and connects to `addr`, mapping every failure to [`Fatal::unreachable`].
    /// `timeout` bounds the connection, and then the answer to each login (`--timeout`).
    pub async fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Conn> {
        let attempt = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        let stream = match attempt {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Fatal::unreachable(addr, &e).into()),
            Err(_) => {
                let e = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {}s", timeout.as_secs()),
                );
                return Err(Fatal::unreachable(addr, &e).into());
            }
        };
        // Chat lines are small and latency matters more than packet count.
        stream.set_nodelay(true).ok();
        let (rd, wr) = stream.into_split();
        Ok(Conn {
            addr: addr.to_owned(),
            rd,
            wr,
            out: Vec::new(),
            decoder: LineDecoder::new(MAX_SERVER_LINE),
            lines: VecDeque::new(),
            next_id: 1,
            password: None,
            timeout,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A fresh request id; ids only need to be unique within this connection.
    pub fn next_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The password every later login carries.
    pub fn set_password(&mut self, password: Option<String>) {
        self.password = password;
    }

    /// Sends `login` and waits for its answer, with a deadline.
    pub async fn login(&mut self, name: &str) -> anyhow::Result<Login> {
        let id = self.next_id();
        self.queue(&ClientRequest::Login {
            from: name.to_owned(),
            password: self.password.clone(),
            id: Some(Id::Int(id)),
        });
        self.flush().await.map_err(|e| self.lost(Some(&e)))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let Ok(got) = tokio::time::timeout_at(deadline, self.recv()).await else {
                return Err(Fatal::login_unanswered(&self.addr, self.timeout).into());
            };
            match got.map_err(|e| self.lost(Some(&e)))?.and_then(|r| r.msg) {
                Some(ServerMessage::Ok(ok)) if ok.id == Some(Id::Int(id)) => {
                    return Ok(Login::Accepted(ok));
                }
                Some(ServerMessage::Error(e)) => {
                    return Ok(Login::Refused {
                        code: e.code,
                        message: e.message,
                    });
                }
                Some(ServerMessage::Bye { reason, message }) => {
                    return Err(Fatal::bye(reason, message.as_deref()).into());
                }
                Some(_) => continue,
                None => return Err(self.lost(None).into()),
            }
        }
    }

    /// Appends a request to the output buffer; [`Conn::flush`] writes it.
    pub fn queue(&mut self, req: &ClientRequest) {
        self.out.extend_from_slice(req.to_line().as_bytes());
    }

    /// Appends a request unless its line, as encoded (escapes included, `\n` not counted),
    /// would be longer than `max` bytes: the server's line limit, past which it would only
    /// answer `too_large`. `Err` carries the length the line would have had.
    pub fn queue_within(&mut self, req: &ClientRequest, max: usize) -> Result<(), usize> {
        let line = req.to_line();
        let len = line.len() - 1;
        if len > max {
            return Err(len);
        }
        self.out.extend_from_slice(line.as_bytes());
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.wr.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// The next line from the server; `Ok(None)` at end of stream. Cancel-safe.
    pub async fn recv(&mut self) -> io::Result<Option<Received>> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(r) = self.lines.pop_front() {
                return Ok(Some(r));
            }
            let n = self.rd.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            let lines = &mut self.lines;
            self.decoder.feed(&buf[..n], |frame| match frame {
                Frame::Line(l) if l.iter().all(u8::is_ascii_whitespace) => {}
                Frame::Line(l) => {
                    let raw = String::from_utf8_lossy(l).into_owned();
                    let msg = ServerMessage::parse(&raw).ok();
                    lines.push_back(Received { raw, msg });
                }
                Frame::TooLong => lines.push_back(Received {
                    raw: String::new(),
                    msg: None,
                }),
            });
        }
    }

    /// Says `logout` and waits (briefly) for the server to close, so the logout is seen by
    /// everyone before we exit. Events arriving meanwhile are dropped.
    pub async fn logout(&mut self) {
        let id = self.next_id();
        self.queue(&ClientRequest::Logout {
            id: Some(Id::Int(id)),
        });
        if self.flush().await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(LOGOUT_TIMEOUT, async {
            while let Ok(Some(r)) = self.recv().await {
                if matches!(r.msg, Some(ServerMessage::Bye { .. })) {
                    break;
                }
            }
        })
        .await;
    }

    /// The error for a connection that ended without `bye`.
    pub fn lost(&self, err: Option<&io::Error>) -> Fatal {
        Fatal::lost(&self.addr, err)
    }
}
