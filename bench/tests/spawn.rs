//! chatbench's own server never outlives it: killed outright (so none of its clean-up runs),
//! chatbench still takes the chatd it spawned with it, and that chatd removes its socket.

use e2e::{bin, chatctl_at, wait_child, wait_in_dir, wait_pid_exit};
use serde_json::Value;
use std::process::{Command, Stdio};

#[test]
fn a_killed_chatbench_takes_its_spawned_chatd_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bench = Command::new(bin("chatbench"))
        .arg("idle")
        .arg("--spawn")
        .arg(bin("chatd"))
        .args(["--no-relay", "--idle-conns", "5", "--idle-secs", "60"])
        // The spawned chatd's admin socket goes to the temporary directory.
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = wait_in_dir(tmp.path(), "the spawned chatd's admin socket", || {
        std::fs::read_dir(tmp.path())
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "sock"))
    });
    let status = chatctl_at(&socket, &["status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let pid = serde_json::from_str::<Value>(&status.stdout).unwrap()["pid"]
        .as_u64()
        .unwrap() as u32;
    bench.kill().unwrap();
    wait_child(&mut bench);
    wait_pid_exit(pid);
    assert!(
        !socket.exists(),
        "chatd stopped by SIGTERM removes its socket; it is still there"
    );
}
