//! Running the workspace's binaries: finding (and if need be building) them, running one to
//! completion with its pipes collected, keeping one running while its stdout is read line by
//! line, signals, waiting for an exit with a deadline, and running as another user.
//!
//! Binaries are found next to the test executable (`target/<profile>/`), as ripgrep's tests
//! do: `CARGO_BIN_EXE_*` exists only for a package's own binaries. `cargo test --workspace`
//! builds them all first; a narrower `cargo test -p ...` may not, so [`bin`] builds a missing
//! one once.

use crate::wait::{DEADLINE, Lines, wait_readable};
use rustix::process::{Pid, Signal, kill_process, pidfd_open};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Mutex;

/// Path of one of the workspace's binaries (each is the binary of the package of the same
/// name), built for the same profile as the tests.
pub fn bin(name: &str) -> PathBuf {
    // One build at a time: tests asking for the same binary in parallel wait for the first.
    static BUILDING: Mutex<()> = Mutex::new(());
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    let path = dir.join(name);
    if !path.exists() {
        let _one = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "-p", name, "--bin", name]);
            let profile = dir.file_name().and_then(|p| p.to_str()).unwrap_or("debug");
            if profile != "debug" {
                build.args(["--profile", profile]);
            }
            let ok = build.status().expect("run cargo build").success();
            assert!(ok, "building {name} failed");
        }
    }
    assert!(
        path.exists(),
        "{} not found after building it",
        path.display()
    );
    path
}

/// What a finished command printed, and how it exited.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    /// The exit code, -1 if a signal ended it (so no expected code matches by accident).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion, stdin empty, within the deadline.
pub fn run(mut cmd: Command) -> Run {
    run_with_input(cmd.stdin(Stdio::null()), None)
}

/// Runs `cmd` to completion with `input` as its stdin, fed from a thread so that a full pipe
/// cannot deadlock us, within the deadline.
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>) -> Run {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let feeder = input.map(|input| {
        let input = input.to_vec();
        let mut pipe = child.stdin.take().expect("piped stdin");
        // The program may exit before reading everything (an error path): not our failure.
        std::thread::spawn(move || drop(pipe.write_all(&input)))
    });
    let run = collect(child);
    if let Some(f) = feeder {
        f.join().expect("stdin feeder");
    }
    run
}

/// Runs a workspace binary to completion (stdin empty, within the deadline): exit code,
/// stdout, stderr.
pub fn run_bin(
    name: &str,
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> (i32, String, String) {
    let mut cmd = Command::new(bin(name));
    cmd.args(args);
    adjust(&mut cmd);
    let r = run(cmd);
    (r.code, r.stdout, r.stderr)
}

/// Waits for `child` (within the deadline) while reading whichever of its stdout and stderr
/// are piped and not taken yet, each on a thread so neither pipe can fill and stall it.
pub fn collect(mut child: Child) -> Run {
    fn drain(r: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_child(&mut child);
    Run {
        status,
        code: status.code().unwrap_or(-1),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Waits for `child` to exit, failing the test past the deadline.
pub fn wait_child(child: &mut Child) -> ExitStatus {
    // The exit is awaited on a pidfd, which becomes readable when the process ends; std's
    // wait() then reaps it, which keeps std's own bookkeeping right. Our own unreaped child
    // keeps its pid, so the pidfd cannot name another process.
    wait_pid_exit(child.id());
    child.wait().expect("reap the child")
}

/// Waits for a process to exit, our child or not (a daemon that forked away), on its pidfd,
/// and fails the test past the deadline.
pub fn wait_pid_exit(pid: u32) {
    let pid = Pid::from_raw(pid as i32).expect("a pid above 0");
    match pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => assert!(
            wait_readable(&fd, DEADLINE),
            "process {pid} did not exit in {DEADLINE:?}"
        ),
        // Already gone is what we were waiting for.
        Err(rustix::io::Errno::SRCH) => {}
        Err(e) => panic!("pidfd_open({pid}): {e}"),
    }
}

/// Sends a signal by its name without `SIG` (`TERM`, `INT`, `HUP`, `KILL`).
pub fn signal(pid: u32, name: &str) {
    let sig = match name {
        "TERM" => Signal::TERM,
        "INT" => Signal::INT,
        "HUP" => Signal::HUP,
        "KILL" => Signal::KILL,
        other => panic!("no signal named {other} here; add it"),
    };
    let pid = Pid::from_raw(pid as i32).expect("a pid above 0");
    kill_process(pid, sig).unwrap_or_else(|e| panic!("kill -{name} {pid}: {e}"));
}

/// A running program whose stdout lines are read as they come; killed when dropped.
pub struct Running {
    /// `None` once [`Running::finish`] has taken it to wait for its exit.
    child: Option<Child>,
    lines: Lines,
}

impl Running {
    /// Spawns `cmd` with stdin, stdout and stderr piped.
    pub fn start(mut cmd: Command, source: &'static str) -> Running {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {source}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        Running {
            child: Some(child),
            lines: Lines::read_from(stdout, source),
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("still running")
    }

    /// The next line it printed.
    pub fn next_line(&self) -> String {
        self.lines.next_line()
    }

    /// Its stdin, to write to; closing it is dropping it.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.child().stdin.take().expect("stdin not taken yet")
    }

    pub fn signal(&self, name: &str) {
        signal(self.child.as_ref().expect("still running").id(), name);
    }

    /// Waits for it to exit on its own: its status, stderr and the stdout lines not read yet.
    pub fn finish(mut self) -> Run {
        let mut run = collect(self.child.take().expect("still running"));
        run.stdout = self.lines.rest().join("\n");
        run
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Makes `cmd` run as `uid`:`gid` with exactly the supplementary `groups` (the test must run
/// as root). Returns false, doing nothing, when not root: callers skip their test then.
pub fn run_as(cmd: &mut Command, uid: u32, gid: u32, groups: &[u32]) -> bool {
    use std::os::unix::process::CommandExt;
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // std's `uid`/`gid` cannot set supplementary groups (`groups` is unstable) and drop them
    // all, so the three calls are made here.
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
pub fn copy_for_others(from: &std::path::Path, to: &std::path::Path) {
    let ok = Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(ok.success(), "cp {} {}", from.display(), to.display());
}
