//! The floor: the least a relay can do per message with this runtime, the default ceiling.
//!
//! `chatbench relay-server --relay raw` runs it in its own process, so its CPU is measured
//! from `/proc` exactly like chatd's. Its wire is [`crate::wire::raw`]: a client's first line
//! is its name, then each line is `TO BODY` (`*` for everyone else); a recipient gets
//! `FROM BODY` and the sender gets `+` per message (`-unknown_user` when nobody has that
//! name). Per connection there is one reader task and one writer task; the writer owns an
//! unbounded channel that every sender (and the connection's own reader, for its acks) puts
//! shared `Bytes` into, and it writes whatever has queued up in one `write`.
//!
//! No JSON, no escaping, no name rules, no timestamps, no limits of any kind: nothing is ever
//! refused or dropped, so a receiver that stops reading grows the relay's memory without
//! bound. What it does is what any relay must: frame lines, find the recipient, tell it who
//! sent the message, and acknowledge it. It is a yardstick, not a chat server.

use anyhow::{Context, Result};
use bytes::Bytes;
use proto::codec::{Frame, LineDecoder};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// Each name's writer channel.
type Registry = Arc<Mutex<HashMap<Vec<u8>, mpsc::UnboundedSender<Bytes>>>>;

/// A line longer than this is answered `-too_long`: far above anything the bench sends, it
/// only bounds what one reader buffers.
const MAX_LINE: usize = 16 << 20;
/// Bytes read at once.
const READ_BUF: usize = 16 * 1024;
/// The writer stops gathering queued lines into one write at this size.
const WRITE_BATCH: usize = 64 * 1024;

const ACK: &[u8] = b"+\n";

/// Runs the relay until the process is killed.
pub fn run(listen: SocketAddr) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("bind {listen}"))?;
        eprintln!("listening on {}", listener.local_addr()?);
        let reg = Registry::default();
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(session(stream, reg.clone()));
                }
                // Out of file descriptors, most likely: let some close.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    })
}

/// The reader task of one connection; it starts the connection's writer task.
async fn session(stream: TcpStream, reg: Registry) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(writer(wr, rx));
    let name = reader(rd, &reg, tx).await;
    if let Some(name) = name {
        reg.lock().expect("registry lock").remove(&name);
    }
}

/// Reads lines until the client goes; returns the name it logged in with.
async fn reader(
    mut rd: OwnedReadHalf,
    reg: &Registry,
    tx: mpsc::UnboundedSender<Bytes>,
) -> Option<Vec<u8>> {
    let mut name: Option<Vec<u8>> = None;
    let mut decoder = LineDecoder::new(MAX_LINE);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => return name,
            Ok(n) => n,
        };
        decoder.feed(&buf[..n], |f| {
            let reply = match f {
                Frame::Line([]) => return,
                Frame::Line(line) => match &name {
                    None => login(line, reg, &tx, &mut name),
                    Some(from) => relay(line, from, reg),
                },
                Frame::TooLong => &b"-too_long\n"[..],
            };
            let _ = tx.send(Bytes::from_static(reply));
        });
    }
}

/// Takes `line` as the client's name; the reply to send it.
fn login(
    line: &[u8],
    reg: &Registry,
    tx: &mpsc::UnboundedSender<Bytes>,
    name: &mut Option<Vec<u8>>,
) -> &'static [u8] {
    let mut reg = reg.lock().expect("registry lock");
    if reg.contains_key(line) {
        return b"-name_taken\n";
    }
    reg.insert(line.to_vec(), tx.clone());
    *name = Some(line.to_vec());
    ACK
}

/// Relays one `TO BODY` line from `from`; the reply to send the sender.
fn relay(line: &[u8], from: &[u8], reg: &Registry) -> &'static [u8] {
    let Some(space) = memchr::memchr(b' ', line) else {
        return b"-bad_request\n";
    };
    let (to, body) = (&line[..space], &line[space + 1..]);
    let mut ev = Vec::with_capacity(from.len() + body.len() + 2);
    ev.extend_from_slice(from);
    ev.push(b' ');
    ev.extend_from_slice(body);
    ev.push(b'\n');
    let ev = Bytes::from(ev);
    let reg = reg.lock().expect("registry lock");
    if to == b"*" {
        for (_, tx) in reg.iter().filter(|(n, _)| n.as_slice() != from) {
            let _ = tx.send(ev.clone());
        }
        return ACK;
    }
    match reg.get(to) {
        Some(tx) => {
            let _ = tx.send(ev);
            ACK
        }
        None => b"-unknown_user\n",
    }
}

/// Writes what the channel brings, gathering what has queued up meanwhile into one write.
/// Ends when the socket fails or every sender is gone (the client left).
async fn writer(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    let mut out = Vec::with_capacity(4096);
    while let Some(first) = rx.recv().await {
        out.extend_from_slice(&first);
        while out.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => out.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_with(names: &[&str]) -> (Registry, Vec<mpsc::UnboundedReceiver<Bytes>>) {
        let reg = Registry::default();
        let mut rxs = Vec::new();
        for n in names {
            let (tx, rx) = mpsc::unbounded_channel();
            let mut name = None;
            assert_eq!(login(n.as_bytes(), &reg, &tx, &mut name), ACK);
            assert_eq!(name.as_deref(), Some(n.as_bytes()));
            rxs.push(rx);
        }
        (reg, rxs)
    }

    #[test]
    fn a_message_reaches_its_recipient_with_the_senders_name() {
        let (reg, mut rx) = registry_with(&["a", "b"]);
        assert_eq!(relay(b"b k=1 s=2 t=3", b"a", &reg), ACK);
        assert_eq!(rx[1].try_recv().unwrap(), &b"a k=1 s=2 t=3\n"[..]);
        assert!(rx[0].try_recv().is_err());
        assert_eq!(relay(b"nobody hi", b"a", &reg), b"-unknown_user\n");
        assert_eq!(relay(b"nospace", b"a", &reg), b"-bad_request\n");
    }

    #[test]
    fn a_broadcast_reaches_everyone_else() {
        let (reg, mut rx) = registry_with(&["a", "b", "c"]);
        assert_eq!(relay(b"* hello", b"a", &reg), ACK);
        assert!(rx[0].try_recv().is_err());
        for r in &mut rx[1..] {
            assert_eq!(r.try_recv().unwrap(), &b"a hello\n"[..]);
        }
    }

    #[test]
    fn a_name_is_taken_once() {
        let (reg, _rx) = registry_with(&["a"]);
        let (tx, _) = mpsc::unbounded_channel();
        let mut name = None;
        assert_eq!(login(b"a", &reg, &tx, &mut name), b"-name_taken\n");
        assert_eq!(name, None);
    }
}
