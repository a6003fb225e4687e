//! Latency statistics: a fixed-size log-linear histogram (HdrHistogram's idea, in 30 KiB).
//!
//! Recording must cost a few nanoseconds because receivers record every message on the hot
//! path, and memory must be fixed because a fanout run has a thousand receivers. Values are
//! nanoseconds. Below [`SUB`] each value has its own bucket; above, every power of two is split
//! into [`SUB`] equal buckets, so a reported percentile is within 1/[`SUB`] (1.6 %) of the
//! true value. `min` and `max` are kept exactly.

/// Buckets per power of two: the relative precision of a percentile.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any u64.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of values per bucket, plus exact count, min, max and sum.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }
}

/// The bucket holding `v`.
fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // floor(log2 v) >= SUB_BITS
    let mantissa = v >> (e - SUB_BITS); // in [SUB, 2 * SUB)
    ((e - SUB_BITS + 1) as u64 * SUB + (mantissa - SUB)) as usize
}

/// The smallest value in bucket `i`, and the bucket's width.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let shift = i / SUB - 1; // e - SUB_BITS
    let mantissa = SUB + i % SUB;
    (mantissa << shift, 1 << shift)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            (self.sum / self.count as u128) as u64
        }
    }

    /// The value at quantile `q` (0..=1): the smallest value with at least `ceil(q * count)`
    /// values at or below it, reported as the middle of its bucket and clamped to the exact
    /// min and max. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, width) = bounds(i);
                return (lo + (width - 1) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_the_bucket_whose_bounds_hold_it() {
        let mut v = 0u64;
        while v < u64::MAX / 3 {
            let (lo, w) = bounds(index(v));
            assert!(lo <= v && v - lo < w, "v={v} lo={lo} w={w}");
            v = v * 3 / 2 + 1;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(
            bounds(index(u64::MAX)).0 + (bounds(index(u64::MAX)).1 - 1),
            u64::MAX
        );
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::default();
        for v in 1..=50 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 25);
        assert_eq!(h.quantile(0.99), 50);
        assert_eq!(h.quantile(0.0), 1);
        assert_eq!(h.quantile(1.0), 50);
        assert_eq!(h.max(), 50);
        assert_eq!(h.mean(), 25);
    }

    #[test]
    fn large_percentiles_are_within_the_stated_precision() {
        let mut h = Histogram::default();
        // 1..=100_000 microseconds, in nanoseconds.
        for us in 1..=100_000u64 {
            h.record(us * 1000);
        }
        for (q, want) in [
            (0.5, 50_000_000u64),
            (0.99, 99_000_000),
            (0.999, 99_900_000),
        ] {
            let got = h.quantile(q);
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err < 1.0 / SUB as f64, "q={q} got={got} want={want}");
        }
        assert_eq!(h.quantile(1.0), 100_000_000);
    }

    #[test]
    fn an_outlier_shows_in_the_tail_only() {
        let mut h = Histogram::default();
        for _ in 0..999 {
            h.record(100_000);
        }
        h.record(50_000_000);
        assert!(h.quantile(0.99) < 102_000);
        assert_eq!(h.quantile(0.999), h.quantile(0.5));
        assert_eq!(h.quantile(1.0), 50_000_000);
        assert_eq!(h.max(), 50_000_000);
    }

    #[test]
    fn merge_adds_counts_and_keeps_extremes() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(10);
        b.record(1_000_000);
        b.record(5);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.0), 5);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(Histogram::default().quantile(0.99), 0);
    }
}
