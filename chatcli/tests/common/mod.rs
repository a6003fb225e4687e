//! What the chatcli tests share beyond the workspace harness (`e2e`, which serves chatd
//! in-process and runs binaries): the binary under test, a command for it with a clean
//! environment, and a runtime for the harness's raw protocol clients.

#![allow(dead_code)]

use e2e::Run;
use std::path::PathBuf;
use std::process::Command;

pub fn chatcli() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chatcli"))
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

/// Runs `cmd` to completion with `stdin` as its input, within the deadline.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Run {
    e2e::run_with_input(&mut cmd, Some(stdin))
}

/// A runtime for the raw protocol clients of the harness.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
