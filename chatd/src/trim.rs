//! Gives memory freed after a burst back to the operating system.
//!
//! Every login sends the whole user list to the newcomer and a `join` to everyone else, so a
//! crowd logging in moves O(n²) bytes through short-lived buffers. glibc's allocator keeps
//! those freed pages in its arenas: chatbench's idle scenario measured 25 KiB of RSS per idle
//! connection against about 2 KiB of live heap. `malloc_trim` releases the free pages inside
//! the heap, not only at its top. It walks the arenas, so it runs off the async threads and
//! only once a burst is over: when at least `BURST_BYTES` went out since the last trim and
//! the last second was quiet.

use crate::registry::Registry;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Output since the last trim that makes a trim worth it.
const BURST_BYTES: u64 = 16 << 20;
/// Output in one check interval below which the burst is over.
const QUIET_BYTES: u64 = 1 << 20;

pub async fn run(registry: Registry, stop: CancellationToken) {
    let out = || registry.stats().bytes_out.load(Ordering::Relaxed);
    let (mut at_trim, mut at_check) = (out(), out());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let now = out();
        let quiet = now - at_check < QUIET_BYTES;
        at_check = now;
        if quiet && now - at_trim >= BURST_BYTES {
            at_trim = now;
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks and madvises the allocator's own free memory; it is
    // thread-safe (it takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
