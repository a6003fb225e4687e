//! The admin channel: JSON lines over chatd's Unix socket, spoken by `chatctl`.
//!
//! One request per line, one response line per request (except `watch`, which answers
//! `watching` and then streams `event` lines until the client closes). A connection may carry
//! several requests one after another. Every line is one JSON object tagged by `type`; field
//! names are stable because scripts read `chatctl --json` output built from these types.
//! `docs/ADMIN-PROTOCOL.md` is the human-readable contract, with examples.
//!
//! Event lines never carry a message body: the admin sees who did what, not what was said.

use crate::{ErrorCode, LeaveReason};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Longest admin request line the daemon reads, in bytes (a notice is the only long field).
pub const MAX_ADMIN_LINE: usize = 64 * 1024;

/// The system-wide socket directory, created by systemd's `RuntimeDirectory=chatd`.
pub const SYSTEM_SOCKET_DIR: &str = "/run/chatd";

/// The socket's file name inside its directory.
pub const SOCKET_FILE: &str = "admin.sock";

/// The environment variable both `chatd` and `chatctl` read for the socket path.
pub const SOCKET_ENV: &str = "CHATD_ADMIN_SOCKET";

/// A request from `chatctl` to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// `{"type":"users"}`: every logged-in session.
    Users,
    /// `{"type":"kick","user":"bob","reason":"spamming"}`: end bob's session.
    Kick {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `{"type":"notice","body":"restart at noon"}`: a notice to everyone logged in.
    Notice { body: String },
    /// `{"type":"stats"}`: server-wide counters.
    Stats,
    /// `{"type":"status"}`: is the daemon alive, and which one.
    Status,
    /// `{"type":"watch"}`: stream events until the client closes.
    Watch,
}

/// A line from the daemon to `chatctl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// The answer to `users`: sessions sorted by name.
    Users { users: Vec<Session> },
    /// The answer to `kick`: the name as registered.
    Kicked { user: String },
    /// The answer to `notice`: how many sessions' queues took it.
    NoticeSent { delivered: u64 },
    /// The answer to `stats`.
    Stats(Stats),
    /// The answer to `status`.
    Status(Status),
    /// The answer to `watch`; `event` and `lagged` lines follow.
    Watching,
    /// Something happened on the server (only after `watching`).
    Event(Event),
    /// This watcher fell behind and `missed` events were dropped for it (only after
    /// `watching`); the stream goes on.
    Lagged { missed: u64 },
    /// The request was refused or failed.
    Error { code: AdminError, message: String },
}

/// Why the daemon said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdminError {
    /// Not JSON, unknown `type`, missing field, line too long.
    BadRequest,
    /// The peer's credentials are not allowed to administer this daemon.
    Forbidden,
    /// `kick`: nobody by that name is logged in.
    UnknownUser,
    /// A code this version does not know.
    #[serde(other)]
    Unknown,
}

impl AdminError {
    pub const fn as_str(self) -> &'static str {
        match self {
            AdminError::BadRequest => "bad_request",
            AdminError::Forbidden => "forbidden",
            AdminError::UnknownUser => "unknown_user",
            AdminError::Unknown => "unknown",
        }
    }
}

/// One logged-in session, as `chatctl users --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The name as registered.
    pub user: String,
    /// The client's address, `IP:PORT`.
    pub peer: String,
    /// When the connection was accepted, in milliseconds since the Unix epoch.
    pub connected_at: u64,
    /// How long ago that was, in milliseconds.
    pub connected_ms: u64,
    /// Milliseconds since the client last sent anything.
    pub idle_ms: u64,
    /// Messages this session sent.
    pub sent: u64,
    /// Lines the server handed to this session (messages, events, notices).
    pub received: u64,
    /// Lines waiting in its outgoing queue now: a slow consumer shows here first.
    pub queue: u64,
    /// The queue's bound; a session whose queue stays full is cut off.
    pub queue_max: u64,
    /// Bytes of the lines waiting in its queue.
    #[serde(default)]
    pub queue_bytes: u64,
    /// The queue's bound in bytes: full by bytes refuses a line as full by lines does.
    #[serde(default)]
    pub queue_bytes_max: u64,
}

/// Server-wide counters since start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// `chatd/VERSION`.
    pub server: String,
    pub pid: u32,
    pub uptime_ms: u64,
    /// Open connections, logged in or not.
    pub connections: u64,
    /// Logged-in users.
    pub users: u64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections refused with `server_full`.
    pub refused: u64,
    /// `msg` requests relayed.
    pub messages: u64,
    /// Copies queued for recipients (a broadcast to 10 counts 10).
    pub delivered: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Error replies sent, by code; every code is present, zeros included.
    pub errors: BTreeMap<String, u64>,
}

/// The answer to `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub server: String,
    pub pid: u32,
    pub uptime_ms: u64,
    pub connections: u64,
    pub users: u64,
}

