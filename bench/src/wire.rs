//! The generator's side of the wire, written by hand for speed.
//!
//! The generator shares two cores with the server it measures, so every nanosecond it spends
//! per message is taken from the server. Requests are appended to a reused buffer with `itoa`;
//! replies and events are never parsed into a DOM: a line is classified by searching for a
//! fixed byte pattern (memchr's SIMD `memmem`), and only the numbers the bench needs are read.
//! The patterns rely only on the protocol (field order is free, names never contain quotes,
//! chatd and the relay write compact JSON), not on chatd's field order.
//!
//! Message bodies are `k=<sender> s=<seq> t=<ns since bench start>` plus optional padding
//! (`p=xxxx`), so a receiver knows who sent it, its number and when it left, from one line.
//!
//! The bench speaks four wires ([`Wire`]): chatd's JSON lines (this file, also the JSON
//! relay's), the raw relay's `NAME BODY` lines ([`raw`]), core NATS ([`nats`]) and Redis
//! pub/sub over RESP ([`resp`]). Each turns what the server sends into the same [`Incoming`],
//! so the senders, receivers and order checks above them are the same for every server.

pub mod frames;
pub mod nats;
pub mod raw;
pub mod resp;

use memchr::memmem::Finder;
use std::sync::LazyLock;

static BODY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"body\":\""));
static TYPE_OK: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"type\":\"ok\""));
static TYPE_ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"type\":\"error\""));
static TYPE_BYE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"type\":\"bye\""));
static DELIVERED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"delivered\":"));
static CODE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"code\":\""));

/// Which protocol a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// chatd's JSON lines (chatd, and the relay of `--relay json`).
    Json,
    /// The raw relay's `NAME BODY` lines, `+` acks ([`raw`]).
    Raw,
    /// Core NATS: `PUB`/`SUB`, one subject per receiver ([`nats`]).
    Nats,
    /// Redis pub/sub over RESP: `PUBLISH`/`SUBSCRIBE` ([`resp`]).
    Redis,
}

/// What a connection does once logged in. chatd and the relays do not care (every session
/// both sends and receives); for NATS and Redis only a receiver subscribes (a Redis connection
/// that subscribed can no longer `PUBLISH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Receiver,
    Sender,
}

/// The NATS subject and Redis channel standing for `*` (every receiver): one per chatbench
/// process, so two benches against one server do not hear each other's broadcasts.
pub fn everyone() -> &'static str {
    static EVERYONE: LazyLock<String> =
        LazyLock::new(|| format!("chatbench.{}.all", std::process::id()));
    &EVERYONE
}

impl Wire {
    /// Whether the frames of this wire are lines ([`Wire::classify_line`]) or need the
    /// length-aware parser of [`frames`] ([`Wire::parser`]).
    pub fn is_lines(self) -> bool {
        matches!(self, Wire::Json | Wire::Raw)
    }

    /// Appends what logs `name` in (or connects and subscribes it). The login is over once
    /// [`Wire::login_done`] says so.
    pub fn login(self, buf: &mut Vec<u8>, name: &str, role: Role) {
        match self {
            Wire::Json => login(buf, name),
            Wire::Raw => raw::login(buf, name),
            Wire::Nats => nats::login(buf, name, role),
            Wire::Redis => resp::login(buf, name, role),
        }
    }

    /// The answer to a login: `Some(true)` accepted, `Some(false)` refused, `None` not yet.
    /// chatd and the relays answer the login first of all; NATS and Redis say `PONG` to the
    /// `PING` sent after the subscriptions, which they answer in order.
    pub fn login_done(self, ev: &Incoming<'_>) -> Option<bool> {
        match (self.is_lines(), ev) {
            (true, Incoming::Ok { .. }) | (false, Incoming::Pong) => Some(true),
            (true, _) | (false, Incoming::Error { .. }) => Some(false),
            (false, _) => None,
        }
    }

    /// Appends one chat message to `to` (a name or `*`); see [`msg`].
    pub fn msg(self, buf: &mut Vec<u8>, to: &str, sender: u32, seq: u64, t_ns: u64, pad: usize) {
        match self {
            Wire::Json => msg(buf, to, sender, seq, t_ns, pad),
            Wire::Raw => raw::msg(buf, to, sender, seq, t_ns, pad),
            Wire::Nats => nats::msg(buf, to, sender, seq, t_ns, pad),
            Wire::Redis => resp::msg(buf, to, sender, seq, t_ns, pad),
        }
    }

