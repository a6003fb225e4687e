//! Logins counted per source address: how fast one address may log in, and how many wrong
//! passwords it has given lately.
//!
//! An address is a whole IPv4 address or an IPv6 /64 (what one host is usually given). Each
//! has a token bucket for logins (`login_rate`, `login_burst`) and a count of failed logins
//! within `login_failure_window`: the first `login_failures_free` failures are answered at
//! once, later ones after a delay that doubles from 125 ms up to 2 s, and past
//! `login_failures_max` every login from the address is refused until the window has passed
//! or a login from it succeeds. The accounts of version 2 use the same counts.
//!
//! Memory is bounded: at most [`MAX_ADDRESSES`] are remembered; when full, those with nothing
//! to remember (a full bucket, no recent failure) are forgotten, then others, an eighth of
//! the table at once.

use crate::config::Config;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered at most: a few MB, whatever a spread of sources does.
pub const MAX_ADDRESSES: usize = 65_536;
/// The delay of the first failure past the free ones; each later one doubles it.
const FIRST_DELAY: Duration = Duration::from_millis(125);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Why a login is refused before it is even looked at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    /// More logins than `login_rate` allows; retry after the wait.
    TooFast { wait: Duration, rate: f64 },
    /// Too many failed logins lately; retry after the wait.
    TooManyFailures { wait: Duration, failures: u32 },
}

#[derive(Debug, Default)]
pub struct Logins {
    by_address: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Debug)]
struct Entry {
    tokens: f64,
    refilled: Instant,
    failures: u32,
    /// When the current window of failures began.
    first_failure: Instant,
}

impl Entry {
    fn new(burst: f64, now: Instant) -> Entry {
        Entry {
            tokens: burst,
            refilled: now,
            failures: 0,
            first_failure: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let earned = now.saturating_duration_since(self.refilled).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(burst);
        self.refilled = now;
    }

    /// Forgets failures older than the window.
    fn expire(&mut self, now: Instant, window: Duration) {
        if self.failures > 0 && now.saturating_duration_since(self.first_failure) >= window {
            self.failures = 0;
        }
    }

    /// Nothing to remember: a full bucket and no failure.
    fn idle(&self, now: Instant, c: &Config) -> bool {
        let earned =
            now.saturating_duration_since(self.refilled).as_secs_f64() * c.settings.login_rate;
        let failures_gone = self.failures == 0
            || now.saturating_duration_since(self.first_failure) >= c.settings.login_failure_window;
        failures_gone && (c.settings.login_rate <= 0.0 || self.tokens + earned >= burst(c))
    }
}

fn burst(c: &Config) -> f64 {
    f64::from(c.settings.login_burst.max(1))
}

/// The address as counted: IPv4 (and IPv4 in IPv6) whole, IPv6 by its /64.
pub(crate) fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

impl Logins {
    pub fn new() -> Logins {
        Logins::default()
    }

    fn with<T>(&self, ip: IpAddr, now: Instant, c: &Config, f: impl FnOnce(&mut Entry) -> T) -> T {
        // A panic while holding this lock leaves plain data behind; keep serving.
        let mut map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        let k = key(ip);
        if !map.contains_key(&k) && map.len() >= MAX_ADDRESSES {
            // Make room for many at once, so that a spread of sources costs one sweep per
            // eighth of the table, not one per login.
            map.retain(|_, e| !e.idle(now, c));
            let keep = MAX_ADDRESSES - MAX_ADDRESSES / 8;
            let excess = map.len().saturating_sub(keep);
            let victims: Vec<IpAddr> = map.keys().take(excess).copied().collect();
            for v in victims {
                map.remove(&v);
            }
        }
        let entry = map.entry(k).or_insert_with(|| Entry::new(burst(c), now));
        entry.refill(now, c.settings.login_rate, burst(c));
        entry.expire(now, c.settings.login_failure_window);
        f(entry)
    }

