//! Core NATS, written by hand: the handful of protocol lines the bench needs.
//!
//! - Connect: `CONNECT {..}`, then for a receiver `SUB <its name> 1` and `SUB <everyone> 2`
//!   ([`super::everyone`] stands for `*`), then `PING`. The server handles a connection's
//!   lines in order, so its `PONG` says the subscriptions are in place.
//! - A message: `PUB <subject> <size>\r\n<body>\r\n`, the subject being the recipient's name.
//! - The ack: a sender connects with `"verbose":true`, so the server answers every `PUB` it
//!   has read with `+OK` (or `-ERR '...'`). That is the bench's "acked" for NATS: the server
//!   took the message; it says nothing of any subscriber having it, and carries no count
//!   (`delivered` stays unknown).
//! - What a receiver gets: `MSG <subject> <sid> [reply-to] <size>\r\n<payload>\r\n`.
//! - The server's `PING` (every two minutes by default) must be answered with `PONG` or it
//!   closes the connection: [`crate::client::Conn`] does that on every wire that yields
//!   [`Incoming::Ping`].
//!
//! Core NATS is at-most-once: a subscriber the server judges slow (more than `max_pending`
//! bytes waiting, or a write blocked past `write_deadline`) is sent `-ERR 'Slow Consumer'` and
//! closed, and what it had not read is lost. The README says how to start the server so the
//! bench's readers are not cut off; the order checks then hold as for chatd (NATS keeps one
//! publisher's messages in order to each subscriber).

use super::frames::{self, Parsed};
use super::{Incoming, Role, body, body_len, digits, everyone, push_body};

/// Appends the connect (and, for a receiver, subscribe) lines and the closing `PING`.
pub fn login(buf: &mut Vec<u8>, name: &str, role: Role) {
    buf.extend_from_slice(b"CONNECT {\"verbose\":");
    buf.extend_from_slice(match role {
        Role::Sender => b"true",
        Role::Receiver => b"false",
    });
    buf.extend_from_slice(b",\"pedantic\":false,\"tls_required\":false,\"echo\":false,\"name\":\"");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\",\"lang\":\"rust\",\"version\":\"");
    buf.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    buf.extend_from_slice(b"\",\"protocol\":0}\r\n");
    if role == Role::Receiver {
        for (subject, sid) in [(name, b'1'), (everyone(), b'2')] {
            buf.extend_from_slice(b"SUB ");
            buf.extend_from_slice(subject.as_bytes());
            buf.extend_from_slice(&[b' ', sid, b'\r', b'\n']);
        }
    }
    buf.extend_from_slice(b"PING\r\n");
}

/// Appends one `PUB` to `to` (a name, or `*` for everyone).
pub fn msg(buf: &mut Vec<u8>, to: &str, sender: u32, seq: u64, t_ns: u64, pad: usize) {
    let subject = if to == "*" { everyone() } else { to };
    buf.extend_from_slice(b"PUB ");
    buf.extend_from_slice(subject.as_bytes());
    buf.push(b' ');
    let size = body_len(sender, seq, t_ns, pad);
    buf.extend_from_slice(itoa::Buffer::new().format(size).as_bytes());
    buf.extend_from_slice(b"\r\n");
    push_body(buf, sender, seq, t_ns, pad);
    buf.extend_from_slice(b"\r\n");
}

/// Parses the frame at the front of `buf`: one protocol line, or a `MSG`/`HMSG` line and its
/// payload. Operation names are matched without regard to case, as the protocol allows.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    let Some((line, head)) = frames::line(buf) else {
        return Parsed::Need;
    };
    let split = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let (op, args) = (&line[..split], line[split..].trim_ascii());
    let is = |name: &[u8]| op.eq_ignore_ascii_case(name);
    if is(b"MSG") || is(b"HMSG") {
        return payload(buf, head, args, is(b"HMSG"));
    }
    let ev = if is(b"PING") {
        Incoming::Ping
    } else if is(b"PONG") {
        Incoming::Pong
    } else if is(b"+OK") {
        Incoming::Ok { delivered: None }
    } else if is(b"-ERR") {
        let text = args.trim_ascii_start().strip_prefix(b"'").unwrap_or(args);
        let text = text.strip_suffix(b"'").unwrap_or(text);
        Incoming::Error {
            code: std::str::from_utf8(text).unwrap_or("?"),
        }
    } else {
        // INFO, and anything a newer server may add.
        Incoming::Other
    };
    Parsed::Frame(ev, head)
}

