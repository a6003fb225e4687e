//! Where a session is in its life, and every way it can end.
//!
//! [`Phase`] is the session's state machine: connected, logged in, closing, gone. A
//! [`Close`] names one way to end and knows everything that follows from it: the `bye` the
//! client gets, the `leave` reason the others see, and whether what was queued for the client
//! is still owed to it.

use proto::{ByeReason, LeaveReason, Name};
use std::time::Instant;

pub(super) enum Phase {
    /// Connected, not logged in (the login timeout runs).
    Connected,
    LoggedIn(Name),
    /// Reads nothing more; owes the client its queue (unless the close drops it), then the
    /// `bye`, before the drain deadline.
    Closing(Box<Closing>),
    /// Ends without flushing: the socket failed or the drain deadline passed. `reason` is
    /// what the log (and, if the user had not left yet, the others) are told.
    Gone {
        reason: LeaveReason,
    },
}

pub(super) struct Closing {
    pub close: Close,
    pub deadline: Instant,
    pub bye_written: bool,
}

/// The `bye` message of a client cut off for flooding: what to do about it.
pub(super) const FLOODING: &str =
    "too many requests refused (rate_limited, bad_request, ...); slow down and reconnect";

/// Why a session ends in an orderly way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Close {
    /// The user sent `logout`.
    Logout,
    /// An administrator kicked the user, with this reason.
    Kicked(Option<String>),
    /// The server is stopping.
    Shutdown,
    /// No login in time.
    LoginTimeout,
    /// The queue stayed full past the grace period.
    SlowConsumer,
    /// The client closed its side.
    ClientClosed,
    /// The client went on sending after being refused, far past its rate.
    Flooding,
}

impl Close {
    /// The last line the client gets, if any.
    pub fn bye(&self) -> Option<(ByeReason, Option<&str>)> {
        Some(match self {
            Close::Logout => (ByeReason::Logout, None),
            Close::Kicked(message) => (ByeReason::Kicked, message.as_deref()),
            Close::Shutdown => (ByeReason::Shutdown, None),
            Close::LoginTimeout => (ByeReason::Timeout, None),
            Close::SlowConsumer => (ByeReason::SlowConsumer, None),
            Close::Flooding => (ByeReason::Kicked, Some(FLOODING)),
            Close::ClientClosed => return None,
        })
    }

    /// What the other users are told.
    pub fn leave(&self) -> LeaveReason {
        match self {
            Close::Logout => LeaveReason::Logout,
            Close::Kicked(_) | Close::Flooding => LeaveReason::Kicked,
            Close::LoginTimeout => LeaveReason::Timeout,
            Close::SlowConsumer => LeaveReason::SlowConsumer,
            Close::Shutdown | Close::ClientClosed => LeaveReason::Disconnect,
        }
    }

    /// A slow consumer is cut off because it does not read its queue: owing it that queue
    /// would keep it alive for exactly as long as it refuses to read.
    pub fn drops_queue(&self) -> bool {
        matches!(self, Close::SlowConsumer)
    }
}

impl Phase {
    pub fn name(&self) -> Option<&Name> {
        match self {
            Phase::LoggedIn(name) => Some(name),
            _ => None,
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Phase::Connected | Phase::LoggedIn(_))
    }

    /// Why the session ended, for the log: why it was closing wins over a later socket
    /// failure or drain timeout.
    pub fn reason(&self) -> LeaveReason {
        match self {
            Phase::Closing(c) => c.close.leave(),
            Phase::Gone { reason } => *reason,
            Phase::Connected | Phase::LoggedIn(_) => LeaveReason::Disconnect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_close_knows_its_bye_its_leave_and_its_queue() {
        let cases = [
            (Close::Logout, Some(ByeReason::Logout), LeaveReason::Logout),
            (
                Close::Kicked(None),
                Some(ByeReason::Kicked),
                LeaveReason::Kicked,
            ),
            (
                Close::Shutdown,
                Some(ByeReason::Shutdown),
                LeaveReason::Disconnect,
            ),
            (
                Close::LoginTimeout,
                Some(ByeReason::Timeout),
                LeaveReason::Timeout,
            ),
            (
                Close::SlowConsumer,
                Some(ByeReason::SlowConsumer),
                LeaveReason::SlowConsumer,
            ),
            (Close::ClientClosed, None, LeaveReason::Disconnect),
            (
                Close::Flooding,
                Some(ByeReason::Kicked),
                LeaveReason::Kicked,
            ),
        ];
        for (close, bye, leave) in cases {
            assert_eq!(close.bye().map(|b| b.0), bye, "{close:?}");
            assert_eq!(close.leave(), leave, "{close:?}");
            assert_eq!(close.drops_queue(), close == Close::SlowConsumer);
        }
        let kicked = Close::Kicked(Some("spam".into()));
        assert_eq!(kicked.bye(), Some((ByeReason::Kicked, Some("spam"))));
    }
}
