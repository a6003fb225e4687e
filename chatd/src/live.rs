//! The running configuration, replaceable by a SIGHUP reload while sessions read it.
//!
//! Sessions read limits on their hot path (every loop turn asks for the slow-consumer grace),
//! so reads must not contend: [`Live`] keeps the config in an `ArcSwap`, whose `load` is a
//! few atomic operations with no lock shared between readers, where a `RwLock<Arc<Config>>`
//! would make every reader bump one shared counter. A reload is rare and swaps in a whole new
//! `Arc<Config>`, so a reader never sees half of an old config and half of a new one.
//!
//! Most limits are simply read afresh (`login_timeout`, `slow_consumer_grace`,
//! `drain_timeout`, the password, the login limits); `max_line_bytes`, `rate` and
//! `rate_burst` are taken by a session when it starts (`queue_len` and `queue_bytes` too, for
//! its mailbox); `max_clients` lives in the connection semaphore, which [`apply_limits`]
//! resizes on every change. Each setting's row in `config/settings.rs` says which.

use crate::config::Config;
use crate::server::Server;
use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// A cloneable handle to the configuration in force.
#[derive(Clone)]
pub struct Live {
    current: Arc<ArcSwap<Config>>,
    /// Bumped on every [`Live::store`], so that [`apply_limits`] wakes up.
    changed: Arc<watch::Sender<u64>>,
}

impl Live {
    pub fn new(config: Config) -> Live {
        Live {
            current: Arc::new(ArcSwap::from_pointee(config)),
            changed: Arc::new(watch::Sender::new(0)),
        }
    }

    /// The config in force; cheap, for reading a field or two.
    pub fn load(&self) -> arc_swap::Guard<Arc<Config>> {
        self.current.load()
    }

    /// The config in force, to keep.
    pub fn get(&self) -> Arc<Config> {
        self.current.load_full()
    }

    /// Puts `config` in force for everything that reads it from now on.
    pub fn store(&self, config: Config) {
        self.current.store(Arc::new(config));
        self.changed.send_modify(|n| *n += 1);
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

impl From<Config> for Live {
    fn from(c: Config) -> Live {
        Live::new(c)
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Live").field(&**self.load()).finish()
    }
}

/// Keeps the connection semaphore sized `max_clients` as reloads change it, until `stop`.
/// `slots` starts with `max_clients` of the config in force when this is called.
///
/// Raising the limit adds permits at once. Lowering it takes free permits away at once and
/// the rest as connections close: nobody is disconnected to meet a lower limit.
pub async fn apply_limits(server: Arc<Server>, slots: Arc<Semaphore>, stop: CancellationToken) {
    let live = &server.config;
    let mut changes = live.subscribe();
    let mut total = live.load().max_clients;
    loop {
        let target = live.load().max_clients;
        if target > total {
            slots.add_permits(target - total);
            total = target;
        } else if target < total {
            total -= slots.forget_permits(total - target);
        }
        debug!(
            max_clients = target,
            slots = total,
            "connection limit applied"
        );
        tokio::select! {
            _ = stop.cancelled() => return,
            r = changes.changed() => if r.is_err() { return },
            // Still above the new limit: retire a slot as soon as a connection frees one.
            p = slots.acquire(), if total > target => {
                if let Ok(p) = p {
                    p.forget();
                    total -= 1;
                }
            }
        }
    }
}
