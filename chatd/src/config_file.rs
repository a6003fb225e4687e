//! The config file layer: defaults < `/etc/chatd/chatd.toml` (or `--config PATH`) < flags.
//!
//! Keys are the flags' names with underscores (`--max-line-bytes` is `max_line_bytes`);
//! durations are humantime strings (`"5s"`). Unknown keys are errors, so a typo never passes
//! silently. Every error is one line naming the file, the key and, where toml knows it, the
//! line, because it lands in a terminal or the journal where a multi-line caret report is
//! noise. The same [`load`] serves start-up, `--check-config` and SIGHUP reloads.

use crate::config::{Args, Config, ConfigError, Keepalive, parse_addr, parse_duration};
use serde::Deserialize;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the config file is looked for without `--config`. A missing file here is fine
/// (built-in defaults); a missing file named by `--config` is an error.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/chatd/chatd.toml";

/// The file's keys. Values that need more than a type check (addresses, durations) are read
/// as strings and checked in [`FileConfig::apply`], so the error can name the key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Vec<String>>,
    admin_socket: Option<PathBuf>,
    max_line_bytes: Option<usize>,
    max_clients: Option<usize>,
    queue_len: Option<usize>,
    rate: Option<f64>,
    rate_burst: Option<u32>,
    slow_consumer_grace: Option<String>,
    login_timeout: Option<String>,
    keepalive: Option<String>,
    keepalive_interval: Option<String>,
    keepalive_retries: Option<u32>,
    drain_timeout: Option<String>,
    password_file: Option<PathBuf>,
    log_level: Option<String>,
    log_dir: Option<PathBuf>,
    log_timestamps: Option<bool>,
    log_max_files: Option<usize>,
    daemon: Option<bool>,
    pid_file: Option<PathBuf>,
}

/// Every key the file accepts, for "did you mean" and for the test that keeps them in step
/// with the flags.
pub const KEYS: &[&str] = &[
    "listen",
    "admin_socket",
    "max_line_bytes",
    "max_clients",
    "queue_len",
    "rate",
    "rate_burst",
    "slow_consumer_grace",
    "login_timeout",
    "keepalive",
    "keepalive_interval",
    "keepalive_retries",
    "drain_timeout",
    "password_file",
    "log_level",
    "log_dir",
    "log_timestamps",
    "log_max_files",
    "daemon",
    "pid_file",
];

/// Why the configuration cannot be used. Each variant displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read: {source} — {hint}", path.display())]
    Read {
        path: PathBuf,
        source: io::Error,
        hint: &'static str,
    },
    #[error("{}: unknown key \"{key}\" at line {line} — {hint}", path.display())]
    UnknownKey {
        path: PathBuf,
        key: String,
        line: usize,
        hint: String,
    },
    #[error("{}: {}line {line}: {reason}", path.display(), key.as_deref().map(|k| format!("{k} at ")).unwrap_or_default())]
    Syntax {
        path: PathBuf,
        key: Option<String>,
        line: usize,
        reason: String,
    },
    #[error("{}: {key}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
    /// A flag's value (or the flags over the file) is unusable; named by the flag.
    #[error(transparent)]
    Flag(#[from] ConfigError),
}

/// Reads the config file `args` points at (or the default one) and lays the flags over it.
pub fn load(args: &Args) -> Result<Config, LoadError> {
    let (path, named) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let mut c = Config::default();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let file = parse(&path, &text)?;
            file.apply(&path, &mut c)?;
            c.validate().map_err(|e| in_file(&path, e))?;
            c.config_file = Some(path);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && !named => {}
        Err(source) => {
            return Err(LoadError::Read {
                path,
                source,
                hint: if named {
                    "check --config"
                } else {
                    "fix its permissions or name another file with --config"
                },
            });
        }
    }
    c.apply_args(args)?;
    c.validate()?;
    Ok(c)
}

/// A validation error about a value that came from the file: name the key, not the flag.
fn in_file(path: &Path, e: ConfigError) -> LoadError {
    LoadError::Invalid {
        path: path.to_owned(),
        key: e.flag.trim_start_matches("--").replace('-', "_"),
        reason: e.reason,
    }
}

fn parse(path: &Path, text: &str) -> Result<FileConfig, LoadError> {
    toml::from_str(text).map_err(|e| {
        let start = e.span().map(|s| s.start).unwrap_or(0);
        let line = text[..start.min(text.len())].matches('\n').count() + 1;
        let msg = e.message().trim().to_owned();
        if let Some(key) = msg
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            let hint = match closest(key) {
                Some(k) => format!("did you mean \"{k}\"?"),
                None => {
                    "remove it; every key is a flag of chatd --help, with underscores".to_owned()
                }
            };
            return LoadError::UnknownKey {
                path: path.to_owned(),
                key: key.to_owned(),
                line,
                hint,
            };
        }
        LoadError::Syntax {
            path: path.to_owned(),
            key: key_on_line(text, line),
            line,
            reason: msg,
        }
    })
}

/// The `key` of a `key = value` line, to name it in a type error.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line - 1)?;
    let (k, _) = l.split_once('=')?;
    let k = k.trim();
    KEYS.contains(&k).then(|| k.to_owned())
}

