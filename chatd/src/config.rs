//! chatd's settings: command-line flags checked into one validated [`Config`].
//!
//! Every field has a `DEFAULT_*` constant so the defaults are stated once, shown in `--help`
//! and in the README. Flags are `Option`s so that the config file ([`crate::config_file`]) is
//! layered under them without a flag's default silently overriding the file.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The chat listener's default address: loopback only, so a fresh install is not exposed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Cap on one request line; PROTOCOL.md's default.
pub const DEFAULT_MAX_LINE_BYTES: usize = proto::DEFAULT_MAX_LINE_BYTES;
/// Smallest accepted `--max-line-bytes`: room for any login or error line.
pub const MIN_MAX_LINE_BYTES: usize = 128;
/// Open connections, logged in or not. Stays under a typical 20 000-descriptor hard limit.
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
/// Lines waiting for one slow reader before senders get `recipient_busy`.
pub const DEFAULT_QUEUE_LEN: usize = 1024;
/// Messages per second per user: far above typing, low enough to stop a runaway script.
pub const DEFAULT_RATE: f64 = 100.0;
/// Messages a user may send at once before the rate applies.
pub const DEFAULT_RATE_BURST: u32 = 200;
/// How long a queue may stay full before its session is cut off as a slow consumer.
pub const DEFAULT_SLOW_CONSUMER_GRACE: Duration = Duration::from_secs(5);
/// How long a connection may stay without logging in.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before TCP keepalive probes start.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(60);
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_KEEPALIVE_RETRIES: u32 = 3;
/// How long a closing session may take to flush what it owes its client.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Daily log files kept in `log_dir`: a week of history without filling the disk.
pub const DEFAULT_LOG_MAX_FILES: usize = 7;

const EXIT_CODES: &str = "\
Exit status:
  0  stopped (SIGTERM, SIGINT; a second one skips the drain)
  1  could not start: the pid file, the fork (--daemon), the async runtime or the signal
     handler failed
  2  bad command line or configuration
  3  cannot listen: a TCP address in use, not permitted or not available, or the admin
     socket unusable (another live chatd answers on it, or its path is not a socket)";

#[derive(Debug, Parser)]
#[command(
    name = "chatd",
    version,
    about = "The chat daemon: relays messages between clients over TCP, one JSON object per line",
    after_help = EXIT_CODES
)]
pub struct Args {
    /// Address to listen on for chat clients, IP:PORT; repeat for several (e.g. IPv4 and
    /// IPv6). Port 0 picks a free port [default: 127.0.0.1:7878]
    #[arg(long = "listen", value_name = "ADDR", value_parser = parse_addr)]
    pub listen: Vec<SocketAddr>,

    /// Path of the admin channel's Unix socket (used by chatctl) [default:
    /// /run/chatd/admin.sock as root or when /run/chatd is writable, else
    /// $XDG_RUNTIME_DIR/chatd/admin.sock]
    #[arg(long, value_name = "PATH", env = proto::admin::SOCKET_ENV)]
    pub admin_socket: Option<PathBuf>,

    /// Longest request line accepted, in bytes; longer lines get `too_large` [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<usize>,

    /// Most connections open at once; more get `server_full` [default: 10000]
    #[arg(long, value_name = "N")]
    pub max_clients: Option<usize>,

    /// Outgoing queue per session, in messages; a full queue answers `recipient_busy`
    /// [default: 1024]
    #[arg(long, value_name = "N")]
    pub queue_len: Option<usize>,

    /// Messages per second per user; 0 means no limit [default: 100]
    #[arg(long, value_name = "PER_SEC")]
    pub rate: Option<f64>,

    /// Messages a user may send in a burst before --rate applies [default: 200]
    #[arg(long, value_name = "N")]
    pub rate_burst: Option<u32>,

    /// How long a session's queue may stay full before it is cut off as a slow consumer
    /// [default: 5s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub slow_consumer_grace: Option<Duration>,

    /// How long a connection may stay without logging in [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub login_timeout: Option<Duration>,

    /// Idle time before TCP keepalive probes find a dead peer; 0 turns keepalive off
    /// [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive: Option<Duration>,

    /// Time between keepalive probes [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_interval: Option<Duration>,

    /// Unanswered keepalive probes before the peer is declared dead [default: 3]
    #[arg(long, value_name = "N")]
    pub keepalive_retries: Option<u32>,

    /// How long a closing session may take to flush queued messages and its `bye`
    /// [default: 5s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub drain_timeout: Option<Duration>,

    /// File holding the password every login must carry (first line); none by default
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// Log filter: a level (error, warn, info, debug, trace) or RUST_LOG-style directives
    /// [default: info, or RUST_LOG when set]
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Write logs to daily-rotated files in this directory instead of stderr
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Whether log lines carry our own timestamp; false under journald, which adds its own
    /// [default: true]
    #[arg(long, value_name = "BOOL")]
    pub log_timestamps: Option<bool>,

