//! `--daemon`: the command returns once the daemon listens, the pid file names it, it has
//! left the terminal, and start-up failures still reach the terminal with their exit code.

use e2e::{Client, run_bin, wait_in_dir, wait_pid_exit};
use std::net::SocketAddr;
use std::path::Path;

fn log_text(dir: &Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        all += &std::fs::read_to_string(e.path()).unwrap_or_default();
    }
    all
}

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn daemon_detaches_writes_the_pid_file_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("run/chatd.pid");
    std::fs::create_dir(dir.path().join("run")).unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let (code, out, err) = run_bin(
        "chatd",
        &[
            "--daemon",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--log-dir",
            logs.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-socket",
            dir.path().join("run/admin.sock").to_str().unwrap(),
        ],
        |_| {},
    );
    // run_bin returned: the command exited (and its pipes closed, so the daemon let go of
    // the terminal's stderr too).
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    let pid = std::fs::read_to_string(&pid_file).expect("pid file exists when --daemon returns");
    let pid = pid.trim().to_owned();
    assert!(alive(&pid), "daemon {pid} is not running");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/fd/2")).unwrap(),
        Path::new("/dev/null")
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/")
    );
    // A session of its own: no controlling terminal to lose.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
    assert_eq!(fields[4], "0", "tty_nr of the daemon");

    let addr: SocketAddr = wait_in_dir(&logs, "the daemon's address in its log", || {
        let text = log_text(&logs);
        let line = text.lines().find(|l| l.contains("listening on "))?;
        line.rsplit("listening on ").next()?.trim().parse().ok()
    });
    let mut c = Client::login(addr, "alice").await;
    c.expect_nothing_pending().await;

    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert_eq!(
        c.expect_closed().await.last().unwrap()["reason"],
        "shutdown"
    );
    wait_pid_exit(pid.parse().unwrap());
    assert!(!pid_file.exists(), "pid file left behind");
    assert!(
        log_text(&logs).contains("stopped"),
        "last lines not flushed"
    );
}

#[test]
fn daemon_start_up_failure_is_reported_on_the_terminal_with_its_code() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("chatd.pid");
    let (code, _, err) = run_bin(
        "chatd",
        &[
            "--daemon",
            "--listen",
            &addr,
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        |_| {},
    );
    assert_eq!(code, 3);
    assert!(
        err.ends_with(&format!(
            "chatd: cannot listen on {addr}: address already in use — stop the other process or choose another --listen address\n"
        )),
        "{err}"
    );
    assert!(!pid_file.exists());
}
