//! chatctl against a daemon that is not to be trusted: a fake on a Unix socket that sends a
//! line of 200 MB, trickles its answer a byte at a time, never accepts the connection, or fills
//! its strings with terminal commands. chatctl must stay within its line cap and its one
//! deadline, and show what it prints without letting the terminal obey it.

mod common;

use common::{fake, hold, tmp};
use e2e::{Run, chatctl_at};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// chatctl's deadline for a whole exchange, as its help documents it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `chatctl --socket PATH ARGS...` to completion (within the harness's deadline) and
/// returns what it printed with its peak resident memory in KiB, which the kernel hands the
/// parent with the exit status (`wait4`).
// wait4 below reaps the child; std's `wait` cannot hand over the resource usage.
#[allow(clippy::zombie_processes)]
fn chatctl_peak(path: &Path, args: &[&str]) -> (Run, u64) {
    let mut child = Command::new(e2e::bin("chatctl"))
        .arg("--socket")
        .arg(path)
        .args(args)
        .env_remove(proto::admin::SOCKET_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    e2e::wait_pid_exit(child.id());
    let mut status = 0;
    // SAFETY: wait4 fills the status and the rusage we own; the child is ours and has
    // exited (it is a zombie until this call reaps it), so its pid names nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let run = Run {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        code,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (run, usage.ru_maxrss as u64)
}

#[test]
fn a_200_mb_line_is_refused_at_the_cap_in_bounded_memory() {
    let (_dir, path) = tmp();
    let t = fake(&path, |mut stream, _| {
        let chunk = vec![b'x'; 1 << 20];
        let _ = stream.write_all(br#"{"type":"status","server":""#);
        for _ in 0..200 {
            // chatctl hangs up at its cap: the rest has nowhere to go.
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"\"}\n");
    });
    let (out, peak_kib) = chatctl_peak(&path, &["status"]);
    t.join().unwrap();
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (3, ""),
        "{}",
        out.stderr.len()
    );
    assert_eq!(
        out.stderr,
        format!(
            "chatctl: cannot reach chatd at {}: it sent a line longer than 16 MiB, the most \
             chatctl reads in one line — is this chatd's admin socket?\n",
            path.display()
        )
    );
    eprintln!("chatctl's peak RSS against a 200 MB line: {peak_kib} KiB");
    assert!(peak_kib < 64 * 1024, "chatctl peaked at {peak_kib} KiB");
}

#[test]
fn watch_skips_an_over_long_line_and_goes_on() {
    let (_dir, path) = tmp();
    let t = fake(&path, |mut stream, _| {
        stream.write_all(b"{\"type\":\"watching\"}\n").unwrap();
        let chunk = vec![b' '; 1 << 20];
        stream.write_all(b"{\"type\":\"event\",\"pad\":\"").unwrap();
        for _ in 0..17 {
            stream.write_all(&chunk).unwrap();
        }
        stream
            .write_all(
                b"\"}\n{\"type\":\"event\",\"ts\":0,\"event\":\"connect\",\"peer\":\"p:1\"}\n",
            )
            .unwrap();
    });
    let (out, peak_kib) = chatctl_peak(&path, &["watch"]);
    t.join().unwrap();
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "1970-01-01T00:00:00.000Z connect peer=p:1\n");
    assert_eq!(
        out.stderr,
        format!(
            "chatctl: skipped a line from chatd longer than 16 MiB\n\
             chatctl: cannot reach chatd at {}: chatd closed the connection (stopped?)\n",
            path.display()
        )
    );
    assert!(peak_kib < 64 * 1024, "chatctl peaked at {peak_kib} KiB");
}

