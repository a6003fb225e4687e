//! The server's writers: each appends one complete line (with its `\n`) to a byte buffer.
//!
//! Replies are written straight into the session's output buffer, so a batch of pipelined
//! requests becomes one `write`. Events that go to other sessions are built once as
//! [`Bytes`] and shared by every recipient. Field order is fixed here, but the protocol leaves
//! it free and clients must not rely on it.

use crate::request::Raw;
use crate::{ByeReason, ErrorCode, LeaveReason, PROTO_VERSION};
use bytes::Bytes;

/// Appends `s` as a JSON string literal. Plain text (the usual case, and every valid name) is
/// copied as is; anything needing escapes goes through serde_json.
pub fn json_str(buf: &mut Vec<u8>, s: &str) {
    if plain(s) {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        // Writing a str into a Vec cannot fail.
        serde_json::to_writer(&mut *buf, s).expect("serialize a str into a Vec");
    }
}

/// Whether `s` can be written between quotes as it is.
fn plain(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

fn int(buf: &mut Vec<u8>, n: impl itoa::Integer) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn open(buf: &mut Vec<u8>, kind: &str, id: Option<Raw<'_>>) {
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(kind.as_bytes());
    buf.push(b'"');
    if let Some(id) = id {
        buf.extend_from_slice(b",\"id\":");
        buf.extend_from_slice(id.get().as_bytes());
    }
}

fn close(buf: &mut Vec<u8>) {
    buf.extend_from_slice(b"}\n");
}

fn names<'n>(buf: &mut Vec<u8>, names: impl IntoIterator<Item = &'n str>) {
    buf.push(b'[');
    for (i, n) in names.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        json_str(buf, n);
    }
    buf.push(b']');
}

/// `{"type":"ok","id":..}`: the reply to `ping` and `logout`.
pub fn ok(buf: &mut Vec<u8>, id: Option<Raw<'_>>) {
    open(buf, "ok", id);
    close(buf);
}

/// The `ok` reply to `login`.
pub fn ok_login<'n>(
    buf: &mut Vec<u8>,
    id: Option<Raw<'_>>,
    user: &str,
    users: impl IntoIterator<Item = &'n str>,
    server: &str,
) {
    open(buf, "ok", id);
    buf.extend_from_slice(b",\"user\":");
    json_str(buf, user);
    buf.extend_from_slice(b",\"users\":");
    names(buf, users);
    buf.extend_from_slice(b",\"server\":");
    json_str(buf, server);
    buf.extend_from_slice(b",\"proto\":");
    int(buf, PROTO_VERSION);
    close(buf);
}

/// The `ok` reply to `msg`.
pub fn ok_delivered(buf: &mut Vec<u8>, id: Option<Raw<'_>>, delivered: usize) {
    ok_delivered_start(buf, id);
    ok_delivered_end(buf, delivered);
}

/// The `ok` reply to a `msg` up to its `delivered` count, for a server that learns the count
/// later; [`ok_delivered_end`] finishes it.
pub fn ok_delivered_start(buf: &mut Vec<u8>, id: Option<Raw<'_>>) {
    open(buf, "ok", id);
    buf.extend_from_slice(b",\"delivered\":");
}

/// The rest of a reply begun with [`ok_delivered_start`].
pub fn ok_delivered_end(buf: &mut Vec<u8>, delivered: usize) {
    int(buf, delivered);
    close(buf);
}

/// The `ok` reply to `users`.
pub fn ok_users<'n>(
    buf: &mut Vec<u8>,
    id: Option<Raw<'_>>,
    users: impl IntoIterator<Item = &'n str>,
) {
    open(buf, "ok", id);
    buf.extend_from_slice(b",\"users\":");
    names(buf, users);
    close(buf);
}

/// An `error` reply.
pub fn error(buf: &mut Vec<u8>, id: Option<Raw<'_>>, code: ErrorCode, message: &str) {
    open(buf, "error", id);
    buf.extend_from_slice(b",\"code\":\"");
    buf.extend_from_slice(code.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"message\":");
    json_str(buf, message);
    close(buf);
}

/// A delivered message. `body` is the JSON string literal as the sender wrote it.
///
/// Allocated at exactly its size: a recipient's queue holds the allocation, not just the line,
/// so slack would pin more than the queue's byte bound counts, and a `Vec` with spare capacity
/// costs `Bytes` a second allocation for its shared header.
pub fn msg_event(from: &str, to: &str, body: Raw<'_>, ts: &Ts) -> Bytes {
    let ts = ts.as_bytes();
    let mut buf =
        Vec::with_capacity(MSG_EVENT_FIXED + from.len() + to.len() + body.get().len() + ts.len());
    msg_event_parts(&mut buf, from, to, body, ts);
    debug_assert_eq!(buf.len(), buf.capacity());
    Bytes::from(buf)
}

