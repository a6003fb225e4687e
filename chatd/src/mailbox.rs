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
//! **A line longer than the whole byte budget** is refused (`Push::NeverFits`, answered
//! `recipient_busy` with a message that says so; skipped by a broadcast) even by an empty
//! queue, and does not start the clock: it says nothing about the reader, and queuing it
//! would break the bound the budget promises. The configuration check keeps `queue_bytes`
//! above `max_line_bytes`, so only a queue opened before a reload raised both can meet one.

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
    /// The line is longer than the whole byte bound (`bound`): even an empty queue refuses it.
    NeverFits {
        bound: usize,
    },
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
        let bound = st.cap.bytes;
        drop(st);
        wake(waker);
        if too_long && n == 0 {
            (0, Push::NeverFits { bound })
        } else {
            (n, Push::Full)
        }
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
#[path = "mailbox_tests.rs"]
mod tests;
