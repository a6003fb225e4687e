//! The end-to-end harness: chatd served in-process or as the real binary, the real `chatctl`
//! and `chatcli` as processes, raw protocol clients over real sockets, and waits on events (a
//! line, a close, a log line, an exit) with a deadline instead of sleeps.
//!
//! - [`server`]: [`Server`], chatd as a library in this process, for everything said on its
//!   sockets (protocol, limits, relaying, the admin channel).
//! - [`daemon`]: [`Chatd`], the chatd binary as a child process, for what only the process
//!   does (signals, reloads, the pid file, log files, exit codes, sd_notify).
//! - [`serving`]: [`Serving`], what both offer a test: addresses, admin socket, log.
//! - [`client`]: [`Client`], the raw protocol client; [`tls`], a CA and certificates made
//!   by the test, and TLS clients that trust it.
//! - [`admin`]: `chatctl` against an admin socket, once or as a `watch` stream.
//! - [`process`]: finding, running and waiting for the workspace's binaries.
//! - [`wait`]: [`DEADLINE`] and the waits on lines, descriptors and directories.

pub mod admin;
pub mod bystander;
pub mod client;
pub mod daemon;
pub mod process;
pub mod server;
pub mod serving;
pub mod tls;
pub mod wait;

pub use admin::{chatctl_at, chatctl_with, socket_dir};
pub use bystander::{Bystander, Pings};
pub use client::Client;
pub use daemon::Chatd;
pub use process::{
    Run, Running, bin, collect, copy_for_others, run, run_as, run_bin, run_with_input, signal,
    wait_child, wait_pid_exit,
};
pub use server::Server;
pub use serving::Serving;
pub use tls::TestCa;
pub use wait::{DEADLINE, Lines, wait_in_dir};
