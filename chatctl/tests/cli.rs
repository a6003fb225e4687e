//! chatctl's command line as a process, without a daemon: help with examples and exit codes,
//! usage errors, and each way of failing to reach chatd, with its message and exit code. (Also
//! makes `cargo test --workspace` build the chatctl binary the end-to-end tests use.)
//! The tests with a daemon (served in-process) are in `tests/tests/admin_*.rs`.

mod common;

use common::{fake, hold, tmp};
use e2e::{Run, chatctl_at, copy_for_others, run, run_as, run_bin};
use std::io::Write;
use std::path::Path;
use std::process::Command;

/// chatctl with these arguments and no `CHATD_ADMIN_SOCKET`: exit code, stdout, stderr.
fn chatctl(args: &[&str]) -> (i32, String, String) {
    run_bin("chatctl", args, |c| {
        c.env_remove(proto::admin::SOCKET_ENV);
    })
}

#[test]
fn help_shows_examples_the_socket_rule_and_exit_codes() {
    let (code, out, _) = chatctl(&["--help"]);
    assert_eq!(code, 0);
    for text in [
        "Examples:",
        "chatctl kick bob --reason",
        "CHATD_ADMIN_SOCKET",
        "/run/chatd/admin.sock",
        "$XDG_RUNTIME_DIR/chatd/admin.sock",
        "Exit status:",
        "3  cannot reach chatd",
        "within 5 s",
        "longer than 16 MiB",
        "control characters escaped",
    ] {
        assert!(out.contains(text), "--help lacks {text:?}:\n{out}");
    }
    for sub in ["users", "kick", "notice", "watch", "stats", "status"] {
        let (code, out, _) = chatctl(&[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Examples:"), "{sub} --help lacks examples");
        assert!(out.contains(&format!("chatctl {sub}")), "{sub}: {out}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = chatctl(&["kick"]);
    assert_eq!(code, 2);
    assert!(err.contains("<NAME>"), "{err}");
    let (code, _, _) = chatctl(&["frobnicate"]);
    assert_eq!(code, 2);
    let (code, _, _) = chatctl(&[]);
    assert_eq!(code, 2);
}

#[test]
fn a_missing_socket_is_exit_3_naming_the_path() {
    let (_dir, path) = tmp();
    let Run {
        code,
        stdout: out,
        stderr: err,
        ..
    } = chatctl_at(&path, &["users"]);
    assert_eq!((code, out.as_str()), (3, ""));
    assert_eq!(
        err,
        format!(
            "chatctl: cannot reach chatd at {}: no such file — is chatd running?\n",
            path.display()
        )
    );
}

#[test]
fn a_file_nobody_listens_on_is_connection_refused_exit_3() {
    let (_dir, path) = tmp();
    std::fs::write(&path, "").unwrap();
    let Run {
        code, stderr: err, ..
    } = chatctl_at(&path, &["status"]);
    assert_eq!(code, 3);
    assert_eq!(
        err,
        format!(
            "chatctl: cannot reach chatd at {}: connection refused — nothing listens there (a stale socket?); is chatd running?\n",
            path.display()
        )
    );
}

/// Something that is not chatd listens on the path and answers `reply` to the request (or
/// nothing at all, holding the connection open, when `reply` is `None`).
fn impostor(path: &Path, reply: Option<&'static str>) -> std::thread::JoinHandle<()> {
    fake(path, move |mut stream, _| match reply {
        Some(r) => stream.write_all(r.as_bytes()).unwrap(),
        None => hold(stream),
    })
}

#[test]
fn a_garbled_answer_is_exit_3() {
    let (_dir, path) = tmp();
    let t = impostor(&path, Some("HTTP/1.1 400 Bad Request\n"));
    let Run {
        code, stderr: err, ..
    } = chatctl_at(&path, &["stats"]);
    t.join().unwrap();
    assert_eq!(code, 3);
    assert!(
        err.starts_with(&format!(
            "chatctl: cannot reach chatd at {}: the answer is not an admin reply (",
            path.display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with("\"HTTP/1.1 400 Bad Request\" — is this chatd's admin socket?\n"),
        "{err}"
    );
}

#[test]
fn an_error_answer_is_exit_1_with_the_daemons_message() {
    let (_dir, path) = tmp();
    let t = impostor(
        &path,
        Some(
            "{\"type\":\"error\",\"code\":\"unknown_user\",\"message\":\"nobody named x is logged in\"}\n",
        ),
    );
    let Run {
        code,
        stdout: out,
        stderr: err,
        ..
    } = chatctl_at(&path, &["kick", "x"]);
    t.join().unwrap();
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, "chatctl: nobody named x is logged in\n");
}

#[test]
fn a_daemon_that_never_answers_is_exit_3_after_the_timeout() {
    let (_dir, path) = tmp();
    let t = impostor(&path, None);
    let Run {
        code, stderr: err, ..
    } = chatctl_at(&path, &["status"]);
    t.join().unwrap();
    assert_eq!(code, 3);
    assert_eq!(
        err,
        format!(
            "chatctl: cannot reach chatd at {}: no answer within 5s — chatd is stuck, or this is not its socket\n",
            path.display()
        )
    );
}

#[test]
#[ignore = "needs root and no /run/chatd; CI runs it with --ignored"]
fn without_root_the_default_is_under_xdg_runtime_dir_or_a_usage_error() {
    assert!(
        !Path::new("/run/chatd").exists(),
        "/run/chatd exists: chatctl would pick it"
    );
    // Run as nobody, from a copy it may execute (the build directory may be private).
    let (dir, _) = tmp();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let exe = dir.path().join("chatctl");
    copy_for_others(Path::new(env!("CARGO_BIN_EXE_chatctl")), &exe);
    let as_nobody = |xdg: Option<&str>| {
        let mut cmd = Command::new(&exe);
        cmd.arg("status")
            .env_remove("CHATD_ADMIN_SOCKET")
            .env_remove("XDG_RUNTIME_DIR");
        assert!(
            run_as(&mut cmd, 65534, 65534, &[]),
            "run as root: the test drops to uid 65534"
        );
        if let Some(x) = xdg {
            cmd.env("XDG_RUNTIME_DIR", x);
        }
        let out = run(cmd);
        (out.code, out.stderr)
    };
    let (code, err) = as_nobody(Some("/tmp/no-such-runtime-dir"));
    assert_eq!(code, 3);
    assert_eq!(
        err,
        "chatctl: cannot reach chatd at /tmp/no-such-runtime-dir/chatd/admin.sock: no such file — is chatd running?\n"
    );
    let (code, err) = as_nobody(None);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "chatctl: no admin socket path: not root, /run/chatd is not usable and XDG_RUNTIME_DIR is not set; pass --socket PATH or set CHATD_ADMIN_SOCKET\n"
    );
}
