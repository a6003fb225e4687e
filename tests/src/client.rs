//! A raw protocol client over TCP or TLS: lines out, lines (or JSON values) in, each read
//! bounded by the deadline, and the checks most tests make on what comes back.

use crate::wait::DEADLINE;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A raw protocol client over TCP or TLS.
pub struct Client {
    reader: tokio::io::BufReader<Reader>,
    writer: Writer,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Client::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        let (r, w) = stream.into_split();
        Client::from_halves(Box::new(r), Box::new(w))
    }

    /// A client over any stream (a TLS one, say).
    pub fn over<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> Client {
        let (r, w) = tokio::io::split(stream);
        Client::from_halves(Box::new(r), Box::new(w))
    }

    fn from_halves(r: Reader, w: Writer) -> Client {
        Client {
            reader: tokio::io::BufReader::new(r),
            writer: w,
        }
    }

    /// Connects and logs in as `name`, returning the `ok` reply.
    pub async fn login(addr: SocketAddr, name: &str) -> Client {
        let mut c = Client::connect(addr).await;
        c.send(&format!(r#"{{"type":"login","from":"{name}"}}"#))
            .await;
        let reply = c.recv().await;
        assert_eq!(reply["type"], "ok", "login as {name} failed: {reply}");
        c
    }

    /// Sends one line; a `\n` is added.
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write to chatd");
    }

    /// Closes the sending side (the server sees EOF).
    pub async fn shutdown_write(&mut self) {
        self.writer.shutdown().await.expect("shutdown");
    }

    /// The next line from the server, raw, or `None` at EOF.
    pub async fn recv_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(DEADLINE, self.reader.read_line(&mut line))
            .await
            .expect("no line from chatd before the deadline")
            .expect("read from chatd");
        (n > 0).then_some(line)
    }

    /// The next line within `wait`, or `None` if none came by then: for waits where "not
    /// yet" is an answer the test acts on, not a failure.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let mut line = String::new();
        match tokio::time::timeout(wait, self.reader.read_line(&mut line)).await {
            Err(_) => None,
            Ok(r) => {
                assert!(
                    r.expect("read from chatd") > 0,
                    "chatd closed the connection"
                );
                Some(
                    serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}")),
                )
            }
        }
    }

    /// The next line, parsed as JSON.
    pub async fn recv(&mut self) -> Value {
        let line = self.recv_line().await.expect("chatd closed the connection");
        assert!(line.ends_with('\n'), "unterminated line {line:?}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    /// The next line with `ts` checked to be a plausible timestamp and then removed, so the
    /// rest can be compared exactly.
    pub async fn recv_no_ts(&mut self) -> Value {
        let mut v = self.recv().await;
        if let Some(obj) = v.as_object_mut()
            && let Some(ts) = obj.remove("ts")
        {
            let ts = ts.as_u64().expect("ts is an integer");
            assert!(
                ts > 1_700_000_000_000,
                "ts {ts} is not milliseconds since the epoch"
            );
        }
        v
    }

    /// Asserts that the next line equals `expected` (ignoring `ts`).
    pub async fn expect(&mut self, expected: Value) {
        assert_eq!(self.recv_no_ts().await, expected);
    }

    /// Asserts the server closes the connection next (after any lines it still sends, which
    /// are returned).
    pub async fn expect_closed(&mut self) -> Vec<Value> {
        let mut rest = Vec::new();
        while let Some(line) = self.recv_line().await {
            rest.push(
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}")),
            );
        }
        rest
    }

    /// Proves nothing else is pending: a ping must be answered next.
    pub async fn expect_nothing_pending(&mut self) {
        self.send(r#"{"type":"ping","id":"sync"}"#).await;
        let v = self.recv().await;
        assert_eq!(
            v,
            serde_json::json!({"type":"ok","id":"sync"}),
            "unexpected line before the ping reply"
        );
    }
}
