//! A session's outgoing queue: bounded, filled by other sessions without waiting, drained by
//! its own session in batches.
//!
//! A plain mutex over a `VecDeque` of pre-encoded chunks, plus the one waker of the owning
//! task. A chunk is one line, or a run of one sender's broadcasts shared by every recipient.
//! The queue is bounded twice, in lines (`queue_len`) and in bytes (`queue_bytes`): the lines
//! bound keeps a flood of small events short, the bytes bound caps what a reader that stops
//! reading pins however long the lines are. A line that fits only one of the two is refused
//! as a full queue is. A push wakes the owner only when the queue goes from empty to
//! non-empty (the owner drains everything it can per wake-up, so one wake-up serves a whole
//! burst), when the queue first refuses a line (so the owner can start its slow-consumer
//! clock), or when a close is requested. An empty `VecDeque` owns no allocation, so an idle
//! session's queue costs only this struct. The close request travels here too, beside the
//! chat traffic rather than behind it: a kick or a shutdown reaches a session whose queue is
//! full.
//!
//! **A line longer than the whole byte budget** is refused (`recipient_busy` for a private
//! message, skipped by a broadcast) even by an empty queue, and does not start the clock: it
//! says nothing about the reader, and queuing it would break the bound the budget promises.
//! With the defaults (1 MiB of queue, lines of at most 64 KiB) it cannot happen; a
//! `queue_bytes` set below `max_line_bytes` makes the longest messages undeliverable.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Why the server is ending a session from outside its own task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseRequest {
    /// An administrator kicked the user; the text is the admin's reason.
    Kicked(Option<String>),
    /// The server is stopping.
    Shutdown,
}

/// How much a queue may hold: both bounds apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Lines (`queue_len`).
    pub lines: usize,
    /// Bytes of encoded lines (`queue_bytes`).
    pub bytes: usize,
}

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The queue is at one of its bounds (or the line is longer than the byte bound); nothing
    /// was queued.
    Full,
    /// The session is closing and accepts nothing more.
    Closed,
}

/// What the owner learned from one [`Mailbox::take`].
#[derive(Debug, Default)]
pub struct Taken {
    /// Lines moved into the output buffer.
    pub lines: u64,
    /// When the queue became full, if it still is.
    pub full_since: Option<Instant>,
    /// A close request, reported once.
    pub close: Option<CloseRequest>,
    /// Lines still queued after this take.
    pub remaining: usize,
}

#[derive(Debug)]
pub struct Mailbox {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Chunk>,
    /// Lines in `queue`, bounded by `cap.lines`.
    lines: usize,
    /// Bytes in `queue`, bounded by `cap.bytes`.
    bytes: usize,
    cap: Bounds,
    full_since: Option<Instant>,
    /// The owner has seen `full_since`, so a further failed push need not wake it.
    full_seen: bool,
    close: Option<CloseRequest>,
    close_seen: bool,
    /// Set once the owner is closing: pushes are refused from then on.
    sealed: bool,
    waker: Option<Waker>,
}

