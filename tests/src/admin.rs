//! Helpers for the admin channel's tests: private socket directories, running `chatctl` to
//! completion or as a `watch` stream, and running it as another user.

use crate::{Chatd, DEADLINE, bin, wait_child};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

/// A fresh directory under /tmp for Unix sockets: their paths are limited to 108 bytes, which
/// a path under `target/` can exceed.
pub fn socket_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("chatd-e2e-")
        .tempdir_in("/tmp")
        .expect("create a temp dir under /tmp")
}

/// What a finished command printed, and how it exited.
#[derive(Debug)]
pub struct Run {
    /// The exit code (-1 if a signal ended it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `chatctl --socket SOCKET ARGS...` to completion (it answers within its own 5 s).
pub fn chatctl_at(socket: &Path, args: &[&str]) -> Run {
    chatctl_with(socket, args, |_| {})
}

/// Like [`chatctl_at`], with a hook to adjust the command (another uid, say).
pub fn chatctl_with(socket: &Path, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Run {
    let mut cmd = Command::new(bin("chatctl"));
    cmd.arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("CHATD_ADMIN_SOCKET")
        .stdin(Stdio::null());
    adjust(&mut cmd);
    cmd.output().expect("run chatctl").into()
}

/// A running `chatctl watch`, killed when dropped.
pub struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Chatd {
    /// Starts `chatctl watch ARGS...` on this daemon and returns once the daemon has
    /// subscribed it (its log says so), so every later event reaches it.
    pub fn watch(&self, args: &[&str]) -> Watch {
        let mut child = Command::new(bin("chatctl"))
            .arg("--socket")
            .arg(&self.admin_socket)
            .arg("watch")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chatctl watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        self.wait_log("admin watching");
        Watch { child, lines: rx }
    }
}

impl Watch {
    /// The next line `chatctl watch` printed.
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .expect("chatctl watch printed no line before the deadline")
    }

    /// Waits for chatctl to exit on its own; returns its exit code and what it wrote to
    /// stderr.
    pub fn wait_exit(mut self) -> (i32, String) {
        let status = wait_child(&mut self.child);
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut err).expect("read chatctl's stderr");
        }
        (status.code().unwrap_or(-1), err)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes `cmd` run as `uid`:`gid` with exactly the supplementary `groups` (the test must run
/// as root). Returns false, doing nothing, when not root: callers skip their test then.
pub fn run_as(cmd: &mut Command, uid: u32, gid: u32, groups: &[u32]) -> bool {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (setgroups, setgid, setuid) on memory it owns. The order
    // matters: groups and gid need root, which setuid gives up.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    true
}

/// Copies a binary for another user to run. The copy is made by `cp`, not by this process: a
/// file this process had open for writing would be inherited by the children that concurrent
/// tests fork, and exec of the copy would fail with ETXTBSY until they exec in turn.
pub fn copy_for_others(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(ok.success(), "cp {} {}", from.display(), to.display());
}
