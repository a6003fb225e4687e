//! The config file layer: defaults < `/etc/chatd/chatd.toml` (or `--config PATH`) < flags.
//!
//! The file is a [`Layer`], the same type the flags fill: its keys are the flags' names with
//! underscores (`--max-line-bytes` is `max_line_bytes`), durations are humantime strings
//! (`"5s"`), and relative paths in it are taken from the file's own directory (flags are
//! made absolute against the working directory by `main`). Unknown keys are errors, so a
//! typo never passes silently. Every error is one line naming the file, the key and, where
//! toml knows it, the line, because it lands in a terminal or the journal where a
//! multi-line caret report is noise. The same [`load`] serves start-up, `--check-config`
//! and SIGHUP reloads; [`render`] and [`changes`] write settings back as the file's text.

use crate::config::{Args, Config, ConfigError, KEYS, Layer, Reload, Settings};
use std::io;
use std::path::{Path, PathBuf};

/// Where the config file is looked for without `--config`. A missing file here is fine
/// (built-in defaults); a missing file named by `--config` is an error.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/chatd/chatd.toml";

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
///
/// The file is checked on its own first (over the defaults), so that its errors name the
/// file and its key, and a file that a reload would refuse is refused now, even where a
/// flag hides the bad value. What fails only once the flags are laid over is the flags'
/// fault, except the password file, which is read once at the end and blamed on whichever
/// layer named it.
pub fn load(args: &Args) -> Result<Config, LoadError> {
    let (path, named) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut file = parse(&path, &text)?;
            file.rebase(&directory_of(&path));
            let alone = file.clone().resolve();
            alone
                .check()
                .and_then(|()| alone.check_paths())
                .map_err(|e| in_file(&path, e))?;
            Some(file)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && !named => None,
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
    };
    let config_file = file.is_some().then(|| path.clone());
    let file = file.unwrap_or_default();
    let settings = args.settings.clone().or(file.clone()).resolve();
    settings.check()?;
    settings.check_paths()?;
    let read = Config::read_files(&settings).map_err(|e| {
        // The file named what could not be read (the flags did not override it).
        let named_by_file = |key| file.sets(key) && !args.settings.sets(key);
        let key = match e.key {
            "password_file" => "password_file",
            // A certificate error may name the key where the certificate is missing.
            k if k.starts_with("tls_") => ["tls_cert", "tls_key", "tls_listen"]
                .into_iter()
                .find(|k| named_by_file(k))
                .unwrap_or(k),
            k => k,
        };
        if named_by_file(key) {
            in_file(&path, e)
        } else {
            LoadError::Flag(e)
        }
    })?;
    Ok(Config::build(settings, read, config_file))
}

/// The absolute directory of the config file, which its relative paths start from.
fn directory_of(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    path.parent().map(Path::to_owned).unwrap_or_default()
}

/// A check that failed on a value from the file: name the key, not the flag.
fn in_file(path: &Path, e: ConfigError) -> LoadError {
    LoadError::Invalid {
        path: path.to_owned(),
        key: e.key.to_owned(),
        reason: e.reason,
    }
}

fn parse(path: &Path, text: &str) -> Result<Layer, LoadError> {
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

/// Each key with its value as it is written in the file, `None` where it is not set; in
/// table order.
fn written(s: &Settings) -> Vec<(&'static str, Option<String>)> {
    s.to_layer()
        .each()
        .into_iter()
        .map(|(key, one)| {
            let value = match toml::Table::try_from(&one) {
                Ok(mut t) => t.remove(key).map(|v| v.to_string()),
                // A path that is not UTF-8 has no TOML spelling; say so rather than fail.
                Err(e) => Some(format!("\"(cannot be written in TOML: {e})\"")),
            };
            (key, value)
        })
        .collect()
}

/// The effective configuration as a config file, for `--check-config`: every key, unset
/// ones commented, the password never shown (only the file it is read from).
pub fn render(c: &Config) -> String {
    let source = c
        .config_file
        .as_deref()
        .map_or("no config file".into(), |f| f.display().to_string());
    let mut out = format!("# chatd effective configuration (defaults < {source} < flags)\n");
    for (key, value) in written(&c.settings) {
        match value {
            Some(v) => out += &format!("{key} = {v}\n"),
            // Not set, it still means something; say what, so the output tells what runs.
            None if key == "listen" && c.listen.is_empty() => {
                out += "# listen is not set: no plain TCP, only tls_listen\n";
            }
            None if key == "listen" => {
                let addrs: Vec<String> = c.listen.iter().map(|a| a.to_string()).collect();
                out += &format!("# listen is not set: plain TCP on {}\n", addrs.join(", "));
            }
            None if key.starts_with("tls_") && key != "tls_listen" && c.tls.is_some() => {
                let tls = c.tls.as_ref().expect("checked");
                let path = if key == "tls_cert" {
                    &tls.cert_path
                } else {
                    &tls.key_path
                };
                out += &format!("# {key} is not set: read from {}\n", path.display());
            }
            None => out += &format!("# {key} is not set\n"),
        }
    }
    out
}

/// A setting whose value differs between two configs, for the reload's log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: &'static str,
    pub reload: Reload,
    /// The values as [`render`] writes them, `(not set)` for none.
    pub from: String,
    pub to: String,
}

/// Every setting whose value differs from `old` in `new`, compared as typed values, in key
/// order.
pub fn changes(old: &Settings, new: &Settings) -> Vec<Change> {
    let (from, to) = (written(old), written(new));
    let text = |written: &[(&str, Option<String>)], key: &str| {
        let value = written.iter().find(|(k, _)| *k == key);
        value
            .and_then(|(_, v)| v.clone())
            .unwrap_or_else(|| "(not set)".into())
    };
    let mut out: Vec<Change> = old
        .changed(new)
        .into_iter()
        .map(|(key, reload)| Change {
            key,
            reload,
            from: text(&from, key),
            to: text(&to, key),
        })
        .collect();
    out.sort_by_key(|c| c.key);
    out
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "config_file_docs_tests.rs"]
mod docs_tests;
