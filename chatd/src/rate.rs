//! Per-session rate limit: a token bucket read with a clock sampled once per batch.
//!
//! Messages take a token each. So does every refused request (an error reply of any kind),
//! so that a flood of garbage spends the same budget as a flood of messages; a refusal that
//! finds no token left is a strike instead. Strikes drain at the same rate as tokens refill,
//! so a client that backs off when told `rate_limited` never collects many; one that goes on
//! sending past them is over the limit and is cut off.

use std::time::{Duration, Instant};

/// Strikes allowed, in bursts: a client refused this many times more than the rate lets it
/// recover from is not listening to `rate_limited`.
const STRIKES_PER_BURST: f64 = 2.0;
/// Strikes allowed whatever the burst: a client that pipelines (chatcli keeps 64 requests in
/// flight) meets many refusals at once before it can back off.
const MIN_STRIKES: f64 = 1000.0;

/// Allows `rate` messages per second on average and bursts of up to `burst`.
/// A rate of zero means no limit.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    strikes: f64,
    last: Instant,
}

/// What a refusal cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// A token, or nothing at all (no limit).
    Paid,
    /// No token was left: a strike.
    Strike,
    /// Past the strikes allowed: the client is to be cut off.
    OverLimit,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            strikes: 0.0,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.last = now;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.strikes = (self.strikes - earned).max(0.0);
    }

    /// Charges one refused request: a token if there is one, else a strike.
    pub fn charge(&mut self, now: Instant) -> Charge {
        if self.rate <= 0.0 {
            return Charge::Paid;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Charge::Paid;
        }
        self.strikes += 1.0;
        if self.strikes > (STRIKES_PER_BURST * self.burst).max(MIN_STRIKES) {
            Charge::OverLimit
        } else {
            Charge::Strike
        }
    }

    /// Takes one token, or says how long until one is available.
    /// Messages per second this bucket allows (0: no limit).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3, t0);
        for _ in 0..3 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(b.take(t0 + Duration::from_millis(99)).is_err());
        assert!(b.take(t0 + Duration::from_millis(200)).is_ok());
    }

    #[test]
    fn refusals_spend_tokens_then_strikes_and_too_many_strikes_are_over_the_limit() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 2, t0);
        assert_eq!(b.charge(t0), Charge::Paid);
        assert_eq!(b.charge(t0), Charge::Paid);
        assert!(b.take(t0).is_err(), "refusals took the tokens");
        // 2 bursts of strikes are allowed, and never fewer than MIN_STRIKES.
        for _ in 0..1000 {
            assert_eq!(b.charge(t0), Charge::Strike);
        }
        assert_eq!(b.charge(t0), Charge::OverLimit);
        let mut big = TokenBucket::new(10.0, 1000, t0);
        for _ in 0..1000 + 2000 {
            assert_ne!(big.charge(t0), Charge::OverLimit);
        }
        assert_eq!(big.charge(t0), Charge::OverLimit);
        // Strikes drain at the rate: a client that backs off is forgiven.
        let mut b = TokenBucket::new(10.0, 2, t0);
        for _ in 0..2 {
            b.charge(t0);
        }
        for _ in 0..4 {
            assert_eq!(b.charge(t0), Charge::Strike);
        }
        let later = t0 + Duration::from_millis(500);
        assert_eq!(b.charge(later), Charge::Paid);
        assert_eq!(b.charge(later), Charge::Paid);
        assert_eq!(b.charge(later), Charge::Strike);
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.0, 1, t0);
        for _ in 0..10_000 {
            assert!(b.take(t0).is_ok());
            assert_eq!(b.charge(t0), Charge::Paid);
        }
    }

    #[test]
    fn tokens_never_exceed_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 2, t0);
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later).is_ok());
        assert!(b.take(later).is_ok());
        assert!(b.take(later).is_err());
    }
}
