//! The accept loop every listener shares (chat over TCP, the admin channel's Unix socket):
//! accept until stopped, hand each connection on, and back off instead of spinning when
//! accepting fails for a reason that is not one connection's.
//!
//! Running out of file descriptors is the one such failure chatd plans for. Every client is a
//! descriptor, and when `RLIMIT_NOFILE` is lower than `max_clients` needs, accepts used to
//! fail with EMFILE: new clients got silence instead of `server_full`, and the admin socket,
//! sharing the same limit, stopped answering. So:
//!
//! - At start, [`raise_fd_limit`] lifts the soft limit to the hard one (`main` then warns when
//!   even that is less than [`fds_needed`]).
//! - The top [`reserve`] descriptors are kept from chat sessions: the chat listener refuses
//!   with `server_full` a connection whose descriptor lands there (see [`headroom`]; the
//!   kernel always hands out the lowest free number, so a high one means the low ones are all
//!   taken). What is left above is for the refusals themselves, the admin channel, log files.
//! - One spare descriptor (on `/dev/null`) is held open. When an accept fails with EMFILE or
//!   ENFILE anyway, the loop closes the spare and accepts again at once, so the connection is
//!   taken (and a chat one refused with a word, an admin one served) instead of waiting in the
//!   backlog; the spare is opened again as soon as a descriptor is free.

use std::fs::File;
use std::future::poll_fn;
use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A listening socket, as far as the loop needs it.
pub trait Accept {
    type Stream;
    type Addr;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Stream, Self::Addr)>>;
}

impl Accept for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Stream, Self::Addr)>> {
        tokio::net::TcpListener::poll_accept(self, cx)
    }
}

impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Stream, Self::Addr)>> {
        tokio::net::UnixListener::poll_accept(self, cx)
    }
}

/// Accepts on `listener` until `stop` is cancelled, giving each connection to `on_accept`
/// (which must not wait: spawn). `what` names the listener in the log.
pub async fn run<L: Accept>(
    listener: &L,
    what: &str,
    stop: &CancellationToken,
    on_accept: impl FnMut(L::Stream, L::Addr),
) {
    run_with(listener, what, stop, &SPARE, on_accept).await
}