    /// Classifies one line of a line wire.
    pub fn classify_line(self, line: &[u8]) -> Incoming<'_> {
        match self {
            Wire::Raw => raw::classify(line),
            _ => classify(line),
        }
    }

    /// The frame parser of a framed wire (NATS or Redis).
    pub fn parser(self) -> fn(&[u8]) -> frames::Parsed<'_> {
        match self {
            Wire::Redis => resp::parse,
            _ => nats::parse,
        }
    }
}

/// Appends a bench body `k=.. s=.. t=..` and its padding (see the module docs).
pub fn push_body(buf: &mut Vec<u8>, sender: u32, seq: u64, t_ns: u64, pad: usize) {
    let mut n = itoa::Buffer::new();
    buf.extend_from_slice(b"k=");
    buf.extend_from_slice(n.format(sender).as_bytes());
    buf.extend_from_slice(b" s=");
    buf.extend_from_slice(n.format(seq).as_bytes());
    buf.extend_from_slice(b" t=");
    buf.extend_from_slice(n.format(t_ns).as_bytes());
    if pad > 0 {
        buf.extend_from_slice(b" p=");
        buf.resize(buf.len() + pad, b'x');
    }
}

/// The length of what [`push_body`] appends, for wires that announce it first.
pub fn body_len(sender: u32, seq: u64, t_ns: u64, pad: usize) -> usize {
    let width = |v: u64| v.checked_ilog10().map_or(1, |l| l as usize + 1);
    let padding = if pad > 0 { 3 + pad } else { 0 };
    2 + width(u64::from(sender)) + 3 + width(seq) + 3 + width(t_ns) + padding
}

/// Appends a login request.
pub fn login(buf: &mut Vec<u8>, name: &str) {
    buf.extend_from_slice(b"{\"type\":\"login\",\"from\":\"");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\",\"id\":0}\n");
}

/// The sequence number of the one message each sender sends before the measured run. Every
/// receiver waits for it, so the run starts only once the server has delivered everything the
/// logins set off (chatd's `join` events to every earlier user) and measures only the run.
pub const WARM_UP: u64 = 999_999_999_999_999_999;

/// Appends one chat message to `to` (a name or `*`), numbered `seq` (also its request id),
/// stamped `t_ns`, with `pad` bytes of padding in the body.
pub fn msg(buf: &mut Vec<u8>, to: &str, sender: u32, seq: u64, t_ns: u64, pad: usize) {
    buf.extend_from_slice(b"{\"type\":\"msg\",\"to\":\"");
    buf.extend_from_slice(to.as_bytes());
    buf.extend_from_slice(b"\",\"body\":\"");
    push_body(buf, sender, seq, t_ns, pad);
    buf.extend_from_slice(b"\",\"id\":");
    buf.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    buf.extend_from_slice(b"}\n");
}

/// What a line from the server means to the bench.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A `msg` event carrying a bench body.
    Msg { sender: u32, seq: u64, t_ns: u64 },
    /// An `ok` reply; `delivered` when present.
    Ok { delivered: Option<u64> },
    /// An `error` reply with its code.
    Error { code: &'a str },
    /// The server is closing this connection.
    Bye,
    /// The server asks whether the client is alive (NATS `PING`): the connection answers it.
    Ping,
    /// The answer to the client's own `PING` (NATS, Redis): everything sent before it was
    /// processed.
    Pong,
    /// Anything else (`join`, `leave`, `notice`, a foreign body).
    Other,
}

/// Reads a run of ASCII digits at the start of `s`; returns the number and the rest.
pub fn digits(s: &[u8]) -> Option<(u64, &[u8])> {
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end == 0 || end > 19 {
        return None;
    }
    let n = s[..end]
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    Some((n, &s[end..]))
}

/// Parses a bench body `k=.. s=.. t=..` (the text right after `"body":"`, or the whole payload
/// of the other wires).
pub fn body(s: &[u8]) -> Option<(u32, u64, u64)> {
    let (k, s) = digits(s.strip_prefix(b"k=")?)?;
    let (seq, s) = digits(s.strip_prefix(b" s=")?)?;
    let (t, _) = digits(s.strip_prefix(b" t=")?)?;
    Some((u32::try_from(k).ok()?, seq, t))
}

