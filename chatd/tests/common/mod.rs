//! What the session tests share: a single-node server on the default config and a place
//! under its connection limit, as the listener would hand them to `session::run`.

use chatd::directory::local::LocalDirectory;
use chatd::server::Server;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub fn server_and_slot() -> (Arc<Server>, OwnedSemaphorePermit) {
    let server = Arc::new(Server::new(
        chatd::config::Config::default().into(),
        Box::new(LocalDirectory::new()),
    ));
    let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
    (server, slot)
}