#[test]
fn an_answer_that_trickles_in_ends_at_one_deadline() {
    let (_dir, path) = tmp();
    let t = fake(&path, |mut stream, _| {
        let _ = stream.write_all(br#"{"type":"status","server":""#);
        // A byte every 50 ms, for ever: each read returns long before any per-read timeout.
        // The pause is the attack being replayed, not a wait for something to happen.
        while stream.write_all(b"x").is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let started = Instant::now();
    let out = chatctl_at(&path, &["status"]);
    let took = started.elapsed();
    t.join().unwrap();
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "chatctl: cannot reach chatd at {}: no answer within 5s — chatd is stuck, or this \
             is not its socket\n",
            path.display()
        )
    );
    assert!(took >= ANSWER_TIMEOUT, "gave up early, after {took:?}");
}

/// A socket that listens with no room for connections waiting to be accepted, and never
/// accepts: the first `connect` takes the one place, and every later one waits.
fn listening_but_never_accepting(path: &Path) -> (UnixListener, UnixStream) {
    use std::os::unix::ffi::OsStrExt as _;
    // SAFETY: plain socket calls on a descriptor we own from here on; `addr` is a zeroed
    // sockaddr_un (a valid value) whose path is copied in with room for its NUL.
    let listener = unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_bytes();
        assert!(bytes.len() < addr.sun_path.len(), "socket path too long");
        for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        let bound = libc::bind(fd, (&raw const addr).cast(), len);
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        assert_eq!(libc::listen(fd, 0), 0, "listen");
        UnixListener::from(owned)
    };
    let first = UnixStream::connect(path).unwrap();
    (listener, first)
}

#[test]
fn a_daemon_that_never_accepts_ends_at_the_same_deadline() {
    let (_dir, path) = tmp();
    let (_listener, _first) = listening_but_never_accepting(&path);
    let started = Instant::now();
    let out = chatctl_at(&path, &["status"]);
    let took = started.elapsed();
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "chatctl: cannot reach chatd at {}: the connection was not accepted within 5s — \
             chatd is stuck, or this is not its socket\n",
            path.display()
        )
    );
    assert!(took >= ANSWER_TIMEOUT, "gave up early, after {took:?}");
}

/// One fake daemon on its own path in `dir`, answering `reply` to chatctl's request.
fn answering(dir: &Path, name: &str, reply: String) -> (std::path::PathBuf, impl FnOnce()) {
    let path = dir.join(name);
    let t = fake(&path, move |mut stream, _| {
        stream.write_all(reply.as_bytes()).unwrap();
        hold(stream);
    });
    (path, move || t.join().unwrap())
}

/// True if `s` holds a character a terminal would obey.
fn obeyable(s: &str) -> bool {
    s.chars().any(|c| proto::text::is_control(c) && c != '\n')
}

#[test]
fn the_daemons_strings_reach_the_terminal_escaped() {
    let (dir, _) = tmp();
    // ESC [2J clears the screen; U+202E reverses what follows; U+009B is an 8-bit CSI.
    let session = serde_json::json!({
        "user": "\u{1b}[2Jeve\u{202e}", "peer": "\u{9b}31m", "connected_at": 0,
        "connected_ms": 0, "idle_ms": 0, "sent": 0, "received": 0, "queue": 0, "queue_max": 1
    });
    let users = format!(
        "{}\n",
        serde_json::json!({"type": "users", "users": [session]})
    );

    let (path, done) = answering(dir.path(), "table.sock", users.clone());
    let out = chatctl_at(&path, &["users"]);
    done();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!obeyable(&out.stdout), "{:?}", out.stdout);
    assert!(
        out.stdout.contains("\\u{1b}[2Jeve\\u{202e}  \\u{9b}31m"),
        "{}",
        out.stdout
    );

    let (path, done) = answering(dir.path(), "json.sock", users);
    let out = chatctl_at(&path, &["users", "--json"]);
    done();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!obeyable(&out.stdout), "{:?}", out.stdout);
    let back: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(back[0]["user"], "\u{1b}[2Jeve\u{202e}");

    let refusal = format!(
        "{}\n",
        serde_json::json!({"type": "error", "code": "forbidden", "message": "no\u{1b}[2J\u{2066}"})
    );
    let (path, done) = answering(dir.path(), "error.sock", refusal);
    let out = chatctl_at(&path, &["stats"]);
    done();
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr, "chatctl: no\\u{1b}[2J\\u{2066}\n");

    let event = "{\"type\":\"watching\"}\n\
                 {\"type\":\"event\",\"ts\":0,\"event\":\"login\",\"user\":\"x\\u001b[2J\",\"peer\":\"\u{202e}p\"}\n";
    let (path, done) = answering(dir.path(), "watch.sock", event.to_owned());
    let w = e2e::Running::start(
        {
            let mut c = Command::new(e2e::bin("chatctl"));
            c.arg("--socket").arg(&path).arg("watch");
            c
        },
        "chatctl watch",
    );
    assert_eq!(
        w.next_line(),
        "1970-01-01T00:00:00.000Z login   user=x\\u{1b}[2J peer=\\u{202e}p"
    );
    drop(w);
    done();
}
