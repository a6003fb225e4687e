//! Unit tests of the mailbox: its two bounds, its wake-ups, its close requests.

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
        Push::NeverFits { bound: 8 },
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
    // Behind a full queue, a line that could never fit is still said to be one.
    assert_eq!(mb.push(line("123456789\n")), Push::NeverFits { bound: 8 });
    assert_eq!(
        mb.push(line("1\n")),
        Push::Full,
        "a line that fits an emptier queue"
    );
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
