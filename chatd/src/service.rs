//! Running as a service: signals, SIGHUP reloads, sd_notify, the pid file.
//!
//! Signals come through signal-hook's iterator on a thread of its own, bridged to the runtime
//! by a channel; tokio's own signal handling is not used, so there is one mechanism. The
//! thread starts inside the runtime, that is after any daemon fork.
//!
//! systemd 252 (Debian 12) has no `Type=notify-reload`, so the unit is `Type=notify` with
//! `ExecReload=kill -HUP`: we send `READY=1` once listening, `RELOADING=1` (with
//! `MONOTONIC_USEC`, which newer systemd requires) then `READY=1` around a reload, and
//! `STOPPING=1` when a stop begins. Without `NOTIFY_SOCKET` these are no-ops; they never wait
//! for the manager to read (see [`notify`]).

use crate::accept::{self, FD_OVERHEAD, FdLimit};
use crate::config::{Args, Reload};
use crate::config_file;
use crate::live::Live;
use crate::logging::Logging;
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// SIGTERM, SIGINT and SIGHUP as they arrive.
pub struct Signals {
    rx: mpsc::UnboundedReceiver<i32>,
    handle: signal_hook::iterator::Handle,
}

impl Signals {
    /// Starts watching the signals chatd handles.
    pub fn watch() -> io::Result<Signals> {
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let handle = signals.handle();
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if tx.send(sig).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Signals { rx, handle })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.handle.close();
    }
}

/// Raises the soft descriptor limit to the hard one (once, at start), then warns if it is
/// still short of what `max_clients` needs.
pub fn raise_fd_limit(max_clients: usize) {
    match accept::raise_fd_limit() {
        Ok(l) => {
            if l.soft > l.was {
                info!(
                    from = l.was,
                    to = l.soft,
                    "raised the file descriptor limit (RLIMIT_NOFILE) to its hard limit"
                );
            }
            warn_if_fds_short(l, max_clients);
        }
        Err(e) => warn!(error = %e, "cannot read the file descriptor limit (RLIMIT_NOFILE)"),
    }
}

/// One line when `limit` cannot hold `max_clients`: both numbers and the fix.
fn warn_if_fds_short(limit: FdLimit, max_clients: usize) {
    let needed = accept::fds_needed(max_clients);
    if limit.soft < needed {
        warn!(
            "file descriptor limit (RLIMIT_NOFILE) is {} (hard limit {}), below the {needed} that max_clients = {max_clients} needs (one a client and {FD_OVERHEAD} more); raise LimitNOFILE= in the unit (ulimit -n outside systemd) or lower max_clients; until then clients past the limit get server_full",
            limit.soft, limit.hard
        );
    }
}

/// Sends state to the service manager, if there is one; failures are logged, never fatal.
pub fn notify(states: &[NotifyState]) {
    if let Err(e) = send_notify(states) {
        warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// What `sd_notify::notify` does, without waiting: its socket blocks when the manager's
/// queue is full (ten datagrams by default), which would stall the task that reloads (a
/// worker of the runtime) for as long as nobody reads. A notification that does not fit is
/// dropped with a warning instead.
fn send_notify(states: &[NotifyState]) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    let sent = match path.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            sock.send_to_addr(msg.as_bytes(), &SocketAddr::from_abstract_name(name)?)
        }
        None => sock.send_to(msg.as_bytes(), &path),
    }?;
    if sent != msg.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "incomplete write"));
    }
    Ok(())
}

/// Tells systemd the service is up: call once every listener is bound.
pub fn notify_ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Serves reloads on SIGHUP and completes on SIGTERM or SIGINT: the shutdown future given to
/// [`crate::run`].
pub async fn until_stopped(signals: &mut Signals, args: &Args, live: &Live, logging: &Logging) {
    loop {
        let name = match signals.rx.recv().await {
            Some(SIGHUP) => {
                reload(args, live, logging);
                continue;
            }
            Some(SIGTERM) => "SIGTERM",
            Some(SIGINT) => "SIGINT",
            Some(_) => continue,
            None => "the signal thread ending",
        };
        info!("{name} received: stopping");
        notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
        return;
    }
}

/// Completes on a second SIGTERM or SIGINT, for an administrator who will not wait for the
/// drain (Ctrl-C pressed twice). SIGHUP is ignored from now on: the config no longer matters.
pub async fn stopped_again(signals: &mut Signals) {
    loop {
        let name = match signals.rx.recv().await {
            Some(SIGTERM) => "SIGTERM",
            Some(SIGINT) => "SIGINT",
            Some(_) => continue,
            // No more signals can arrive: only the drain can end the stop.
            None => return std::future::pending().await,
        };
        info!("{name} received again: not waiting for the drain");
        return;
    }
}

/// Re-reads the config file and puts what may change in force; on any error the running
/// config stays as it was.
pub fn reload(args: &Args, live: &Live, logging: &Logging) {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config_file::DEFAULT_CONFIG_PATH));
    info!("SIGHUP received: reloading {}", path.display());
    let status = match config_file::load(args) {
        Err(e) => {
            error!("reload failed, keeping the running configuration: {e}");
            "reload failed; running with the previous configuration"
        }
        Ok(new) => {
            let old = live.get();
            let (restart, changes): (Vec<_>, Vec<_>) =
                config_file::changes(&old.settings, &new.settings)
                    .into_iter()
                    .partition(|c| c.reload == Reload::Restart);
            for c in &restart {
                let what = if c.key == "listen" {
                    "listen addresses"
                } else {
                    c.key
                };
                warn!(key = %c.key, "{what} changed; restart chatd to apply");
            }
            // What cannot change keeps its running value, so the live config stays true.
            let new = new.keeping(Reload::Restart, &old);
            match logging.apply(&new) {
                Err(e) => {
                    error!("reload failed, keeping the running configuration: {e}");
                    "reload failed; running with the previous configuration"
                }
                Ok(_) => {
                    for c in &changes {
                        info!(key = %c.key, from = %c.from, to = %c.to, "setting changed");
                    }
                    if new.password != old.password {
                        info!("login password changed");
                    }
                    crate::tls::log_reload(old.tls.as_ref(), new.tls.as_ref());
                    if new.max_clients > old.max_clients
                        && let Ok(limit) = FdLimit::now()
                    {
                        warn_if_fds_short(limit, new.max_clients);
                    }
                    live.store(new);
                    info!(changed = changes.len(), "configuration reloaded");
                    "reloaded"
                }
            }
        }
    };
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// The pid file: written at start, removed when dropped (a clean stop).
pub struct PidFileGuard {
    path: PathBuf,
}

impl PidFileGuard {
    pub fn create(path: &Path) -> io::Result<PidFileGuard> {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFileGuard {
            path: path.to_owned(),
        })
    }
}

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            warn!(error = %e, path = %self.path.display(), "cannot remove the pid file");
        }
    }
}
