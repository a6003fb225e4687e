//! Unit tests of the config file layer: precedence, and the exact text of every error.

use super::*;
use clap::Parser;
use std::time::Duration;

/// Writes `text` as a config file in a new directory and loads it under `flags`.
pub(super) fn load_with(text: &str, flags: &[&str]) -> (tempfile::TempDir, Result<Config, String>) {
    let dir = tempfile::tempdir().unwrap();
    let r = load_in(dir.path(), text, flags);
    (dir, r)
}

/// Writes `text` as `dir/chatd.toml` and loads it under `flags`; the file's path reads
/// FILE in errors.
fn load_in(dir: &Path, text: &str, flags: &[&str]) -> Result<Config, String> {
    let path = dir.join("chatd.toml");
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap().to_owned();
    let argv = ["chatd", "--config", &p]
        .into_iter()
        .chain(flags.iter().copied());
    let args = Args::try_parse_from(argv).unwrap();
    load(&args).map_err(|e| e.to_string().replace(&p, "FILE"))
}

fn err(text: &str) -> String {
    load_with(text, &[]).1.unwrap_err()
}

#[test]
fn file_overrides_defaults_and_flags_override_the_file() {
    let text = "max_clients = 7\nqueue_len = 9\nlisten = [\"127.0.0.1:1\", \"[::1]:2\"]\n\
                login_timeout = \"250ms\"\nkeepalive = \"0\"\nlog_timestamps = false\n";
    let (_d, c) = load_with(text, &["--queue-len", "11"]);
    let c = c.unwrap();
    assert_eq!(c.max_clients, 7);
    assert_eq!(c.queue_len, 11);
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.login_timeout, Duration::from_millis(250));
    assert_eq!(c.keepalive, None);
    assert!(!c.log_timestamps);
    assert_eq!(c.rate_burst, Settings::default().rate_burst);
    assert!(c.config_file.is_some());
}

#[test]
fn a_missing_default_file_means_defaults_a_missing_named_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let args = Args::try_parse_from(["chatd", "--config", missing.to_str().unwrap()]).unwrap();
    assert_eq!(
        load(&args).unwrap_err().to_string(),
        format!(
            "{}: cannot read: No such file or directory (os error 2) — check --config",
            missing.display()
        )
    );
}

#[test]
fn unknown_keys_are_named_with_their_line_and_a_suggestion() {
    assert_eq!(
        err("rate = 5\n\nmax_client = 3\n"),
        "FILE: unknown key \"max_client\" at line 3 — did you mean \"max_clients\"?"
    );
    assert_eq!(
        err("colour = \"red\"\n"),
        "FILE: unknown key \"colour\" at line 1 — remove it; every key is a flag of chatd --help, with underscores"
    );
}

#[test]
fn type_and_syntax_errors_name_the_key_and_line() {
    assert_eq!(
        err("rate = 1\nmax_clients = \"lots\"\n"),
        "FILE: max_clients at line 2: invalid type: string \"lots\", expected usize"
    );
    assert_eq!(
        err("max_clients = \n"),
        "FILE: max_clients at line 1: string values must be quoted, expected literal string"
    );
    assert_eq!(err("[x\n"), "FILE: line 1: unclosed table, expected `]`");
}

#[test]
fn bad_values_name_the_key() {
    assert_eq!(
        err("login_timeout = \"soon\"\n"),
        "FILE: login_timeout at line 1: \"soon\": expected number at 0; write a duration such as 500ms, 10s or 2m"
    );
    assert_eq!(
        err("listen = [\"localhost\"]\n"),
        "FILE: listen at line 1: expected IP:PORT such as 127.0.0.1:7878 or [::1]:7878, got \"localhost\""
    );
    assert_eq!(
        err("max_clients = 0\n"),
        "FILE: max_clients: 0 is out of range; use 1 to 1000000"
    );
    assert_eq!(
        err("max_line_bytes = 10\n"),
        "FILE: max_line_bytes: 10 is out of range; use 128 to 16777216"
    );
    assert_eq!(
        err("rate = -2.5\n"),
        "FILE: rate: -2.5 is out of range; use 0 to 1000000"
    );
    assert_eq!(
        err("login_timeout = \"0s\"\n"),
        "FILE: login_timeout: 0s is out of range; use 1ms to 1h"
    );
    assert_eq!(
        err("keepalive_retries = 0\n"),
        "FILE: keepalive_retries: 0 is out of range; use 1 to 100"
    );
    assert_eq!(
        err("admin_socket = \"/tmp/x\"\nlisten = []\n"),
        "FILE: listen: needs at least one address"
    );
    assert!(
        err("log_level = \"chatd=loud\"\n")
            .starts_with("FILE: log_level: invalid filter \"chatd=loud\": "),
    );
    assert!(
        err("password_file = \"/nonexistent/pw\"\n")
            .starts_with("FILE: password_file: cannot read /nonexistent/pw: "),
    );
}

