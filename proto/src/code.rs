//! The closed vocabularies of the protocol: error codes and the reasons carried by `leave`
//! and `bye`. Each has one spelling on the wire, given by `as_str` and by serde.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The `code` of an `error` reply. Clients branch on this; the `message` is for humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, not an object, unknown `type`, missing or ill-typed field, bad UTF-8.
    BadRequest,
    /// The line was longer than the server's `max_line_bytes`.
    TooLarge,
    /// A user name breaks the naming rules.
    InvalidName,
    /// Someone is logged in under that name, ignoring ASCII case.
    NameTaken,
    /// `login` on a connection that is already logged in.
    AlreadyLoggedIn,
    /// The server wants a password and this one is wrong or missing.
    AuthFailed,
    /// `msg`, `users` or `logout` before `login`.
    NotLoggedIn,
    /// The private recipient is not logged in.
    UnknownUser,
    /// `from` differs from the session's own name.
    Forbidden,
    /// The private recipient's outgoing queue is full; nothing was queued.
    RecipientBusy,
    /// The sender exceeded its message rate; nothing was delivered.
    RateLimited,
    /// Connection or user limit reached; the server closes the connection after this.
    ServerFull,
    /// A code this version of the crate does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code a server of this version can send, in PROTOCOL.md's order.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::BadRequest,
        ErrorCode::TooLarge,
        ErrorCode::InvalidName,
        ErrorCode::NameTaken,
        ErrorCode::AlreadyLoggedIn,
        ErrorCode::AuthFailed,
        ErrorCode::NotLoggedIn,
        ErrorCode::UnknownUser,
        ErrorCode::Forbidden,
        ErrorCode::RecipientBusy,
        ErrorCode::RateLimited,
        ErrorCode::ServerFull,
    ];

    /// The code as spelled on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::AlreadyLoggedIn => "already_logged_in",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::NotLoggedIn => "not_logged_in",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RecipientBusy => "recipient_busy",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ServerFull => "server_full",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// Index into [`ErrorCode::ALL`], for per-code counters.
    pub fn index(self) -> Option<usize> {
        ErrorCode::ALL.iter().position(|c| *c == self)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a user left, as told to everyone else in a `leave` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaveReason {
    /// The user sent `logout`.
    Logout,
    /// The connection closed without `logout` (or the server is shutting down).
    Disconnect,
    /// An administrator removed the user.
    Kicked,
    /// The peer stopped answering (TCP keepalive gave up).
    Timeout,
    /// The user's outgoing queue stayed full longer than the grace period.
    SlowConsumer,
    /// A reason this version of the crate does not know.
    #[serde(other)]
    Unknown,
}

impl LeaveReason {
    /// The reason as spelled on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Logout => "logout",
            LeaveReason::Disconnect => "disconnect",
            LeaveReason::Kicked => "kicked",
            LeaveReason::Timeout => "timeout",
            LeaveReason::SlowConsumer => "slow_consumer",
            LeaveReason::Unknown => "unknown",
        }
    }
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the server is closing this connection, sent in `bye` as the last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ByeReason {
    /// Answer to the client's own `logout`.
    Logout,
    /// An administrator removed this session; `message` carries the admin's reason.
    Kicked,
    /// The server is stopping.
    Shutdown,
    /// No `login` within the login timeout.
    Timeout,
    /// This client did not read its messages fast enough.
    SlowConsumer,
    /// The connection limit was reached.
    ServerFull,
    /// A reason this version of the crate does not know.
    #[serde(other)]
    Unknown,
}

impl ByeReason {
    /// The reason as spelled on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ByeReason::Logout => "logout",
            ByeReason::Kicked => "kicked",
            ByeReason::Shutdown => "shutdown",
            ByeReason::Timeout => "timeout",
            ByeReason::SlowConsumer => "slow_consumer",
            ByeReason::ServerFull => "server_full",
            ByeReason::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ByeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_spelling() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
            assert_eq!(ErrorCode::ALL[code.index().unwrap()], code);
        }
    }

    #[test]
    fn unknown_spellings_do_not_fail_a_client() {
        let c: ErrorCode = serde_json::from_str("\"teapot\"").unwrap();
        assert_eq!(c, ErrorCode::Unknown);
        let r: ByeReason = serde_json::from_str("\"eclipse\"").unwrap();
        assert_eq!(r, ByeReason::Unknown);
        let l: LeaveReason = serde_json::from_str("\"bored\"").unwrap();
        assert_eq!(l, LeaveReason::Unknown);
    }

    #[test]
    fn reasons_round_trip() {
        for r in [
            LeaveReason::Logout,
            LeaveReason::Disconnect,
            LeaveReason::Kicked,
            LeaveReason::Timeout,
            LeaveReason::SlowConsumer,
        ] {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        for r in [
            ByeReason::Logout,
            ByeReason::Kicked,
            ByeReason::Shutdown,
            ByeReason::Timeout,
            ByeReason::SlowConsumer,
            ByeReason::ServerFull,
        ] {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
    }
}
