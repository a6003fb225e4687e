//! The real `chatd` binary as a child process, for the tests whose subject is the process:
//! signals, reloads, the pid file, logging to stderr or files, exit codes, sd_notify. Tests of
//! what chatd says on its sockets use the in-process [`crate::Server`] instead.

use crate::admin::socket_dir;
use crate::process::{bin, signal, wait_child};
use crate::serving::Serving;
use crate::wait::{DEADLINE, Lines};
use std::net::SocketAddr;
use std::ops::Deref;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

/// A running `chatd`, killed when dropped. Its addresses, admin socket and log (its stderr)
/// are [`Serving`]'s.
pub struct Chatd {
    child: Child,
    serving: Serving,
    /// Where chatd reports readiness (`NOTIFY_SOCKET`). Kept open for the daemon's life:
    /// later notifications (reloads, the stop) are queued here, not refused with a warning in
    /// the log.
    notify: UnixDatagram,
    /// Whether READY=1 is still to be read from `notify`: not when the test named its own
    /// `NOTIFY_SOCKET` (and so reads the notifications itself), nor once read.
    await_ready: bool,
    /// Holds the notify socket and, when the test did not choose a path, the admin socket:
    /// every daemon gets its own, so tests running in parallel never meet on a default path.
    /// Dropped after the child.
    _dir: tempfile::TempDir,
}

impl Chatd {
    /// Starts chatd on a free loopback port (unless `args` has `--listen`) and waits until it
    /// says where it listens and is ready.
    pub fn start(args: &[&str]) -> Chatd {
        Chatd::start_with(args, |_| {})
    }

    /// Like [`Chatd::start`], with a hook to adjust the command (environment, say).
    ///
    /// Unless `args` has `--admin-socket`, the daemon's admin socket goes in a temp dir of its
    /// own (through `CHATD_ADMIN_SOCKET`, which `adjust` may still override).
    pub fn start_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> Chatd {
        let mut listen = Vec::new();
        if !args.contains(&"--listen") {
            listen.extend(["--listen", "127.0.0.1:0"]);
        }
        let mut d = Chatd::spawn_with(&[&listen, args].concat(), adjust);
        let plain = args.iter().filter(|a| **a == "--listen").count().max(1);
        let tls = args.iter().filter(|a| **a == "--tls-listen").count();
        d.wait_listening(plain + tls);
        d
    }

    /// Starts chatd without waiting for anything: for runs that log to files, or that are
    /// expected to fail. The admin socket is the one in `args`, else one in a private temp
    /// dir as with [`Chatd::start_with`].
    pub fn spawn_with(args: &[&str], adjust: impl FnOnce(&mut Command)) -> Chatd {
        let dir = socket_dir();
        let admin_socket = match args.iter().position(|a| *a == "--admin-socket") {
            Some(i) => PathBuf::from(args[i + 1]),
            None => dir.path().join("admin.sock"),
        };
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).expect("bind a notify socket");
        notify
            .set_read_timeout(Some(DEADLINE))
            .expect("set a read timeout");
        let mut cmd = Command::new(bin("chatd"));
        cmd.args(args)
            .env("RUST_LOG", "info")
            .env("CHATD_ADMIN_SOCKET", &admin_socket)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        adjust(&mut cmd);
        let ours = cmd
            .get_envs()
            .any(|(k, v)| k == "NOTIFY_SOCKET" && v == Some(notify_path.as_os_str()));
        let mut child = cmd.spawn().expect("spawn chatd");
        let stderr = child.stderr.take().expect("piped stderr");
        Chatd {
            child,
            serving: Serving {
                addrs: Vec::new(),
                tls_addrs: Vec::new(),
                admin_socket,
                log: Lines::read_from(stderr, "chatd"),
            },
            notify,
            await_ready: ours,
            _dir: dir,
        }
    }

    /// Waits until chatd has logged `count` "listening on" lines (plain and TLS), takes the
    /// addresses from them, and waits until it is ready.
    pub fn wait_listening(&mut self, count: usize) {
        while self.addrs.len() + self.tls_addrs.len() < count {
            let line = self.wait_log("listening on ");
            let said = line.rsplit("listening on ").next().unwrap().trim();
            let (addr, tls) = match said.strip_suffix(" (TLS)") {
                Some(a) => (a, true),
                None => (said, false),
            };
            let addr = addr
                .parse()
                .unwrap_or_else(|_| panic!("bad address in {line:?}"));
            if tls {
                self.serving.tls_addrs.push(addr);
            } else {
                self.serving.addrs.push(addr);
            }
        }
        self.wait_ready();
    }

    /// Waits for chatd's READY=1, which it sends once its signal handlers are in place (its
    /// "listening on" lines come before them: a signal sent on those alone can kill it). Does
    /// nothing when the test set `NOTIFY_SOCKET` itself and so reads the notifications.
    pub fn wait_ready(&mut self) {
        if !self.await_ready {
            return;
        }
        let mut buf = [0u8; 4096];
        let n = self.notify.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "chatd did not report ready ({e}); log so far:\n{}",
                self.log().join("\n")
            )
        });
        let first = String::from_utf8_lossy(&buf[..n]);
        assert!(
            first.lines().any(|l| l == "READY=1"),
            "chatd's first notification is not READY=1: {first:?}"
        );
        self.await_ready = false;
    }

    pub fn set_addrs(&mut self, addrs: Vec<SocketAddr>) {
        self.serving.addrs = addrs;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, `KILL`).
    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_child(&mut self.child)
    }
}

impl Deref for Chatd {
    type Target = Serving;

    fn deref(&self) -> &Serving {
        &self.serving
    }
}

impl Drop for Chatd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
