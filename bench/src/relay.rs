//! The ceiling: the simplest honest line relay, written with the same runtime as chatd.
//!
//! `chatbench relay-server` runs it in its own process, so its CPU is measured from `/proc`
//! exactly like chatd's. It does the work any relay must do and nothing more: one task per
//! connection (a `select!` between its socket and its own bounded channel, as in tokio's
//! `examples/chat.rs`), a std-mutex registry of senders, an event line built once per message
//! and shared as `Bytes`, an `ok` per message with `delivered`, and a server timestamp.
//!
//! It understands just enough of the protocol for the scenarios, assuming chatbench's own
//! compact lines: `login` (no users list, no `join` events, no name rules), `msg` to a name or
//! `*` (a full queue is `recipient_busy` or a lost copy of a broadcast, never a wait), and `ok`
//! for anything else. It is a yardstick, not a chat server.

use anyhow::{Context, Result};
use bytes::Bytes;
use memchr::memmem;
use proto::codec::{Frame, LineDecoder};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

type Registry = Arc<Mutex<HashMap<String, mpsc::Sender<Bytes>>>>;

/// Runs the relay until the process is killed.
pub fn run(listen: SocketAddr, queue_len: usize) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("bind {listen}"))?;
        eprintln!("listening on {}", listener.local_addr()?);
        let reg = Registry::default();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(_) => {
                    // Out of file descriptors, most likely: let some close.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(session(stream, reg.clone(), queue_len));
        }
    })
}

/// The string value following `key` (e.g. `"to":"`), without its closing quote.
fn str_field<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = memmem::find(line, key)? + key.len();
    let len = memchr::memchr(b'"', &line[start..])?;
    Some(&line[start..start + len])
}

/// The raw JSON string literal of `body`, quotes included, skipping escaped quotes.
fn raw_body(line: &[u8]) -> Option<&[u8]> {
    let start = memmem::find(line, b"\"body\":\"")? + 7;
    let mut i = start + 1;
    while i < line.len() {
        match line[i] {
            b'\\' => i += 2,
            b'"' => return Some(&line[start..=i]),
            _ => i += 1,
        }
    }
    None
}

/// The raw `id` value (a number or a string without commas), or nothing.
fn raw_id(line: &[u8]) -> Option<&[u8]> {
    let start = memmem::find(line, b"\"id\":")? + 5;
    let len = line[start..].iter().position(|&b| b == b',' || b == b'}')?;
    Some(&line[start..start + len])
}

fn reply(out: &mut Vec<u8>, id: Option<&[u8]>, rest: &[u8]) {
    out.extend_from_slice(b"{\"type\":");
    out.extend_from_slice(rest);
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        out.extend_from_slice(id);
    }
    out.extend_from_slice(b"}\n");
}

struct Session {
    reg: Registry,
    tx: mpsc::Sender<Bytes>,
    name: Option<String>,
}

impl Session {
    fn handle(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let id = raw_id(line);
        match str_field(line, b"\"type\":\"") {
            Some(b"login") => {
                let name = str_field(line, b"\"from\":\"").unwrap_or(b"?");
                let name = String::from_utf8_lossy(name).into_owned();
                let mut reg = self.reg.lock().expect("registry lock");
                if self.name.is_none() && !reg.contains_key(&name) {
                    reg.insert(name.clone(), self.tx.clone());
                    drop(reg);
                    let mut r = b"\"ok\",\"user\":\"".to_vec();
                    r.extend_from_slice(name.as_bytes());
                    r.push(b'"');
                    reply(out, id, &r);
                    self.name = Some(name);
                } else {
                    reply(
                        out,
                        id,
                        b"\"error\",\"code\":\"name_taken\",\"message\":\"\"",
                    );
                }
            }
            Some(b"msg") => self.msg(line, id, out),
            _ => reply(out, id, b"\"ok\""),
        }
    }

    fn msg(&mut self, line: &[u8], id: Option<&[u8]>, out: &mut Vec<u8>) {
        let (Some(from), Some(to), Some(body)) = (
            self.name.as_deref(),
            str_field(line, b"\"to\":\""),
            raw_body(line),
        ) else {
            reply(
                out,
                id,
                b"\"error\",\"code\":\"bad_request\",\"message\":\"\"",
            );
            return;
        };
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut ev = Vec::with_capacity(64 + from.len() + to.len() + body.len());
        ev.extend_from_slice(b"{\"type\":\"msg\",\"from\":\"");
        ev.extend_from_slice(from.as_bytes());
        ev.extend_from_slice(b"\",\"to\":\"");
        ev.extend_from_slice(to);
        ev.extend_from_slice(b"\",\"body\":");
        ev.extend_from_slice(body);
        ev.extend_from_slice(b",\"ts\":");
        ev.extend_from_slice(itoa::Buffer::new().format(ts).as_bytes());
        ev.extend_from_slice(b"}\n");
        let ev = Bytes::from(ev);
        let reg = self.reg.lock().expect("registry lock");
        let delivered = if to == b"*" {
            reg.iter()
                .filter(|(n, _)| n.as_str() != from)
                .filter(|(_, tx)| tx.try_send(ev.clone()).is_ok())
                .count()
        } else {
            match reg.get(std::str::from_utf8(to).unwrap_or("")) {
                None => {
                    drop(reg);
                    return reply(
                        out,
                        id,
                        b"\"error\",\"code\":\"unknown_user\",\"message\":\"\"",
                    );
                }
                Some(tx) if tx.try_send(ev).is_err() => {
                    drop(reg);
                    return reply(
                        out,
                        id,
                        b"\"error\",\"code\":\"recipient_busy\",\"message\":\"\"",
                    );
                }
                Some(_) => 1,
            }
        };
        drop(reg);
        let mut r = b"\"ok\",\"delivered\":".to_vec();
        r.extend_from_slice(itoa::Buffer::new().format(delivered).as_bytes());
        reply(out, id, &r);
    }
}

async fn session(stream: TcpStream, reg: Registry, queue_len: usize) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(queue_len.max(1));
    let mut s = Session {
        reg,
        tx,
        name: None,
    };
    let mut decoder = LineDecoder::new(proto::DEFAULT_MAX_LINE_BYTES);
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r { Ok(0) | Err(_) => break, Ok(n) => n };
                decoder.feed(&buf[..n], |f| match f {
                    Frame::Line(l) if !l.trim_ascii().is_empty() => s.handle(l, &mut out),
                    Frame::Line(_) => {}
                    Frame::TooLong => reply(&mut out, None, b"\"error\",\"code\":\"too_large\",\"message\":\"\""),
                });
            }
            Some(ev) = rx.recv() => {
                out.extend_from_slice(&ev);
                // Drain what is already queued, so a burst becomes one write.
                while out.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(ev) => out.extend_from_slice(&ev),
                        Err(_) => break,
                    }
                }
            }
        }
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
            if out.capacity() > 256 * 1024 {
                out = Vec::new();
            }
        }
    }
    if let Some(name) = s.name {
        s.reg.lock().expect("registry lock").remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_in_the_benchs_own_lines() {
        let l = br#"{"type":"msg","to":"r1","body":"k=1 s=2 \"q\" t=3","id":2}"#;
        assert_eq!(str_field(l, b"\"type\":\""), Some(&b"msg"[..]));
        assert_eq!(str_field(l, b"\"to\":\""), Some(&b"r1"[..]));
        assert_eq!(raw_body(l), Some(&br#""k=1 s=2 \"q\" t=3""#[..]));
        assert_eq!(raw_id(l), Some(&b"2"[..]));
        assert_eq!(raw_id(br#"{"type":"ping"}"#), None);
    }
}
