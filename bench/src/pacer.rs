//! The paced writer of the `latency` scenario: one OS thread sending every message on time.
//!
//! tokio's timer has a 1 ms resolution, so paced async senders wake together once per
//! millisecond and write their messages in a burst; at 20 000 msg/s that is 20 writes back to
//! back, and the last one's latency includes the other 19. A latency bench that makes its own
//! bursts measures itself. This thread instead sleeps (with a 1 us timer slack) until each
//! message's own due time, spreading the total rate evenly over time and round-robin over the
//! senders' sockets, and stamps each message just before its `write`. It writes through a
//! duplicate of each sender's socket; the async side keeps reading the replies.

use crate::client::now_ns;
use crate::wire::Wire;
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What the pacer saw.
#[derive(Default)]
pub struct PacerStats {
    /// Worst lateness of a write behind its due time, ns.
    pub max_lag: u64,
    /// Writes that found the socket buffer full and had to retry.
    pub stalls: u64,
}

/// Starts the pacer: `streams[k]` sends `per_sender` messages to `to[k]` on `wire`, all together at
/// `rate` messages per second, until done or `deadline`.
pub fn spawn(
    mut streams: Vec<TcpStream>,
    wire: Wire,
    to: Vec<String>,
    per_sender: u64,
    rate: f64,
    deadline: Instant,
) -> std::thread::JoinHandle<PacerStats> {
    std::thread::spawn(move || {
        // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
        let mut st = PacerStats::default();
        let p = streams.len() as u64;
        let start = Instant::now();
        let mut line = Vec::with_capacity(128);
        for g in 0..p * per_sender {
            let due = Duration::from_nanos((g as f64 * 1e9 / rate) as u64);
            let now = start.elapsed();
            if now < due {
                std::thread::sleep(due - now);
            } else {
                st.max_lag = st.max_lag.max((now - due).as_nanos() as u64);
            }
            if Instant::now() >= deadline {
                break;
            }
            let k = (g % p) as usize;
            line.clear();
            wire.msg(&mut line, &to[k], k as u32, g / p, now_ns(), 0);
            // The descriptor is non-blocking (it shares tokio's file description).
            let mut rest = &line[..];
            while !rest.is_empty() {
                match streams[k].write(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        st.stalls += 1;
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return st,
                }
            }
        }
        st
    })
}
