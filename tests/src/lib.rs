//! The end-to-end harness: start the real binaries, talk to them over real sockets, and wait
//! for events (a line, a close, a log line, an exit) with a deadline instead of sleeping.
//!
//! Binaries are found next to the test executable (`target/<profile>/`), as ripgrep's tests
//! do: `CARGO_BIN_EXE_*` exists only for a package's own binaries. `cargo test --workspace`
//! builds them all first, because each binary's package has an integration test of its own.

mod admin;

pub use admin::{Run, Watch, chatctl_at, chatctl_with, copy_for_others, run_as, socket_dir};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long any single awaited event may take before the test fails. Generous: CI machines
/// are slow and shared, and a passing test never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Path of one of the workspace's binaries, built for the same profile as the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first (`cargo test --workspace` does)",
        path.display()
    );
    path
}

/// A running `chatd`, killed when dropped.
pub struct Chatd {
    child: Child,
    addrs: Vec<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
    log_rx: Mutex<mpsc::Receiver<String>>,
    /// The admin socket it serves.
    admin_socket: PathBuf,
    /// Holds the admin socket when the test did not choose a path: every daemon gets its own,
    /// so tests running in parallel never meet on the default path. Dropped after the child.
    _admin_dir: Option<tempfile::TempDir>,
}

impl Chatd {
    /// Starts chatd on a free loopback port (unless `args` has `--listen`) and waits until it
    /// says where it listens.
    pub fn start(args: &[&str]) -> Chatd {
        Chatd::start_with(args, |_| {})
    }

    /// Like [`Chatd::start`], with a hook to adjust the command (environment, say).
    ///
    /// Unless `args` has `--admin-socket`, the daemon's admin socket goes in a temp dir of its
    /// own (through `CHATD_ADMIN_SOCKET`, which `adjust` may still override).
    pub fn start_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> Chatd {
        let mut listen = Vec::new();
        if !args.contains(&"--listen") {
            listen.extend(["--listen", "127.0.0.1:0"]);
        }
        let admin = args
            .iter()
            .position(|a| *a == "--admin-socket")
            .map(|i| PathBuf::from(args[i + 1]));
        let mut d = Chatd::launch(&[&listen, args].concat(), admin, adjust);
        let expected = args.iter().filter(|a| **a == "--listen").count().max(1);
        while d.addrs.len() < expected {
            let line = d.wait_log("listening on ");
            let addr = line.rsplit("listening on ").next().unwrap().trim();
            d.addrs.push(
                addr.parse()
                    .unwrap_or_else(|_| panic!("bad address in {line:?}")),
            );
        }
        d
    }

    /// Spawns chatd with its stderr collected. The admin socket is `admin`, or one in a temp
    /// dir of its own (through `CHATD_ADMIN_SOCKET`, which `adjust` may still override).
    fn launch(args: &[&str], admin: Option<PathBuf>, adjust: impl FnOnce(&mut Command)) -> Chatd {
        let (admin_socket, admin_dir) = match admin {
            Some(path) => (path, None),
            None => {
                let dir = socket_dir();
                (dir.path().join("admin.sock"), Some(dir))
            }
        };
        let mut cmd = Command::new(bin("chatd"));
        cmd.args(args)
            .env("RUST_LOG", "info")
            .env("CHATD_ADMIN_SOCKET", &admin_socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        adjust(&mut cmd);
        let mut child = cmd.spawn().expect("spawn chatd");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Chatd {
            child,
            addrs: Vec::new(),
            log,
            log_rx: Mutex::new(rx),
            admin_socket,
            _admin_dir: admin_dir,
        }
    }

    /// Starts chatd without waiting for anything: for runs that log to files, or that are
    /// expected to fail. Set the addresses with [`Chatd::set_addrs`] once known.
    /// The admin socket gets a private temp dir as with [`Chatd::start_with`].
    pub fn spawn_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> Chatd {
        Chatd::launch(args, None, adjust)
    }

    pub fn set_addrs(&mut self, addrs: Vec<SocketAddr>) {
        self.addrs = addrs;
    }

    /// The first listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin socket this daemon serves.
    pub fn admin_socket(&self) -> &Path {
        &self.admin_socket
    }

    /// Runs the real `chatctl` against this daemon's admin socket.
    pub fn chatctl(&self, args: &[&str]) -> Run {
        chatctl_at(&self.admin_socket, args)
    }

    /// Every stderr line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits for the next stderr line containing `needle` and returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        let rx = self.log_rx.lock().unwrap();
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "chatd never logged {needle:?}; log so far:\n{}",
                    self.log().join("\n")
                ),
            }
        }
    }

    /// Like [`Chatd::wait_log`], but also finds a line logged before the call (one that an
    /// earlier `wait_log` read past).
    pub fn wait_logged(&self, needle: &str) -> String {
        if let Some(line) = self.log().into_iter().find(|l| l.contains(needle)) {
            return line;
        }
        self.wait_log(needle)
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, ...).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_child(&mut self.child)
    }
}

impl Drop for Chatd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, failing the test past the deadline.
pub fn wait_child(child: &mut Child) -> ExitStatus {
    // A helper thread blocks in waitid(WNOWAIT) until the child has exited, without reaping
    // it, and says so on a channel; this thread waits on that event with the deadline and
    // then reaps the child through std, which keeps its own bookkeeping right.
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: waitid only writes into the zeroed siginfo_t we own; WNOWAIT leaves the
        // child for std's wait() below.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        let _ = tx.send(rc);
    });
    if rx.recv_timeout(DEADLINE).is_err() {
        panic!("process {pid} did not exit in {DEADLINE:?}");
    }
    child.wait().expect("reap the child")
}

