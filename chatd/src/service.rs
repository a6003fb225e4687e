//! Running as a service: signals, SIGHUP reloads, sd_notify, the pid file.
//!
//! Signals come through signal-hook's iterator on a thread of its own, bridged to the runtime
//! by a channel; tokio's own signal handling is not used, so there is one mechanism. The
//! thread starts inside the runtime, that is after any daemon fork.
//!
//! systemd 252 (Debian 12) has no `Type=notify-reload`, so the unit is `Type=notify` with
//! `ExecReload=kill -HUP`: we send `READY=1` once listening, `RELOADING=1` (with
//! `MONOTONIC_USEC`, which newer systemd requires) then `READY=1` around a reload, and
//! `STOPPING=1` when a stop begins. Without `NOTIFY_SOCKET` these are no-ops.

use crate::config::{Args, Reload};
use crate::config_file::{self, render};
use crate::live::Live;
use crate::logging::Logging;
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Settings a reload cannot change: the sockets are bound and the process forked already.
pub const RESTART_ONLY: &[&str] = &["listen", "admin_socket", "daemon", "pid_file"];

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

/// Sends state to the service manager, if there is one; failures are logged, never fatal.
pub fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
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
            for key in needs_restart(&render(&old), &render(&new)) {
                let what = if key == "listen" {
                    "listen addresses"
                } else {
                    key.as_str()
                };
                warn!(key = %key, "{what} changed; restart chatd to apply");
            }
            // What cannot change keeps its running value, so the live config stays true.
            let new = new.keeping(Reload::Restart, &old);
            let changes = diff(&render(&old), &render(&new));
            match logging.apply(&new) {
                Err(e) => {
                    error!("reload failed, keeping the running configuration: {e}");
                    "reload failed; running with the previous configuration"
                }
                Ok(_) => {
                    for (key, (from, to)) in &changes {
                        info!(key = %key, from = %from, to = %to, "setting changed");
                    }
                    if new.password != old.password {
                        info!("login password changed");
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

/// The `key = value` lines of two rendered configs that differ, except the keys a reload
/// cannot apply.
fn diff(old: &str, new: &str) -> BTreeMap<String, (String, String)> {
    changes(old, new)
        .into_iter()
        .filter(|(k, _)| !RESTART_ONLY.contains(&k.as_str()))
        .collect()
}

/// The keys a reload cannot apply ([`RESTART_ONLY`]) whose value differs.
fn needs_restart(old: &str, new: &str) -> Vec<String> {
    changes(old, new)
        .into_keys()
        .filter(|k| RESTART_ONLY.contains(&k.as_str()))
        .collect()
}

/// Every `key = value` line of two rendered configs that differs.
fn changes(old: &str, new: &str) -> BTreeMap<String, (String, String)> {
    let pairs = |s: &str| -> BTreeMap<String, String> {
        s.lines()
            .filter_map(|l| {
                let l = l.strip_prefix("# ").unwrap_or(l);
                let (k, v) = l
                    .split_once(" = ")
                    .or_else(|| l.strip_suffix(" is not set").map(|k| (k, "(not set)")))?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect()
    };
    let (old, mut new) = (pairs(old), pairs(new));
    old.into_iter()
        .filter_map(|(k, from)| {
            let to = new.remove(&k)?;
            (to != from).then_some((k, (from, to)))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lists_changed_keys_but_not_restart_only_ones() {
        let a = "listen = [\"a\"]\nmax_clients = 5\n# log_dir is not set\nrate = 1.0\n";
        let b = "listen = [\"b\"]\nmax_clients = 6\nlog_dir = \"/x\"\nrate = 1.0\n";
        let d = diff(a, b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d["max_clients"], ("5".into(), "6".into()));
        assert_eq!(d["log_dir"], ("(not set)".into(), "\"/x\"".into()));
        assert_eq!(needs_restart(a, b), ["listen"]);
    }

    #[test]
    fn every_key_that_needs_a_restart_is_named() {
        let a = "daemon = false\n# pid_file is not set\nadmin_socket = \"/a\"\nrate = 1.0\n";
        let b = "daemon = true\npid_file = \"/p\"\nadmin_socket = \"/b\"\nrate = 2.0\n";
        assert_eq!(needs_restart(a, b), ["admin_socket", "daemon", "pid_file"]);
    }
}
