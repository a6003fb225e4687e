//! How values that TOML and clap do not know are read and written: addresses and durations,
//! with one parser each for the flag and the key so that both accept the same spellings and
//! give the same advice, and paths, which are taken relative to where they were written.
//!
//! Durations are humantime strings (`"500ms"`, `"2m"`). The `humantime-serde` crate was
//! tried and left out: its errors ("expected a duration") drop humantime's reason and
//! change texts that users and tests rely on, and it would parse the file differently from
//! the flags. What it would do is the few lines below over `humantime` itself.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("expected IP:PORT such as 127.0.0.1:7878 or [::1]:7878, got {s:?}"))
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration such as 500ms, 10s or 2m"))
}

/// `Option<Vec<SocketAddr>>` as an array of `"IP:PORT"` strings.
pub(crate) mod addrs {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Vec<SocketAddr>>, s: S) -> Result<S::Ok, S::Error> {
        let text: Option<Vec<String>> = v
            .as_ref()
            .map(|a| a.iter().map(|a| a.to_string()).collect());
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<SocketAddr>>, D::Error> {
        let Some(list) = Option::<Vec<String>>::deserialize(d)? else {
            return Ok(None);
        };
        let addrs = list.iter().map(|s| parse_addr(s)).collect::<Result<_, _>>();
        addrs.map(Some).map_err(D::Error::custom)
    }
}

/// `Option<Duration>` as a humantime string.
pub(crate) mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        let text = v.map(|d| humantime::format_duration(d).to_string());
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let d = parse_duration(&text).map_err(|e| D::Error::custom(format!("{text:?}: {e}")));
        d.map(Some)
    }
}

/// A setting's value that may hold a relative path. Every type in the settings table has
/// an impl, so a new path-valued setting cannot be forgotten when paths are rebased.
pub trait Rebase {
    /// Makes a relative path relative to `base` (absolute when `base` is).
    fn rebase(&mut self, _base: &Path) {}
}

impl Rebase for PathBuf {
    fn rebase(&mut self, base: &Path) {
        if self.is_relative() {
            let joined = base.join(&*self);
            // Only to tidy `dir/./file`: `base` is absolute wherever paths are rebased.
            *self = std::path::absolute(&joined).unwrap_or(joined);
        }
    }
}

impl Rebase for Vec<SocketAddr> {}
impl Rebase for Duration {}
impl Rebase for String {}
impl Rebase for bool {}
impl Rebase for f64 {}
impl Rebase for u32 {}
impl Rebase for u64 {}
impl Rebase for usize {}
