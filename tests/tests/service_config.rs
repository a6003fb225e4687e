//! The config file seen through the real binary: `--check-config`, precedence, and errors
//! printed as one line with exit 2.

use e2e::{Chatd, Client, run_bin, wait_in_dir, wait_pid_exit};
use serde_json::json;
use std::path::Path;

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("chatd.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn check_config_prints_every_key_with_flags_over_file_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "max_clients = 7\nqueue_len = 9\ndrain_timeout = \"2s\"\n",
    );
    let (code, out, err) = run_bin(
        "chatd",
        &["--config", &cfg, "--check-config", "--queue-len", "11"],
        |_| {},
    );
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.starts_with(&format!(
        "# chatd effective configuration (defaults < {cfg} < flags)\n"
    )));
    for line in [
        "# listen is not set: plain TCP on 127.0.0.1:7878",
        "max_clients = 7",
        "queue_len = 11",
        "drain_timeout = \"2s\"",
        "max_line_bytes = 65536",
        "login_timeout = \"10s\"",
        "# admin_socket is not set",
        "log_timestamps = true",
        "daemon = false",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
    }
}

#[test]
fn check_config_rejects_an_unknown_key_with_its_line_and_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "# limits\nrate = 5\nmax_client = 3\n");
    let (code, out, err) = run_bin("chatd", &["--config", &cfg, "--check-config"], |_| {});
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "chatd: {cfg}: unknown key \"max_client\" at line 3 — did you mean \"max_clients\"?\n"
        )
    );
}

#[test]
fn a_bad_value_in_the_file_is_named_by_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "queue_len = 0\n");
    let (code, _, err) = run_bin("chatd", &["--config", &cfg], |_| {});
    assert_eq!(code, 2);
    assert_eq!(
        err,
        format!("chatd: {cfg}: queue_len: 0 is out of range; use 1 to 1000000\n")
    );
    let cfg = write(dir.path(), "login_timeout = 5\n");
    let (code, _, err) = run_bin("chatd", &["--config", &cfg, "--check-config"], |_| {});
    assert_eq!(code, 2);
    assert_eq!(
        err,
        format!(
            "chatd: {cfg}: login_timeout at line 1: invalid type: integer `5`, expected a string\n"
        )
    );
}

/// The values that crashed chatd (at start, or once the accept loop or a session computed
/// with them) are refused before anything is bound, with exit 2.
#[test]
fn values_that_used_to_crash_chatd_exit_2_naming_the_flag_and_the_range() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--max-clients", "18446744073709551615"],
            "--max-clients: 18446744073709551615 is out of range; use 1 to 1000000",
        ),
        (
            &["--max-line-bytes", "18446744073709551615"],
            "--max-line-bytes: 18446744073709551615 is out of range; use 128 to 16777216",
        ),
        (
            &[
                "--keepalive-interval",
                "100000000years",
                "--keepalive-retries",
                "100",
            ],
            "--keepalive-interval: 100000000years is out of range; use 1s to 10m",
        ),
        (
            &["--login-timeout", "500000000000years"],
            "--login-timeout: 500000000000years is out of range; use 1ms to 1h",
        ),
        (
            &["--drain-timeout", "500000000000years"],
            "--drain-timeout: 500000000000years is out of range; use 1ms to 1h",
        ),
    ];
    for (args, expected) in cases {
        let args = [&["--listen", "127.0.0.1:0"], *args].concat();
        let (code, out, err) = run_bin("chatd", &args, |_| {});
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert_eq!(err, format!("chatd: {expected}\n"));
    }
}

#[test]
fn a_missing_named_file_is_an_error_whether_named_by_flag_or_environment() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.toml");
    let missing = missing.to_str().unwrap();
    let (code, _, err) = run_bin("chatd", &["--config", missing, "--check-config"], |_| {});
    assert_eq!(code, 2);
    assert_eq!(
        err,
        format!(
            "chatd: {missing}: cannot read: No such file or directory (os error 2) — check --config\n"
        )
    );
    // The same file through the environment behaves the same.
    let (code, _, _) = run_bin("chatd", &["--check-config"], |c| {
        c.env("CHATD_CONFIG", missing);
    });
    assert_eq!(code, 2);
}