impl Mailbox {
    pub fn new(cap: Bounds) -> Mailbox {
        Mailbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                lines: 0,
                bytes: 0,
                cap,
                full_since: None,
                full_seen: false,
                close: None,
                close_seen: false,
                sealed: false,
                waker: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `line` unless the queue is full (by lines or bytes) or closed. Never waits.
    pub fn push(&self, line: Bytes) -> Push {
        let ends = [line.len()];
        self.enqueue(&ends, move |_| line).1
    }

    /// Queues the first lines of `run` that fit in both bounds, where line `i` ends at
    /// `ends[i]`, and returns how many that was (0 if the session is closing). Taking a prefix
    /// keeps every recipient's view of one sender in order. The whole run is held as one
    /// slice shared with the other recipients; a prefix is copied, because a slice of it would
    /// pin the whole run's buffer while the bound counted only the prefix.
    pub fn push_run(&self, run: &Bytes, ends: &[usize]) -> usize {
        let all = ends.len();
        self.enqueue(ends, |n| {
            if n == all {
                run.clone()
            } else {
                Bytes::copy_from_slice(&run[..ends[n - 1]])
            }
        })
        .0
    }

    /// Queues the longest prefix of the lines ending at `ends` that fits, the chunk for `n` of
    /// them made by `chunk(n)`; returns how many were queued and whether all were.
    fn enqueue(&self, ends: &[usize], chunk: impl FnOnce(usize) -> Bytes) -> (usize, Push) {
        let want = ends.len();
        let mut st = self.lock();
        if st.sealed || st.close.is_some() {
            return (0, Push::Closed);
        }
        let room = st.cap.bytes.saturating_sub(st.bytes);
        // `ends` grows, so the prefixes that fit in `room` bytes are the first ones.
        let fit = ends.partition_point(|&end| end <= room);
        let n = fit.min(st.cap.lines.saturating_sub(st.lines));
        let mut waker = None;
        if n > 0 {
            if st.lines == 0 {
                waker = st.waker.take();
            }
            if st.queue.capacity() == 0 {
                // Freed whenever it empties (idle sessions hold none), so start a burst with
                // room for several chunks rather than growing one slot at a time.
                st.queue.reserve(8);
            }
            let bytes = chunk(n);
            st.bytes += bytes.len();
            st.queue.push_back(Chunk { bytes, lines: n });
            st.lines += n;
        }
        if n == want {
            drop(st);
            wake(waker);
            return (n, Push::Queued);
        }
        // A line longer than the whole budget would be refused by an empty queue too: it says
        // nothing about the reader, so it does not start the clock (see the module's doc).
        let first_refused = ends[n] - n.checked_sub(1).map_or(0, |i| ends[i]);
        let too_long = first_refused > st.cap.bytes;
        if st.full_since.is_none() && !too_long {
            st.full_since = Some(Instant::now());
            st.full_seen = false;
            waker = waker.or_else(|| st.waker.take());
        }
        drop(st);
        wake(waker);
        (n, Push::Full)
    }

    /// Asks the owner to end the session. The first request wins; returns false if the
    /// session was already closing.
    pub fn close(&self, req: CloseRequest) -> bool {
        let mut st = self.lock();
        if st.sealed || st.close.is_some() {
            return false;
        }
        st.close = Some(req);
        let waker = st.waker.take();
        drop(st);
        wake(waker);
        true
    }

    /// Refuses every later push: the owner is closing and will drain what is queued.
    pub fn seal(&self) {
        self.lock().sealed = true;
    }

    /// True once the owner is closing.
    pub fn is_sealed(&self) -> bool {
        self.lock().sealed
    }

    /// The bounds this queue was made with (a reload changes them only for new sessions).
    pub fn bounds(&self) -> Bounds {
        self.lock().cap
    }

    /// Lines waiting (the queue depth shown to the administrator).
    pub fn depth(&self) -> usize {
        self.lock().lines
    }

    /// Lines and bytes waiting, read together.
    pub fn queued(&self) -> (usize, usize) {
        let st = self.lock();
        (st.lines, st.bytes)
    }

    /// Drops every queued line: for a session cut off because it does not read them.
    pub fn clear(&self) {
        let mut st = self.lock();
        st.queue = VecDeque::new();
        st.lines = 0;
        st.bytes = 0;
        st.full_since = None;
    }

    /// Ready when the owner has something to do: lines to take (if `want_lines`), a close
    /// request, or a newly full queue. Otherwise remembers the waker.
    pub fn poll_ready(&self, cx: &mut Context<'_>, want_lines: bool) -> Poll<()> {
        let mut st = self.lock();
        if (want_lines && st.lines > 0)
            || (st.close.is_some() && !st.close_seen)
            || (st.full_since.is_some() && !st.full_seen)
        {
            return Poll::Ready(());
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Moves queued lines into `out` until it holds at least `limit` bytes or the queue is
    /// empty, and reports the queue's state.
    pub fn take(&self, out: &mut Vec<u8>, limit: usize) -> Taken {
        let mut st = self.lock();
        // Size the batch first so the output buffer grows once, not once per doubling.
        let (mut n, mut bytes, mut lines) = (0, 0, 0);
        for chunk in &st.queue {
            if out.len() + bytes >= limit {
                break;
            }
            bytes += chunk.bytes.len();
            lines += chunk.lines;
            n += 1;
        }
        out.reserve(bytes);
        for chunk in st.queue.drain(..n) {
            out.extend_from_slice(&chunk.bytes);
        }
        st.lines -= lines;
        st.bytes -= bytes;
        // The slow-consumer clock stops only once the queue is down to half of both bounds. A
        // reader that takes a line now and then, just enough to make room for the next one,
        // keeps its queue full for all practical purposes and must not restart the clock
        // each time.
        if st.lines <= st.cap.lines / 2 && st.bytes <= st.cap.bytes / 2 {
            st.full_since = None;
        }
        if st.queue.is_empty() && st.queue.capacity() > 0 {
            // Give back what a burst grew, so an idle session holds no queue memory.
            st.queue = VecDeque::new();
        }
        st.full_seen = true;
        let close = if st.close_seen {
            None
        } else {
            st.close_seen = st.close.is_some();
            st.close.clone()
        };
        Taken {
            lines: lines as u64,
            full_since: st.full_since,
            close,
            remaining: st.lines,
        }
    }
}

/// Consecutive lines queued together: usually one, or a run of one sender's broadcasts
/// shared by every recipient.
#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    lines: usize,
}

fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    /// Polls `mb` as its owner would: true if it has nothing for the owner (and keeps `w`).
    fn waits(mb: &Mailbox, w: &Waker, want_lines: bool) -> bool {
        mb.poll_ready(&mut Context::from_waker(w), want_lines)
            .is_pending()
    }

    /// A queue bounded in lines only.
    fn lines(n: usize) -> Mailbox {
        Mailbox::new(Bounds {
            lines: n,
            bytes: usize::MAX,
        })
    }

    /// A queue bounded in bytes only (and 100 lines, never reached here).
    fn bytes(n: usize) -> Mailbox {
        Mailbox::new(Bounds {
            lines: 100,
            bytes: n,
        })
    }

    fn line(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn bounded_and_full_is_reported_once_to_the_owner() {
        let mb = lines(2);
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(mb.poll_ready(&mut cx, true).is_pending());
        assert_eq!(mb.push(Bytes::from_static(b"a\n")), Push::Queued);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "empty to non-empty wakes"
        );
        assert_eq!(mb.push(Bytes::from_static(b"b\n")), Push::Queued);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "a burst wakes once");
        // owner cannot take now (output buffer full): it waits without wanting lines
        assert!(mb.poll_ready(&mut cx, false).is_pending());
        assert_eq!(mb.push(Bytes::from_static(b"c\n")), Push::Full);
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "first full wakes");
        assert!(mb.poll_ready(&mut cx, false).is_ready());
        let mut out = Vec::new();
        let t = mb.take(&mut out, 0);
        assert!(t.full_since.is_some());
        assert_eq!(t.lines, 0);
        assert!(mb.poll_ready(&mut cx, false).is_pending());
        assert_eq!(mb.push(Bytes::from_static(b"d\n")), Push::Full);
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "still full: no new wake");
        let t = mb.take(&mut out, usize::MAX);
        assert_eq!((t.lines, t.full_since), (2, None));
        assert_eq!(out, b"a\nb\n");
        assert_eq!(mb.depth(), 0);
    }

    #[test]
    fn the_full_clock_stops_only_when_the_queue_is_down_to_half() {
        let mb = lines(4);
        for _ in 0..4 {
            assert_eq!(mb.push(Bytes::from_static(b"l\n")), Push::Queued);
        }
        assert_eq!(mb.push(Bytes::from_static(b"l\n")), Push::Full);
        let mut out = Vec::new();
        // one line taken (3 left): still nearly full
        let t = mb.take(&mut out, 1);
        assert_eq!(t.lines, 1);
        assert!(t.full_since.is_some());
        // down to 2 of 4: the clock stops
        let t = mb.take(&mut out, 3);
        assert_eq!((t.lines, t.remaining, t.full_since), (1, 2, None));
    }

    #[test]
    fn a_run_queues_the_prefix_that_fits_and_wakes_once() {
        let mb = lines(4);
        let (count, w) = waker();
        assert!(waits(&mb, &w, true));
        assert_eq!(mb.push(Bytes::from_static(b"x\n")), Push::Queued);
        // the owner is busy writing and waits without wanting lines
        assert!(waits(&mb, &w, false));
        let run = Bytes::from_static(b"a\nbb\nccc\nd\n");
        let ends = [2, 5, 9, 11];
        assert_eq!(mb.push_run(&run, &ends), 3, "room for three of four");
        assert_eq!(mb.depth(), 4);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "non-empty, then full: once each"
        );
        assert_eq!(mb.push_run(&run, &ends), 0);
        let mut out = Vec::new();
        let t = mb.take(&mut out, usize::MAX);
        assert_eq!((t.lines, t.remaining), (4, 0));
        assert_eq!(out, b"x\na\nbb\nccc\n");
        assert_eq!(mb.push_run(&run, &ends), 4);
        assert_eq!(mb.depth(), 4);
        mb.seal();
        assert_eq!(
            mb.push_run(&run, &ends),
            0,
            "a closing session takes nothing"
        );
    }

    #[test]
    fn close_reaches_a_full_queue_and_seal_refuses_pushes() {
        let mb = lines(1);
        assert_eq!(mb.push(Bytes::from_static(b"x\n")), Push::Queued);
        assert!(mb.close(CloseRequest::Kicked(Some("spam".into()))));
        assert!(!mb.close(CloseRequest::Shutdown), "first request wins");
        assert_eq!(mb.push(Bytes::from_static(b"y\n")), Push::Closed);
        let (_, w) = waker();
        assert!(
            mb.poll_ready(&mut Context::from_waker(&w), false)
                .is_ready()
        );
        let mut out = Vec::new();
        let t = mb.take(&mut out, usize::MAX);
        assert_eq!(t.close, Some(CloseRequest::Kicked(Some("spam".into()))));
        assert_eq!(out, b"x\n", "what was accepted is still delivered");
        assert_eq!(mb.take(&mut out, usize::MAX).close, None, "reported once");
        let mb = lines(1);
        mb.seal();
        assert_eq!(mb.push(Bytes::from_static(b"z\n")), Push::Closed);
    }

    #[test]
    fn full_by_bytes_refuses_a_line_as_full_by_lines_does() {
        let mb = bytes(10);
        let (count, w) = waker();
        assert!(waits(&mb, &w, true));
        assert_eq!(mb.push(line("aa\n")), Push::Queued);
        assert_eq!(mb.push(line("bbb\n")), Push::Queued, "7 of 10 bytes: under");
        assert_eq!(
            mb.push(line("cc\n")),
            Push::Queued,
            "10 of 10: at the bound"
        );
        assert_eq!(mb.queued(), (3, 10));
        assert!(waits(&mb, &w, false));
        assert_eq!(mb.push(line("\n")), Push::Full, "one byte over");
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "non-empty, then full");
        assert_eq!(mb.queued(), (3, 10), "nothing of the refused line");
        let mut out = Vec::new();
        let t = mb.take(&mut out, 1);
        assert_eq!((t.lines, t.remaining), (1, 2));
        assert!(t.full_since.is_some(), "7 of 10 bytes left: still full");
        assert_eq!(mb.push(line("dddd\n")), Push::Full, "12 of 10");
        assert_eq!(mb.push(line("dd\n")), Push::Queued, "10 of 10");
        let t = mb.take(&mut out, usize::MAX);
        assert_eq!((t.lines, t.remaining, t.full_since), (3, 0, None));
        assert_eq!(out, b"aa\nbbb\ncc\ndd\n");
        assert_eq!(mb.queued(), (0, 0));
    }

    #[test]
    fn a_line_longer_than_the_whole_budget_is_refused_and_starts_no_clock() {
        let mb = bytes(8);
        let (count, w) = waker();
        assert!(waits(&mb, &w, false));
        assert_eq!(
            mb.push(line("12345678\n")),
            Push::Full,
            "9 bytes, empty queue"
        );
        assert_eq!(mb.queued(), (0, 0), "never queued beyond the bound");
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            0,
            "the reader is not behind"
        );
        assert!(waits(&mb, &w, false));
        assert_eq!(mb.take(&mut Vec::new(), usize::MAX).full_since, None);
        // The same in a run: the lines before it are queued, it and those after are not.
        let run = Bytes::from_static(b"a\n123456789\nb\n");
        assert_eq!(mb.push_run(&run, &[2, 12, 14]), 1);
        assert_eq!(mb.take(&mut Vec::new(), usize::MAX).full_since, None);
        assert_eq!(mb.push(line("1234567\n")), Push::Queued, "8 bytes fit");
    }

    #[test]
    fn a_run_takes_the_prefix_that_fits_in_both_bounds_and_copies_a_part() {
        let run = Bytes::from_static(b"a\nbb\nccc\nd\n");
        let ends = [2, 5, 9, 11];
        // Room for 3 lines but 7 bytes: "a\n" and "bb\n" (5 bytes), not "ccc\n" (9).
        let mb = Mailbox::new(Bounds { lines: 3, bytes: 7 });
        assert_eq!(mb.push_run(&run, &ends), 2);
        assert_eq!(mb.queued(), (2, 5));
        // A prefix is a copy: a slice would pin all 11 bytes of the run for 5 counted.
        assert_ne!(mb.lock().queue[0].bytes.as_ptr(), run.as_ptr());
        assert_eq!(
            mb.push_run(&run, &ends),
            1,
            "2 bytes of room: \"a\\n\" fits"
        );
        assert_eq!(mb.push_run(&run, &ends), 0, "no room");
        // Room for 11 bytes but 3 lines.
        let mb = Mailbox::new(Bounds {
            lines: 3,
            bytes: 11,
        });
        assert_eq!(mb.push_run(&run, &ends), 3);
        assert_eq!(mb.queued(), (3, 9));
        // The whole run is shared with the other recipients, not copied.
        let mb = bytes(11);
        assert_eq!(mb.push_run(&run, &ends), 4);
        assert_eq!(mb.lock().queue[0].bytes.as_ptr(), run.as_ptr());
        let mut out = Vec::new();
        mb.take(&mut out, usize::MAX);
        assert_eq!(out, &run[..]);
    }

    #[test]
    fn the_clock_stops_only_when_down_to_half_of_both_bounds() {
        let mb = Mailbox::new(Bounds {
            lines: 4,
            bytes: 20,
        });
        for l in ["x\n", "x\n", "xxxxxxxxxxxxxx\n"] {
            assert_eq!(mb.push(line(l)), Push::Queued);
        }
        assert_eq!(mb.push(line("x\n")), Push::Full, "21 bytes of 20");
        let mut out = Vec::new();
        let t = mb.take(&mut out, 3);
        assert_eq!(t.remaining, 1, "half the lines, but 15 of 20 bytes");
        assert!(t.full_since.is_some());
        let t = mb.take(&mut out, usize::MAX);
        assert_eq!((t.remaining, t.full_since), (0, None));
        // By lines with few bytes: half the bytes but not half the lines.
        let mb = Mailbox::new(Bounds {
            lines: 4,
            bytes: 100,
        });
        for _ in 0..4 {
            assert_eq!(mb.push(line("x\n")), Push::Queued);
        }
        assert_eq!(mb.push(line("x\n")), Push::Full);
        let t = mb.take(&mut Vec::new(), 1);
        assert_eq!(t.remaining, 3, "6 of 100 bytes, 3 of 4 lines");
        assert!(t.full_since.is_some());
    }

    #[test]
    fn clearing_forgets_the_bytes_too() {
        let mb = bytes(4);
        assert_eq!(mb.push(line("abc\n")), Push::Queued);
        assert_eq!(mb.push(line("\n")), Push::Full);
        mb.clear();
        assert_eq!(mb.queued(), (0, 0));
        assert_eq!(mb.push(line("abc\n")), Push::Queued);
    }
}