/// The known key nearest to a misspelt one, if it is near enough to be a typo.
fn closest(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl FileConfig {
    fn apply(self, path: &Path, c: &mut Config) -> Result<(), LoadError> {
        let bad = |key: &str, reason: String| LoadError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let dur = |key: &str, v: Option<String>, into: &mut Duration| -> Result<(), LoadError> {
            if let Some(s) = v {
                *into = parse_duration(&s).map_err(|e| bad(key, format!("{s:?}: {e}")))?;
            }
            Ok(())
        };
        if let Some(list) = self.listen {
            if list.is_empty() {
                return Err(bad("listen", "needs at least one address".into()));
            }
            c.listen = list
                .iter()
                .map(|s| parse_addr(s).map_err(|e| bad("listen", e)))
                .collect::<Result<_, _>>()?;
        }
        set(&mut c.admin_socket, self.admin_socket);
        c.max_line_bytes = self.max_line_bytes.unwrap_or(c.max_line_bytes);
        c.max_clients = self.max_clients.unwrap_or(c.max_clients);
        c.queue_len = self.queue_len.unwrap_or(c.queue_len);
        c.rate = self.rate.unwrap_or(c.rate);
        c.rate_burst = self.rate_burst.unwrap_or(c.rate_burst);
        dur(
            "slow_consumer_grace",
            self.slow_consumer_grace,
            &mut c.slow_consumer_grace,
        )?;
        dur("login_timeout", self.login_timeout, &mut c.login_timeout)?;
        dur("drain_timeout", self.drain_timeout, &mut c.drain_timeout)?;
        let mut ka = c.keepalive.unwrap_or(Keepalive::DEFAULT);
        dur("keepalive", self.keepalive, &mut ka.idle)?;
        dur(
            "keepalive_interval",
            self.keepalive_interval,
            &mut ka.interval,
        )?;
        ka.retries = self.keepalive_retries.unwrap_or(ka.retries);
        c.keepalive = (!ka.idle.is_zero()).then_some(ka);
        if let Some(p) = self.password_file {
            c.set_password_file(&p)
                .map_err(|e| bad("password_file", e.reason))?;
        }
        set(&mut c.log_level, self.log_level);
        set(&mut c.log_dir, self.log_dir);
        c.log_timestamps = self.log_timestamps.unwrap_or(c.log_timestamps);
        c.log_max_files = self.log_max_files.unwrap_or(c.log_max_files);
        c.daemon = self.daemon.unwrap_or(c.daemon);
        set(&mut c.pid_file, self.pid_file);
        Ok(())
    }
}

fn set<T>(slot: &mut Option<T>, v: Option<T>) {
    if v.is_some() {
        *slot = v;
    }
}

/// The effective configuration as a config file, for `--check-config`: every key, unset
/// ones commented, the password never shown.
pub fn render(c: &Config) -> String {
    let s = |v: &str| toml::Value::from(v).to_string();
    let p = |v: &Path| s(&v.display().to_string());
    let d = |v: Duration| s(&humantime::format_duration(v).to_string());
    let opt = |key: &str, v: Option<String>| match v {
        Some(v) => format!("{key} = {v}\n"),
        None => format!("# {key} is not set\n"),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# chatd effective configuration (defaults < {} < flags)",
        c.config_file
            .as_deref()
            .map_or("no config file".into(), |f| f.display().to_string())
    );
    let listen: Vec<String> = c.listen.iter().map(|a| s(&a.to_string())).collect();
    let _ = writeln!(out, "listen = [{}]", listen.join(", "));
    out += &opt("admin_socket", c.admin_socket.as_deref().map(p));
    let _ = writeln!(out, "max_line_bytes = {}", c.max_line_bytes);
    let _ = writeln!(out, "max_clients = {}", c.max_clients);
    let _ = writeln!(out, "queue_len = {}", c.queue_len);
    let _ = writeln!(out, "rate = {}", toml::Value::from(c.rate));
    let _ = writeln!(out, "rate_burst = {}", c.rate_burst);
    let _ = writeln!(out, "slow_consumer_grace = {}", d(c.slow_consumer_grace));
    let _ = writeln!(out, "login_timeout = {}", d(c.login_timeout));
    let ka = c.keepalive.unwrap_or(Keepalive {
        idle: Duration::ZERO,
        ..Keepalive::DEFAULT
    });
    let _ = writeln!(out, "keepalive = {}", d(ka.idle));
    let _ = writeln!(out, "keepalive_interval = {}", d(ka.interval));
    let _ = writeln!(out, "keepalive_retries = {}", ka.retries);
    let _ = writeln!(out, "drain_timeout = {}", d(c.drain_timeout));
    out += &opt("password_file", c.password_file.as_deref().map(p));
    out += &opt("log_level", c.log_level.as_deref().map(s));
    out += &opt("log_dir", c.log_dir.as_deref().map(p));
    let _ = writeln!(out, "log_timestamps = {}", c.log_timestamps);
    let _ = writeln!(out, "log_max_files = {}", c.log_max_files);
    let _ = writeln!(out, "daemon = {}", c.daemon);
    out += &opt("pid_file", c.pid_file.as_deref().map(p));
    out
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
