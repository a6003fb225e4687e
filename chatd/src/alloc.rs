//! The memory allocator: mimalloc, returning freed pages to the system at once.
//!
//! Measured with chatbench on the 2-core machine (see the README's Performance section):
//! - glibc's malloc spent about a quarter of chatd's CPU on a private-message relay, much of
//!   it in arena locks, because a message is allocated by the sender's thread and freed by the
//!   recipient's; mimalloc frees across threads without a lock (0.36 against 0.49 to 0.63 us
//!   of server CPU per message).
//! - Every login sends the whole user list and a `join` to everyone, so a crowd logging in
//!   churns through short-lived buffers. mimalloc's default purge delay (1 s, and ten times
//!   that for its arenas) left 29.7 KiB of RSS per idle connection after 10 000 logins;
//!   purging at once leaves 2.7 KiB, and costs no measurable CPU on the relay.
//! - Even so, 10 000 idle connections after their login storm held 2.2 to 2.5 KiB each, about
//!   1.3 of it live. Two things held the rest, each about 0.3 KiB per connection: transparent
//!   huge pages, which back a 2 MiB stretch of mimalloc's arena as soon as part of it is in
//!   use (disabled for the process: a chat server's heap is small objects, and the benchmark
//!   shows no CPU cost), and emptied pages that a worker thread keeps for reuse until its heap
//!   is collected (collected when a worker runs out of work, at most every
//!   [`COLLECT_EVERY`]). Together: 1.54 to 1.58 KiB per connection.
//!
//! The `#[global_allocator]` itself is declared in `main.rs`: the library does not impose an
//! allocator on programs that embed it.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (v3, the one libmimalloc-sys builds by
/// default; the `extended` bindings do not name it). A test checks that this index still
/// holds the option's default of 1000 ms.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How often, at most, a worker thread that ran out of work collects its allocator heap.
pub const COLLECT_EVERY: Duration = Duration::from_millis(100);

/// Applies chatd's allocator settings; call before the runtime starts.
pub fn configure() {
    // SAFETY: setting an option is a plain store into mimalloc's option table; purge_delay is
    // read each time pages are freed, so changing it at any time is allowed.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    no_huge_pages();
}

fn no_huge_pages() {
    // mimalloc's own switch for this (`allow_thp`) is read when it initialises, before main;
    // the process flag does the same and applies to every later page fault. A failure only
    // costs memory, so it is ignored.
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// For the runtime's `on_thread_park`: gives the emptied pages of this worker's heap back
/// to the system, at most every [`COLLECT_EVERY`] so that a busy worker, which parks
/// thousands of times a second, pays nothing measurable.
pub fn worker_parking() {
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    if !collect_due(LAST.get(), now) {
        return;
    }
    LAST.set(Some(now));
    // SAFETY: collecting the calling thread's heap is always allowed; it frees only blocks
    // that are already free.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

fn collect_due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|last| now.duration_since(last) >= COLLECT_EVERY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_huge_pages_are_turned_off() {
        no_huge_pages();
        // SAFETY: PR_GET_THP_DISABLE reads the process flag.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
    }

    #[test]
    fn a_parking_worker_collects_at_most_every_interval() {
        let t = Instant::now();
        assert!(collect_due(None, t), "the first park collects");
        assert!(!collect_due(Some(t), t + COLLECT_EVERY / 2));
        assert!(collect_due(Some(t), t + COLLECT_EVERY));
    }

    #[test]
    fn the_purge_delay_index_is_the_purge_delay() {
        // SAFETY: reading an option is a plain load.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            default, 1000,
            "mimalloc's option numbering changed: find mi_option_purge_delay again"
        );
    }
}