/// The text of a `msg` event other than its names, body and `ts`.
const MSG_EVENT_FIXED: usize = r#"{"type":"msg","from":"","to":"","body":,"ts":}"#.len() + 1;

/// [`msg_event`], appended to `buf`. `from` and `to` are valid names or `*`, which need no
/// escaping.
pub fn msg_event_into(buf: &mut Vec<u8>, from: &str, to: &str, body: Raw<'_>, ts: &Ts) {
    msg_event_parts(buf, from, to, body, ts.as_bytes());
}

/// A `ts` (milliseconds since the Unix epoch), formatted once for all the events that carry
/// it: every message of one read gets the same.
#[derive(Debug, Clone, Copy)]
pub struct Ts {
    digits: [u8; 20],
    len: u8,
}

impl Ts {
    pub fn new(ms: u64) -> Ts {
        let mut digits = [0; 20];
        let mut text = itoa::Buffer::new();
        let text = text.format(ms).as_bytes();
        digits[..text.len()].copy_from_slice(text);
        Ts {
            digits,
            len: text.len() as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }
}

fn msg_event_parts(buf: &mut Vec<u8>, from: &str, to: &str, body: Raw<'_>, ts: &[u8]) {
    debug_assert!(plain(from) && plain(to), "{from:?} {to:?}");
    open(buf, "msg", None);
    buf.extend_from_slice(b",\"from\":\"");
    buf.extend_from_slice(from.as_bytes());
    buf.extend_from_slice(b"\",\"to\":\"");
    buf.extend_from_slice(to.as_bytes());
    buf.extend_from_slice(b"\",\"body\":");
    buf.extend_from_slice(body.get().as_bytes());
    buf.extend_from_slice(b",\"ts\":");
    buf.extend_from_slice(ts);
    close(buf);
}

/// `{"type":"join","user":..}`.
pub fn join_event(user: &str) -> Bytes {
    let mut buf = Vec::with_capacity(32 + user.len());
    open(&mut buf, "join", None);
    buf.extend_from_slice(b",\"user\":");
    json_str(&mut buf, user);
    close(&mut buf);
    Bytes::from(buf)
}

/// `{"type":"leave","user":..,"reason":..}`.
pub fn leave_event(user: &str, reason: LeaveReason) -> Bytes {
    let mut buf = Vec::with_capacity(48 + user.len());
    open(&mut buf, "leave", None);
    buf.extend_from_slice(b",\"user\":");
    json_str(&mut buf, user);
    buf.extend_from_slice(b",\"reason\":\"");
    buf.extend_from_slice(reason.as_str().as_bytes());
    buf.push(b'"');
    close(&mut buf);
    Bytes::from(buf)
}

/// `{"type":"notice","body":..,"ts":..}`: a message from the administrator.
pub fn notice_event(body: &str, ts_ms: u64) -> Bytes {
    let mut buf = Vec::with_capacity(40 + body.len());
    open(&mut buf, "notice", None);
    buf.extend_from_slice(b",\"body\":");
    json_str(&mut buf, body);
    buf.extend_from_slice(b",\"ts\":");
    int(&mut buf, ts_ms);
    close(&mut buf);
    Bytes::from(buf)
}

/// `{"type":"bye","reason":..}`, with `message` when there is one: the last line sent.
pub fn bye(buf: &mut Vec<u8>, reason: ByeReason, message: Option<&str>) {
    open(buf, "bye", None);
    buf.extend_from_slice(b",\"reason\":\"");
    buf.extend_from_slice(reason.as_str().as_bytes());
    buf.push(b'"');
    if let Some(m) = message {
        buf.extend_from_slice(b",\"message\":");
        json_str(buf, m);
    }
    close(buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Id, OkReply, ServerMessage};

    fn raw(s: &str) -> Raw<'_> {
        Raw::parse(s).unwrap()
    }