#[tokio::test]
async fn the_running_daemon_uses_the_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    // The file asks for one connection at most and a long login timeout; the flag
    // shortens the login timeout.
    let cfg = write(dir.path(), "max_clients = 1\nlogin_timeout = \"1h\"\n");
    let d = Chatd::start(&["--config", &cfg, "--login-timeout", "300ms"]);
    let mut first = Client::connect(d.addr()).await;
    let mut second = Client::connect(d.addr()).await;
    let refused = second.expect_closed().await;
    assert_eq!(refused[0]["code"], "server_full");
    assert_eq!(
        first.expect_closed().await,
        vec![json!({"type":"bye","reason":"timeout"})]
    );
}

#[test]
fn check_config_shows_the_keepalive_interval_even_with_keepalive_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "keepalive = \"0\"\nkeepalive_interval = \"3s\"\n",
    );
    let (code, out, err) = run_bin("chatd", &["--config", &cfg, "--check-config"], |_| {});
    assert_eq!((code, err.as_str()), (0, ""));
    for line in [
        "keepalive = \"0s\"",
        "keepalive_interval = \"3s\"",
        "keepalive_retries = 3",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
    }
}

#[test]
fn relative_paths_in_the_file_start_from_its_directory_and_in_flags_from_the_cwd() {
    let etc = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(etc.path().join("pw"), "s3cret\n").unwrap();
    std::fs::write(cwd.path().join("pw2"), "other\n").unwrap();
    let cfg = write(etc.path(), "password_file = \"pw\"\nlog_dir = \"logs\"\n");
    let in_cwd = |c: &mut std::process::Command| {
        c.current_dir(cwd.path());
    };
    let (code, out, err) = run_bin("chatd", &["--config", &cfg, "--check-config"], in_cwd);
    assert_eq!((code, err.as_str()), (0, ""));
    let etc = etc.path().display();
    assert!(
        out.contains(&format!("\npassword_file = \"{etc}/pw\"\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("\nlog_dir = \"{etc}/logs\"\n")),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
    // A flag's relative path is the working directory's, and wins over the file.
    let (code, out, err) = run_bin(
        "chatd",
        &["--config", &cfg, "--check-config", "--password-file", "pw2"],
        in_cwd,
    );
    assert_eq!((code, err.as_str()), (0, ""));
    let cwd = cwd.path().display();
    assert!(
        out.contains(&format!("\npassword_file = \"{cwd}/pw2\"\n")),
        "{out}"
    );
}

#[test]
fn a_daemon_finds_the_files_relative_paths_after_leaving_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cfg = write(
        dir.path(),
        "listen = [\"127.0.0.1:0\"]\nadmin_socket = \"run/admin.sock\"\nlog_dir = \"logs\"\n\
         pid_file = \"chatd.pid\"\n",
    );
    let (code, _, err) = run_bin("chatd", &["--daemon", "--config", &cfg], |c| {
        c.current_dir(elsewhere.path());
    });
    assert_eq!((code, err.as_str()), (0, ""));
    let pid = std::fs::read_to_string(dir.path().join("chatd.pid")).unwrap();
    let pid: u32 = pid.trim().parse().unwrap();
    wait_in_dir(&logs, "the daemon's listening line", || {
        let name = std::fs::read_dir(&logs).ok()?.flatten().next()?.path();
        let text = std::fs::read_to_string(name).ok()?;
        text.contains("listening on ").then_some(())
    });
    assert!(dir.path().join("run/admin.sock").exists());
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_pid_exit(pid);
    assert!(
        !dir.path().join("chatd.pid").exists(),
        "pid file left behind"
    );
}

#[test]
fn check_config_refuses_a_log_dir_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let cfg = write(dir.path(), "log_dir = \"not-a-dir\"\n");
    let (code, out, err) = run_bin("chatd", &["--config", &cfg, "--check-config"], |_| {});
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        format!(
            "chatd: {cfg}: log_dir: cannot hold log files: {} is not a directory\n",
            file.display()
        )
    );
}
