//! The errors that end chatcli with a documented exit code, and their wording.
//!
//! Anything else that goes wrong travels as a plain `anyhow::Error` and exits with
//! [`EXIT_FAILED`](crate::cli::EXIT_FAILED). `main` looks for a [`Fatal`] in the error chain to
//! pick the code, so the modes only say what happened, never how the process ends.

use crate::cli::{EXIT_CANNOT_CONNECT, EXIT_DISCONNECTED, EXIT_LOGIN_REFUSED};
use proto::text::{Mode, escape};
use proto::{ByeReason, ErrorCode};
use std::fmt;
use std::io;

/// An outcome with its own exit code and a sentence for a human.
#[derive(Debug)]
pub struct Fatal {
    pub code: u8,
    pub message: String,
}

impl Fatal {
    pub fn new(code: u8, message: impl Into<String>) -> Fatal {
        Fatal {
            code,
            message: message.into(),
        }
    }

    /// chatd could not be reached at all.
    pub fn unreachable(addr: &str, err: &io::Error) -> Fatal {
        Fatal::new(
            EXIT_CANNOT_CONNECT,
            format!(
                "cannot reach chatd at {addr}: {} — is chatd running? (set --server or CHATD_SERVER)",
                describe_io(err)
            ),
        )
    }

    /// Something accepted the connection but never answered the login: for a script as
    /// unreachable as a refused connection (exit 3).
    pub fn login_unanswered(addr: &str, waited: std::time::Duration) -> Fatal {
        Fatal::new(
            EXIT_CANNOT_CONNECT,
            format!(
                "chatd at {addr} accepted the connection but did not answer the login within {}s — is it chatd, and is it overloaded?",
                waited.as_secs()
            ),
        )
    }

    /// The login was answered with an error.
    pub fn login_refused(name: &str, code: ErrorCode, message: &str) -> Fatal {
        let message = escape(message, Mode::Line);
        match code {
            ErrorCode::ServerFull => Fatal::new(
                EXIT_CANNOT_CONNECT,
                format!("chatd is full ({message}); try again later"),
            ),
            ErrorCode::NameTaken => Fatal::new(
                EXIT_LOGIN_REFUSED,
                format!("cannot log in as {name}: {message} — choose another name with --user"),
            ),
            ErrorCode::AuthFailed => Fatal::new(
                EXIT_LOGIN_REFUSED,
                format!(
                    "cannot log in as {name}: {message} — give the password with --password-file"
                ),
            ),
            ErrorCode::InvalidName => Fatal::new(
                EXIT_LOGIN_REFUSED,
                format!("cannot log in as {name:?}: {message} — choose another name with --user"),
            ),
            _ => Fatal::new(
                EXIT_LOGIN_REFUSED,
                format!("cannot log in as {name}: {message} ({code})"),
            ),
        }
    }

    /// The server said `bye` without being asked to.
    pub fn bye(reason: ByeReason, message: Option<&str>) -> Fatal {
        Fatal::new(EXIT_DISCONNECTED, bye_words(reason, message))
    }

    /// The connection ended without a `bye`.
    pub fn lost(addr: &str, err: Option<&io::Error>) -> Fatal {
        let why = match err {
            Some(e) => describe_io(e),
            None => "chatd closed it without a word".to_owned(),
        };
        Fatal::new(
            EXIT_DISCONNECTED,
            format!("lost the connection to chatd at {addr}: {why}"),
        )
    }

    /// Adds what was left undone, e.g. which lines were not sent.
    pub fn with_note(mut self, note: impl fmt::Display) -> Fatal {
        self.message = format!("{}; {note}", self.message);
        self
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fatal {}

/// A `bye` reason in plain words; the server's own words come escaped.
pub fn bye_words(reason: ByeReason, message: Option<&str>) -> String {
    let detail = message
        .filter(|m| !m.is_empty())
        .map(|m| escape(m, Mode::Line));
    match (reason, detail) {
        (ByeReason::Kicked, Some(m)) => format!("kicked by the administrator: {m}"),
        (ByeReason::Kicked, None) => "kicked by the administrator".to_owned(),
        (ByeReason::Shutdown, _) => "chatd is shutting down".to_owned(),
        (ByeReason::Timeout, _) => "chatd closed the connection: no login in time".to_owned(),
        (ByeReason::SlowConsumer, _) => {
            "chatd disconnected us: messages were not read fast enough".to_owned()
        }
        (ByeReason::ServerFull, _) => "chatd is full; try again later".to_owned(),
        (ByeReason::Logout, _) => "logged out".to_owned(),
        (_, Some(m)) => format!("chatd closed the connection ({reason}): {m}"),
        (_, None) => format!("chatd closed the connection ({reason})"),
    }
}

/// An I/O error in lowercase words, without the `(os error N)` tail.
pub fn describe_io(err: &io::Error) -> String {
    use io::ErrorKind::*;
    let words = match err.kind() {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        ConnectionAborted => "connection aborted",
        BrokenPipe => "connection closed",
        TimedOut => "timed out",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        AddrNotAvailable => "address not available",
        _ => return err.to_string(),
    };
    words.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_connections_read_as_a_fix() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        let f = Fatal::unreachable("127.0.0.1:1", &e);
        assert_eq!(f.code, EXIT_CANNOT_CONNECT);
        assert_eq!(
            f.to_string(),
            "cannot reach chatd at 127.0.0.1:1: connection refused — is chatd running? \
             (set --server or CHATD_SERVER)"
        );
    }

    #[test]
    fn login_refusals_pick_their_codes() {
        let f = Fatal::login_refused("al", ErrorCode::NameTaken, "al is taken");
        assert_eq!(f.code, EXIT_LOGIN_REFUSED);
        let f = Fatal::login_refused("al", ErrorCode::ServerFull, "full");
        assert_eq!(f.code, EXIT_CANNOT_CONNECT);
    }

    #[test]
    fn kicks_carry_the_admins_reason() {
        let f = Fatal::bye(ByeReason::Kicked, Some("spam"));
        assert_eq!(f.code, EXIT_DISCONNECTED);
        assert_eq!(f.to_string(), "kicked by the administrator: spam");
        assert_eq!(
            Fatal::bye(ByeReason::Kicked, Some("")).to_string(),
            "kicked by the administrator"
        );
        assert_eq!(
            Fatal::bye(ByeReason::Kicked, Some("\u{1b}[2J\u{202e}")).to_string(),
            "kicked by the administrator: \\u{1b}[2J\\u{202e}"
        );
    }
}
