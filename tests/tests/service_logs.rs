//! Logging on the real binary: files in log_dir rotated daily (at midnight, under a faked
//! clock) and by size, and pruned, flushed on exit; a stderr nobody reads never slowing the
//! chat; output moved by a reload; timestamps switchable for journald; and never a message
//! body, even at trace level.

use e2e::{Chatd, Client, Lines, wait_in_dir};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// libfaketime from Debian's `faketime` package (.ci/run installs it).
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

fn read_all(dir: &Path) -> String {
    files(dir).iter().map(|f| read(dir, f)).collect()
}

/// The address chatd logged into one of the files in `dir`.
fn addr_in(dir: &Path) -> SocketAddr {
    wait_in_dir(dir, "the address in a log file", || {
        let text = read_all(dir);
        let line = text.lines().find(|l| l.contains("listening on "))?;
        line.rsplit("listening on ").next()?.trim().parse().ok()
    })
}

#[test]
#[ignore = "needs Debian's faketime; CI installs it and runs --ignored"]
fn log_files_rotate_at_midnight_are_pruned_and_flushed_on_exit() {
    assert!(
        Path::new(FAKETIME_LIB).exists(),
        "{FAKETIME_LIB} missing: apt-get install faketime"
    );
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    for old in [
        "chatd.2019-12-01.log",
        "chatd.2019-12-02.log",
        "chatd.2019-12-03.log",
    ] {
        std::fs::write(logs.join(old), "old\n").unwrap();
    }
    let mut d = Chatd::spawn_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-dir",
            logs.to_str().unwrap(),
            "--log-max-files",
            "2",
        ],
        |c| {
            // Two seconds before midnight; the monotonic clock stays real for timers.
            c.env("LD_PRELOAD", FAKETIME_LIB)
                .env("FAKETIME", "@2020-01-01 23:59:58")
                .env("DONT_FAKE_MONOTONIC", "1");
        },
    );
    let addr = addr_in(logs);
    assert!(read(logs, "chatd.2020-01-01.log").contains("listening on "));
    d.set_addrs(vec![addr]);
    // Before any signal: the "listening on" line comes before chatd watches for them.
    d.wait_ready();
    assert_eq!(d.log(), Vec::<String>::new(), "logs went to stderr too");
    // Each probe makes a connection, which logs a line; one after midnight opens the new
    // day's file.
    wait_in_dir(logs, "a log line after midnight", || {
        drop(std::net::TcpStream::connect(addr));
        read(logs, "chatd.2020-01-02.log")
            .contains("connected")
            .then_some(())
    });
    d.signal("TERM");
    assert_eq!(d.wait_exit().code(), Some(0));
    // At most two files are kept: the old ones went at the rollover.
    assert_eq!(
        files(logs),
        ["chatd.2020-01-01.log", "chatd.2020-01-02.log"]
    );
    let today = read(logs, "chatd.2020-01-02.log");
    assert!(
        today.lines().last().unwrap().ends_with("INFO stopped"),
        "{today}"
    );
}

#[test]
fn log_files_are_capped_by_size_and_only_the_newest_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    let cap = 4096;
    let mut d = Chatd::spawn_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-dir",
            logs.to_str().unwrap(),
            "--log-max-bytes",
            &cap.to_string(),
            "--log-max-files",
            "3",
        ],
        |_| {},
    );
    let addr = addr_in(logs);
    d.set_addrs(vec![addr]);
    d.wait_ready();
    // Each connection logs three lines (connected, its error reply, disconnected): about
    // a dozen connections fill a file. Enough for the size cap to open a sixth file.
    let seq = |name: &str| name.split('.').nth(2).and_then(|n| n.parse::<u32>().ok());
    wait_in_dir(logs, "a sixth log file of the day", || {
        for _ in 0..10 {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"x\n").unwrap();
        }
        files(logs).iter().any(|f| seq(f) >= Some(5)).then_some(())
    });
    d.signal("TERM");
    assert_eq!(d.wait_exit().code(), Some(0));
    let kept = files(logs);
    assert_eq!(kept.len(), 3, "{kept:?}");
    // The newest three of one day, in a row, each within the cap (a file over it would hold
    // a single line longer than the cap: none is, here).
    let first = seq(&kept[0]).unwrap();
    assert!(first >= 3, "{kept:?}");
    let day = &kept[0][..16];
    assert_eq!(
        kept,
        (first..first + 3)
            .map(|n| format!("{day}.{n}.log"))
            .collect::<Vec<_>>()
    );
    for (i, name) in kept.iter().enumerate() {
        let len = std::fs::metadata(logs.join(name)).unwrap().len();
        assert!(
            len <= cap,
            "{name} holds {len} bytes, over the cap of {cap}"
        );
        // The cap closed the older ones nearly full; the newest is whatever came last.
        assert!(i == 2 || len > cap / 2, "{name} holds only {len} bytes");
    }
    let last = read(logs, &kept[2]);
    assert!(last.trim_end().ends_with("INFO stopped"), "{last}");
}