/// [`run`] with its spare descriptor given, for tests.
async fn run_with<L: Accept>(
    listener: &L,
    what: &str,
    stop: &CancellationToken,
    spare: &Spare,
    mut on_accept: impl FnMut(L::Stream, L::Addr),
) {
    spare.refill();
    let mut backoff = BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = poll_fn(|cx| listener.poll_accept(cx)) => r,
        };
        match accepted {
            Ok((stream, addr)) => {
                backoff = BACKOFF_MIN;
                on_accept(stream, addr);
                spare.refill();
            }
            Err(e) if is_per_connection(&e) => {}
            // The connection is taken on the spare's descriptor at once, rather than left
            // waiting in silence for one to be free.
            Err(e) if is_out_of_descriptors(&e) && spare.release() => {
                debug!(error = %e, "{what}: out of descriptors; accepting on the spare one");
            }
            Err(e) => {
                error!(error = %e, retry_in = ?backoff, "{what}: accept failed");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Errors that concern one connection only (it was reset before we took it).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// The process (EMFILE) or the system (ENFILE) has no descriptor left.
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// One descriptor held open to be given up when an accept finds none left.
struct Spare(Mutex<Option<File>>);

/// The spare every accept loop shares: whichever runs out first uses it.
static SPARE: Spare = Spare(Mutex::new(None));

impl Spare {
    fn held(&self) -> std::sync::MutexGuard<'_, Option<File>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the spare again if it was given up; fails quietly while no descriptor is free
    /// (one open attempt per accept, and only then).
    fn refill(&self) {
        let mut held = self.held();
        if held.is_none() {
            *held = File::open("/dev/null").ok();
        }
    }

    /// Closes the spare, freeing its descriptor; false if it was not held.
    fn release(&self) -> bool {
        self.held().take().is_some()
    }
}

/// Descriptors chatd needs besides one per chat client: listeners, the admin socket and its
/// connections, refusals in flight, log files, the runtime's own (epoll, eventfd, signals).
pub const FD_OVERHEAD: u64 = 128;

/// Descriptors at the top of the limit kept from chat sessions, at most (a quarter of the
/// limit when that is less, so that a small limit still serves some clients).
pub const FD_RESERVE: u64 = 100;

/// The soft `RLIMIT_NOFILE` in force, once read (0 until then).
static FD_LIMIT: AtomicU64 = AtomicU64::new(0);

/// `RLIMIT_NOFILE`, soft and hard, as [`raise_fd_limit`] found and left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit before it was raised.
    pub was: u64,
    /// The soft limit now in force.
    pub soft: u64,
    pub hard: u64,
}

fn getrlimit() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `lim`, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

impl FdLimit {
    /// The limit in force, as it is.
    pub fn now() -> io::Result<FdLimit> {
        let lim = getrlimit()?;
        Ok(FdLimit {
            was: lim.rlim_cur,
            soft: lim.rlim_cur,
            hard: lim.rlim_max,
        })
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (call once, at start) and remembers
/// the result for [`headroom`]. A failure to raise leaves the soft limit as it was.
pub fn raise_fd_limit() -> io::Result<FdLimit> {
    let mut lim = getrlimit()?;
    let was = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit that lives across the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    FD_LIMIT.store(lim.rlim_cur, Ordering::Relaxed);
    Ok(FdLimit {
        was,
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}

/// The soft `RLIMIT_NOFILE` in force.
pub fn fd_limit() -> u64 {
    match FD_LIMIT.load(Ordering::Relaxed) {
        0 => {
            // Not raised (chatd as a library, in tests): whatever the process has.
            let soft = getrlimit().map_or(u64::MAX, |l| l.rlim_cur);
            FD_LIMIT.store(soft, Ordering::Relaxed);
            soft
        }
        soft => soft,
    }
}

/// Descriptors a server with `max_clients` needs: one a client and [`FD_OVERHEAD`].
pub fn fds_needed(max_clients: usize) -> u64 {
    (max_clients as u64).saturating_add(FD_OVERHEAD)
}

/// Descriptors kept from chat sessions at the top of the limit.
pub fn reserve() -> u64 {
    FD_RESERVE.min(fd_limit() / 4)
}

/// How many descriptors are left above `fd`, a descriptor just accepted: since the kernel
/// gives out the lowest free number, at least every one below it is taken.
pub fn headroom(fd: RawFd) -> u64 {
    let fd = u64::try_from(fd).unwrap_or(0);
    fd_limit().saturating_sub(fd.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A listener that answers each accept with the next of a script (a stream is a number),
    /// and waits for ever once it is played.
    struct Script(Mutex<VecDeque<io::Result<u32>>>);

    impl Script {
        fn new(script: Vec<io::Result<u32>>) -> Script {
            Script(Mutex::new(script.into()))
        }
    }

    impl Accept for Script {
        type Stream = u32;
        type Addr = ();
        fn poll_accept(&self, _: &mut Context<'_>) -> Poll<io::Result<(u32, ())>> {
            match self.0.lock().unwrap().pop_front() {
                Some(r) => Poll::Ready(r.map(|s| (s, ()))),
                None => Poll::Pending,
            }
        }
    }

    fn emfile() -> io::Result<u32> {
        Err(io::Error::from_raw_os_error(libc::EMFILE))
    }

    /// Plays `script` until `want` streams were accepted: what was accepted, and how long
    /// (paused) time it took.
    async fn play(
        script: Vec<io::Result<u32>>,
        spare: &Spare,
        want: usize,
    ) -> (Vec<u32>, Duration) {
        let listener = Script::new(script);
        let stop = CancellationToken::new();
        let began = tokio::time::Instant::now();
        let mut got = Vec::new();
        run_with(&listener, "test", &stop, spare, |s, ()| {
            got.push(s);
            if got.len() == want {
                stop.cancel();
            }
        })
        .await;
        (got, began.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_descriptors_the_spare_is_given_up_to_accept_at_once_then_taken_again() {
        let spare = Spare(Mutex::new(None));
        let (got, took) = play(vec![emfile(), Ok(1)], &spare, 1).await;
        assert_eq!((got, took), (vec![1], Duration::ZERO));
        assert!(spare.held().is_some(), "the spare was not opened again");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_spare_the_loop_backs_off_instead_of_spinning() {
        let spare = Spare(Mutex::new(None));
        let script = vec![emfile(), emfile(), emfile(), Ok(7)];
        let (got, took) = play(script, &spare, 1).await;
        // The first on the spare, then 10 ms and 20 ms of back-off.
        assert_eq!((got, took), (vec![7], BACKOFF_MIN * 3));
    }

    #[test]
    fn the_headroom_is_what_is_left_above_a_descriptor() {
        let limit = fd_limit();
        assert_eq!(headroom((limit - 1) as RawFd), 0);
        assert_eq!(headroom(3), limit - 4);
        assert_eq!(reserve(), FD_RESERVE.min(limit / 4));
        assert_eq!(fds_needed(10_000), 10_128);
    }
}
