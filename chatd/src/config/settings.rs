//! Every setting of chatd, declared once: its flag and config key (the field name), its
//! `--help` text (the doc comment), its default, its range (`ranges.rs`; added to the help
//! by the macro) and how a SIGHUP reload applies it.
//!
//! To add a setting, add a row here and read it where it is used (`config.settings.NAME`,
//! or a field of [`Config`](super::Config) when the server needs it derived or checked).
//! Its flag, its key, `--check-config`, the reload's comparison and log lines follow from
//! the row. A row's `[default: ...]` in the help text is checked against its default by a
//! test; the README's table (ranges included) and `packaging/chatd.toml` are checked
//! against the keys.
//!
//! Every row has a range, and the bounds are chosen so that nothing chatd computes from a
//! value can overflow (a deadline added to `Instant::now()`, the TCP user timeout, the
//! connection semaphore, the decoder's `max + 1`) while leaving far more room than any
//! deployment needs. A `//` comment says why where a bound is not plain.

use super::MIN_MAX_LINE_BYTES;
use super::ranges::{Any, AtLeastOne, KIB, LogFilter, MIB, OffOr, SocketPath, ms, secs};
use super::values::{addrs, duration, parse_addr, parse_duration};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// When a changed setting takes effect after a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Read afresh wherever it is used, so every session follows it at once.
    AtOnce,
    /// Taken by a connection when it opens; the ones open already keep what they took.
    NewConnections,
    /// Fixed at start (a bound socket, the fork): a reload keeps the running value and says
    /// that a restart is needed.
    Restart,
}

impl Reload {
    /// How the README's table says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reload::AtOnce => "at once",
            Reload::NewConnections => "new connections",
            Reload::Restart => "restart",
        }
    }
}

