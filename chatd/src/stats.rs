//! Server-wide counters, for logs now and for `chatctl stats`.
//!
//! Plain relaxed atomics: sessions add to them once per read batch, not per message, so the
//! shared cache lines are touched rarely even under load.

use proto::ErrorCode;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections refused with `server_full`.
    pub refused: AtomicU64,
    /// `msg` requests accepted (private or broadcast).
    pub messages: AtomicU64,
    /// Copies queued for recipients (a broadcast to 10 counts 10).
    pub delivered: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Error replies sent, per code, in `ErrorCode::ALL` order.
    pub errors: [AtomicU64; ErrorCode::ALL.len()],
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = code.index() {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}
