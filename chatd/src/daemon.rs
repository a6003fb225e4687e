//! `--daemon`: fork to the background, but only let the terminal go once start-up worked.
//!
//! The fork (daemonix, the maintained fork of daemonize 0.5) happens before the tokio runtime
//! and the log writer's thread exist, since only the forking thread survives a fork. The
//! original process then waits on a socket pair: the daemon sends one byte, 0 once it
//! listens (the parent exits 0) or its exit code when start-up failed (the parent exits with
//! it). Until then the daemon keeps the terminal as its stderr, so "address in use" reaches
//! the person who typed the command; once ready it points stderr at /dev/null.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// What the caller of [`daemonize`] is after the fork.
pub enum Role {
    /// The original process: exit with this code.
    Parent(u8),
    /// The daemon: report start-up through this.
    Daemon(Detach),
}

/// The daemon's line back to the waiting parent.
pub struct Detach {
    tx: UnixStream,
}

/// Forks into the background. Must run before any thread is started.
pub fn daemonize() -> Result<Role, String> {
    let (parent_end, child_end) =
        UnixStream::pair().map_err(|e| format!("--daemon: cannot create a socket pair: {e}"))?;
    let outcome = daemonix::Daemonize::new()
        // Keep no directory busy; paths were made absolute before the fork.
        .working_directory("/")
        .stdout(daemonix::Stdio::devnull())
        .stderr(daemonix::Stdio::keep())
        .execute();
    match outcome {
        daemonix::Outcome::Parent(Ok(_)) => {
            drop(child_end);
            let mut parent_end = parent_end;
            let mut b = [0u8; 1];
            Ok(Role::Parent(match parent_end.read(&mut b) {
                Ok(1) => b[0],
                // The daemon died without a word (killed, say); its stderr said why, if
                // anything.
                _ => 1,
            }))
        }
        daemonix::Outcome::Parent(Err(e)) => Err(format!("--daemon: cannot fork: {e}")),
        daemonix::Outcome::Child(Ok(_)) => {
            drop(parent_end);
            Ok(Role::Daemon(Detach { tx: child_end }))
        }
        daemonix::Outcome::Child(Err(e)) => {
            let mut tx = child_end;
            let _ = tx.write_all(&[1]);
            eprintln!("chatd: --daemon: cannot detach: {e}");
            std::process::exit(1);
        }
    }
}

impl Detach {
    /// Start-up worked: the parent exits 0 and the daemon lets go of the terminal.
    pub fn ready(mut self) {
        let _ = self.tx.write_all(&[0]);
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            // SAFETY: dup2 on two descriptors we own; it replaces fd 2 atomically, so a
            // concurrent write to stderr goes to one file or the other, never nowhere.
            unsafe {
                libc::dup2(null.as_raw_fd(), libc::STDERR_FILENO);
            }
        }
    }

    /// Start-up failed with `code`: the parent exits with it.
    pub fn failed(mut self, code: u8) {
        let _ = self.tx.write_all(&[code.max(1)]);
    }
}

/// Makes the paths given as flags absolute against the working directory, so they keep
/// meaning the same file after the daemon changes directory to `/` (and on reload). Paths in
/// the config file are taken from the file's own directory instead (see
/// [`crate::config_file`]).
pub fn absolute_paths(args: &mut crate::config::Args) {
    let Ok(cwd) = std::env::current_dir() else {
        // No working directory to be relative to: the paths cannot be opened either way.
        return;
    };
    args.settings.rebase(&cwd);
    if let Some(p) = &mut args.config {
        crate::config::values::Rebase::rebase(p, &cwd);
    }
}
