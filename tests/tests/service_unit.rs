//! The systemd unit's choices that keep the service manageable, checked on the file, plus
//! `systemd-analyze verify` on a copy that points at the binary just built (CI verifies the
//! installed one too, and measures its exposure).

use std::collections::HashMap;

const UNIT: &str = include_str!("../../systemd/chatd.service");

/// `key -> values` of the unit (a key may repeat).
fn settings() -> HashMap<&'static str, Vec<&'static str>> {
    let mut m: HashMap<&str, Vec<&str>> = HashMap::new();
    for line in UNIT.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            m.entry(k).or_default().push(v);
        }
    }
    m
}

fn one(key: &str) -> &'static str {
    let s = settings();
    let v = s.get(key).unwrap_or_else(|| panic!("{key}= missing"));
    assert_eq!(v.len(), 1, "{key}= set more than once");
    v[0]
}

#[test]
fn the_unit_is_notify_type_reloads_by_sighup_and_never_daemonizes() {
    assert_eq!(one("Type"), "notify");
    assert_eq!(one("NotifyAccess"), "main");
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert!(!one("ExecStart").contains("--daemon"));
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!((one("User"), one("Group")), ("chatd", "chatd"));
    for dir in ["RuntimeDirectory", "StateDirectory", "LogsDirectory"] {
        assert_eq!(one(dir), "chatd");
    }
}

#[test]
fn the_admin_group_can_reach_the_admin_socket() {
    // The socket sits in /run/chatd: group chatd must be able to traverse it...
    assert_eq!(one("RuntimeDirectoryMode"), "0750");
    assert!(one("ExecStart").contains("--admin-socket /run/chatd/admin.sock"));
    // ...and connect to it: a umask must leave group read/write (0077 would not).
    let umask = u32::from_str_radix(one("UMask"), 8).unwrap();
    assert_eq!(
        umask & 0o060,
        0,
        "UMask {umask:o} strips the group's access"
    );
    assert_eq!(umask & 0o007, 0o007, "UMask {umask:o} leaves others access");
    // PrivateUsers=yes would show every other uid as nobody to the peer-credential check.
    assert!(!settings().contains_key("PrivateUsers"));
}

#[test]
fn the_hardening_the_issue_lists_is_there() {
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(k), v, "{k}");
    }
    assert!(settings()["SystemCallFilter"].contains(&"@system-service"));
}

#[test]
#[ignore = "needs systemd-analyze (Debian's systemd); CI installs it and runs --ignored"]
fn systemd_analyze_verify_accepts_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let chatd = e2e::bin("chatd");
    let unit = UNIT.replace("/usr/bin/chatd", chatd.to_str().unwrap());
    let path = dir.path().join("chatd.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}
