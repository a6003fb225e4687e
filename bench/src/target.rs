//! The server under test: where it listens, which process it is, and what it costs.
//!
//! A server is either given (`--server`, optionally `--server-pid`; a `--peer`) or spawned by
//! the bench (`--spawn PATH` for chatd, or the bench's own `relay-server` subcommand). A spawned server
//! listens on `127.0.0.1:0` and reports `listening on ADDR` on stderr; the bench reads that
//! line rather than guessing a free port. Costs come from `/proc` (CPU time of every thread,
//! memory from `VmRSS` in `/proc/PID/status`), so chatd and the relay are measured the same
//! way, from outside.

use crate::client::Endpoint;
use crate::wire::Wire;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A server to measure. Dropping it kills a spawned server.
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    /// What it speaks.
    pub wire: Wire,
    child: Option<Child>,
    /// Files a killed server cannot remove itself (its admin socket).
    leftovers: Vec<std::path::PathBuf>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        for f in &self.leftovers {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl Target {
    /// Removes `path` once the server is gone.
    pub fn remove_on_drop(mut self, path: std::path::PathBuf) -> Target {
        self.leftovers.push(path);
        self
    }

    /// Sets what the server speaks (chatd's JSON lines unless told).
    pub fn with_wire(mut self, wire: Wire) -> Target {
        self.wire = wire;
        self
    }

    /// Where it listens and what it speaks, for the bench's connections.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.addr,
            wire: self.wire,
        }
    }

    /// A server someone else runs.
    pub fn external(addr: SocketAddr, pid: Option<u32>) -> Target {
        Target {
            name: "target".into(),
            addr,
            pid,
            wire: Wire::Json,
            child: None,
            leftovers: Vec::new(),
        }
    }

    /// Starts `cmd` and waits (at most 10 s) for its `listening on ADDR` line. The rest of its
    /// stderr is drained by a thread so the server never blocks on a full pipe; its last lines
    /// are kept for an error message.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Target> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1");
        // A chatbench that is killed, and so never runs its drop, must not leave the server
        // behind: it gets SIGTERM (and removes its socket) when chatbench dies. The signal is
        // tied to the spawning thread, which is the main thread or a runtime worker, and
        // those live as long as chatbench.
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {name}: {cmd:?}"))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(t) = &tx {
                    if let Some(addr) = listening_addr(&line) {
                        let _ = t.send(Ok(addr));
                        tx = None;
                    } else {
                        let _ = t.send(Err(line));
                    }
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(addr)) => {
                    return Ok(Target {
                        name: name.into(),
                        addr,
                        pid: Some(child.id()),
                        wire: Wire::Json,
                        child: Some(child),
                        leftovers: Vec::new(),
                    });
                }
                Ok(Err(line)) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "{name} did not report `listening on ADDR` within 10 s; its stderr:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    }

    /// CPU seconds used so far by the server, when its pid is known.
    pub fn cpu_secs(&self) -> Option<f64> {
        self.pid.and_then(cpu_secs)
    }

    /// The server's minor page faults and context switches so far, when its pid is known.
    pub fn faults_and_switches(&self) -> Option<(u64, u64)> {
        self.pid.and_then(faults_and_switches)
    }

    /// Resident memory of the server in KiB, when its pid is known.
    pub fn rss_kib(&self) -> Option<u64> {
        self.pid.and_then(rss_kib)
    }
}

/// Finds `listening on ADDR` in a log line, whatever the log format around it.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + 13..];
    let token = rest.split_whitespace().next()?;
    token
        .trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == ']' || c == '['))
        .parse()
        .ok()
}

/// CPU seconds used by process `pid`: the sum of its threads' on-CPU nanoseconds from
/// `/proc/PID/task/*/schedstat`. `/proc/PID/stat` counts in 10 ms ticks, too coarse for a
/// fanout run that costs the server 40 ms; schedstat misses only threads that already exited
/// (tokio's workers live as long as the runtime), so it falls back to stat when unavailable.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let from_schedstat = || -> Option<f64> {
        let mut ns = 0u64;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let s = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(ns as f64 / 1e9).filter(|&s| s > 0.0)
    };
    from_schedstat().or_else(|| stat_cpu_secs(pid))
}

/// Minor page faults (field 10 of `/proc/PID/stat`) and context switches, voluntary and not,
/// summed over the threads of process `pid`: what a run cost the server besides CPU time.
pub fn faults_and_switches(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let minflt: u64 = after.split(' ').nth(7)?.parse().ok()?;
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        for line in status.lines() {
            if let Some(n) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += n.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some((minflt, switches))
}

/// User plus system CPU seconds of process `pid` (fields 14 and 15 of `/proc/PID/stat`).
pub fn stat_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut f = after.split(' ');
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) as f64 / tick)
}

/// `VmRSS` of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Raises the soft open-file limit to the hard one (children inherit it) and says so.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let old = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                eprintln!(
                    "chatbench: raised soft RLIMIT_NOFILE {old} -> {}",
                    lim.rlim_max
                );
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_is_found_in_any_log_format() {
        let a: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        assert_eq!(listening_addr("listening on 127.0.0.1:4567"), Some(a));
        assert_eq!(
            listening_addr(
                "2026-01-01T00:00:00Z  INFO chatd: listening on 127.0.0.1:4567 admin=/x"
            ),
            Some(a)
        );
        assert_eq!(
            listening_addr("INFO listening on [::1]:80"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(listening_addr("starting"), None);
    }

    #[test]
    fn our_own_process_has_cpu_and_memory() {
        let me = std::process::id();
        assert!(cpu_secs(me).is_some());
        assert!(stat_cpu_secs(me).is_some());
        let (faults, switches) = faults_and_switches(me).unwrap();
        assert!(
            faults > 0 && switches > 0,
            "{faults} faults, {switches} switches"
        );
        assert!(rss_kib(me).unwrap() > 0);
    }
}
