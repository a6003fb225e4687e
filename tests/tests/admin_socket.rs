//! The admin socket's life as the library sees it, served in-process: a stale file replaced at
//! start, a missing directory created, and what chatctl says when no daemon answers. What the
//! binary does with it (its mode and removal on a clean exit, refusing to start beside
//! another chatd or over a file that is not a socket, the environment variable) is in
//! `service_admin_socket.rs`.

use e2e::{Server, chatctl_at, socket_dir};
use std::os::unix::fs::PermissionsExt;

#[test]
fn a_stale_socket_left_by_a_crash_is_replaced() {
    let dir = socket_dir();
    let path = dir.path().join("admin.sock");
    // A socket file nobody listens on, as a killed daemon leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let run = chatctl_at(&path, &["status"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        format!(
            "chatctl: cannot reach chatd at {}: connection refused — nothing listens there (a stale socket?); is chatd running?\n",
            path.display()
        )
    );

    let d = Server::start(&["--admin-socket", path.to_str().unwrap()]);
    assert!(
        d.log()
            .iter()
            .any(|l| l.contains("replaced a stale admin socket")),
        "{:?}",
        d.log()
    );
    assert_eq!(chatctl_at(&path, &["status"]).code, 0);
}

#[test]
fn a_missing_socket_directory_is_created_for_owner_and_group() {
    let dir = socket_dir();
    let path = dir.path().join("run/chatd/admin.sock");
    let _d = Server::start(&["--admin-socket", path.to_str().unwrap()]);
    let md = std::fs::metadata(path.parent().unwrap()).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o750);
    assert_eq!(chatctl_at(&path, &["status"]).code, 0);
}

#[test]
fn chatctl_without_a_daemon_names_the_path_and_exits_3() {
    let dir = socket_dir();
    let path = dir.path().join("admin.sock");
    for args in [&["status"][..], &["users"], &["kick", "bob"], &["watch"]] {
        let run = chatctl_at(&path, args);
        assert_eq!(run.code, 3, "{args:?}");
        assert_eq!(run.stdout, "");
        assert_eq!(
            run.stderr,
            format!(
                "chatctl: cannot reach chatd at {}: no such file — is chatd running?\n",
                path.display()
            )
        );
    }
}