    /// Counts a login attempt from `ip`; refuses it when the address is over its rate or has
    /// failed too often lately.
    pub fn admit(&self, ip: IpAddr, now: Instant, c: &Config) -> Result<(), Refusal> {
        self.with(ip, now, c, |e| {
            if c.settings.login_failures_max > 0 && e.failures >= c.settings.login_failures_max {
                let until = e.first_failure + c.settings.login_failure_window;
                return Err(Refusal::TooManyFailures {
                    wait: until.saturating_duration_since(now),
                    failures: e.failures,
                });
            }
            if c.settings.login_rate <= 0.0 {
                return Ok(());
            }
            if e.tokens >= 1.0 {
                e.tokens -= 1.0;
                Ok(())
            } else {
                Err(Refusal::TooFast {
                    wait: Duration::from_secs_f64((1.0 - e.tokens) / c.settings.login_rate),
                    rate: c.settings.login_rate,
                })
            }
        })
    }

    /// Counts a failed login from `ip`; returns how long its answer is to be held back.
    pub fn failed(&self, ip: IpAddr, now: Instant, c: &Config) -> Duration {
        self.with(ip, now, c, |e| {
            if e.failures == 0 {
                e.first_failure = now;
            }
            e.failures = e.failures.saturating_add(1);
            match e.failures.checked_sub(c.settings.login_failures_free) {
                None | Some(0) => Duration::ZERO,
                Some(past) => {
                    let doublings = (past - 1).min(16);
                    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
                }
            }
        })
    }

    /// A login from `ip` succeeded: its failures are forgiven.
    pub fn succeeded(&self, ip: IpAddr, now: Instant, c: &Config) {
        self.with(ip, now, c, |e| e.failures = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn config(rate: f64, burst: u32) -> Config {
        let mut c = Config::default();
        c.settings.login_rate = rate;
        c.settings.login_burst = burst;
        c
    }

    #[test]
    fn logins_from_one_address_follow_the_rate_and_others_are_not_slowed() {
        let (l, c, t0) = (Logins::new(), config(10.0, 3), Instant::now());
        for _ in 0..3 {
            assert_eq!(l.admit(ip("10.0.0.1"), t0, &c), Ok(()));
        }
        assert_eq!(
            l.admit(ip("10.0.0.1"), t0, &c),
            Err(Refusal::TooFast {
                wait: Duration::from_millis(100),
                rate: 10.0
            })
        );
        assert_eq!(l.admit(ip("10.0.0.2"), t0, &c), Ok(()));
        let later = t0 + Duration::from_millis(100);
        assert_eq!(l.admit(ip("10.0.0.1"), later, &c), Ok(()));
        let off = config(0.0, 1);
        for _ in 0..1000 {
            assert_eq!(l.admit(ip("10.0.0.3"), t0, &off), Ok(()));
        }
    }

    #[test]
    fn failures_are_free_then_delayed_then_refused_and_a_success_forgives_them() {
        let (l, c, t0) = (Logins::new(), Config::default(), Instant::now());
        let guesser = ip("192.0.2.7");
        let delays: Vec<u64> = (0..10)
            .map(|_| l.failed(guesser, t0, &c).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 0, 0, 0, 0, 125, 250, 500, 1000, 2000]);
        let refused = l.admit(guesser, t0, &c).unwrap_err();
        assert_eq!(
            refused,
            Refusal::TooManyFailures {
                wait: Duration::from_secs(600),
                failures: 10
            }
        );
        assert_eq!(l.admit(ip("192.0.2.8"), t0, &c), Ok(()), "others log in");
        let after = t0 + Duration::from_secs(600);
        assert_eq!(l.admit(guesser, after, &c), Ok(()), "the window passed");
        l.failed(guesser, after, &c);
        l.succeeded(guesser, after, &c);
        assert_eq!(l.failed(guesser, after, &c), Duration::ZERO, "forgiven");
    }

    #[test]
    fn an_ipv6_host_counts_by_its_slash_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        let (l, c, t0) = (Logins::new(), config(1.0, 1), Instant::now());
        assert_eq!(l.admit(ip("2001:db8::1"), t0, &c), Ok(()));
        assert!(l.admit(ip("2001:db8::2"), t0, &c).is_err(), "same /64");
    }

    #[test]
    fn the_table_stays_bounded() {
        let (l, c, t0) = (Logins::new(), config(10.0, 1), Instant::now());
        for i in 0..MAX_ADDRESSES as u32 + 10 {
            let _ = l.admit(IpAddr::V4(i.into()), t0, &c);
        }
        assert!(l.by_address.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