settings! {
    // Loopback only, so a fresh install is not exposed. No plain default beside TLS: an
    // admin who asks for TLS alone must not also get clear text on 7878 (`Config::listen`).
    /// Address to listen on for chat clients in plain TCP, IP:PORT; repeat for several (e.g.
    /// IPv4 and IPv6). Port 0 picks a free port [default: 127.0.0.1:7878, or none when
    /// --tls-listen is given]
    #[arg(value_name = "ADDR", value_parser = parse_addr)]
    #[serde(with = "addrs")]
    listen: Vec<SocketAddr>,
        range: AtLeastOne, reload: Restart;

    /// Address to listen on for chat clients over TLS, IP:PORT; repeatable, beside or
    /// instead of --listen. Needs a certificate (--tls-cert, --tls-key)
    #[arg(value_name = "ADDR", value_parser = parse_addr)]
    #[serde(with = "addrs")]
    tls_listen: Vec<SocketAddr>,
        range: AtLeastOne, reload: Restart;

    /// The TLS certificate chain, PEM: the server's certificate first, then the
    /// intermediates (Let's Encrypt's fullchain.pem); re-read on SIGHUP [default:
    /// $CREDENTIALS_DIRECTORY/tls-cert when systemd passes it]
    #[arg(value_name = "PATH")]
    tls_cert: PathBuf,
        range: Any, reload: AtOnce;

    /// The TLS certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1); re-read on SIGHUP
    /// [default: $CREDENTIALS_DIRECTORY/tls-key when systemd passes it]
    #[arg(value_name = "PATH")]
    tls_key: PathBuf,
        range: Any, reload: AtOnce;

    // Long enough for a phone on a bad network; short enough that a client opening
    // connections and never finishing a handshake holds each one only briefly.
    /// How long a TLS client may take to finish its handshake before it is dropped
    /// [default: 10s]
    #[arg(value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration")]
    tls_handshake_timeout: Duration = Duration::from_secs(10),
        range: ms(1)..=secs(3600), reload: AtOnce;

    /// Path of the admin channel's Unix socket (used by chatctl) [default:
    /// /run/chatd/admin.sock as root or when /run/chatd is writable, else
    /// $XDG_RUNTIME_DIR/chatd/admin.sock]
    #[arg(value_name = "PATH", env = proto::admin::SOCKET_ENV)]
    admin_socket: PathBuf,
        range: SocketPath, reload: Restart;

    // PROTOCOL.md's default. At least room for any login or error line; at most what one
    // connection may make chatd hold of an unfinished line.
    /// Longest request line accepted, in bytes; longer lines get `too_large` [default: 65536]
    #[arg(value_name = "BYTES")]
    max_line_bytes: usize = proto::DEFAULT_MAX_LINE_BYTES,
        range: MIN_MAX_LINE_BYTES..=16 * MIB, reload: NewConnections;

    // Logged in or not. Stays under a typical 20 000-descriptor hard limit; each client is a
    // descriptor, and chatd warns at start when RLIMIT_NOFILE cannot hold max_clients.
    /// Most connections open at once; more get `server_full` [default: 10000]
    #[arg(value_name = "N")]
    max_clients: usize = 10_000,
        range: 1..=1_000_000, reload: AtOnce;

    // Generous: a household or an office behind one NAT address, several clients each.
    /// Connections open at once from one source address (IPv6: one /64), on every listener
    /// together; more get `server_full`; 0 means no limit [default: 64]
    #[arg(value_name = "N")]
    max_per_ip: usize = 64,
        range: 0..=1_000_000, reload: AtOnce;

    /// Outgoing queue per session, in messages; a full queue answers `recipient_busy`
    /// [default: 1024]
    #[arg(value_name = "N")]
    queue_len: usize = 1024,
        range: 1..=1_000_000, reload: NewConnections;

    // Far above typing, low enough to stop a runaway script.
    /// Messages per second per user; 0 means no limit [default: 100]
    #[arg(value_name = "PER_SEC")]
    rate: f64 = 100.0,
        range: 0.0..=1e6, reload: NewConnections;

    /// Messages a user may send in a burst before --rate applies [default: 200]
    #[arg(value_name = "N")]
    rate_burst: u32 = 200,
        range: 1..=1_000_000, reload: NewConnections;

    // Bounds what a reader that stops reading pins, whatever the size of its lines. Up to
    // 1 GiB, a memory budget someone may mean; beyond, a typo.
    /// Outgoing queue per session, in bytes; full by bytes answers `recipient_busy` as full
    /// by lines does [default: 1048576]
    #[arg(value_name = "BYTES")]
    queue_bytes: usize = 1 << 20,
        range: KIB..=1024 * MIB, reload: NewConnections;

    // A client reconnecting in a loop sets off a join and a leave to everyone each time.
    /// Logins per second from one source address (IPv6: one /64); 0 means no limit
    /// [default: 10]
    #[arg(value_name = "PER_SEC")]
    login_rate: f64 = 10.0,
        range: 0.0..=1e6, reload: AtOnce;

    /// Logins one address may make at once before --login-rate applies [default: 100]
    #[arg(value_name = "N")]
    login_burst: u32 = 100,
        range: 1..=1_000_000, reload: AtOnce;

    /// Failed logins (a wrong password) from one address answered without delay; later ones
    /// wait longer each time, up to 2 s [default: 5]
    #[arg(value_name = "N")]
    login_failures_free: u32 = 5,
        range: 0..=1000, reload: AtOnce;

    /// Failed logins from one address within --login-failure-window after which every login
    /// from it is `rate_limited`, the right password included [default: 10]
    #[arg(value_name = "N")]
    login_failures_max: u32 = 10,
        range: 1..=1000, reload: AtOnce;

    /// How long failed logins from one address are remembered; a successful login forgets
    /// them at once [default: 10m]
    #[arg(value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration")]
    login_failure_window: Duration = Duration::from_secs(600),
        range: secs(1)..=secs(86_400), reload: AtOnce;

    /// How long a session's queue may stay full before it is cut off as a slow consumer
    /// [default: 5s]
    #[arg(value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration")]
    slow_consumer_grace: Duration = Duration::from_secs(5),
        range: ms(1)..=secs(3600), reload: AtOnce;

    // Deadlines are added to the clock: an hour is generous and cannot overflow.
    /// How long a connection may stay without logging in [default: 10s]
    #[arg(value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration")]
    login_timeout: Duration = Duration::from_secs(10),
        range: ms(1)..=secs(3600), reload: AtOnce;

    // The kernel takes whole seconds (TCP_KEEPIDLE, TCP_KEEPINTVL; a fraction is dropped),
    // hence at least 1s; the three bounds keep the TCP user timeout made of them (idle + interval * retries,
    // at most 2h + 100 * 10m) within its 32-bit milliseconds.
    /// Idle time before TCP keepalive probes find a dead peer; 0 turns keepalive off
    /// [default: 60s]
    #[arg(value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration")]
    keepalive: Duration = Duration::from_secs(60),
        range: OffOr(secs(1)..=secs(7200)), reload: NewConnections;

    /// Time between keepalive probes [default: 10s]
    #[arg(value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration")]
    keepalive_interval: Duration = Duration::from_secs(10),
        range: secs(1)..=secs(600), reload: NewConnections;

    /// Unanswered keepalive probes before the peer is declared dead [default: 3]
    #[arg(value_name = "N")]
    keepalive_retries: u32 = 3,
        range: 1..=100, reload: NewConnections;

    /// How long a closing session may take to flush queued messages and its `bye`
    /// [default: 5s]
    #[arg(value_name = "DURATION", value_parser = parse_duration)]
    #[serde(with = "duration")]
    drain_timeout: Duration = Duration::from_secs(5),
        range: ms(1)..=secs(3600), reload: AtOnce;

    /// File holding the password every login must carry (first line); none by default
    #[arg(value_name = "PATH")]
    password_file: PathBuf,
        range: Any, reload: AtOnce;

    /// Log filter: a level (error, warn, info, debug, trace) or RUST_LOG-style directives
    /// [default: info, or RUST_LOG when set]
    #[arg(value_name = "FILTER")]
    log_level: String,
        range: LogFilter, reload: AtOnce;

    /// Write logs to files in this directory instead of stderr, a new one each day and
    /// whenever --log-max-bytes would be passed
    #[arg(value_name = "DIR")]
    log_dir: PathBuf,
        range: Any, reload: AtOnce;

    /// Whether log lines carry our own timestamp; false under journald, which adds its own
    /// [default: true]
    #[arg(value_name = "BOOL")]
    log_timestamps: bool = true,
        range: Any, reload: AtOnce;

    // A week of history without filling the disk (log_max_bytes caps each file).
    /// Log files kept in --log-dir (a new one each day or when full); 0 keeps them all
    /// [default: 7]
    #[arg(value_name = "N")]
    log_max_files: usize = 7,
        range: 0..=1000, reload: AtOnce;

    // A flood of log lines then fills at most log_max_files * log_max_bytes of the disk.
    /// Largest log file in --log-dir, in bytes; a line that would pass it goes to a new file
    /// [default: 104857600]
    #[arg(value_name = "BYTES")]
    log_max_bytes: u64 = 100 << 20,
        range: 4096..=1 << 40, reload: AtOnce;

    // A flag without a value on the command line (`--daemon`), a bool in the file.
    /// Fork to the background once listening (never under systemd: it wants the foreground)
    #[arg(num_args = 0, default_missing_value = "true")]
    daemon: bool = false,
        range: Any, reload: Restart;

    /// Write the daemon's process id to this file; removed on exit
    #[arg(value_name = "PATH")]
    pid_file: PathBuf,
        range: Any, reload: Restart;
}
