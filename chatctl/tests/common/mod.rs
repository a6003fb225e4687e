//! What the chatctl tests share: a private socket path, and a fake daemon on it — the peer
//! chatctl talks to, scripted to be whatever chatd is not (garbled, silent, huge, slow).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// A private directory for a socket, and the socket's path in it.
pub fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = e2e::socket_dir();
    let path = dir.path().join("admin.sock");
    (dir, path)
}

/// Listens on `path`, accepts one connection, reads its first line (the request) and hands
/// the connection and that line to `then`, on a thread.
pub fn fake(
    path: &Path,
    then: impl FnOnce(UnixStream, String) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut request = String::new();
        reader.read_line(&mut request).unwrap();
        then(reader.into_inner(), request);
    })
}

/// Reads from `stream` until chatctl closes its end.
pub fn hold(stream: UnixStream) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        line.clear();
    }
}