/// Something that happened, with its time (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub ts: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. On the wire the kind is the `event` field of an `event` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A client connected (every accepted connection, before any login).
    Connect { peer: String },
    /// A client that never logged in went away: `disconnect` (it closed, or its socket
    /// failed) or `timeout` (no login within the login timeout, or a dead peer).
    Disconnect { peer: String, reason: LeaveReason },
    /// A session logged in.
    Login { user: String, peer: String },
    /// A logged-in session left; `reason` is the one everyone else was told in `leave`
    /// (`logout`, `disconnect`, `kicked`, `timeout`, `slow_consumer`).
    Logout {
        user: String,
        peer: String,
        reason: LeaveReason,
    },
    /// An administrator (Unix uid `by`) kicked `user`, with an optional reason.
    Kick {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        by: u32,
    },
    /// An administrator (uid `by`) sent a notice; `delivered` sessions got it. The text is
    /// not repeated here.
    Notice { delivered: u64, by: u32 },
    /// The server answered a client with an error (`rate_limited`, `server_full`, ...).
    /// `user` is absent before login.
    Error {
        code: ErrorCode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        peer: String,
    },
}

/// Which default socket path applies, from the facts the rule depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultPathFacts {
    /// The process runs as root.
    pub root: bool,
    /// `/run/chatd` exists and this process may create files in it (as under systemd's
    /// `RuntimeDirectory=`).
    pub system_dir_writable: bool,
    /// `/run/chatd/admin.sock` exists (`chatctl` only: an admin in chatd's group can reach
    /// the system socket without being able to write its directory).
    pub system_socket_exists: bool,
    /// `$XDG_RUNTIME_DIR`, if set and not empty.
    pub xdg_runtime_dir: Option<PathBuf>,
}

/// The default admin socket: `/run/chatd/admin.sock` for root, when `/run/chatd` is writable,
/// or when that socket exists; otherwise `$XDG_RUNTIME_DIR/chatd/admin.sock`. `None` when
/// neither applies (no runtime directory to use).
pub fn default_socket_path(facts: &DefaultPathFacts) -> Option<PathBuf> {
    if facts.root || facts.system_dir_writable || facts.system_socket_exists {
        return Some(Path::new(SYSTEM_SOCKET_DIR).join(SOCKET_FILE));
    }
    let xdg = facts.xdg_runtime_dir.as_ref()?;
    Some(xdg.join("chatd").join(SOCKET_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip<T>(v: &T, expected: serde_json::Value)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let text = serde_json::to_string(v).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            expected
        );
        assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), v);
    }

    #[test]
    fn requests_have_their_documented_shape() {
        round_trip(&Request::Users, json!({"type":"users"}));
        round_trip(
            &Request::Kick {
                user: "bob".into(),
                reason: None,
            },
            json!({"type":"kick","user":"bob"}),
        );
        round_trip(
            &Request::Kick {
                user: "bob".into(),
                reason: Some("spam".into()),
            },
            json!({"type":"kick","user":"bob","reason":"spam"}),
        );
        round_trip(
            &Request::Notice { body: "hi".into() },
            json!({"type":"notice","body":"hi"}),
        );
        round_trip(&Request::Watch, json!({"type":"watch"}));
    }

    #[test]
    fn a_session_from_a_chatd_without_queue_bytes_reads_them_as_zero() {
        let old = json!({"user":"bob","peer":"127.0.0.1:9","connected_at":1,"connected_ms":2,
            "idle_ms":3,"sent":4,"received":5,"queue":6,"queue_max":1024});
        let s: Session = serde_json::from_value(old).unwrap();
        assert_eq!((s.queue, s.queue_bytes, s.queue_bytes_max), (6, 0, 0));
    }

    #[test]
    fn events_are_flat_lines_tagged_twice() {
        let ev = Response::Event(Event {
            ts: 5,
            kind: EventKind::Logout {
                user: "bob".into(),
                peer: "127.0.0.1:9".into(),
                reason: LeaveReason::Kicked,
            },
        });
        round_trip(
            &ev,
            json!({"type":"event","ts":5,"event":"logout","user":"bob",
                   "peer":"127.0.0.1:9","reason":"kicked"}),
        );
        let err = Response::Event(Event {
            ts: 6,
            kind: EventKind::Error {
                code: ErrorCode::RateLimited,
                user: None,
                peer: "[::1]:2".into(),
            },
        });
        round_trip(
            &err,
            json!({"type":"event","ts":6,"event":"error","code":"rate_limited","peer":"[::1]:2"}),
        );
        round_trip(
            &Response::Error {
                code: AdminError::UnknownUser,
                message: "x".into(),
            },
            json!({"type":"error","code":"unknown_user","message":"x"}),
        );
    }

    #[test]
    fn default_path_follows_the_rule() {
        let mut f = DefaultPathFacts {
            root: false,
            system_dir_writable: false,
            system_socket_exists: false,
            xdg_runtime_dir: Some("/run/user/1000".into()),
        };
        assert_eq!(
            default_socket_path(&f).unwrap(),
            Path::new("/run/user/1000/chatd/admin.sock")
        );
        f.system_socket_exists = true;
        assert_eq!(
            default_socket_path(&f).unwrap(),
            Path::new("/run/chatd/admin.sock")
        );
        f.system_socket_exists = false;
        f.root = true;
        assert_eq!(
            default_socket_path(&f).unwrap(),
            Path::new("/run/chatd/admin.sock")
        );
        f.root = false;
        f.xdg_runtime_dir = None;
        assert_eq!(default_socket_path(&f), None);
    }
}
