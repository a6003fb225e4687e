//! chatd's command line, run as a process: version, help, and start-up failures with their
//! documented exit codes. (Also makes `cargo test --workspace` build the chatd binary that
//! the end-to-end tests in `tests/` use.)

use std::process::Command;

fn chatd(args: &[&str]) -> (i32, String, String) {
    // Never the system's /run/chatd (these tests run as root in CI): an admin socket of our own.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(args)
        .env("CHATD_ADMIN_SOCKET", dir.path().join("admin.sock"))
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_prints_name_and_version() {
    let (code, out, _) = chatd(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out, format!("chatd {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_lists_every_flag_and_the_exit_codes() {
    let (code, out, _) = chatd(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--admin-socket",
        "--max-line-bytes",
        "--max-clients",
        "--queue-len",
        "--rate",
        "--rate-burst",
        "--slow-consumer-grace",
        "--login-timeout",
        "--keepalive",
        "--drain-timeout",
        "--password-file",
        "--log-level",
        "Exit status:",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn a_bad_flag_value_is_one_line_naming_the_flag_exit_2() {
    let (code, _, err) = chatd(&["--max-clients", "lots"]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "chatd: invalid value 'lots' for '--max-clients <N>': invalid digit found in string (see chatd --help)\n"
    );
    let (code, _, err) = chatd(&["--queue-len", "0"]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "chatd: --queue-len: 0 is out of range; use 1 to 1000000\n"
    );
    let (code, _, err) = chatd(&["--bogus"]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "chatd: unexpected argument '--bogus' found (see chatd --help)\n"
    );
}

#[test]
fn an_address_in_use_is_exit_3_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = chatd(&["--listen", &addr]);
    assert_eq!(code, 3);
    assert_eq!(
        err.lines().last().unwrap(),
        format!(
            "chatd: cannot listen on {addr}: address already in use — stop the other process or choose another --listen address"
        )
    );
}

#[test]
fn an_unavailable_address_is_exit_3() {
    // TEST-NET-1 is never a local address.
    let (code, _, err) = chatd(&["--listen", "192.0.2.1:7878"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("chatd: cannot listen on 192.0.2.1:7878: address not available"),
        "{err}"
    );
}
