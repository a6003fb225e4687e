//! What each setting may be: the `range:` of its row in `settings.rs`.
//!
//! A range is checked in one place, [`Settings::check`](super::Settings::check), which
//! start-up, `--check-config` and every reload go through; a value out of range is refused
//! there with one line naming the flag or key and what to use instead
//! (`--max-clients: 18446744073709551615 is out of range; use 1 to 1000000`). Its text is
//! also added to the flag's `--help` (by [`in_help`]) and is the README's range column, so
//! the three cannot drift apart.
//!
//! The bounds keep every value within what the code that uses it can compute with: a timer
//! added to `Instant::now()`, the TCP user timeout made from the keepalive settings, the
//! connection semaphore's permits, the line decoder's `max + 1`. A row whose values all make
//! sense says [`Any`]; a few rows have a named check instead of a span (an address list
//! must not be empty, a log filter must parse, a socket path must fit `sun_path`).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

/// Longest Unix socket path: `sun_path` holds 108 bytes with the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// 1024 bytes, for the rows that count bytes.
pub const KIB: usize = 1 << 10;
/// 1024 KiB.
pub const MIB: usize = 1 << 20;

/// What values one setting may take.
pub trait Range<T: ?Sized> {
    /// Why `v` cannot be used: the whole reason, which the error puts after the flag or key.
    fn check(&self, v: &T) -> Result<(), String>;
    /// The values that can, as `--help`, the README and the errors say them; `None` when the
    /// type's every value can (the help then says nothing more).
    fn describe(&self) -> Option<String>;
}

/// A value as the errors and the help write it: as it would be typed.
pub trait Shown {
    fn shown(&self) -> String;
}

macro_rules! shown_by_display {
    ($($t:ty),*) => { $(impl Shown for $t { fn shown(&self) -> String { self.to_string() } })* };
}
shown_by_display!(u32, u64, usize, f64);

impl Shown for Duration {
    fn shown(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

fn out_of_range(v: &impl Shown, range: &str) -> String {
    format!("{} is out of range; use {range}", v.shown())
}

/// From the start to the end, both included. `NaN` is in no range.
impl<T: Shown + PartialOrd> Range<T> for RangeInclusive<T> {
    fn check(&self, v: &T) -> Result<(), String> {
        if self.contains(v) {
            return Ok(());
        }
        Err(out_of_range(v, &self.describe().unwrap_or_default()))
    }

    fn describe(&self) -> Option<String> {
        Some(format!(
            "{} to {}",
            self.start().shown(),
            self.end().shown()
        ))
    }
}

/// `0s`, which turns the setting off, or a duration in the span.
pub struct OffOr(pub RangeInclusive<Duration>);

impl Range<Duration> for OffOr {
    fn check(&self, v: &Duration) -> Result<(), String> {
        if v.is_zero() || self.0.contains(v) {
            return Ok(());
        }
        Err(out_of_range(v, &self.describe().unwrap_or_default()))
    }

    fn describe(&self) -> Option<String> {
        self.0.describe().map(|span| format!("0 (off) or {span}"))
    }
}

/// Whatever the type holds (a flag, a path chatd opens and reports on itself).
pub struct Any;

impl<T: ?Sized> Range<T> for Any {
    fn check(&self, _: &T) -> Result<(), String> {
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        None
    }
}

/// A list of listening addresses with at least one in it.
pub struct AtLeastOne;

impl Range<Vec<SocketAddr>> for AtLeastOne {
    fn check(&self, v: &Vec<SocketAddr>) -> Result<(), String> {
        if v.is_empty() {
            return Err("needs at least one address".into());
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some("at least one address".into())
    }
}

/// A path that fits a Unix socket address.
pub struct SocketPath;

impl Range<PathBuf> for SocketPath {
    fn check(&self, v: &PathBuf) -> Result<(), String> {
        let len = v.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(format!(
                "{} is {len} bytes long; a Unix socket path has at most {MAX_SOCKET_PATH}",
                v.display()
            ));
        }
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(format!("a path of at most {MAX_SOCKET_PATH} bytes"))
    }
}

/// A filter `tracing_subscriber::EnvFilter` accepts: a level or `RUST_LOG`-style directives.
pub struct LogFilter;

impl Range<String> for LogFilter {
    fn check(&self, v: &String) -> Result<(), String> {
        match tracing_subscriber::EnvFilter::try_new(v) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "invalid filter {v:?}: {e}; use a level such as info or directives such as chatd=debug"
            )),
        }
    }

    fn describe(&self) -> Option<String> {
        // The help says what a filter is; a span would say nothing more.
        None
    }
}

/// `n` seconds, for the rows' bounds.
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `n` milliseconds.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `help` with `range` said at its end, after the `[default: …]` that ends most help
/// texts, so that `--help` reads like clap's own `[default: x] [possible values: …]`.
pub fn with_range(help: &str, range: &str) -> String {
    format!("{} [range: {range}]", help.trim_end())
}

/// Adds its row's range to a flag's help: `Command::mut_args` runs this on every flag of
/// the settings (see `settings!`).
pub fn in_help(arg: clap::Arg, range: Option<String>) -> clap::Arg {
    let Some(range) = range else {
        return arg;
    };
    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    let long = arg.get_long_help().map(|h| h.to_string());
    let arg = arg.help(with_range(&help, &range));
    match long {
        Some(l) => arg.long_help(with_range(&l, &range)),
        None => arg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_includes_both_ends_and_says_what_to_use() {
        let r = 1usize..=1_000_000;
        assert_eq!(r.check(&1), Ok(()));
        assert_eq!(r.check(&1_000_000), Ok(()));
        assert_eq!(
            r.check(&0),
            Err("0 is out of range; use 1 to 1000000".into())
        );
        assert_eq!(
            r.check(&usize::MAX),
            Err("18446744073709551615 is out of range; use 1 to 1000000".into())
        );
    }

    #[test]
    fn no_rate_is_nan_or_infinite() {
        let r = 0.0..=1e6;
        assert_eq!(r.check(&0.0), Ok(()));
        assert_eq!(r.check(&0.5), Ok(()));
        assert_eq!(
            r.check(&f64::NAN),
            Err("NaN is out of range; use 0 to 1000000".into())
        );
        assert_eq!(
            r.check(&f64::INFINITY),
            Err("inf is out of range; use 0 to 1000000".into())
        );
        assert_eq!(
            r.check(&-0.5),
            Err("-0.5 is out of range; use 0 to 1000000".into())
        );
    }

    #[test]
    fn durations_are_written_as_they_are_typed() {
        let r = ms(1)..=secs(3600);
        assert_eq!(r.describe().as_deref(), Some("1ms to 1h"));
        assert_eq!(
            r.check(&Duration::ZERO),
            Err("0s is out of range; use 1ms to 1h".into())
        );
        let off = OffOr(secs(1)..=secs(7200));
        assert_eq!(off.check(&Duration::ZERO), Ok(()));
        assert_eq!(
            off.check(&ms(500)),
            Err("500ms is out of range; use 0 (off) or 1s to 2h".into())
        );
    }

    #[test]
    fn the_range_follows_the_default_in_the_help() {
        assert_eq!(
            with_range("Most connections [default: 10] ", "1 to 5"),
            "Most connections [default: 10] [range: 1 to 5]"
        );
    }
}
