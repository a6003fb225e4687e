//! chatd's settings: the command line, and the validated [`Config`] the server runs with.
//!
//! Each setting is declared once, in the table of `config/settings.rs`; the flags are its
//! [`Layer`], flattened into [`Args`], and the config file ([`crate::config_file`]) is
//! another `Layer` under them. The layers resolve to [`Settings`] (the defaults applied
//! once, after layering), which [`Config::new`] checks and turns into what the server reads.

#[macro_use]
mod declare;
pub mod ranges;
mod settings;
pub(crate) mod values;

pub use ranges::MAX_SOCKET_PATH;
pub use settings::{KEYS, Layer, Reload, Settings};

use clap::Parser;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Smallest accepted `max_line_bytes`: room for any login or error line.
pub const MIN_MAX_LINE_BYTES: usize = 128;
/// What a queued `msg` event adds to the request line it came from, at most (its `from`,
/// `to` and `ts`), so a queue of `max_line_bytes` plus this holds any one message.
pub const LINE_OVERHEAD: usize = 256;

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
    /// Every setting given as a flag.
    #[command(flatten)]
    pub settings: Layer,

    /// Config file [default: /etc/chatd/chatd.toml, which may be missing]; flags override it
    #[arg(long, value_name = "PATH", env = "CHATD_CONFIG")]
    pub config: Option<PathBuf>,

    /// Check the configuration, print the effective settings and exit (0 when valid)
    #[arg(long)]
    pub check_config: bool,
}

/// The validated settings the server runs with.
///
/// The fields are what the server reads, derived from [`Config::settings`] by
/// [`Config::new`]; `settings` is what was configured, for `--check-config` and for a reload
/// to compare. Build a changed config from changed settings rather than by editing a field,
/// or the two disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Plain TCP listeners: `listen`, else 127.0.0.1:7878 unless TLS listeners are set.
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    /// The certificate, read from `tls_cert` and `tls_key`; present when `tls_listen` is.
    pub tls: Option<crate::tls::Cert>,
    pub admin_socket: Option<PathBuf>,
    pub max_line_bytes: usize,
    pub max_clients: usize,
    pub queue_len: usize,
    pub rate: f64,
    pub rate_burst: u32,
    pub slow_consumer_grace: Duration,
    pub login_timeout: Duration,
    /// Absent when keepalive is off (`keepalive` is 0).
    pub keepalive: Option<Keepalive>,
    pub drain_timeout: Duration,
    /// The first line of `password_file`.
    pub password: Option<String>,
    pub log_level: Option<String>,
    pub log_dir: Option<PathBuf>,
    pub log_timestamps: bool,
    pub log_max_files: usize,
    pub log_max_bytes: u64,
    pub daemon: bool,
    pub pid_file: Option<PathBuf>,
    /// Every setting as configured.
    pub settings: Settings,
    /// The config file read, if any (absent when the default file does not exist).
    pub config_file: Option<PathBuf>,
}

/// What [`Config::new`] reads from the files the settings name.
#[derive(Debug, Default)]
pub(crate) struct Read {
    /// The first line of `password_file`.
    pub password: Option<String>,
    pub tls: Option<crate::tls::Cert>,
}

/// The port chatd listens on when no address is given.
pub const DEFAULT_PORT: u16 = 7878;

/// TCP keepalive settings; absent when keepalive is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub retries: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config::build(Settings::default(), Read::default(), None)
    }
}

/// A setting that cannot be used. Displayed with its flag; [`crate::config_file`] names the
/// key instead when the value came from the file.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("--{}: {reason}", key.replace('_', "-"))]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        reason: reason.into(),
    }
}

