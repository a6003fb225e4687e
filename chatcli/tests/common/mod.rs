//! What the chatcli tests share beyond the workspace harness (`e2e`): making sure `chatd` is
//! built when only this package is tested, and running `chatcli` with a deadline.
//!
//! `e2e::bin` expects the binaries next to the test executable. `cargo test --workspace`
//! builds them all; `cargo test -p chatcli` builds only ours, so chatd is built here on first
//! use.

#![allow(dead_code)]

use e2e::{Chatd, DEADLINE};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Once;

pub fn chatcli() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chatcli"))
}

/// Starts chatd with `args`, building it first if this run has not.
pub fn chatd(args: &[&str]) -> Chatd {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let target = chatcli().parent().expect("target dir").join("chatd");
        if !target.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let ok = Command::new(cargo)
                .args(["build", "-p", "chatd", "--bin", "chatd"])
                .status()
                .expect("run cargo build")
                .success();
            assert!(ok, "building chatd failed");
        }
    });
    Chatd::start(args)
}

/// A `chatcli` command with a clean environment for the flags it reads.
pub fn cmd(server: &str) -> Command {
    let mut c = Command::new(chatcli());
    c.env_remove("CHATD_SERVER")
        .env_remove("CHAT_USER")
        .env_remove("CHATCLI_HISTORY")
        .arg("--server")
        .arg(server);
    c
}

/// What a finished chatcli did.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> i32 {
        self.status.code().expect("chatcli exited by a signal")
    }
}

/// Runs `cmd` with `stdin` fed from a thread (so a full pipe cannot deadlock), waiting for its
/// exit with a deadline.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chatcli");
    let input = stdin.to_vec();
    let mut pipe = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        // chatcli may exit before reading everything (an error path): that is not our failure.
        let _ = pipe.write_all(&input);
    });
    let out = finish(child);
    feeder.join().expect("stdin feeder");
    out
}

/// Waits for `child` (stdout and stderr piped) and collects its output.
pub fn finish(child: Child) -> Output {
    let (status, stdout, stderr) = e2e::collect(child);
    Output {
        status,
        stdout,
        stderr,
    }
}

/// A runtime for the raw protocol clients of the harness.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The deadline every wait in these tests uses.
pub const WAIT: std::time::Duration = DEADLINE;
