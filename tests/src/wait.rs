//! Waiting with a deadline: for a line on a stream of lines (a log, a child's stdout), for a
//! file descriptor to become readable, for a directory to change. Every wait blocks on the
//! event itself and gives up at [`DEADLINE`]; nothing here sleeps and looks again.

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::inotify;
use std::io::{BufRead, BufReader, Read};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single awaited event may take before the test fails. Generous: CI machines
/// are slow and shared, and a passing test never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Lines arriving from elsewhere (a pipe read by a thread, a tracing writer): each is kept for
/// [`Lines::all`] and handed out once, in order, by the waits.
pub struct Lines {
    seen: Arc<Mutex<Vec<String>>>,
    // Behind a mutex only so that `&self` methods can take from it: a test waits on one
    // stream from one thread at a time.
    rx: Mutex<mpsc::Receiver<String>>,
    /// Who writes these lines, for failure messages ("chatd", "chatctl watch").
    source: &'static str,
}

/// The writing end of [`Lines`]; cheap to clone.
#[derive(Clone)]
pub struct LineSink {
    seen: Arc<Mutex<Vec<String>>>,
    tx: mpsc::Sender<String>,
}

impl LineSink {
    pub fn push(&self, line: String) {
        self.seen.lock().unwrap().push(line.clone());
        // Nobody waiting any more is fine: the lines are kept in `seen` all the same.
        let _ = self.tx.send(line);
    }
}

impl Lines {
    /// A new stream of lines from `source`, and its writing end. The stream ends when every
    /// sink is dropped.
    pub fn channel(source: &'static str) -> (LineSink, Lines) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = LineSink {
            seen: seen.clone(),
            tx,
        };
        let lines = Lines {
            seen,
            rx: Mutex::new(rx),
            source,
        };
        (sink, lines)
    }

    /// The lines of `r`, read by a thread of their own so that the writer never blocks on a
    /// full pipe.
    pub fn read_from(r: impl Read + Send + 'static, source: &'static str) -> Lines {
        let (sink, lines) = Lines::channel(source);
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                sink.push(line);
            }
        });
        lines
    }

    /// Every line so far, whether a wait has taken it or not.
    pub fn all(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The next line not yet taken.
    pub fn next_line(&self) -> String {
        self.next_matching("a line", |_| true)
    }

    /// Takes lines until one contains `needle`, and returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        self.next_matching(&format!("{needle:?}"), |l| l.contains(needle))
    }

    /// Like [`Lines::wait_for`], but also finds a line that an earlier wait took already.
    pub fn find_or_wait(&self, needle: &str) -> String {
        match self.all().into_iter().find(|l| l.contains(needle)) {
            Some(line) => line,
            None => self.wait_for(needle),
        }
    }

    /// The lines not taken yet, up to the end of the stream.
    pub fn rest(&self) -> Vec<String> {
        let rx = self.rx.lock().unwrap();
        let end = Instant::now() + DEADLINE;
        let mut rest = Vec::new();
        loop {
            match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => return rest,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{} kept its output open past {DEADLINE:?}", self.source)
                }
            }
        }
    }

    fn next_matching(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let rx = self.rx.lock().unwrap();
        let end = Instant::now() + DEADLINE;
        loop {
            let why = match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => format!("not within {DEADLINE:?}"),
                Err(RecvTimeoutError::Disconnected) => "and its output has ended".to_owned(),
            };
            panic!(
                "{} printed no {what} {why}; its output so far:\n{}",
                self.source,
                self.all().join("\n")
            );
        }
    }
}

/// Blocks until `fd` is readable or `timeout` has passed; true when readable.
pub fn wait_readable(fd: impl AsFd, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        let left = Timespec::try_from(end.saturating_duration_since(Instant::now()))
            .expect("a deadline in range");
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&left)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// Waits until `probe` finds what it looks for in the directory `dir` (a log file appearing or
/// growing, say), looking again each time inotify reports a change there, and fails the test
/// with `what` past the deadline.
pub fn wait_in_dir<T>(dir: &Path, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .expect("inotify_init1");
    let mask = inotify::WatchFlags::CREATE
        | inotify::WatchFlags::MODIFY
        | inotify::WatchFlags::CLOSE_WRITE
        | inotify::WatchFlags::MOVED_TO;
    // Watching before the first probe: a change between the two still wakes us.
    inotify::add_watch(&fd, dir, mask).unwrap_or_else(|e| panic!("watch {}: {e}", dir.display()));
    let mut buf = [MaybeUninit::uninit(); 4096];
    loop {
        if let Some(v) = probe() {
            return v;
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            wait_readable(&fd, left),
            "timed out waiting for {what} in {}",
            dir.display()
        );
        // Which file changed does not matter, the probe looks again: just drain the events.
        let mut events = inotify::Reader::new(&fd, &mut buf);
        while events.next().is_ok() {}
    }
}