#[test]
fn values_out_of_range_in_the_file_are_named_by_key() {
    // Each from the issue: these crashed a running chatd before they had a range.
    assert_eq!(
        err("keepalive_interval = \"100000000years\"\nkeepalive_retries = 100\n"),
        "FILE: keepalive_interval: 100000000years is out of range; use 1s to 10m"
    );
    assert_eq!(
        err("login_timeout = \"500000000000years\"\n"),
        "FILE: login_timeout: 500000000000years is out of range; use 1ms to 1h"
    );
    assert_eq!(
        err("drain_timeout = \"500000000000years\"\n"),
        "FILE: drain_timeout: 500000000000years is out of range; use 1ms to 1h"
    );
    assert_eq!(
        err("max_clients = 18446744073709551615\n"),
        "FILE: max_clients: 18446744073709551615 is out of range; use 1 to 1000000"
    );
    assert_eq!(
        err("max_line_bytes = 16777217\n"),
        "FILE: max_line_bytes: 16777217 is out of range; use 128 to 16777216"
    );
    // A flag that would put the value back in range does not hide a bad file: a reload of
    // that file alone would fail.
    let (_d, r) = load_with("max_clients = 0\n", &["--max-clients", "5"]);
    assert_eq!(
        r.unwrap_err(),
        "FILE: max_clients: 0 is out of range; use 1 to 1000000"
    );
}

#[test]
fn a_bad_flag_over_a_good_file_names_the_flag() {
    let (_d, r) = load_with("max_clients = 5\n", &["--max-clients", "0"]);
    assert_eq!(
        r.unwrap_err(),
        "--max-clients: 0 is out of range; use 1 to 1000000"
    );
}

#[test]
fn render_round_trips_and_hides_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let text = format!("password_file = {:?}\nkeepalive = \"0\"\nrate = 2.5\n", pw);
    let (_d, c) = load_with(&text, &[]);
    let c = c.unwrap();
    let shown = render(&c);
    assert!(!shown.contains("s3cret"));
    assert!(shown.contains("keepalive = \"0s\""), "{shown}");
    let (_d2, again) = load_with(&shown, &[]);
    let again = again.unwrap();
    assert_eq!(again.password.as_deref(), Some("s3cret"));
    assert_eq!(again.keepalive, None);
    assert_eq!(again.rate, 2.5);
}

#[test]
fn relative_paths_in_the_file_start_from_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("secrets")).unwrap();
    std::fs::write(d.join("secrets/pw"), "s3cret\n").unwrap();
    let text =
        "password_file = \"secrets/pw\"\nlog_dir = \"./logs\"\npid_file = \"../chatd.pid\"\n";
    let c = load_in(d, text, &[]).unwrap();
    assert_eq!(c.password.as_deref(), Some("s3cret"));
    assert_eq!(c.log_dir, Some(d.join("logs")));
    assert_eq!(c.pid_file, Some(d.join("../chatd.pid")));
    assert_eq!(c.settings.password_file, Some(d.join("secrets/pw")));
    // Flags are made absolute by main, against the working directory; an absolute path in
    // the file is left as it is.
    let c = load_in(d, "log_dir = \"/var/log/chatd\"\n", &["--pid-file", "p"]).unwrap();
    assert_eq!(c.log_dir.as_deref(), Some(Path::new("/var/log/chatd")));
    assert_eq!(c.pid_file.as_deref(), Some(Path::new("p")));
}

#[test]
fn every_key_as_check_config_writes_it_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pw"), "s3cret\n").unwrap();
    let cert = rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
    std::fs::write(d.join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(d.join("tls.key"), cert.signing_key.serialize_pem()).unwrap();
    // Every key that has no default is set, and the rest differ from their defaults.
    let text = format!(
        "listen = [\"127.0.0.1:1\", \"[::1]:2\"]\ntls_listen = [\"127.0.0.1:3\"]\n\
         tls_cert = \"{d}/tls.crt\"\ntls_key = \"{d}/tls.key\"\ntls_handshake_timeout = \"3s\"\n\
         admin_socket = \"{d}/admin.sock\"\n\
         max_line_bytes = 1000\nmax_clients = 2\nmax_per_ip = 12\nqueue_len = 3\nrate = 4.5\nrate_burst = 5\n\
         queue_bytes = 5000\nlogin_rate = 2.5\nlogin_burst = 6\nlogin_failures_free = 1\n\
         login_failures_max = 4\nlogin_failure_window = \"1m\"\n\
         slow_consumer_grace = \"6s\"\nlogin_timeout = \"7s\"\nkeepalive = \"0s\"\n\
         keepalive_interval = \"8s\"\nkeepalive_retries = 9\ndrain_timeout = \"2m 10s\"\n\
         password_file = \"{d}/pw\"\nlog_level = \"debug\"\nlog_dir = \"{d}/logs\"\n\
         log_timestamps = false\nlog_max_files = 11\nlog_max_bytes = 8192\ndaemon = true\npid_file = \"{d}/pid\"\n",
        d = d.display()
    );
    let c = load_in(d, &text, &[]).unwrap();
    let defaults = Settings::default();
    let same: Vec<&str> = defaults
        .changed(&c.settings)
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(same, KEYS, "the text leaves some key at its default");
    let shown = render(&c);
    assert!(!shown.contains("s3cret"), "{shown}");
    for key in KEYS {
        assert!(
            shown.contains(&format!("\n{key} = ")),
            "{key} not shown in\n{shown}"
        );
    }
    // Keepalive is off, and its interval is shown as set all the same.
    assert!(shown.contains("\nkeepalive_interval = \"8s\"\n"), "{shown}");
    assert!(shown.contains("\ndrain_timeout = \"2m 10s\"\n"), "{shown}");
    let elsewhere = tempfile::tempdir().unwrap();
    let again = load_in(elsewhere.path(), &shown, &[]).unwrap();
    assert_eq!(again.settings, c.settings);
    assert_eq!(again.password.as_deref(), Some("s3cret"));
    // And the defaults, with the unset keys commented out, load back as the defaults.
    let defaults = render(&Config::default());
    assert!(
        defaults.contains("\n# admin_socket is not set\n"),
        "{defaults}"
    );
    let (_d, c) = load_with(&defaults, &[]);
    assert_eq!(c.unwrap().settings, Settings::default());
}