/// The payload after a `MSG` (or, with headers, `HMSG`) line of `head` bytes: its size is the
/// line's last argument (for `HMSG`, the total of headers and payload).
fn payload<'a>(buf: &'a [u8], head: usize, args: &[u8], headers: bool) -> Parsed<'a> {
    let size = args
        .rsplit(|&b| b == b' ' || b == b'\t')
        .find(|t| !t.is_empty())
        .and_then(digits)
        .filter(|(_, rest)| rest.is_empty());
    let Some((size, _)) = size else {
        return Parsed::Bad("a NATS MSG line without a payload size");
    };
    let end = head.saturating_add(size as usize);
    if buf.len() < end.saturating_add(2) {
        return Parsed::Need;
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Parsed::Bad("a NATS payload not followed by CRLF");
    }
    let ev = match body(&buf[head..end]) {
        Some((sender, seq, t_ns)) if !headers => Incoming::Msg { sender, seq, t_ns },
        _ => Incoming::Other,
    };
    Parsed::Frame(ev, end + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frames::{check_every_split, events};

    fn parsed(parts: &[&[u8]]) -> Result<Vec<String>, &'static str> {
        events(parse, parts)
    }

    const STREAM: &[u8] = b"INFO {\"server_id\":\"x\",\"max_payload\":1048576} \r\n+OK\r\nPONG\r\n\
        MSG r1 1 17\r\nk=4 s=7 t=123 p=x\r\nmsg r1 1 inbox.9 13\r\nk=4 s=8 t=124\r\n\
        PING\r\n-ERR 'Slow Consumer'\r\n";

    const EXPECTED: &[&str] = &[
        "Other",
        "Ok { delivered: None }",
        "Pong",
        "Msg { sender: 4, seq: 7, t_ns: 123 }",
        "Msg { sender: 4, seq: 8, t_ns: 124 }",
        "Ping",
        "Error { code: \"Slow Consumer\" }",
    ];

    #[test]
    fn several_frames_in_one_read_or_split_anywhere_even_in_a_payload() {
        check_every_split(parse, STREAM, EXPECTED);
    }

    #[test]
    fn headers_foreign_payloads_and_bad_sizes() {
        assert_eq!(
            parsed(&[b"HMSG r1 1 18 31\r\nNATS/1.0\r\nA: b\r\n\r\nk=1 s=2 t=3 x\r\n+OK\r\n"]),
            Ok(vec!["Other".into(), "Ok { delivered: None }".into()])
        );
        assert_eq!(
            parsed(&[b"MSG r1 1 5\r\nhello\r\n"]),
            Ok(vec!["Other".into()])
        );
        assert!(parsed(&[b"MSG r1 1 x\r\nhello\r\n"]).is_err());
        assert!(parsed(&[b"MSG r1 1 3\r\nhello\r\n"]).is_err());
        assert_eq!(
            parsed(&[b"-ERR 'Unknown Protocol Operation'\r\n"]),
            Ok(vec![
                "Error { code: \"Unknown Protocol Operation\" }".into()
            ])
        );
    }

    #[test]
    fn requests_are_what_the_protocol_wants() {
        let mut buf = Vec::new();
        msg(&mut buf, "r1", 4, 7, 123, 1);
        msg(&mut buf, "*", 4, 8, 124, 0);
        let all = everyone();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            format!("PUB r1 17\r\nk=4 s=7 t=123 p=x\r\nPUB {all} 13\r\nk=4 s=8 t=124\r\n")
        );
        let mut buf = Vec::new();
        login(&mut buf, "r1", Role::Receiver);
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("CONNECT {\"verbose\":false,"), "{text}");
        assert!(
            text.ends_with(&format!("}}\r\nSUB r1 1\r\nSUB {all} 2\r\nPING\r\n")),
            "{text}"
        );
        let mut buf = Vec::new();
        login(&mut buf, "s1", Role::Sender);
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("\"verbose\":true") && !text.contains("SUB "));
    }
}
