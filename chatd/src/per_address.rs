//! Connections open per source address (`max_per_ip`), across every chat listener.
//!
//! An address is counted as the login limits count it (`logins::key`: IPv4 whole, IPv6 by
//! its /64). The listener admits a connection before its session starts, and the session's
//! [`ConnGuard`](crate::server::ConnGuard) gives the place back when it ends, however it
//! ends. Counts are kept even while the limit is off, so that a reload turning it on finds
//! them right. One short lock per connection opened or closed; an entry exists only while
//! its address has a connection open, so the table is bounded by the connections.

use crate::logins::key;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct PerAddress {
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl PerAddress {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        // A panic while holding this lock leaves plain counts behind; keep serving.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more connection from `ip` unless it has `max` open already (`0`: no
    /// limit); false if refused.
    pub fn admit(&self, ip: IpAddr, max: usize) -> bool {
        let mut open = self.lock();
        let n = open.entry(key(ip)).or_insert(0);
        // Refused only with a limit and at least one open, so no empty entry is left.
        if max > 0 && *n as usize >= max {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` has ended. One that was never admitted (a session started
    /// outside a listener, as tests do) changes nothing.
    pub fn release(&self, ip: IpAddr) {
        let mut open = self.lock();
        let k = key(ip);
        if let Some(n) = open.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                open.remove(&k);
            }
        }
    }

    /// Connections open from `ip`.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        self.lock().get(&key(ip)).map_or(0, |n| *n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_per_address_and_frees_on_release() {
        let t = PerAddress::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(t.admit(a, 2));
        assert!(t.admit(a, 2), "at the limit");
        assert!(!t.admit(a, 2), "over it");
        assert!(t.admit(b, 2), "another address has its own count");
        t.release(a);
        assert!(t.admit(a, 2), "a place freed is taken again");
        assert_eq!(t.open(a), 2);
        t.release(a);
        t.release(a);
        t.release(b);
        assert!(t.lock().is_empty(), "no entry without a connection");
    }

    #[test]
    fn zero_is_no_limit_but_still_counts() {
        let t = PerAddress::default();
        let a: IpAddr = "::1".parse().unwrap();
        for _ in 0..1000 {
            assert!(t.admit(a, 0));
        }
        assert_eq!(t.open(a), 1000);
        assert!(
            !t.admit(a, 1000),
            "a limit set later applies to what is open"
        );
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address_and_a_release_never_admitted_is_ignored() {
        let t = PerAddress::default();
        assert!(t.admit("2001:db8:1:2::1".parse().unwrap(), 1));
        assert!(!t.admit("2001:db8:1:2:ffff::9".parse().unwrap(), 1));
        assert!(t.admit("2001:db8:1:3::1".parse().unwrap(), 1));
        t.release("198.51.100.7".parse().unwrap());
        assert_eq!(t.lock().len(), 2);
    }
}