    fn one(buf: &[u8]) -> ServerMessage {
        let s = std::str::from_utf8(buf).unwrap();
        assert!(s.ends_with('\n') && s.matches('\n').count() == 1, "{s:?}");
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn a_msg_event_is_allocated_at_its_size() {
        let body = raw("\"salut\"");
        for ts in [0, 9, 10, 1_795_499_821_499, u64::MAX] {
            let line = msg_event("alice", "bob", body, &Ts::new(ts));
            let mut same = Vec::new();
            msg_event_into(&mut same, "alice", "bob", body, &Ts::new(ts));
            assert!(same.ends_with(format!(",\"ts\":{ts}}}\n").as_bytes()));
            assert_eq!(line, same);
            // A `Vec` converted without spare capacity keeps its allocation: `Bytes` then
            // needs no shared header of its own. `try_into_mut` gives it back unchanged.
            let back = line.try_into_mut().expect("the only reference");
            assert_eq!(back.len(), back.capacity(), "ts {ts}: no slack");
        }
    }

    #[test]
    fn replies_parse_back_into_the_client_types() {
        let id = raw("7");
        let mut b = Vec::new();
        ok(&mut b, Some(id));
        assert_eq!(b, b"{\"type\":\"ok\",\"id\":7}\n");
        assert_eq!(
            one(&b),
            ServerMessage::Ok(OkReply {
                id: Some(Id::Int(7)),
                ..OkReply::default()
            })
        );

        let mut b = Vec::new();
        ok_login(
            &mut b,
            Some(raw("\"a\"")),
            "Al",
            ["Al", "bo"],
            "chatd/0.1.0",
        );
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            "{\"type\":\"ok\",\"id\":\"a\",\"user\":\"Al\",\"users\":[\"Al\",\"bo\"],\"server\":\"chatd/0.1.0\",\"proto\":1}\n"
        );
        let ServerMessage::Ok(r) = one(&b) else {
            panic!()
        };
        assert_eq!(r.users.unwrap(), ["Al", "bo"]);
        assert_eq!(r.proto, Some(1));

        let mut b = Vec::new();
        ok_delivered(&mut b, None, 3);
        assert_eq!(b, b"{\"type\":\"ok\",\"delivered\":3}\n");

        let mut b = Vec::new();
        ok_users(&mut b, None, []);
        assert_eq!(b, b"{\"type\":\"ok\",\"users\":[]}\n");
    }

    #[test]
    fn errors_escape_their_message() {
        let mut b = Vec::new();
        error(
            &mut b,
            Some(raw("1")),
            ErrorCode::UnknownUser,
            "\"x\" is\nnot here",
        );
        let ServerMessage::Error(e) = one(&b) else {
            panic!()
        };
        assert_eq!(e.code, ErrorCode::UnknownUser);
        assert_eq!(e.message, "\"x\" is\nnot here");
        assert_eq!(e.id, Some(Id::Int(1)));
    }

    #[test]
    fn events_parse_back() {
        let body = raw(r#""h\u00e9 \"q\"""#);
        let m = msg_event("a", "*", body, &Ts::new(1763856000123));
        let ServerMessage::Msg(ev) = one(&m) else {
            panic!()
        };
        assert_eq!(
            (ev.from.as_str(), ev.to.as_str(), ev.body.as_str()),
            ("a", "*", "hé \"q\"")
        );
        assert_eq!(ev.ts, 1763856000123);
        // the body travels exactly as sent
        assert!(
            std::str::from_utf8(&m)
                .unwrap()
                .contains(r#""h\u00e9 \"q\"""#)
        );

        assert_eq!(
            one(&join_event("bob")),
            ServerMessage::Join { user: "bob".into() }
        );
        assert_eq!(
            one(&leave_event("bob", LeaveReason::SlowConsumer)),
            ServerMessage::Leave {
                user: "bob".into(),
                reason: LeaveReason::SlowConsumer
            }
        );
        assert_eq!(
            one(&notice_event("tab\there", 5)),
            ServerMessage::Notice {
                body: "tab\there".into(),
                ts: 5
            }
        );
        let mut b = Vec::new();
        bye(&mut b, ByeReason::Kicked, Some("spam"));
        assert_eq!(
            b,
            b"{\"type\":\"bye\",\"reason\":\"kicked\",\"message\":\"spam\"}\n"
        );
        let mut b = Vec::new();
        bye(&mut b, ByeReason::Logout, None);
        assert_eq!(
            one(&b),
            ServerMessage::Bye {
                reason: ByeReason::Logout,
                message: None
            }
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut b = Vec::new();
        json_str(&mut b, "a\u{1}b\\");
        assert_eq!(b, br#""a\u0001b\\""#);
    }
}