/// chatd's process with stderr a pipe the test reads only when it chooses; killed when
/// dropped.
struct Unread {
    child: Child,
    stderr: Option<BufReader<std::process::ChildStderr>>,
    _dir: tempfile::TempDir,
}

impl Drop for Unread {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chatd and reads its stderr up to the line that says where it listens, then
/// leaves the pipe alone.
fn start_unread(args: &[&str]) -> (Unread, SocketAddr) {
    let dir = e2e::socket_dir();
    let mut child = Command::new(e2e::bin("chatd"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--admin-socket")
        .arg(dir.path().join("admin.sock"))
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "chatd exited");
        if let Some((_, a)) = line.split_once("listening on ") {
            break a.trim().parse().unwrap();
        }
    };
    let d = Unread {
        child,
        stderr: Some(stderr),
        _dir: dir,
    };
    (d, addr)
}

/// Connections that each send a few bad lines and hang up, `at_once` at a time, until `stop`:
/// a few log lines each (connected, error replies, disconnected) however chatd counts
/// requests. Every connection gives up after a second, so a stalled chatd stalls nothing here.
async fn flood(addr: SocketAddr, at_once: usize, stop: Arc<AtomicBool>) -> u64 {
    let mut made = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..at_once {
            batch.spawn(tokio::time::timeout(Duration::from_secs(1), async move {
                let mut c = tokio::net::TcpStream::connect(addr).await.ok()?;
                c.write_all(b"x\nx\nx\nx\nx\nx\n").await.ok()?;
                c.shutdown().await.ok()?;
                let mut sink = Vec::new();
                c.read_to_end(&mut sink).await.ok()
            }));
        }
        made += batch.join_all().await.len() as u64;
    }
    made
}

