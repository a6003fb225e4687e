//! Logging on the real binary: files in log_dir rotated daily (at midnight, under a faked
//! clock) and pruned, flushed on exit; output moved by a reload; timestamps switchable for
//! journald; and never a message body, even at trace level.

use e2e::{Chatd, Client, wait_in_dir};
use std::net::SocketAddr;
use std::path::Path;

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

/// The address chatd logged into `file`.
fn addr_in(dir: &Path, name: &str) -> SocketAddr {
    wait_in_dir(dir, "the address in the log file", || {
        let text = read(dir, name);
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
    let addr = addr_in(logs, "chatd.2020-01-01.log");
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
