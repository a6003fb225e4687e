//! sd_notify as systemd would see it: a datagram socket the test binds and names in
//! NOTIFY_SOCKET (in a short temp dir: Unix socket paths are capped at 108 bytes).

use e2e::{Chatd, DEADLINE, run_bin};
use std::os::unix::net::UnixDatagram;

struct Manager {
    _dir: tempfile::TempDir,
    path: String,
    sock: UnixDatagram,
}

impl Manager {
    fn new() -> Manager {
        let dir = tempfile::Builder::new()
            .prefix("sdn")
            .tempdir_in("/tmp")
            .unwrap();
        let path = dir.path().join("n.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(DEADLINE)).unwrap();
        Manager {
            path: path.to_str().unwrap().to_owned(),
            _dir: dir,
            sock,
        }
    }

    /// The next notification, as its lines.
    fn next(&self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let n = self
            .sock
            .recv(&mut buf)
            .expect("no notification before the deadline");
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn ready_reloading_and_stopping_reach_the_service_manager() {
    let m = Manager::new();
    let mut d = Chatd::start_with(&[], |c| {
        c.env("NOTIFY_SOCKET", &m.path);
    });
    let ready = m.next();
    assert_eq!(ready[0], "READY=1");
    assert_eq!(ready[1], format!("STATUS=listening on {}", d.addr()));

    d.signal("HUP");
    let reloading = m.next();
    assert_eq!(reloading[0], "RELOADING=1");
    let usec: u64 = reloading[1]
        .strip_prefix("MONOTONIC_USEC=")
        .expect("MONOTONIC_USEC follows RELOADING")
        .parse()
        .unwrap();
    assert!(usec > 0);
    assert_eq!(m.next(), ["READY=1", "STATUS=reloaded"]);

    d.signal("TERM");
    assert_eq!(m.next(), ["STOPPING=1", "STATUS=stopping"]);
    assert_eq!(d.wait_exit().code(), Some(0));
}

#[test]
fn a_failed_reload_still_reports_ready() {
    let m = Manager::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("chatd.toml");
    std::fs::write(&cfg, "rate = 1\n").unwrap();
    let d = Chatd::start_with(&["--config", cfg.to_str().unwrap()], |c| {
        c.env("NOTIFY_SOCKET", &m.path);
    });
    assert_eq!(m.next()[0], "READY=1");
    std::fs::write(&cfg, "rate = \"fast\"\n").unwrap();
    d.signal("HUP");
    assert_eq!(m.next()[0], "RELOADING=1");
    assert_eq!(
        m.next(),
        [
            "READY=1",
            "STATUS=reload failed; running with the previous configuration"
        ]
    );
}

/// A manager that stops reading used to stall chatd at the sixth reload: the notification
/// socket's queue (ten datagrams) was full and the send waited, on a worker of the runtime,
/// for as long as nobody read. Now what does not fit is dropped with a warning.
#[test]
fn a_manager_that_does_not_read_never_stalls_a_reload() {
    let m = Manager::new();
    let d = Chatd::start_with(&[], |c| {
        c.env("NOTIFY_SOCKET", &m.path);
    });
    assert_eq!(m.next()[0], "READY=1");
    for _ in 0..8 {
        d.signal("HUP");
        d.wait_log("configuration reloaded");
    }
    let warning = d.wait_logged("cannot notify the service manager");
    assert!(warning.contains(" WARN "), "{warning}");
    // The queue holds what fitted, oldest first.
    assert_eq!(m.next()[0], "RELOADING=1");
}

#[test]
fn daemon_mode_is_refused_under_a_service_manager() {
    let m = Manager::new();
    let (code, _, err) = run_bin("chatd", &["--daemon", "--listen", "127.0.0.1:0"], |c| {
        c.env("NOTIFY_SOCKET", &m.path);
    });
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "chatd: --daemon: NOTIFY_SOCKET is set, so a service manager runs chatd and wants it in the foreground; remove --daemon (daemon = false)\n"
    );
}