/// Runs a workspace binary to completion (within the deadline): exit code, stdout, stderr.
pub fn run_bin(
    name: &str,
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> (i32, String, String) {
    let mut cmd = Command::new(bin(name));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    adjust(&mut cmd);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let (status, out, err) = collect(child);
    (status.code().unwrap_or(-1), out, err)
}

/// Waits for `child` (within the deadline) while reading whichever of its stdout and stderr
/// are piped and not taken yet, each on a thread so neither pipe can fill and stall it:
/// exit status, stdout, stderr (empty for a pipe not read here).
pub fn collect(mut child: Child) -> (ExitStatus, String, String) {
    fn drain(r: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_child(&mut child);
    (
        status,
        out.join().expect("stdout reader"),
        err.join().expect("stderr reader"),
    )
}

/// Waits until `probe` finds what it looks for in the directory `dir` (a log file appearing or
/// growing, say), checking again each time inotify reports a change there, and fails the test
/// with `what` past the deadline.
pub fn wait_in_dir<T>(dir: &Path, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    // SAFETY: plain system calls on a descriptor this function owns and closes; the path is
    // a NUL-terminated copy.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(
        fd >= 0,
        "inotify_init1: {}",
        std::io::Error::last_os_error()
    );
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("a path without NUL");
    let mask = libc::IN_CREATE | libc::IN_MODIFY | libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO;
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) };
    assert!(
        wd >= 0,
        "watch {}: {}",
        dir.display(),
        std::io::Error::last_os_error()
    );
    loop {
        if let Some(v) = probe() {
            return v;
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}");
        wait_readable(&fd, left);
        // Drain the events: which file changed does not matter, the probe looks again.
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a buffer we own, non-blocking after poll said readable.
        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }
}

/// Waits for a process that is not our child (a daemon that forked away) to exit, on its
/// pidfd, and fails the test past the deadline.
pub fn wait_pid_exit(pid: u32) {
    // SAFETY: pidfd_open has no memory arguments; the descriptor is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        // Already gone (ESRCH) is what we were waiting for.
        let err = std::io::Error::last_os_error();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::ESRCH),
            "pidfd_open({pid}): {err}"
        );
        return;
    }
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    assert!(
        wait_readable(&fd, DEADLINE),
        "process {pid} did not exit in {DEADLINE:?}"
    );
}

/// poll(2) for readability with a timeout; true when readable.
fn wait_readable(fd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one pollfd we own.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// A raw protocol client over TCP.
pub struct Client {
    reader: tokio::io::BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Client::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        let (r, w) = stream.into_split();
        Client {
            reader: tokio::io::BufReader::new(r),
            writer: w,
        }
    }

    /// Connects and logs in as `name`, returning the `ok` reply.
    pub async fn login(addr: SocketAddr, name: &str) -> Client {
        let mut c = Client::connect(addr).await;
        c.send(&format!(r#"{{"type":"login","from":"{name}"}}"#))
            .await;
        let reply = c.recv().await;
        assert_eq!(reply["type"], "ok", "login as {name} failed: {reply}");
        c
    }

    /// Sends one line; a `\n` is added.
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write to chatd");
    }

    /// Closes the sending side (the server sees EOF).
    pub async fn shutdown_write(&mut self) {
        self.writer.shutdown().await.expect("shutdown");
    }

    /// The next line from the server, raw, or `None` at EOF.
    pub async fn recv_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(DEADLINE, self.reader.read_line(&mut line))
            .await
            .expect("no line from chatd before the deadline")
            .expect("read from chatd");
        (n > 0).then_some(line)
    }

    /// The next line within `wait`, or `None` if none came by then: for waits where "not
    /// yet" is an answer the test acts on, not a failure.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let mut line = String::new();
        match tokio::time::timeout(wait, self.reader.read_line(&mut line)).await {
            Err(_) => None,
            Ok(r) => {
                assert!(
                    r.expect("read from chatd") > 0,
                    "chatd closed the connection"
                );
                Some(
                    serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}")),
                )
            }
        }
    }

    /// The next line, parsed as JSON.
    pub async fn recv(&mut self) -> Value {
        let line = self.recv_line().await.expect("chatd closed the connection");
        assert!(line.ends_with('\n'), "unterminated line {line:?}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    /// The next line with `ts` checked to be a plausible timestamp and then removed, so the
    /// rest can be compared exactly.
    pub async fn recv_no_ts(&mut self) -> Value {
        let mut v = self.recv().await;
        if let Some(obj) = v.as_object_mut()
            && let Some(ts) = obj.remove("ts")
        {
            let ts = ts.as_u64().expect("ts is an integer");
            assert!(
                ts > 1_700_000_000_000,
                "ts {ts} is not milliseconds since the epoch"
            );
        }
        v
    }

    /// Asserts that the next line equals `expected` (ignoring `ts`).
    pub async fn expect(&mut self, expected: Value) {
        assert_eq!(self.recv_no_ts().await, expected);
    }

    /// Asserts the server closes the connection next (after any lines it still sends, which
    /// are returned).
    pub async fn expect_closed(&mut self) -> Vec<Value> {
        let mut rest = Vec::new();
        while let Some(line) = self.recv_line().await {
            rest.push(
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}")),
            );
        }
        rest
    }

    /// Proves nothing else is pending: a ping must be answered next.
    pub async fn expect_nothing_pending(&mut self) {
        self.send(r#"{"type":"ping","id":"sync"}"#).await;
        let v = self.recv().await;
        assert_eq!(
            v,
            serde_json::json!({"type":"ok","id":"sync"}),
            "unexpected line before the ping reply"
        );
    }
}
