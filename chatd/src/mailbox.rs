//! A session's outgoing queue: bounded, filled by other sessions without waiting, drained by
//! its own session in batches.
//!
//! A plain mutex over a `VecDeque` of pre-encoded chunks, plus the one waker of the owning
//! task. A chunk is one line, or a run of one sender's broadcasts shared by every recipient;
//! the bound counts lines. A push wakes the owner only when the queue goes from empty to non-empty (the owner
//! drains everything it can per wake-up, so one wake-up serves a whole burst), when the queue
//! first becomes full (so the owner can start its slow-consumer clock), or when a close is
//! requested. An empty `VecDeque` owns no allocation, so an idle session's queue costs only
//! this struct. The close request travels here too, beside the chat traffic rather than
//! behind it: a kick or a shutdown reaches a session whose queue is full.

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

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The queue is at its bound; nothing was queued.
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

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Chunk>,
    /// Lines in `queue`, the figure bounded by `cap`.
    lines: usize,
    cap: usize,
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
    pub fn new(cap: usize) -> Mailbox {
        Mailbox {
            state: Mutex::new(State {
                cap,
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `line` unless the queue is full or closed. Never waits.
    pub fn push(&self, line: Bytes) -> Push {
        self.enqueue(1, move |_| line).1
    }

    /// Queues the first lines of `run` that fit, where line `i` ends at `ends[i]`, and returns
    /// how many that was (0 if the session is closing). Taking a prefix keeps every recipient's
    /// view of one sender in order; the queue holds the lines as one shared slice of `run`.
    pub fn push_run(&self, run: &Bytes, ends: &[usize]) -> usize {
        let all = ends.len();
        self.enqueue(all, |n| {
            if n == all {
                run.clone()
            } else {
                run.slice(..ends[n - 1])
            }
        })
        .0
    }

    /// Queues up to `want` lines, the chunk for `n` of them made by `chunk(n)`; returns how
    /// many were queued and whether all were.
    fn enqueue(&self, want: usize, chunk: impl FnOnce(usize) -> Bytes) -> (usize, Push) {
        let mut st = self.lock();
        if st.sealed || st.close.is_some() {
            return (0, Push::Closed);
        }
        let n = want.min(st.cap.saturating_sub(st.lines));
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
            st.queue.push_back(Chunk {
                bytes: chunk(n),
                lines: n,
            });
            st.lines += n;
        }
        if n == want {
            drop(st);
            wake(waker);
            return (n, Push::Queued);
        }
        if st.full_since.is_none() {
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

    /// The bound this queue was made with (a reload changes it only for new sessions).
    pub fn capacity(&self) -> usize {
        self.lock().cap
    }

    /// Lines waiting (the queue depth shown to the administrator).
    pub fn depth(&self) -> usize {
        self.lock().lines
    }

    /// Drops every queued line: for a session cut off because it does not read them.
    pub fn clear(&self) {
        let mut st = self.lock();
        st.queue = VecDeque::new();
        st.lines = 0;
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
        // The slow-consumer clock stops only once the queue is down to half. A reader that
        // takes a line now and then, just enough to make room for the next one, keeps its
        // queue full for all practical purposes and must not restart the clock each time.
        if st.lines <= st.cap / 2 {
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

    #[test]
    fn bounded_and_full_is_reported_once_to_the_owner() {
        let mb = Mailbox::new(2);
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
        let mb = Mailbox::new(4);
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
        let mb = Mailbox::new(4);
        let (count, w) = waker();
        assert!(
            mb.poll_ready(&mut Context::from_waker(&w), true)
                .is_pending()
        );
        assert_eq!(mb.push(Bytes::from_static(b"x\n")), Push::Queued);
        // the owner is busy writing and waits without wanting lines
        assert!(
            mb.poll_ready(&mut Context::from_waker(&w), false)
                .is_pending()
        );
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
        let mb = Mailbox::new(1);
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
        let mb = Mailbox::new(1);
        mb.seal();
        assert_eq!(mb.push(Bytes::from_static(b"z\n")), Push::Closed);
    }
}
