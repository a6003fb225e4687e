//! Redis pub/sub over RESP2, written by hand.
//!
//! - Connect: a receiver sends `SUBSCRIBE <its name> <everyone>` ([`super::everyone`] stands
//!   for `*`); every connection then sends `PING`. Redis answers a connection's commands in
//!   order, so the `PONG` (`+PONG`, or `*2 pong ""` once subscribed) ends the login.
//! - A message: `PUBLISH <channel> <body>`, as an array of bulk strings.
//! - The ack: Redis answers each `PUBLISH` with `:N`, the number of subscribers whose output
//!   buffers it was put in. That is the bench's "acked" for Redis (the server took the
//!   message), and N is its `delivered`; no subscriber acknowledges anything.
//! - What a receiver gets: `*3 message <channel> <payload>`.
//! - An error is `-KIND text`; its first word is the code.
//!
//! Redis pub/sub is at-most-once: a subscriber whose output buffer passes
//! `client-output-buffer-limit pubsub` is disconnected and what it had not read is lost. The
//! README says how to start the server without that limit; the order checks then hold as for
//! chatd (one publisher's messages reach each subscriber in order).

use super::frames::{self, Parsed};
use super::{Incoming, Role, body, body_len, everyone, push_body};

/// Arrays nested deeper than this are not RESP the bench will read.
const MAX_DEPTH: u32 = 8;

fn bulk(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'$');
    buf.extend_from_slice(itoa::Buffer::new().format(s.len()).as_bytes());
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(s);
    buf.extend_from_slice(b"\r\n");
}

/// Appends a receiver's `SUBSCRIBE`, then `PING`.
pub fn login(buf: &mut Vec<u8>, name: &str, role: Role) {
    if role == Role::Receiver {
        buf.extend_from_slice(b"*3\r\n");
        bulk(buf, b"SUBSCRIBE");
        bulk(buf, name.as_bytes());
        bulk(buf, everyone().as_bytes());
    }
    buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
}

/// Appends one `PUBLISH` to `to` (a name, or `*` for everyone).
pub fn msg(buf: &mut Vec<u8>, to: &str, sender: u32, seq: u64, t_ns: u64, pad: usize) {
    let channel = if to == "*" { everyone() } else { to };
    buf.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
    bulk(buf, channel.as_bytes());
    buf.push(b'$');
    let size = body_len(sender, seq, t_ns, pad);
    buf.extend_from_slice(itoa::Buffer::new().format(size).as_bytes());
    buf.extend_from_slice(b"\r\n");
    push_body(buf, sender, seq, t_ns, pad);
    buf.extend_from_slice(b"\r\n");
}

/// One RESP value, as far as the bench looks into it.
#[derive(Debug, Clone, Copy)]
enum Item<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Int(i64),
    /// `None` is the null bulk string.
    Bulk(Option<&'a [u8]>),
    /// An array inside an array, skipped.
    Array,
}

fn int(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// The value at the front of `buf` and its size; `Ok(None)` until it is complete.
fn item(buf: &[u8], depth: u32) -> Result<Option<(Item<'_>, usize)>, &'static str> {
    let Some((line, head)) = frames::line(buf) else {
        return Ok(None);
    };
    let Some((&kind, rest)) = line.split_first() else {
        return Err("an empty RESP line");
    };
    let count = || int(rest).ok_or("a RESP length that is not a number");
    Ok(Some(match kind {
        b'+' => (Item::Simple(rest), head),
        b'-' => (Item::Error(rest), head),
        b':' => (Item::Int(count()?), head),
        b'$' => {
            let Ok(size) = usize::try_from(count()?) else {
                return Ok(Some((Item::Bulk(None), head)));
            };
            let end = head.saturating_add(size);
            if buf.len() < end.saturating_add(2) {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("a RESP bulk string not followed by CRLF");
            }
            (Item::Bulk(Some(&buf[head..end])), end + 2)
        }
        b'*' => {
            if depth >= MAX_DEPTH {
                return Err("RESP arrays nested too deep");
            }
            let mut at = head;
            for _ in 0..count()?.max(0) {
                match item(&buf[at..], depth + 1)? {
                    Some((_, n)) => at += n,
                    None => return Ok(None),
                }
            }
            (Item::Array, at)
        }
        _ => return Err("not RESP: a line starts with an unknown type byte"),
    }))
}

/// Parses the reply or push at the front of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.first() == Some(&b'*') {
        return array(buf);
    }
    match item(buf, 0) {
        Err(why) => Parsed::Bad(why),
        Ok(None) => Parsed::Need,
        Ok(Some((it, n))) => {
            let ev = match it {
                Item::Simple(s) if s.eq_ignore_ascii_case(b"PONG") => Incoming::Pong,
                Item::Simple(_) => Incoming::Ok { delivered: None },
                Item::Error(text) => Incoming::Error {
                    code: text
                        .split(|&b| b == b' ')
                        .next()
                        .and_then(|w| std::str::from_utf8(w).ok())
                        .unwrap_or("?"),
                },
                Item::Int(n) if n >= 0 => Incoming::Ok {
                    delivered: Some(n as u64),
                },
                _ => Incoming::Other,
            };
            Parsed::Frame(ev, n)
        }
    }
}

