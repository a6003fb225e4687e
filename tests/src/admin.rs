//! The admin channel from the outside: private socket directories, and the real `chatctl`
//! run to completion or kept running as a `watch` stream.

use crate::process::{Run, Running, bin, run};
use crate::wait::Lines;
use std::path::Path;
use std::process::Command;

/// A fresh directory under /tmp for Unix sockets: their paths are limited to 108 bytes, which
/// a path under `target/` can exceed.
pub fn socket_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("chatd-e2e-")
        .tempdir_in("/tmp")
        .expect("create a temp dir under /tmp")
}

/// Runs `chatctl --socket SOCKET ARGS...` to completion (it answers within its own 5 s).
pub fn chatctl_at(socket: &Path, args: &[&str]) -> Run {
    chatctl_with(socket, args, |_| {})
}

/// Like [`chatctl_at`], with a hook to adjust the command (another uid, say).
pub fn chatctl_with(socket: &Path, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Run {
    let mut cmd = chatctl_command(socket, args);
    adjust(&mut cmd);
    run(cmd)
}

/// Starts `chatctl --socket SOCKET watch ARGS...` and returns once chatd has subscribed it
/// (`log`, chatd's, says so), so that every later event reaches it.
pub fn watch(socket: &Path, log: &Lines, args: &[&str]) -> Running {
    let mut cmd = chatctl_command(socket, &["watch"]);
    cmd.args(args);
    let w = Running::start(cmd, "chatctl watch");
    log.wait_for("admin watching");
    w
}

fn chatctl_command(socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("chatctl"));
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove(proto::admin::SOCKET_ENV);
    cmd
}
