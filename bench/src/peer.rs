//! Peers: other servers measured in the same run as chatd, on the same scenarios.
//!
//! `--peer nats=HOST:PORT` is a core NATS server, `--peer redis=HOST:PORT` a Redis server;
//! each is measured after chatd in every round of `pairs`, `fanout`, `latency` and `idle`
//! (not `slow`: cutting off a stalled reader is chatd's own promise). A peer is run by
//! someone else (the README says how to start each), so it is not fresh per run as chatd
//! and the relay are: memory one run leaves behind is still counted in the next.
//!
//! Its CPU and memory come from `/proc` like every server's, which needs its pid: given as
//! `nats=HOST:PORT,pid=PID`, or else found by the port. The kernel lists listening sockets
//! with their inode in `/proc/net/tcp` and `/proc/net/tcp6`; the process holding that socket
//! has a `/proc/PID/fd/N` link to `socket:[INODE]`. That works for a server on this machine
//! whose `/proc/PID/fd` the bench may read (its own user, or root); otherwise the peer's
//! figures are printed without CPU and memory (`na`) and a warning says why.

use crate::target::Target;
use crate::wire::Wire;
use anyhow::{Context, Result, bail};
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// One `--peer` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub wire: Wire,
    pub addr: SocketAddr,
    pub pid: Option<u32>,
}

impl FromStr for PeerSpec {
    type Err = anyhow::Error;

    /// `nats=HOST:PORT` or `redis=HOST:PORT`, optionally followed by `,pid=PID`.
    fn from_str(s: &str) -> Result<PeerSpec> {
        let Some((kind, rest)) = s.split_once('=') else {
            bail!("expected nats=HOST:PORT or redis=HOST:PORT, got {s:?}");
        };
        let wire = match kind {
            "nats" => Wire::Nats,
            "redis" => Wire::Redis,
            _ => bail!("unknown peer {kind:?}: chatbench speaks to nats and redis"),
        };
        let (addr, pid) = match rest.split_once(",pid=") {
            Some((addr, pid)) => {
                let pid = pid.parse().with_context(|| format!("bad pid {pid:?}"))?;
                (addr, Some(pid))
            }
            None => (rest, None),
        };
        let addr = addr
            .to_socket_addrs()
            .with_context(|| format!("bad address {addr:?}: expected HOST:PORT"))?
            .next()
            .with_context(|| format!("{addr:?} resolves to no address"))?;
        Ok(PeerSpec { wire, addr, pid })
    }
}

/// The names peers are reported under: `nats`, `redis`, and `nats-2` for a second NATS.
pub fn names(peers: &[PeerSpec]) -> Vec<String> {
    let mut names = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let kind = kind(p.wire);
        let n = peers[..i].iter().filter(|q| q.wire == p.wire).count();
        names.push(match n {
            0 => kind.to_string(),
            _ => format!("{kind}-{}", n + 1),
        });
    }
    names
}

fn kind(wire: Wire) -> &'static str {
    match wire {
        Wire::Nats => "nats",
        Wire::Redis => "redis",
        _ => "peer",
    }
}

/// The target for a peer, with its pid given or found.
pub fn target(spec: &PeerSpec, name: &str) -> Target {
    let pid = spec.pid.or_else(|| {
        let found = listener_pid(spec.addr.port());
        if found.is_none() {
            eprintln!(
                "chatbench: warning: no process of this machine that we may inspect listens \
                 on port {} ({name}): its CPU and memory are not reported; give \
                 {name}={},pid=PID",
                spec.addr.port(),
                spec.addr
            );
        }
        found
    });
    let mut t = Target::external(spec.addr, pid).with_wire(spec.wire);
    t.name = name.to_string();
    t
}

/// The process listening on TCP `port` (any local address), by way of its socket's inode.
pub fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| link.as_os_str() == w.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// The inodes of the sockets listening on `port` in a `/proc/net/tcp{,6}` table. Each row
/// is `sl local_address rem_address st ... uid timeout inode ...`, the local address as
/// `HEXADDR:HEXPORT`, state `0A` for LISTEN.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let f: Vec<&str> = row.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *f.get(3)? == "0A").then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_with_and_without_a_pid() {
        let p: PeerSpec = "nats=127.0.0.1:4222".parse().unwrap();
        assert_eq!(
            (p.wire, p.addr, p.pid),
            (Wire::Nats, "127.0.0.1:4222".parse().unwrap(), None)
        );
        let p: PeerSpec = "redis=127.0.0.1:6379,pid=42".parse().unwrap();
        assert_eq!((p.wire, p.pid), (Wire::Redis, Some(42)));
        assert!("kafka=127.0.0.1:1".parse::<PeerSpec>().is_err());
        assert!("nats".parse::<PeerSpec>().is_err());
        assert!("nats=127.0.0.1".parse::<PeerSpec>().is_err());
        assert!("nats=127.0.0.1:1,pid=x".parse::<PeerSpec>().is_err());
    }

    #[test]
    fn a_second_peer_of_a_kind_gets_a_number() {
        let p = |s: &str| s.parse::<PeerSpec>().unwrap();
        let peers = [
            p("nats=127.0.0.1:1"),
            p("redis=127.0.0.1:2"),
            p("nats=127.0.0.1:3"),
        ];
        assert_eq!(names(&peers), ["nats", "redis", "nats-2"]);
    }

    #[test]
    fn only_listening_rows_of_the_port_count() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:10AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5551 1 0
   1: 0100007F:10AE 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 5552 1 0
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5553 1 0";
        assert_eq!(listening_inodes(table, 4270), vec![5551]);
        assert_eq!(listening_inodes(table, 8080), vec![5553]);
        assert!(listening_inodes(table, 1).is_empty());
    }

    #[test]
    fn our_own_listener_is_found_by_its_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(listener_pid(port), Some(std::process::id()));
    }
}