/// A synchronous stderr whose reader was slower than chatd (a journal that falls behind)
/// used to stall every worker: a logged-in user's ping went unanswered for seconds. Now the
/// pipe fills, lines are dropped and counted, and the chat goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_reads_never_delays_a_ping() {
    let (mut d, addr) = start_unread(&["--rate", "0", "--log-level", "debug"]);
    let mut bystander = Client::login(addr, "bystander").await;
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = tokio::spawn(flood(addr, 16, stop.clone()));
    let pipe = || rustix::io::ioctl_fionread(d.stderr.as_ref().unwrap().get_ref()).unwrap();
    let (began, mut full_since) = (Instant::now(), None);
    let mut rtts = Vec::new();
    // Pings until the pipe has been full for two seconds (or ten have passed).
    while began.elapsed() < Duration::from_secs(10)
        && full_since.is_none_or(|t: Instant| t.elapsed() < Duration::from_secs(2))
    {
        let sent = Instant::now();
        bystander.send(r#"{"type":"ping"}"#).await;
        let reply = bystander.recv_within(Duration::from_millis(100)).await;
        let rtt = sent.elapsed();
        assert_eq!(
            reply.map(|r| r["type"].clone()),
            Some("ok".into()),
            "no answer to a ping within 100 ms, {:?} into the flood",
            began.elapsed()
        );
        rtts.push(rtt);
        // 64 KiB, less what our reader took in its buffer.
        if full_since.is_none() && pipe() >= 56 * 1024 {
            full_since = Some(Instant::now());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let connections = flooder.await.unwrap();
    assert!(
        full_since.is_some(),
        "the pipe never filled ({} bytes)",
        pipe()
    );
    rtts.sort();
    let (p50, p99, max) = (
        rtts[rtts.len() / 2],
        rtts[rtts.len() * 99 / 100],
        rtts[rtts.len() - 1],
    );
    eprintln!(
        "{} pings over {connections} flooding connections: median {p50:?}, p99 {p99:?}, max {max:?}",
        rtts.len()
    );
    // Reading again, the queue drains and the count of what was dropped comes out.
    let log = Lines::read_from(d.stderr.take().unwrap(), "chatd");
    let line = log.wait_for("log lines dropped");
    let dropped: u64 = line
        .split("dropped=")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(dropped > 0, "{line}");
    assert!(line.contains(" WARN "), "{line}");
}

/// A directory that passes --check-config (its parent is a directory) but where no file can
/// be made is refused at start with exit 2 (and by a reload: see service_signals.rs).
#[test]
fn a_log_dir_where_no_file_can_be_made_is_refused_at_start() {
    let unusable = "/proc/chatd-e2e-logs";
    let expected = format!(
        "log_dir: cannot write log files in {unusable}: No such file or directory (os error 2); create it writable by chatd's user"
    );
    let (code, _, err) = e2e::run_bin(
        "chatd",
        &["--listen", "127.0.0.1:0", "--log-dir", unusable],
        |_| {},
    );
    assert_eq!((code, err), (2, format!("chatd: {expected}\n")));
}

#[tokio::test]
async fn reload_moves_logs_from_stderr_to_files_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cfg = dir.path().join("chatd.toml");
    std::fs::write(&cfg, "").unwrap();
    let d = Chatd::start(&["--config", cfg.to_str().unwrap()]);
    std::fs::write(&cfg, format!("log_dir = {:?}\n", logs.to_str().unwrap())).unwrap();
    d.signal("HUP");
    // The changes themselves are logged where the new config sends logs.
    d.wait_log("SIGHUP received");
    let in_file = |needle: &str| {
        wait_in_dir(&logs, needle, || {
            let name = files(&logs).into_iter().next()?;
            read(&logs, &name).contains(needle).then_some(())
        })
    };
    in_file("configuration reloaded");
    assert!(read_all(&logs).contains("key=log_dir"));
    let mut c = Client::login(d.addr(), "alice").await;
    in_file("logged in");
    assert!(
        !d.log().iter().any(|l| l.contains("logged in")),
        "still on stderr"
    );
    std::fs::write(&cfg, "").unwrap();
    d.signal("HUP");
    d.wait_log("configuration reloaded");
    c.expect_nothing_pending().await;
}

#[tokio::test]
async fn timestamps_can_be_left_to_journald() {
    let d = Chatd::start(&["--log-timestamps", "false"]);
    let first = &d.log()[0];
    assert!(first.starts_with(" INFO "), "{first:?}");
    let d = Chatd::start(&[]);
    let first = &d.log()[0];
    assert!(
        first.starts_with("20") && first.contains("Z  INFO "),
        "{first:?}"
    );
}

#[tokio::test]
async fn no_message_body_is_ever_logged() {
    let mut d = Chatd::start(&["--log-level", "trace"]);
    let mut alice = Client::login(d.addr(), "alice").await;
    let mut bob = Client::login(d.addr(), "bob").await;
    assert_eq!(alice.recv().await["type"], "join");
    let secret = "body-7f3a9c-never-logged";
    alice
        .send(&format!(r#"{{"type":"msg","to":"bob","body":"{secret}"}}"#))
        .await;
    alice.recv().await;
    alice
        .send(&format!(r#"{{"type":"msg","to":"*","body":"{secret}"}}"#))
        .await;
    alice.recv().await;
    assert_eq!(bob.recv().await["body"], secret);
    assert_eq!(bob.recv().await["body"], secret);
    d.signal("TERM");
    d.wait_exit();
    let log = d.log().join("\n");
    assert!(log.contains("logged in"), "trace log is empty?");
    assert!(!log.contains(secret), "a message body reached the log");
}

/// Device and inode of a socket, as systemd writes them into JOURNAL_STREAM.
trait SocketId {
    fn metadata_of_socket(&self) -> (u64, u64);
}

impl SocketId for std::os::unix::net::UnixStream {
    fn metadata_of_socket(&self) -> (u64, u64) {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(format!("/proc/self/fd/{}", self.as_raw_fd())).unwrap();
        (m.dev(), m.ino())
    }
}

#[test]
fn no_timestamps_of_our_own_on_the_journal_stream() {
    // Stand in for journald: JOURNAL_STREAM names chatd's stderr, here one end of a socket pair.
    let d = Chatd::start_with(&[], |c| {
        c.env("JOURNAL_STREAM", "placeholder");
    });
    assert!(
        d.log()[0].starts_with("20"),
        "a wrong JOURNAL_STREAM must not count"
    );
    let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    let meta = w.metadata_of_socket();
    let stream = format!("{}:{}", meta.0, meta.1);
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.sock");
    let mut child = std::process::Command::new(e2e::bin("chatd"))
        .args(["--listen", "127.0.0.1:0", "--config", "/dev/null"])
        .arg("--admin-socket")
        .arg(&admin)
        .env("JOURNAL_STREAM", stream)
        .stderr(std::os::fd::OwnedFd::from(w))
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(r), &mut first).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first.starts_with(" INFO "), "{first:?}");
}
