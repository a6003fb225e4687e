//! Who may use the admin socket, layer by layer. chatd, served in-process, runs as root here;
//! chatctl runs as `nobody` (uid 65534) with chosen groups. The kernel enforces the socket's
//! mode 0660 at `connect`; the daemon then checks the peer's credentials itself, which matters
//! when the mode or directory has been loosened. These tests need root: a plain `cargo test`
//! ignores them and CI runs them with `--ignored`.

use e2e::{Run, Server, bin, run, run_as};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const NOBODY: u32 = 65534;

/// A daemon whose socket directory others may traverse, and a copy of chatctl they may run
/// (the build directory may sit under a private home).
struct Setup {
    d: Server,
    chatctl: PathBuf,
}

fn setup() -> Setup {
    let d = Server::start(&[]);
    let dir = d.admin_socket().parent().unwrap().to_owned();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let chatctl = dir.join("chatctl");
    e2e::copy_for_others(&bin("chatctl"), &chatctl);
    let mut probe = Command::new("true");
    assert!(
        run_as(&mut probe, NOBODY, NOBODY, &[]),
        "these tests need root (run them as root with --ignored)"
    );
    Setup { d, chatctl }
}

fn chatctl_as(s: &Setup, uid: u32, gid: u32, groups: &[u32], args: &[&str]) -> Run {
    let mut cmd = Command::new(&s.chatctl);
    cmd.arg("--socket").arg(s.d.admin_socket()).args(args);
    assert!(run_as(&mut cmd, uid, gid, groups));
    run(cmd)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
#[ignore = "needs root; CI runs it with --ignored"]
fn the_kernel_refuses_a_user_outside_owner_and_group() {
    let s = setup();
    let run = chatctl_as(&s, NOBODY, NOBODY, &[], &["users"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        format!(
            "chatctl: cannot reach chatd at {}: permission denied — only root, chatd's user and members of its group may use the admin socket\n",
            s.d.admin_socket().display()
        )
    );
}

#[test]
#[ignore = "needs root; CI runs it with --ignored"]
fn the_daemon_refuses_other_users_even_when_the_mode_is_loosened() {
    let s = setup();
    chmod(s.d.admin_socket(), 0o666);
    let run = chatctl_as(&s, NOBODY, NOBODY, &[], &["kick", "anyone"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert_eq!(
        run.stderr,
        "chatctl: uid 65534 may not administer chatd: only root, uid 0 (chatd's user) and members of gid 0 (chatd's group) may\n"
    );
    let line = s.d.wait_log("admin connection refused");
    assert!(line.contains("uid=65534"), "{line}");
    assert!(line.contains("gid=65534"), "{line}");
}

#[test]
#[ignore = "needs root; CI runs it with --ignored"]
fn members_of_the_daemons_group_get_in_by_primary_or_supplementary_group() {
    let s = setup();
    let run = chatctl_as(&s, NOBODY, 0, &[], &["status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Supplementary only: the kernel lets it connect through the file's group, and the daemon
    // sees the group through SO_PEERGROUPS.
    let run = chatctl_as(&s, NOBODY, NOBODY, &[0], &["users", "--json"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "[]\n"),
        "{}",
        run.stderr
    );
    chmod(s.d.admin_socket(), 0o666);
    let run = chatctl_as(&s, NOBODY, NOBODY, &[100, 0], &["status"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
