//! Command-line flags. One flat set: `all` runs every scenario with the same flags, and the
//! defaults are the targets (P=100 x M=20 000 window 64, R=1000 x M=200, 20 000 msg/s,
//! C=10 000 idle).

use crate::peer::PeerSpec;
use crate::wire::Wire;
use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// P sender->receiver pairs, M private messages each, W in flight per sender.
    Pairs,
    /// One sender broadcasting M messages to R receivers.
    Fanout,
    /// P pairs paced to a fixed total rate: latency under a load the server can hold.
    Latency,
    /// C logged-in connections held: server memory per connection and idle CPU.
    Idle,
    /// A receiver that stops reading must not grow memory or slow the others.
    Slow,
    /// Every scenario above, in that order.
    All,
    /// Internal: run the relay of `--relay` (the ceiling) in this process.
    RelayServer,
}

/// The relay every server is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RelayKind {
    /// The floor: raw `NAME BODY` lines, a `+` per message, unbounded queues, no limits.
    Raw,
    /// chatd's JSON lines, bounded queues, `delivered` counts and timestamps: a simple chat
    /// server, slower than the floor.
    Json,
}

impl RelayKind {
    pub fn name(self) -> &'static str {
        match self {
            RelayKind::Raw => "raw",
            RelayKind::Json => "json",
        }
    }

    /// What the relay speaks.
    pub fn wire(self) -> Wire {
        match self {
            RelayKind::Raw => Wire::Raw,
            RelayKind::Json => Wire::Json,
        }
    }
}

/// chatbench: load generator for chatd. Speaks only the wire protocol; loopback by default.
///
/// Each scenario is run against a relay that chatbench starts itself (the floor a relay can
/// reach), then against the server under test and any `--peer`, and each is printed beside
/// the relay as ratios.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[arg(value_enum)]
    pub scenario: Scenario,

    /// Server under test (ignored with --spawn).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub server: SocketAddr,
    /// Pid of the server under test, to read its CPU and memory from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Start this chatd binary for each scenario on a free loopback port (`--rate 0
    /// --login-rate 0 --max-per-ip 0`, generous limits) and measure it.
    #[arg(long, value_name = "PATH_TO_CHATD")]
    pub spawn: Option<PathBuf>,
    /// Extra argument for the spawned chatd (repeatable), e.g. `--spawn-arg=--queue-len=4096`.
    #[arg(long, allow_hyphen_values = true)]
    pub spawn_arg: Vec<String>,
    /// Skip the relay run (no ratios).
    #[arg(long, conflicts_with = "relay_only")]
    pub no_relay: bool,
    /// Measure only the relay (to test the bench itself).
    #[arg(long)]
    pub relay_only: bool,
    /// The relay every ratio is taken to (and that `relay-server` runs).
    #[arg(long, value_enum, default_value_t = RelayKind::Raw)]
    pub relay: RelayKind,
    /// Also measure this server, after chatd, in the same rounds: `nats=HOST:PORT` or
    /// `redis=HOST:PORT`, with `,pid=PID` if its pid cannot be found by its port (repeatable).
    /// pairs, fanout, latency and idle only.
    #[arg(long, value_name = "KIND=HOST:PORT", conflicts_with = "relay_only")]
    pub peer: Vec<PeerSpec>,
    /// Per-recipient queue bound given to the spawned chatd and to the JSON relay.
    #[arg(long, default_value_t = 1024)]
    pub queue_len: usize,
    /// Where `relay-server` listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// pairs, latency: number of sender->receiver pairs.
    #[arg(long, default_value_t = 100)]
    pub pairs: u32,
    /// pairs: messages per sender.
    #[arg(long, default_value_t = 20_000)]
    pub msgs: u64,
    /// pairs, fanout, slow: requests in flight per sender.
    #[arg(long, default_value_t = 64)]
    pub window: u64,
    /// fanout: receivers.
    #[arg(long, default_value_t = 1000)]
    pub receivers: u32,
    /// fanout: broadcasts sent.
    #[arg(long, default_value_t = 200)]
    pub fanout_msgs: u64,
    /// latency: total messages per second over all pairs.
    #[arg(long, default_value_t = 20_000.0)]
    pub rate: f64,
    /// latency: total messages.
    #[arg(long, default_value_t = 100_000)]
    pub latency_msgs: u64,
    /// idle: connections to hold (comma-separated for several rounds).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    pub idle_conns: Vec<u32>,
    /// idle: seconds of quiet over which idle CPU is measured.
    #[arg(long, default_value_t = 2)]
    pub idle_secs: u64,
    /// slow: fast receivers next to the stalled one.
    #[arg(long, default_value_t = 10)]
    pub slow_receivers: u32,
    /// slow: broadcasts sent.
    #[arg(long, default_value_t = 20_000)]
    pub slow_msgs: u64,
    /// slow: padding bytes per body, so the stalled backlog dwarfs socket buffers.
    #[arg(long, default_value_t = 1000)]
    pub slow_pad: usize,
    /// slow: seconds the stalled receiver keeps not reading after the run (longer than
    /// chatd's `--slow-consumer-grace`, 5 s by default, to see it cut off).
    #[arg(long, default_value_t = 6)]
    pub slow_hold: u64,
    /// Seconds each scenario run may take before it stops and reports what it has.
    #[arg(long, default_value_t = 120)]
    pub deadline: u64,
    /// Message scenarios: alternate relay and target runs this many times and print the
    /// median figures and ratios (short runs on a shared machine are noisy).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Worker threads of the generator (1 = a current-thread runtime, the cheapest).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from([
            "chatbench",
            "all",
            "--spawn",
            "target/release/chatd",
            "--idle-conns",
            "10000,19000",
            "--spawn-arg=--queue-len=9",
            "--peer",
            "nats=127.0.0.1:4222",
            "--peer=redis=127.0.0.1:6379,pid=7",
        ])
        .unwrap();
        assert_eq!(c.relay, RelayKind::Raw);
        assert_eq!(c.peer.len(), 2);
        assert_eq!(c.peer[1].pid, Some(7));
        assert_eq!(c.scenario, Scenario::All);
        assert_eq!(c.idle_conns, vec![10000, 19000]);
        assert_eq!(c.spawn_arg, vec!["--queue-len=9"]);
        assert!(Cli::try_parse_from(["chatbench", "all", "--no-relay", "--relay-only"]).is_err());
        let json = Cli::try_parse_from(["chatbench", "pairs", "--relay", "json"]).unwrap();
        assert_eq!(json.relay, RelayKind::Json);
        assert!(
            Cli::try_parse_from(["chatbench", "pairs", "--peer", "kafka=127.0.0.1:1"]).is_err()
        );
    }
}
