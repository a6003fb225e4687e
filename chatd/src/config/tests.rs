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
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(default, _)| default)
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
fn every_help_says_its_rows_range() {
    let mut ranged = Vec::new();
    let command = Args::command();
    for arg in command.get_arguments() {
        let key = arg.get_id().as_str();
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        match Layer::range_of(key) {
            Some(range) => {
                assert!(
                    help.ends_with(&format!(" [range: {range}]")),
                    "{key}: {help:?}"
                );
                ranged.push(key);
            }
            None => assert!(!help.contains("[range: "), "{key}: {help:?}"),
        }
    }
    // Every number and duration has one; what has none is a flag, a path or the filter.
    let unranged: Vec<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| !ranged.contains(k))
        .collect();
    assert_eq!(
        unranged,
        [
            "tls_cert",
            "tls_key",
            "password_file",
            "log_level",
            "log_dir",
            "log_timestamps",
            "daemon",
            "pid_file"
        ]
    );
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

/// A ranged flag: the nearest value refused below its range (`None` where the type stops
/// there), the lowest and the highest accepted, the nearest refused above, and the range as
/// the error says it. Values are written as the error writes them back.
type Bounds = (
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// Every ranged flag's bounds.
#[rustfmt::skip]
const BOUNDS: &[Bounds] = &[
    ("max-line-bytes", Some("127"), "128", "16777216", "16777217", "128 to 16777216"),
    ("max-clients", Some("0"), "1", "1000000", "1000001", "1 to 1000000"),
    ("max-per-ip", None, "0", "1000000", "1000001", "0 to 1000000"),
    ("queue-len", Some("0"), "1", "1000000", "1000001", "1 to 1000000"),
    ("rate", Some("-0.5"), "0", "1000000", "1000000.5", "0 to 1000000"),
    ("rate-burst", Some("0"), "1", "1000000", "1000001", "1 to 1000000"),
    ("queue-bytes", Some("1023"), "1024", "1073741824", "1073741825", "1024 to 1073741824"),
    ("login-rate", Some("-0.5"), "0", "1000000", "1000000.5", "0 to 1000000"),
    ("login-burst", Some("0"), "1", "1000000", "1000001", "1 to 1000000"),
    ("login-failures-free", None, "0", "1000", "1001", "0 to 1000"),
    ("login-failures-max", Some("0"), "1", "1000", "1001", "1 to 1000"),
    ("login-failure-window", Some("999ms"), "1s", "1day", "1day 1ms", "1s to 1day"),
    ("slow-consumer-grace", Some("0s"), "1ms", "1h", "1h 1ms", "1ms to 1h"),
    ("login-timeout", Some("0s"), "1ms", "1h", "1h 1ms", "1ms to 1h"),
    ("keepalive", Some("999ms"), "1s", "2h", "2h 1ms", "0 (off) or 1s to 2h"),
    ("keepalive-interval", Some("999ms"), "1s", "10m", "10m 1ms", "1s to 10m"),
    ("keepalive-retries", Some("0"), "1", "100", "101", "1 to 100"),
    ("tls-handshake-timeout", Some("0s"), "1ms", "1h", "1h 1ms", "1ms to 1h"),
    ("drain-timeout", Some("0s"), "1ms", "1h", "1h 1ms", "1ms to 1h"),
    ("log-max-files", None, "0", "1000", "1001", "0 to 1000"),
    ("log-max-bytes", Some("4095"), "4096", "1099511627776", "1099511627777", "4096 to 1099511627776"),
];

/// Values of the settings that bound each other, chosen so that the one under test is
/// checked on its own.
fn companions(flag: &str) -> Vec<&'static str> {
    match flag {
        "queue-bytes" => vec!["--max-line-bytes=128"],
        "login-failures-max" => vec!["--login-failures-free=0"],
        _ => vec!["--queue-bytes=1073741824", "--login-failures-max=1000"],
    }
}

#[test]
fn every_range_is_checked_at_under_and_over_each_bound() {
    for &(flag, below, lowest, highest, above, range) in BOUNDS {
        for ok in [lowest, highest] {
            let value = format!("--{flag}={ok}");
            let argv = [vec![value.as_str()], companions(flag)].concat();
            assert!(parse(&argv).is_ok(), "--{flag} {ok}");
        }
        for bad in below.into_iter().chain([above]) {
            assert_eq!(
                parse(&[&format!("--{flag}={bad}")]),
                Err(format!("--{flag}: {bad} is out of range; use {range}")),
            );
        }
    }
    // A row without a range in the list would go untested.
    let listed: Vec<String> = BOUNDS.iter().map(|b| b.0.replace('-', "_")).collect();
    for key in KEYS {
        let spans = Layer::range_of(key).is_some_and(|r| r.contains(" to "));
        assert_eq!(spans, listed.iter().any(|l| l == key), "{key}");
    }
}

// The values that used to crash chatd are checked on the binary, with their exit code, in
// tests/tests/service_config.rs.

#[test]
fn a_rate_that_is_not_a_number_is_out_of_range() {
    for bad in ["NaN", "inf"] {
        assert_eq!(
            parse(&["--rate", bad]).unwrap_err(),
            format!("--rate: {bad} is out of range; use 0 to 1000000")
        );
    }
}

#[test]
fn keepalive_off_needs_no_interval_but_its_interval_is_still_in_range() {
    assert!(parse(&["--keepalive", "0"]).is_ok());
    assert_eq!(
        parse(&["--keepalive", "0", "--keepalive-interval", "0"]).unwrap_err(),
        "--keepalive-interval: 0s is out of range; use 1s to 10m"
    );
}

#[test]
fn named_checks_say_what_is_wrong() {
    let e = parse(&["--log-level", "chatd=loud"]).unwrap_err();
    assert!(
        e.starts_with("--log-level: invalid filter \"chatd=loud\": "),
        "{e}"
    );
    assert!(
        e.ends_with("; use a level such as info or directives such as chatd=debug"),
        "{e}"
    );
    let s = Settings {
        listen: Some(Vec::new()),
        ..Settings::default()
    };
    assert_eq!(
        Config::new(s, None).unwrap_err().to_string(),
        "--listen: needs at least one address"
    );
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
    // Too long for a socket whatever the disk holds: refused with the other ranges.
    let long = format!("/tmp/{}/admin.sock", "d".repeat(100));
    assert_eq!(
        parse(&["--admin-socket", &long]),
        Err(format!(
            "--admin-socket: {long} is 116 bytes long; a Unix socket path has at most 107"
        ))
    );
    let longest = format!("/tmp/{}/admin.sock", "d".repeat(91));
    assert_eq!(longest.len(), 107);
    assert_eq!(check_paths(&["--admin-socket", &longest]), Ok(()));
}

#[test]
fn the_settings_that_bound_each_other_are_checked_together() {
    assert_eq!(
        parse(&["--max-line-bytes=1000000", "--queue-bytes=1000255"]),
        Err(
            "--queue-bytes: 1000255 cannot hold one message of max_line_bytes (1000000) once \
             encoded; use at least 1000256"
                .into()
        )
    );
    assert!(parse(&["--max-line-bytes=1000000", "--queue-bytes=1000256"]).is_ok());
    assert_eq!(
        parse(&["--login-failures-free=11"]),
        Err(
            "--login-failures-free: 11 is more than login_failures_max (10): logins would be \
             refused before any was slowed; use at most 10"
                .into()
        )
    );
    assert!(parse(&["--login-failures-free=10"]).is_ok());
}
