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
//!
//! The `#[global_allocator]` itself is declared in `main.rs`: the library does not impose an
//! allocator on programs that embed it.

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (v3, the one libmimalloc-sys builds by
/// default; the `extended` bindings do not name it). A test checks that this index still
/// holds the option's default of 1000 ms.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies chatd's allocator settings; call before the runtime starts.
pub fn configure() {
    // SAFETY: setting an option is a plain store into mimalloc's option table; purge_delay is
    // read each time pages are freed, so changing it at any time is allowed.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

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