/// Classifies one line (without its `\n`). Checks `body` first: it is the hot case for
/// receivers, and a body is the only place user text appears, so a bench body cannot be
/// mistaken for a reply.
pub fn classify(line: &[u8]) -> Incoming<'_> {
    if let Some(i) = BODY.find(line) {
        return match body(&line[i + 8..]) {
            Some((sender, seq, t_ns)) => Incoming::Msg { sender, seq, t_ns },
            None => Incoming::Other,
        };
    }
    if TYPE_OK.find(line).is_some() {
        let delivered = DELIVERED
            .find(line)
            .and_then(|i| digits(&line[i + 12..]))
            .map(|(n, _)| n);
        return Incoming::Ok { delivered };
    }
    if TYPE_ERROR.find(line).is_some() {
        let code = CODE
            .find(line)
            .and_then(|i| {
                let rest = &line[i + 8..];
                let end = memchr::memchr(b'"', rest)?;
                std::str::from_utf8(&rest[..end]).ok()
            })
            .unwrap_or("?");
        return Incoming::Error { code };
    }
    if TYPE_BYE.find(line).is_some() {
        return Incoming::Bye;
    }
    Incoming::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warm_up_message_parses_back() {
        let mut buf = Vec::new();
        msg(&mut buf, "*", 3, WARM_UP, 1, 0);
        let body = &buf[buf.windows(8).position(|w| w == b"\"body\":\"").unwrap() + 8..];
        assert_eq!(body_of(body), Some((3, WARM_UP, 1)));
    }

    fn body_of(s: &[u8]) -> Option<(u32, u64, u64)> {
        body(s)
    }

    #[test]
    fn a_message_line_is_valid_protocol_and_parses_back() {
        let mut buf = Vec::new();
        msg(&mut buf, "r7", 7, 123, 456_789, 0);
        let line = std::str::from_utf8(&buf).unwrap();
        assert_eq!(
            line,
            "{\"type\":\"msg\",\"to\":\"r7\",\"body\":\"k=7 s=123 t=456789\",\"id\":123}\n"
        );
        let parsed = proto::request::parse(line.trim_end().as_bytes());
        assert!(parsed.is_ok(), "the server's parser accepts it");
        // What the server sends back, in another field order.
        let event = r#"{"type":"msg","ts":1763856000123,"from":"s7","to":"r7","body":"k=7 s=123 t=456789"}"#;
        assert_eq!(
            classify(event.as_bytes()),
            Incoming::Msg {
                sender: 7,
                seq: 123,
                t_ns: 456_789
            }
        );
    }

    #[test]
    fn padding_keeps_the_numbers_readable() {
        let mut buf = Vec::new();
        msg(&mut buf, "*", 0, 5, 9, 10);
        let line = std::str::from_utf8(&buf).unwrap();
        assert!(
            line.contains("\"body\":\"k=0 s=5 t=9 p=xxxxxxxxxx\""),
            "{line}"
        );
        let event = format!(
            "{{\"type\":\"msg\",\"from\":\"a\",\"to\":\"*\",{}",
            &line[22..]
        );
        assert!(matches!(
            classify(event.as_bytes()),
            Incoming::Msg { seq: 5, .. }
        ));
    }

    #[test]
    fn replies_and_events_are_told_apart() {
        assert_eq!(
            classify(br#"{"type":"ok","id":3,"delivered":1000}"#),
            Incoming::Ok {
                delivered: Some(1000)
            }
        );
        assert_eq!(
            classify(br#"{"id":0,"type":"ok","user":"a","users":["a"],"proto":1}"#),
            Incoming::Ok { delivered: None }
        );
        assert_eq!(
            classify(br#"{"type":"error","id":4,"code":"recipient_busy","message":"x"}"#),
            Incoming::Error {
                code: "recipient_busy"
            }
        );
        assert_eq!(
            classify(br#"{"type":"bye","reason":"slow_consumer"}"#),
            Incoming::Bye
        );
        assert_eq!(
            classify(br#"{"type":"join","user":"bob"}"#),
            Incoming::Other
        );
        assert_eq!(
            classify(br#"{"type":"notice","body":"type ok","ts":1}"#),
            Incoming::Other
        );
        assert_eq!(
            classify(br#"{"type":"msg","from":"x","to":"*","body":"k=1 s=2"}"#),
            Incoming::Other
        );
    }

    #[test]
    fn login_line_is_accepted_by_the_server_parser() {
        let mut buf = Vec::new();
        login(&mut buf, "s12");
        assert!(proto::request::parse(&buf[..buf.len() - 1]).is_ok());
    }
}
