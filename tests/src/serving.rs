//! What every running chatd offers a test, whether [`crate::Server`] serves it in-process or
//! [`crate::Chatd`] runs the binary: its chat addresses, its admin socket (with `chatctl` to
//! use it), and its log. Both dereference to a [`Serving`], so a test body reads the same
//! against either and needs no trait in scope.

use crate::admin::{chatctl_at, watch};
use crate::process::{Run, Running};
use crate::wait::Lines;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub struct Serving {
    pub(crate) addrs: Vec<SocketAddr>,
    /// The TLS listeners' addresses.
    pub(crate) tls_addrs: Vec<SocketAddr>,
    pub(crate) admin_socket: PathBuf,
    /// Every line chatd logs (stderr for the binary, its tracing output in-process).
    pub(crate) log: Lines,
}

impl Serving {
    /// The first listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first TLS listener's address.
    pub fn tls_addr(&self) -> SocketAddr {
        *self.tls_addrs.first().expect("chatd has no TLS listener")
    }

    /// The admin socket it serves.
    pub fn admin_socket(&self) -> &Path {
        &self.admin_socket
    }

    /// Runs the real `chatctl` against its admin socket.
    pub fn chatctl(&self, args: &[&str]) -> Run {
        chatctl_at(&self.admin_socket, args)
    }

    /// Starts `chatctl watch ARGS...` against it and returns once chatd has subscribed it, so
    /// that every later event reaches it.
    pub fn watch(&self, args: &[&str]) -> Running {
        watch(&self.admin_socket, &self.log, args)
    }

    /// Every line logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.all()
    }

    /// Waits for the next log line containing `needle` and returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        self.log.wait_for(needle)
    }

    /// Like [`Serving::wait_log`], but also finds a line logged before the call (one that an
    /// earlier `wait_log` read past).
    pub fn wait_logged(&self, needle: &str) -> String {
        self.log.find_or_wait(needle)
    }
}