impl Config {
    /// Lays `args` over the defaults and checks every value (no config file).
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        Config::new(args.settings.clone().resolve(), None)
    }

    /// Checks `settings` and reads the files they name (the password, the TLS
    /// certificate and key): the config to run with.
    pub fn new(settings: Settings, config_file: Option<PathBuf>) -> Result<Config, ConfigError> {
        settings.check()?;
        let read = Config::read_files(&settings)?;
        Ok(Config::build(settings, read, config_file))
    }

    /// Reads the files `settings` name: the password, the TLS certificate and key (from
    /// `$CREDENTIALS_DIRECTORY` where no path is set).
    pub(crate) fn read_files(settings: &Settings) -> Result<Read, ConfigError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Ok(Read {
            password: settings.password()?,
            tls: crate::tls::configured(settings, credentials.as_deref())?,
        })
    }

    /// The config with `running`'s value of every setting a reload applies as `reload`.
    pub fn keeping(self, reload: Reload, running: &Config) -> Config {
        let mut settings = self.settings;
        settings.keep(reload, &running.settings);
        // The TLS listeners are kept: while they run, they need a certificate, the running
        // one when the new settings drop theirs along with `tls_listen`.
        let tls = match (&settings.tls_listen, self.tls) {
            (None, _) => None,
            (Some(_), Some(new)) => Some(new),
            (Some(_), None) => running.tls.clone(),
        };
        let read = Read {
            password: self.password,
            tls,
        };
        Config::build(settings, read, self.config_file)
    }

    /// The config `s` gives, with what was read from the files it names.
    pub(crate) fn build(s: Settings, read: Read, config_file: Option<PathBuf>) -> Config {
        let default_listen = || match s.tls_listen {
            Some(_) => Vec::new(),
            None => vec![SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT))],
        };
        Config {
            listen: s.listen.clone().unwrap_or_else(default_listen),
            tls_listen: s.tls_listen.clone().unwrap_or_default(),
            tls: read.tls,
            admin_socket: s.admin_socket.clone(),
            max_line_bytes: s.max_line_bytes,
            max_clients: s.max_clients,
            queue_len: s.queue_len,
            rate: s.rate,
            rate_burst: s.rate_burst,
            slow_consumer_grace: s.slow_consumer_grace,
            login_timeout: s.login_timeout,
            keepalive: (!s.keepalive.is_zero()).then_some(Keepalive {
                idle: s.keepalive,
                interval: s.keepalive_interval,
                retries: s.keepalive_retries,
            }),
            drain_timeout: s.drain_timeout,
            password: read.password,
            log_level: s.log_level.clone(),
            log_dir: s.log_dir.clone(),
            log_timestamps: s.log_timestamps,
            log_max_files: s.log_max_files,
            log_max_bytes: s.log_max_bytes,
            daemon: s.daemon,
            pid_file: s.pid_file.clone(),
            settings: s,
            config_file,
        }
    }
}

impl Settings {
    /// The login password: the first line of `password_file`, read each time.
    pub fn password(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                "password_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let pw = text.lines().next().unwrap_or("");
        if pw.is_empty() {
            return Err(invalid(
                "password_file",
                format!(
                    "{} is empty; put the password on its first line",
                    path.display()
                ),
            ));
        }
        Ok(Some(pw.to_owned()))
    }

    /// Checks every value on its own terms, touching no file: each against the range of
    /// its row in `config/settings.rs`. Start-up, `--check-config` and reloads all come
    /// here, so a value that passes cannot crash chatd later.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.check_each()?;
        // The only settings that bound each other.
        let fits = self.max_line_bytes + LINE_OVERHEAD;
        if self.queue_bytes < fits {
            return Err(invalid(
                "queue_bytes",
                format!(
                    "{} cannot hold one message of max_line_bytes ({}) once encoded; use at \
                     least {fits}",
                    self.queue_bytes, self.max_line_bytes
                ),
            ));
        }
        if self.login_failures_free > self.login_failures_max {
            return Err(invalid(
                "login_failures_free",
                format!(
                    "{} is more than login_failures_max ({}): logins would be refused before \
                     any was slowed; use at most {}",
                    self.login_failures_free, self.login_failures_max, self.login_failures_max
                ),
            ));
        }
        Ok(())
    }

    /// Checks that the paths chatd creates things in can hold them: what `--check-config`
    /// can tell before start-up finds out. Permissions are not checked, since the check may
    /// run as another user than the service.
    pub fn check_paths(&self) -> Result<(), ConfigError> {
        if let Some(dir) = &self.log_dir
            && let Some(file) = not_a_directory(dir)
        {
            return Err(invalid(
                "log_dir",
                format!(
                    "cannot hold log files: {} is not a directory",
                    file.display()
                ),
            ));
        }
        if let Some(socket) = &self.admin_socket
            && let Some(file) = socket.parent().and_then(not_a_directory)
        {
            return Err(invalid(
                "admin_socket",
                format!("cannot be created: {} is not a directory", file.display()),
            ));
        }
        Ok(())
    }
}

/// The nearest of `path` and its parents that exists, when that is not a directory: then
/// nothing can be created at `path` (chatd creates missing directories itself).
fn not_a_directory(path: &Path) -> Option<&Path> {
    for p in path.ancestors() {
        match std::fs::metadata(p) {
            Ok(md) => return (!md.is_dir()).then_some(p),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) => {}
            // Unreadable (say, a parent we may not search): the service may do better.
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests;
