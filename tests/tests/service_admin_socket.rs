//! The admin socket's life through the real binary: its mode, `chatctl status`, removal on a
//! clean exit, a second daemon refused (and the first one's pid file kept), a path that is not
//! a socket refused, and `CHATD_ADMIN_SOCKET` read by both programs.

use e2e::{Chatd, Run, Server, bin, chatctl_at, run, socket_dir};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// Runs chatd to completion (for daemons that must refuse to start).
fn chatd_refusing(admin_socket: &Path) -> Run {
    let mut cmd = Command::new(bin("chatd"));
    cmd.args(["--listen", "127.0.0.1:0", "--admin-socket"])
        .arg(admin_socket);
    run(cmd)
}

#[test]
fn the_socket_is_0660_answers_status_and_is_removed_on_a_clean_exit() {
    let dir = socket_dir();
    let path = dir.path().join("admin.sock");
    let mut d = Chatd::start(&["--admin-socket", path.to_str().unwrap()]);
    let md = std::fs::symlink_metadata(&path).unwrap();
    assert!(md.file_type().is_socket());
    assert_eq!(md.permissions().mode() & 0o777, 0o660);
    assert!(
        d.log()
            .iter()
            .any(|l| l.ends_with(&format!("admin socket on {}", path.display())))
    );

    let run = chatctl_at(&path, &["status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let prefix = format!(
        "chatd/{} is up: pid {}, uptime ",
        env!("CARGO_PKG_VERSION"),
        d.pid()
    );
    assert!(run.stdout.starts_with(&prefix), "{}", run.stdout);
    assert!(
        run.stdout
            .ends_with(&format!(", 0 users, 0 connections ({})\n", path.display())),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), 1);
    let run = chatctl_at(&path, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["pid"], d.pid());

    d.signal("TERM");
    assert!(d.wait_exit().success());
    assert!(!path.exists(), "the socket file outlived a clean exit");
    let run = chatctl_at(&path, &["status"]);
    assert_eq!(run.code, 3);
}

#[test]
fn a_second_daemon_on_a_live_socket_refuses_to_start_and_leaves_it_alone() {
    let dir = socket_dir();
    let path = dir.path().join("admin.sock");
    // What is tested is the second one, the binary: the first may as well be in-process.
    let first = Server::start(&["--admin-socket", path.to_str().unwrap()]);
    let run = chatd_refusing(&path);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        format!(
            "chatd: another chatd is already serving the admin socket at {} — stop it first, or give this one another --admin-socket",
            path.display()
        )
    );
    let run = chatctl_at(&path, &["status", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v["pid"],
        first.pid(),
        "the first daemon still owns the socket"
    );
}

#[test]
fn a_second_daemon_refused_at_the_admin_socket_leaves_the_first_ones_pid_file() {
    let dir = socket_dir();
    let path = dir.path().join("admin.sock");
    let pid_file = dir.path().join("chatd.pid");
    let pid_arg = ["--pid-file", pid_file.to_str().unwrap()];
    let first = Chatd::start(&[&["--admin-socket", path.to_str().unwrap()][..], &pid_arg].concat());
    let mut second = Command::new(bin("chatd"));
    second
        .args(["--listen", "127.0.0.1:0", "--admin-socket"])
        .arg(&path)
        .args(pid_arg);
    let run = run(second);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", first.pid())
    );
}

#[test]
fn a_path_that_is_not_a_socket_is_refused_and_kept() {
    let dir = socket_dir();
    let path = dir.path().join("admin.sock");
    std::fs::write(&path, "precious").unwrap();
    let run = chatd_refusing(&path);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        format!(
            "chatd: {} exists and is not a socket; remove it or choose another --admin-socket",
            path.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn the_environment_variable_chooses_the_socket_for_both_programs() {
    let dir = socket_dir();
    let path = dir.path().join("env.sock");
    let _d = Chatd::start_with(&[], |cmd| {
        cmd.env("CHATD_ADMIN_SOCKET", &path);
    });
    assert!(path.exists());
    let mut chatctl = Command::new(bin("chatctl"));
    chatctl.arg("status").env("CHATD_ADMIN_SOCKET", &path);
    let out = run(chatctl);
    assert!(out.status.success(), "{out:?}");
}