/// A top-level array: a pushed `message`, the `pong` of a subscribed connection, or the
/// confirmation of a `subscribe` (anything else is [`Incoming::Other`]).
fn array(buf: &[u8]) -> Parsed<'_> {
    let Some((line, head)) = frames::line(buf) else {
        return Parsed::Need;
    };
    let Some(len) = int(&line[1..]) else {
        return Parsed::Bad("a RESP array length that is not a number");
    };
    let mut first: [Option<Item<'_>>; 3] = [None; 3];
    let mut at = head;
    for i in 0..len.max(0) as usize {
        match item(&buf[at..], 1) {
            Err(why) => return Parsed::Bad(why),
            Ok(None) => return Parsed::Need,
            Ok(Some((it, n))) => {
                if let Some(slot) = first.get_mut(i) {
                    *slot = Some(it);
                }
                at += n;
            }
        }
    }
    let ev = match first {
        [
            Some(Item::Bulk(Some(kind))),
            _,
            Some(Item::Bulk(Some(payload))),
        ] if kind.eq_ignore_ascii_case(b"message") => match body(payload) {
            Some((sender, seq, t_ns)) => Incoming::Msg { sender, seq, t_ns },
            None => Incoming::Other,
        },
        [Some(Item::Bulk(Some(kind))), ..] if kind.eq_ignore_ascii_case(b"pong") => Incoming::Pong,
        _ => Incoming::Other,
    };
    Parsed::Frame(ev, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frames::{check_every_split, events};

    fn parsed(parts: &[&[u8]]) -> Result<Vec<String>, &'static str> {
        events(parse, parts)
    }

    /// What a subscriber and a publisher see, one after the other, as Redis 7 writes it.
    const STREAM: &[u8] = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nr1\r\n:1\r\n\
        *2\r\n$4\r\npong\r\n$0\r\n\r\n\
        *3\r\n$7\r\nmessage\r\n$2\r\nr1\r\n$17\r\nk=2 s=9 t=77 p=xx\r\n\
        *3\r\n$7\r\nmessage\r\n$2\r\nr1\r\n$12\r\nk=2 s=10 t=7\r\n\
        +PONG\r\n:3\r\n-ERR unknown command 'FOO'\r\n$-1\r\n*-1\r\n";

    const EXPECTED: &[&str] = &[
        "Other",
        "Pong",
        "Msg { sender: 2, seq: 9, t_ns: 77 }",
        "Msg { sender: 2, seq: 10, t_ns: 7 }",
        "Pong",
        "Ok { delivered: Some(3) }",
        "Error { code: \"ERR\" }",
        "Other",
        "Other",
    ];

    #[test]
    fn several_pushes_in_one_read_or_split_anywhere_even_in_a_bulk_string() {
        check_every_split(parse, STREAM, EXPECTED);
    }

    #[test]
    fn nested_arrays_are_skipped_and_garbage_is_refused() {
        assert_eq!(
            parsed(&[b"*2\r\n*1\r\n:1\r\n$1\r\nx\r\n+OK\r\n"]),
            Ok(vec!["Other".into(), "Ok { delivered: None }".into()])
        );
        assert!(parsed(&[b"hello\r\n"]).is_err());
        assert!(parsed(&[b"$3\r\nhello\r\n"]).is_err());
        assert!(parsed(&[b"*x\r\n"]).is_err());
    }

    #[test]
    fn requests_are_arrays_of_bulk_strings() {
        let mut buf = Vec::new();
        msg(&mut buf, "r1", 2, 9, 77, 2);
        assert_eq!(
            buf,
            b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nr1\r\n$17\r\nk=2 s=9 t=77 p=xx\r\n"
        );
        let mut buf = Vec::new();
        login(&mut buf, "r1", Role::Receiver);
        let all = everyone();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            format!(
                "*3\r\n$9\r\nSUBSCRIBE\r\n$2\r\nr1\r\n${}\r\n{all}\r\n*1\r\n$4\r\nPING\r\n",
                all.len()
            )
        );
        let mut buf = Vec::new();
        login(&mut buf, "s1", Role::Sender);
        assert_eq!(buf, b"*1\r\n$4\r\nPING\r\n");
    }
}