#[test]
fn the_password_file_is_read_once_from_the_layer_that_wins() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "flag\n").unwrap();
    let text = "password_file = \"/nonexistent/pw\"\n";
    let (_d, c) = load_with(text, &["--password-file", pw.to_str().unwrap()]);
    assert_eq!(c.unwrap().password.as_deref(), Some("flag"));
    let (_d, e) = load_with("max_clients = 5\n", &["--password-file", "/nonexistent/pw"]);
    assert!(
        e.unwrap_err()
            .starts_with("--password-file: cannot read /nonexistent/pw: "),
    );
}

#[test]
fn what_fails_only_under_the_flags_names_the_flag() {
    let (_d, r) = load_with(
        "keepalive_interval = \"5s\"\n",
        &["--keepalive-retries", "0"],
    );
    assert_eq!(
        r.unwrap_err(),
        "--keepalive-retries: 0 is out of range; use 1 to 100"
    );
}

#[test]
fn paths_that_cannot_hold_what_chatd_creates_are_named_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("f"), "").unwrap();
    let f = d.join("f");
    assert_eq!(
        load_in(d, "log_dir = \"f\"\n", &[]).unwrap_err(),
        format!(
            "FILE: log_dir: cannot hold log files: {} is not a directory",
            f.display()
        )
    );
    assert_eq!(
        load_in(d, "admin_socket = \"f/admin.sock\"\n", &[]).unwrap_err(),
        format!(
            "FILE: admin_socket: cannot be created: {} is not a directory",
            f.display()
        )
    );
    let flag = f.join("logs");
    assert_eq!(
        load_in(d, "", &["--log-dir", flag.to_str().unwrap()]).unwrap_err(),
        format!(
            "--log-dir: cannot hold log files: {} is not a directory",
            f.display()
        )
    );
}

#[test]
fn changes_name_each_key_with_its_values_and_how_a_reload_applies_it() {
    let old = Settings {
        max_clients: 5,
        ..Settings::default()
    };
    let new = Settings {
        listen: Some(vec!["127.0.0.1:1".parse().unwrap()]),
        max_clients: 6,
        log_dir: Some("/x".into()),
        ..Settings::default()
    };
    let c = changes(&old, &new);
    let keys: Vec<_> = c.iter().map(|c| c.key).collect();
    assert_eq!(keys, ["listen", "log_dir", "max_clients"]);
    assert_eq!(c[0].reload, Reload::Restart);
    assert_eq!(c[0].to, "[\"127.0.0.1:1\"]");
    assert_eq!(
        (c[1].from.as_str(), c[1].to.as_str()),
        ("(not set)", "\"/x\"")
    );
    assert_eq!((c[2].from.as_str(), c[2].to.as_str()), ("5", "6"));
    assert_eq!((c[1].reload, c[2].reload), (Reload::AtOnce, Reload::AtOnce));
    assert_eq!(changes(&new, &new), []);
}

#[test]
fn every_key_that_needs_a_restart_is_named_and_keeps_its_running_value() {
    let running = Config::default();
    let s = Settings {
        daemon: true,
        pid_file: Some("/p".into()),
        admin_socket: Some("/b".into()),
        rate: 2.0,
        ..Settings::default()
    };
    let restart: Vec<_> = changes(&running.settings, &s)
        .into_iter()
        .filter(|c| c.reload == Reload::Restart)
        .map(|c| c.key)
        .collect();
    assert_eq!(restart, ["admin_socket", "daemon", "pid_file"]);
    let kept = Config::new(s, None)
        .unwrap()
        .keeping(Reload::Restart, &running);
    assert_eq!((kept.daemon, &kept.pid_file), (false, &None));
    assert_eq!(kept.rate, 2.0);
    assert_eq!(changes(&running.settings, &kept.settings).len(), 1);
}
