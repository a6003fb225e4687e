//! The raw relay's wire (see [`crate::relay_raw`]): lines, no JSON, nothing to escape.
//!
//! - Login: the client's first line is its name; the relay answers `+` (or `-name_taken`).
//! - A message: `TO BODY` to a name, or `* BODY` to everyone else; the relay answers `+` once
//!   it has queued the line for its recipients (or `-unknown_user`).
//! - What a recipient gets: `FROM BODY`, the sender's name in front of the body.
//!
//! Names never begin with `+` or `-` and never hold a space, so the first byte tells a reply
//! from a message.

use super::{Incoming, body, push_body};

/// Appends the login line.
pub fn login(buf: &mut Vec<u8>, name: &str) {
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
}

/// Appends one message line to `to` (a name or `*`).
pub fn msg(buf: &mut Vec<u8>, to: &str, sender: u32, seq: u64, t_ns: u64, pad: usize) {
    buf.extend_from_slice(to.as_bytes());
    buf.push(b' ');
    push_body(buf, sender, seq, t_ns, pad);
    buf.push(b'\n');
}

/// Classifies one line from the raw relay (without its `\n`).
pub fn classify(line: &[u8]) -> Incoming<'_> {
    match line.first() {
        Some(b'+') => Incoming::Ok { delivered: None },
        Some(b'-') => Incoming::Error {
            code: std::str::from_utf8(&line[1..]).unwrap_or("?"),
        },
        _ => match memchr::memchr(b' ', line).and_then(|i| body(&line[i + 1..])) {
            Some((sender, seq, t_ns)) => Incoming::Msg { sender, seq, t_ns },
            None => Incoming::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Wire, body_len};
    use proto::codec::{Frame, LineDecoder};

    #[test]
    fn requests_are_plain_lines() {
        let mut buf = Vec::new();
        login(&mut buf, "s1");
        msg(&mut buf, "r7", 7, 123, 456, 0);
        msg(&mut buf, "*", 0, 5, 9, 4);
        assert_eq!(buf, b"s1\nr7 k=7 s=123 t=456\n* k=0 s=5 t=9 p=xxxx\n");
        assert_eq!(body_len(0, 5, 9, 4), "k=0 s=5 t=9 p=xxxx".len());
    }

    #[test]
    fn acks_errors_and_messages_are_told_apart() {
        assert_eq!(classify(b"+"), Incoming::Ok { delivered: None });
        assert_eq!(
            classify(b"-unknown_user"),
            Incoming::Error {
                code: "unknown_user"
            }
        );
        assert_eq!(
            classify(b"s3 k=3 s=41 t=1000 p=xx"),
            Incoming::Msg {
                sender: 3,
                seq: 41,
                t_ns: 1000
            }
        );
        assert_eq!(classify(b"s3 hello"), Incoming::Other);
        assert_eq!(classify(b"nospace"), Incoming::Other);
    }

    /// What the relay sends, cut at every byte: the line decoder completes each line, and
    /// two messages in one read both come out, in order.
    #[test]
    fn split_reads_and_several_lines_in_one_read() {
        let stream = b"+\ns1 k=1 s=0 t=5\ns1 k=1 s=1 t=6\r\n-unknown_user\n";
        for cut in 0..stream.len() {
            let mut d = LineDecoder::new(1024);
            let mut seen = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                d.feed(part, |f| {
                    if let Frame::Line(l) = f {
                        seen.push(format!("{:?}", Wire::Raw.classify_line(l)));
                    }
                });
            }
            assert_eq!(
                seen,
                [
                    "Ok { delivered: None }",
                    "Msg { sender: 1, seq: 0, t_ns: 5 }",
                    "Msg { sender: 1, seq: 1, t_ns: 6 }",
                    "Error { code: \"unknown_user\" }",
                ],
                "cut at {cut}"
            );
        }
    }
}