    /// Log files kept in --log-dir (one a day); 0 keeps them all [default: 7]
    #[arg(long, value_name = "N")]
    pub log_max_files: Option<usize>,

    /// Fork to the background once listening (never under systemd: it wants the foreground)
    #[arg(long)]
    pub daemon: bool,

    /// Write the daemon's process id to this file; removed on exit
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,

    /// Config file [default: /etc/chatd/chatd.toml, which may be missing]; flags override it
    #[arg(long, value_name = "PATH", env = "CHATD_CONFIG")]
    pub config: Option<PathBuf>,

    /// Check the configuration, print the effective settings and exit (0 when valid)
    #[arg(long)]
    pub check_config: bool,
}

/// The validated settings the server runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub admin_socket: Option<PathBuf>,
    pub max_line_bytes: usize,
    pub max_clients: usize,
    pub queue_len: usize,
    pub rate: f64,
    pub rate_burst: u32,
    pub slow_consumer_grace: Duration,
    pub login_timeout: Duration,
    pub keepalive: Option<Keepalive>,
    pub drain_timeout: Duration,
    pub password: Option<String>,
    /// Where the password came from, so `--check-config` can show it without the secret.
    pub password_file: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_dir: Option<PathBuf>,
    pub log_timestamps: bool,
    pub log_max_files: usize,
    pub daemon: bool,
    pub pid_file: Option<PathBuf>,
    /// The config file read, if any (absent when the default file does not exist).
    pub config_file: Option<PathBuf>,
}

/// TCP keepalive settings; absent when keepalive is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub retries: u32,
}

impl Keepalive {
    pub const DEFAULT: Keepalive = Keepalive {
        idle: DEFAULT_KEEPALIVE,
        interval: DEFAULT_KEEPALIVE_INTERVAL,
        retries: DEFAULT_KEEPALIVE_RETRIES,
    };
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: vec![DEFAULT_LISTEN.parse().expect("the default address parses")],
            admin_socket: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_clients: DEFAULT_MAX_CLIENTS,
            queue_len: DEFAULT_QUEUE_LEN,
            rate: DEFAULT_RATE,
            rate_burst: DEFAULT_RATE_BURST,
            slow_consumer_grace: DEFAULT_SLOW_CONSUMER_GRACE,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            keepalive: Some(Keepalive::DEFAULT),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            password: None,
            password_file: None,
            log_level: None,
            log_dir: None,
            log_timestamps: true,
            log_max_files: DEFAULT_LOG_MAX_FILES,
            daemon: false,
            pid_file: None,
            config_file: None,
        }
    }
}

/// A setting that cannot be used, named by its flag.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{flag}: {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub reason: String,
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        flag,
        reason: reason.into(),
    }
}

