//! A session's outgoing queue: bounded, filled by other sessions without waiting, drained by
//! its own session in batches.
//!
//! A plain mutex over a `VecDeque` of pre-encoded lines, plus the one waker of the owning
//! task. A push wakes the owner only when the queue goes from empty to non-empty (the owner
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
    queue: VecDeque<Bytes>,
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
        let mut st = self.lock();
        if st.sealed || st.close.is_some() {
            return Push::Closed;
        }
        if st.queue.len() >= st.cap {
            if st.full_since.is_none() {
                st.full_since = Some(Instant::now());
                st.full_seen = false;
                let waker = st.waker.take();
                drop(st);
                wake(waker);
            }
            return Push::Full;
        }
        let was_empty = st.queue.is_empty();
        if st.queue.capacity() == 0 {
            // Freed whenever it empties (idle sessions hold none), so start a burst with room
            // for several lines rather than growing one slot at a time.
            let first = 16.min(st.cap);
            st.queue.reserve(first);
        }
        st.queue.push_back(line);
        let waker = if was_empty { st.waker.take() } else { None };
        drop(st);
        wake(waker);
        Push::Queued
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

    /// Lines waiting (the queue depth shown to the administrator).
    pub fn depth(&self) -> usize {
        self.lock().queue.len()
    }

    /// Drops every queued line: for a session cut off because it does not read them.
    pub fn clear(&self) {
        let mut st = self.lock();
        st.queue = VecDeque::new();
        st.full_since = None;
    }

    /// Ready when the owner has something to do: lines to take (if `want_lines`), a close
    /// request, or a newly full queue. Otherwise remembers the waker.
    pub fn poll_ready(&self, cx: &mut Context<'_>, want_lines: bool) -> Poll<()> {
        let mut st = self.lock();
        if (want_lines && !st.queue.is_empty())
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
        let (mut n, mut bytes) = (0, 0);
        for line in &st.queue {
            if out.len() + bytes >= limit {
                break;
            }
            bytes += line.len();
            n += 1;
        }
        out.reserve(bytes);
        for line in st.queue.drain(..n) {
            out.extend_from_slice(&line);
        }
        let lines = n as u64;
        // The slow-consumer clock stops only once the queue is down to half. A reader that
        // takes a line now and then, just enough to make room for the next one, keeps its
        // queue full for all practical purposes and must not restart the clock each time.
        if st.queue.len() <= st.cap / 2 {
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
            lines,
            full_since: st.full_since,
            close,
            remaining: st.queue.len(),
        }
    }
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
