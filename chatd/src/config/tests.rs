//! Unit tests of the flags: parsing, defaults, and the exact text of every check.

use super::*;
use clap::CommandFactory;
use std::path::Path;

fn args(argv: &[&str]) -> Result<Args, String> {
    Args::try_parse_from(std::iter::once("chatd").chain(argv.iter().copied()))
        .map_err(|e| e.to_string())
}

fn parse(argv: &[&str]) -> Result<Config, String> {
    Config::from_args(&args(argv)?).map_err(|e| e.to_string())
}

#[test]
fn clap_definition_is_consistent() {
    Args::command().debug_assert();
}

#[test]
fn defaults_apply_without_flags() {
    assert_eq!(parse(&[]).unwrap(), Config::default());
}

#[test]
fn every_default_in_the_help_is_the_declared_default() {
    // Only one-word defaults can be given back as a flag; the others are prose
    // ("info, or RUST_LOG when set").
    let mut checked = 0;
    for arg in Args::command().get_arguments() {
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let Some(default) = help
            .split_once("[default: ")
            .and_then(|(_, rest)| rest.strip_suffix(']'))
            .filter(|d| !d.contains(' '))
        else {
            continue;
        };
        let flag = format!("--{}", arg.get_long().unwrap());
        assert_eq!(
            parse(&[&flag, default]).map(|c| c.settings),
            Ok(Settings::default()),
            "{flag} says its default is {default}"
        );
        checked += 1;
    }
    // Not a count to bump with each new setting: only proof that the help was read at all.
    assert!(checked >= 10, "only {checked} defaults found in the help");
}

#[test]
fn daemon_is_a_flag_without_a_value_that_only_turns_it_on() {
    assert_eq!(args(&["--daemon"]).unwrap().settings.daemon, Some(true));
    // Absent, it leaves the file's value alone.
    assert_eq!(args(&[]).unwrap().settings.daemon, None);
    assert!(parse(&["--daemon"]).unwrap().daemon);
}

#[test]
fn listen_repeats_and_replaces_the_default() {
    let c = parse(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]).unwrap();
    assert_eq!(c.listen.len(), 2);
    assert!(c.listen[1].is_ipv6());
    let e = parse(&["--listen", "localhost"]).unwrap_err();
    assert!(e.contains("expected IP:PORT"), "{e}");
}

#[test]
fn durations_and_keepalive() {
    let c = parse(&["--login-timeout", "250ms", "--keepalive", "0"]).unwrap();
    assert_eq!(c.login_timeout, Duration::from_millis(250));
    assert_eq!(c.keepalive, None);
    let e = parse(&["--login-timeout", "soon"]).unwrap_err();
    assert!(e.contains("write a duration such as"), "{e}");
}

#[test]
fn keepalive_off_still_keeps_its_interval_and_retries() {
    let c = parse(&["--keepalive", "0", "--keepalive-interval", "3s"]).unwrap();
    assert_eq!(c.keepalive, None);
    assert_eq!(c.settings.keepalive_interval, Duration::from_secs(3));
    let c = parse(&["--keepalive-interval", "3s", "--keepalive-retries", "9"]).unwrap();
    assert_eq!(
        c.keepalive,
        Some(Keepalive {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(3),
            retries: 9
        })
    );
}

#[test]
fn every_limit_is_checked() {
    assert_eq!(
        parse(&["--max-line-bytes", "100"]).unwrap_err(),
        "--max-line-bytes: 100 is too small; use at least 128"
    );
    assert_eq!(
        parse(&["--max-clients", "0"]).unwrap_err(),
        "--max-clients: must be at least 1"
    );
    assert_eq!(
        parse(&["--queue-len", "0"]).unwrap_err(),
        "--queue-len: must be at least 1"
    );
    assert!(
        parse(&["--rate=-1"])
            .unwrap_err()
            .starts_with("--rate: -1 is not a rate")
    );
    assert_eq!(
        parse(&["--rate-burst", "0"]).unwrap_err(),
        "--rate-burst: must be at least 1"
    );
    assert_eq!(
        parse(&["--login-timeout", "0"]).unwrap_err(),
        "--login-timeout: must be more than 0s"
    );
    assert!(parse(&["--rate", "0"]).is_ok());
}

#[test]
fn password_file_errors_name_the_file() {
    let e = parse(&["--password-file", "/nonexistent/pw"]).unwrap_err();
    assert!(
        e.starts_with("--password-file: cannot read /nonexistent/pw:"),
        "{e}"
    );
}

#[test]
fn relative_paths_are_rebased_and_absolute_ones_kept() {
    let mut a = args(&[
        "--log-dir",
        "logs",
        "--pid-file",
        "/run/p",
        "--listen",
        "[::1]:1",
    ])
    .unwrap()
    .settings;
    a.rebase(Path::new("/srv/chat"));
    assert_eq!(a.log_dir.as_deref(), Some(Path::new("/srv/chat/logs")));
    assert_eq!(a.pid_file.as_deref(), Some(Path::new("/run/p")));
    assert_eq!(a.listen.as_ref().unwrap().len(), 1);
}

/// `check_paths` of the settings `argv` gives, as the error text.
fn check_paths(argv: &[&str]) -> Result<(), String> {
    let c = parse(argv).unwrap();
    c.settings.check_paths().map_err(|e| e.to_string())
}

#[test]
fn a_log_dir_must_be_a_directory_or_creatable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "").unwrap();
    let (d, f) = (dir.path().to_str().unwrap(), file.to_str().unwrap());
    assert_eq!(check_paths(&["--log-dir", d]), Ok(()));
    assert_eq!(
        check_paths(&["--log-dir", &format!("{d}/new/logs")]),
        Ok(())
    );
    let expected = format!("--log-dir: cannot hold log files: {f} is not a directory");
    assert_eq!(check_paths(&["--log-dir", f]), Err(expected.clone()));
    assert_eq!(
        check_paths(&["--log-dir", &format!("{f}/logs")]),
        Err(expected)
    );
}

#[test]
fn an_admin_socket_needs_a_directory_and_a_short_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "").unwrap();
    let (d, f) = (dir.path().to_str().unwrap(), file.to_str().unwrap());
    assert_eq!(
        check_paths(&["--admin-socket", &format!("{d}/run/admin.sock")]),
        Ok(())
    );
    assert_eq!(
        check_paths(&["--admin-socket", &format!("{f}/admin.sock")]),
        Err(format!(
            "--admin-socket: cannot be created: {f} is not a directory"
        ))
    );
    let long = format!("/tmp/{}/admin.sock", "d".repeat(100));
    assert_eq!(
        check_paths(&["--admin-socket", &long]),
        Err(format!(
            "--admin-socket: {long} is 116 bytes long; a Unix socket path has at most 107"
        ))
    );
}
