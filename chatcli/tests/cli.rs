//! The command line itself: help documents the exit codes, version prints, bad flags are
//! usage errors (2).

mod common;

use common::run;
use std::process::Command;

#[test]
fn help_documents_every_exit_code() {
    let mut c = Command::new(common::chatcli());
    c.arg("--help");
    let out = run(c, b"");
    assert_eq!(out.code, 0);
    for line in [
        "Exit status:",
        "  0  ok",
        "  1  some messages were not accepted",
        "  2  usage error (a --server without its port",
        "  3  cannot reach chatd",
        "  4  login refused: the name is taken or invalid, or the password is wrong or missing",
        "  CHAT_PASSWORD_FILE",
        "  5  kicked, chatd shut down, or the connection was lost",
    ] {
        assert!(
            out.stdout.contains(line),
            "--help lacks {line:?}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn version_prints_the_package_version() {
    let mut c = Command::new(common::chatcli());
    c.arg("--version");
    let out = run(c, b"");
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        format!("chatcli {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Runs chatcli with `args` (and `CHATD_SERVER` from `env`) and checks that it exits 2 saying
/// `says`.
fn usage_error(env: Option<&str>, args: &[&str], says: &str) {
    let mut c = Command::new(common::chatcli());
    match env {
        Some(server) => c.env("CHATD_SERVER", server),
        None => c.env_remove("CHATD_SERVER"),
    };
    c.args(args);
    let out = run(c, b"");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains(says), "{out:?}");
}

#[test]
fn a_blank_message_is_a_usage_error_not_a_silent_success() {
    for blank in ["", "  "] {
        usage_error(
            None,
            &["--user", "cron", "-m", blank],
            "the message is empty; there is nothing to send",
        );
    }
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let mut c = Command::new(common::chatcli());
    c.arg("--frobnicate");
    let out = run(c, b"");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unexpected argument '--frobnicate'"),
        "{out:?}"
    );
}

#[test]
fn a_server_without_a_port_is_a_usage_error_naming_the_flag() {
    usage_error(
        None,
        &["--server", "localhost", "--user", "bot", "-m", "hi"],
        "invalid value 'localhost' for '--server <HOST:PORT>': no port; give HOST:PORT, e.g. \
         --server localhost:7878",
    );
    // The environment's default is held to the same rule.
    usage_error(
        Some("chat.example.com"),
        &["--user", "bot", "-m", "hi"],
        "no port; give HOST:PORT, e.g. --server chat.example.com:7878",
    );
}
