//! The exactly-once-in-order checker run by every receiver, for every sender it hears from.
//!
//! Senders number their messages 0, 1, 2, ... A receiver marks each number it sees in a bitset
//! (one bit per message the sender will send, so 2.5 KB for 20 000), which makes every anomaly
//! countable rather than assumed away:
//! - a duplicate is a number already seen;
//! - a reorder is a number that arrives after a higher one;
//! - a gap is the receiver skipping ahead (the skipped numbers may still come, as reorders);
//! - missing is what never arrived by the end; out-of-range is a number the sender never sent.
//!
//! Whether a missing message was lost is for [`crate::verdict`] to say: the server may have
//! skipped this receiver, and said so in its `delivered` count.

/// Per-sender state. See the module docs.
#[derive(Debug, Clone)]
pub struct OrderCheck {
    seen: Vec<u64>,
    expected: u64,
    /// One past the highest number seen so far.
    next: u64,
    pub unique: u64,
    pub dups: u64,
    pub reordered: u64,
    pub gaps: u64,
    pub out_of_range: u64,
}

/// The sum of many checkers' findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderSummary {
    pub expected: u64,
    pub unique: u64,
    pub dups: u64,
    pub reordered: u64,
    pub gaps: u64,
    pub missing: u64,
    pub out_of_range: u64,
}

impl OrderSummary {
    /// True when what arrived arrived once and in order: no duplicate, no reorder, nothing
    /// never sent. Gaps and missing messages are allowed here (see [`crate::verdict`]).
    pub fn in_order(&self) -> bool {
        self.dups == 0 && self.reordered == 0 && self.out_of_range == 0
    }

    pub fn add(&mut self, o: &OrderSummary) {
        self.expected += o.expected;
        self.unique += o.unique;
        self.dups += o.dups;
        self.reordered += o.reordered;
        self.gaps += o.gaps;
        self.missing += o.missing;
        self.out_of_range += o.out_of_range;
    }
}

impl OrderCheck {
    /// A checker for a sender that will send `expected` messages numbered from 0.
    pub fn new(expected: u64) -> OrderCheck {
        OrderCheck {
            seen: vec![0; expected.div_ceil(64) as usize],
            expected,
            next: 0,
            unique: 0,
            dups: 0,
            reordered: 0,
            gaps: 0,
            out_of_range: 0,
        }
    }

    /// Records one arrival of message `seq`.
    pub fn record(&mut self, seq: u64) {
        if seq >= self.expected {
            self.out_of_range += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen[word] & bit != 0 {
            self.dups += 1;
            return;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        if seq < self.next {
            self.reordered += 1;
        } else {
            if seq > self.next {
                self.gaps += 1;
            }
            self.next = seq + 1;
        }
    }

    /// True once every message has arrived.
    pub fn complete(&self) -> bool {
        self.unique == self.expected
    }

    /// True if message `seq` arrived.
    pub fn has(&self, seq: u64) -> bool {
        seq < self.expected && self.seen[(seq / 64) as usize] & (1 << (seq % 64)) != 0
    }

    pub fn summary(&self) -> OrderSummary {
        OrderSummary {
            expected: self.expected,
            unique: self.unique,
            dups: self.dups,
            reordered: self.reordered,
            gaps: self.gaps,
            missing: self.expected - self.unique,
            out_of_range: self.out_of_range,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expected: u64, seqs: &[u64]) -> OrderSummary {
        let mut c = OrderCheck::new(expected);
        for &s in seqs {
            c.record(s);
        }
        c.summary()
    }

    #[test]
    fn in_order_delivery_is_clean() {
        let s = run(200, &(0..200).collect::<Vec<_>>());
        assert!(s.in_order(), "{s:?}");
        assert_eq!(s.unique, 200);
        assert_eq!(s.missing, 0);
    }

    #[test]
    fn duplicates_are_counted_not_hidden() {
        let s = run(4, &[0, 1, 1, 2, 3, 0]);
        assert_eq!((s.unique, s.dups, s.reordered, s.gaps), (4, 2, 0, 0));
        assert!(!s.in_order());
    }

    #[test]
    fn a_swap_is_one_gap_and_one_reorder() {
        let s = run(4, &[0, 2, 1, 3]);
        assert_eq!(
            (s.unique, s.dups, s.reordered, s.gaps, s.missing),
            (4, 0, 1, 1, 0)
        );
    }

    #[test]
    fn a_lost_message_is_a_gap_and_missing() {
        let s = run(5, &[0, 1, 3, 4]);
        assert_eq!((s.unique, s.gaps, s.missing, s.reordered), (4, 1, 1, 0));
        let tail = run(5, &[0, 1, 2]);
        assert_eq!((tail.gaps, tail.missing), (0, 2));
        assert!(tail.in_order(), "missing is judged elsewhere");
    }

    #[test]
    fn numbers_never_sent_are_out_of_range() {
        let s = run(3, &[0, 1, 2, 3, 99]);
        assert_eq!((s.unique, s.out_of_range), (3, 2));
        assert!(!s.in_order());
    }

    #[test]
    fn a_checker_says_which_numbers_arrived() {
        let mut c = OrderCheck::new(130);
        for s in [0, 64, 129, 200] {
            c.record(s);
        }
        let has: Vec<u64> = (0..=200).filter(|&s| c.has(s)).collect();
        assert_eq!(has, [0, 64, 129]);
    }

    #[test]
    fn summaries_add_up() {
        let mut total = OrderSummary::default();
        total.add(&run(3, &[0, 1, 2]));
        total.add(&run(3, &[0, 0]));
        assert_eq!(
            (total.expected, total.unique, total.dups, total.missing),
            (6, 4, 1, 2)
        );
    }
}