impl Config {
    /// Lays `args` over the defaults and checks every value (no config file).
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        c.apply_args(args)?;
        c.validate()?;
        Ok(c)
    }

    /// Lays the flags given in `args` over `self` (defaults, or defaults and the file).
    pub(crate) fn apply_args(&mut self, args: &Args) -> Result<(), ConfigError> {
        let c = self;
        if !args.listen.is_empty() {
            c.listen = args.listen.clone();
        }
        if args.admin_socket.is_some() {
            c.admin_socket = args.admin_socket.clone();
        }
        c.max_line_bytes = args.max_line_bytes.unwrap_or(c.max_line_bytes);
        c.max_clients = args.max_clients.unwrap_or(c.max_clients);
        c.queue_len = args.queue_len.unwrap_or(c.queue_len);
        c.rate = args.rate.unwrap_or(c.rate);
        c.rate_burst = args.rate_burst.unwrap_or(c.rate_burst);
        c.slow_consumer_grace = args.slow_consumer_grace.unwrap_or(c.slow_consumer_grace);
        c.login_timeout = args.login_timeout.unwrap_or(c.login_timeout);
        c.drain_timeout = args.drain_timeout.unwrap_or(c.drain_timeout);
        let ka = c.keepalive.unwrap_or(Keepalive {
            idle: Duration::ZERO,
            ..Keepalive::DEFAULT
        });
        let idle = args.keepalive.unwrap_or(ka.idle);
        c.keepalive = (!idle.is_zero()).then(|| Keepalive {
            idle,
            interval: args.keepalive_interval.unwrap_or(ka.interval),
            retries: args.keepalive_retries.unwrap_or(ka.retries),
        });
        if let Some(path) = &args.password_file {
            c.set_password_file(path)?;
        }
        if args.log_level.is_some() {
            c.log_level = args.log_level.clone();
        }
        if args.log_dir.is_some() {
            c.log_dir = args.log_dir.clone();
        }
        c.log_timestamps = args.log_timestamps.unwrap_or(c.log_timestamps);
        c.log_max_files = args.log_max_files.unwrap_or(c.log_max_files);
        c.daemon |= args.daemon;
        if args.pid_file.is_some() {
            c.pid_file = args.pid_file.clone();
        }
        Ok(())
    }

    /// Reads the login password from the first line of `path`.
    pub(crate) fn set_password_file(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                "--password-file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let pw = text.lines().next().unwrap_or("").to_owned();
        if pw.is_empty() {
            return Err(invalid(
                "--password-file",
                format!(
                    "{} is empty; put the password on its first line",
                    path.display()
                ),
            ));
        }
        self.password = Some(pw);
        self.password_file = Some(path.to_owned());
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_line_bytes < MIN_MAX_LINE_BYTES {
            return Err(invalid(
                "--max-line-bytes",
                format!(
                    "{} is too small; use at least {MIN_MAX_LINE_BYTES}",
                    self.max_line_bytes
                ),
            ));
        }
        if self.max_clients == 0 {
            return Err(invalid("--max-clients", "must be at least 1"));
        }
        if self.queue_len == 0 {
            return Err(invalid("--queue-len", "must be at least 1"));
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err(invalid(
                "--rate",
                format!(
                    "{} is not a rate; use 0 (no limit) or a positive number",
                    self.rate
                ),
            ));
        }
        if self.rate_burst == 0 {
            return Err(invalid("--rate-burst", "must be at least 1"));
        }
        if self.login_timeout.is_zero() {
            return Err(invalid("--login-timeout", "must be more than 0s"));
        }
        if self.slow_consumer_grace.is_zero() {
            return Err(invalid("--slow-consumer-grace", "must be more than 0s"));
        }
        if let Some(ka) = self.keepalive
            && (ka.interval.is_zero() || ka.retries == 0)
        {
            return Err(invalid(
                "--keepalive-interval",
                "keepalive needs an interval above 0s and at least 1 retry",
            ));
        }
        if self.drain_timeout.is_zero() {
            return Err(invalid("--drain-timeout", "must be more than 0s"));
        }
        if let Some(f) = &self.log_level
            && let Err(e) = tracing_subscriber::EnvFilter::try_new(f)
        {
            return Err(invalid(
                "--log-level",
                format!(
                    "invalid filter {f:?}: {e}; use a level such as info or directives such as chatd=debug"
                ),
            ));
        }
        Ok(())
    }
}

pub(crate) fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("expected IP:PORT such as 127.0.0.1:7878 or [::1]:7878, got {s:?}"))
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration such as 500ms, 10s or 2m"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let a = Args::try_parse_from(std::iter::once("chatd").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::from_args(&a).map_err(|e| e.to_string())
    }

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_apply_without_flags() {
        assert_eq!(parse(&[]).unwrap(), Config::default());
    }

    #[test]
    fn listen_repeats_and_replaces_the_default() {
        let c = parse(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert!(c.listen[1].is_ipv6());
        let e = parse(&["--listen", "localhost"]).unwrap_err();
        assert!(e.contains("expected IP:PORT"), "{e}");
    }

    #[test]
    fn durations_and_keepalive() {
        let c = parse(&["--login-timeout", "250ms", "--keepalive", "0"]).unwrap();
        assert_eq!(c.login_timeout, Duration::from_millis(250));
        assert_eq!(c.keepalive, None);
        let e = parse(&["--login-timeout", "soon"]).unwrap_err();
        assert!(e.contains("write a duration such as"), "{e}");
    }

    #[test]
    fn every_limit_is_checked() {
        assert_eq!(
            parse(&["--max-line-bytes", "100"]).unwrap_err(),
            "--max-line-bytes: 100 is too small; use at least 128"
        );
        assert_eq!(
            parse(&["--max-clients", "0"]).unwrap_err(),
            "--max-clients: must be at least 1"
        );
        assert_eq!(
            parse(&["--queue-len", "0"]).unwrap_err(),
            "--queue-len: must be at least 1"
        );
        assert!(
            parse(&["--rate=-1"])
                .unwrap_err()
                .starts_with("--rate: -1 is not a rate")
        );
        assert_eq!(
            parse(&["--rate-burst", "0"]).unwrap_err(),
            "--rate-burst: must be at least 1"
        );
        assert_eq!(
            parse(&["--login-timeout", "0"]).unwrap_err(),
            "--login-timeout: must be more than 0s"
        );
        assert!(parse(&["--rate", "0"]).is_ok());
    }

    #[test]
    fn password_file_errors_name_the_file() {
        let e = parse(&["--password-file", "/nonexistent/pw"]).unwrap_err();
        assert!(
            e.starts_with("--password-file: cannot read /nonexistent/pw:"),
            "{e}"
        );
    }
}
