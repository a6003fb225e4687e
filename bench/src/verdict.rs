//! Judging a flow run's copies against what the server said it delivered.
//!
//! The protocol lets a server skip a recipient whose queue is full: a private message is then
//! answered `recipient_busy`, and a broadcast's `delivered` leaves that recipient out. Such a
//! copy was never promised, so it is not lost. What the server did promise is each `ok`'s
//! `delivered` count, so the verdict is per message: the readers that got message `s` of a
//! sender, against the `delivered` of its reply.
//!
//! - More copies promised than arrived is a **lost** copy, except that a stalled receiver
//!   (one that never reads, in `slow`) may account for one per message: its queue accepts
//!   copies that are dropped when it is cut off as a slow consumer, which the protocol allows.
//! - More copies arrived than promised is an **uncounted** copy: `delivered` undercounts.
//! - A message whose reply never came (the deadline passed) is **unanswered**: nothing can be
//!   judged about it, and the run did not finish.
//!
//! Order and duplicates are still checked per receiver by [`crate::order`]; a skipped copy
//! shows there as a gap, which is allowed.

use crate::order::OrderCheck;

/// What one reply said: the copies queued for a message, or [`UNANSWERED`].
pub type Delivered = u32;

/// Stands for a message whose reply did not come.
pub const UNANSWERED: Delivered = Delivered::MAX;

/// Stands for a reply that carries no count (the raw relay's `+`, NATS's `+OK`): what
/// arrived cannot be judged against a promise, only checked for order and duplicates.
pub const UNCOUNTED: Delivered = Delivered::MAX - 1;

/// The copies of a run, summed over its senders and messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copies {
    /// Copies the server said it queued (the sum of the `delivered` counts).
    pub promised: u64,
    /// Promised copies that no reader got and no stalled receiver can account for.
    pub lost: u64,
    /// Copies readers got beyond what was promised.
    pub uncounted: u64,
    /// Messages whose reply never came.
    pub unanswered: u64,
    /// Promised copies that no reader got, accounted for by the stalled receivers.
    pub to_stalled: u64,
    /// Copies the server chose not to queue (full queues): audience minus promised.
    pub skipped: u64,
}

impl Copies {
    /// True when every promised copy reached a reader (or a stalled receiver may hold it),
    /// none arrived unpromised, and every message was answered.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.uncounted == 0 && self.unanswered == 0
    }

    pub fn add(&mut self, o: &Copies) {
        self.promised += o.promised;
        self.lost += o.lost;
        self.uncounted += o.uncounted;
        self.unanswered += o.unanswered;
        self.to_stalled += o.to_stalled;
        self.skipped += o.skipped;
    }
}

/// Judges one sender's messages: `delivered[s]` is what the reply to message `s` said
/// ([`UNANSWERED`] past the replies that came), `readers` the checkers of the receivers that
/// hear from it, `stalled` how many receivers that never read hear from it too, and `sent`
/// how many messages it was to send.
pub fn judge(delivered: &[Delivered], sent: u64, readers: &[&OrderCheck], stalled: u64) -> Copies {
    let audience = readers.len() as u64 + stalled;
    let mut c = Copies::default();
    for seq in 0..sent {
        let d = delivered.get(seq as usize).copied().unwrap_or(UNANSWERED);
        if d == UNANSWERED {
            c.unanswered += 1;
            continue;
        }
        if d == UNCOUNTED {
            continue;
        }
        let d = u64::from(d);
        let arrived = readers.iter().filter(|r| r.has(seq)).count() as u64;
        c.promised += d;
        c.skipped += audience.saturating_sub(d);
        c.uncounted += arrived.saturating_sub(d);
        let not_arrived = d.saturating_sub(arrived);
        c.to_stalled += not_arrived.min(stalled);
        c.lost += not_arrived.saturating_sub(stalled);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(sent: u64, got: impl IntoIterator<Item = u64>) -> OrderCheck {
        let mut c = OrderCheck::new(sent);
        for s in got {
            c.record(s);
        }
        c
    }

    #[test]
    fn everything_promised_and_arrived_is_clean() {
        let (a, b) = (reader(3, 0..3), reader(3, 0..3));
        let c = judge(&[2, 2, 2], 3, &[&a, &b], 0);
        assert_eq!(
            c,
            Copies {
                promised: 6,
                ..Copies::default()
            }
        );
        assert!(c.is_clean());
    }

    #[test]
    fn a_copy_skipped_for_a_full_queue_is_not_lost() {
        // Message 1 skipped b (delivered 1), and b never got it: a gap, allowed.
        let (a, b) = (reader(3, 0..3), reader(3, [0, 2]));
        let c = judge(&[2, 1, 2], 3, &[&a, &b], 0);
        assert_eq!((c.promised, c.skipped, c.lost), (5, 1, 0));
        assert!(c.is_clean());
        // A private message answered recipient_busy promised nothing.
        let r = reader(2, [1]);
        let c = judge(&[0, 1], 2, &[&r], 0);
        assert_eq!((c.promised, c.skipped, c.lost), (1, 1, 0));
        assert!(c.is_clean());
    }

    #[test]
    fn a_reply_without_a_count_is_not_judged_against_one() {
        let (a, b) = (reader(2, 0..2), reader(2, [1]));
        let c = judge(&[UNCOUNTED, UNCOUNTED], 2, &[&a, &b], 0);
        assert_eq!(c, Copies::default());
        assert!(c.is_clean());
    }

    #[test]
    fn a_promised_copy_that_never_arrived_is_lost() {
        let (a, b) = (reader(3, 0..3), reader(3, [0, 2]));
        let c = judge(&[2, 2, 2], 3, &[&a, &b], 0);
        assert_eq!((c.lost, c.skipped), (1, 0));
        assert!(!c.is_clean());
    }

    #[test]
    fn a_stalled_receiver_accounts_for_one_copy_a_message() {
        // Readers a and b got everything; the stalled one's queue took messages 0 and 1
        // (delivered 3) and was full for 2 (delivered 2), then was cut off: nothing lost.
        let (a, b) = (reader(3, 0..3), reader(3, 0..3));
        let c = judge(&[3, 3, 2], 3, &[&a, &b], 1);
        assert_eq!((c.to_stalled, c.skipped, c.lost), (2, 1, 0));
        assert!(c.is_clean());
        // But not for two: b's missing copy of message 1 is lost.
        let b = reader(3, [0, 2]);
        let c = judge(&[3, 3, 2], 3, &[&a, &b], 1);
        assert_eq!((c.to_stalled, c.lost), (2, 1));
        assert!(!c.is_clean());
    }

    #[test]
    fn a_copy_beyond_the_count_is_uncounted() {
        let (a, b) = (reader(2, 0..2), reader(2, 0..2));
        let c = judge(&[2, 1], 2, &[&a, &b], 0);
        assert_eq!((c.uncounted, c.lost), (1, 0));
        assert!(!c.is_clean());
    }

    #[test]
    fn messages_without_a_reply_are_unanswered_not_judged() {
        let a = reader(3, [0]);
        let c = judge(&[1], 3, &[&a], 0);
        assert_eq!((c.unanswered, c.promised, c.lost), (2, 1, 0));
        assert!(!c.is_clean());
    }

    #[test]
    fn copies_add_up() {
        let mut total = Copies::default();
        let a = reader(2, 0..2);
        total.add(&judge(&[1, 1], 2, &[&a], 0));
        total.add(&judge(&[1, 0], 2, &[&a], 0));
        assert_eq!((total.promised, total.uncounted, total.skipped), (3, 1, 1));
    }
}
