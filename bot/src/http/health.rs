//! Which connections are up, as the adapters that hold them say, for `GET /healthz`.
//!
//! A [`Health`] is shared: each adapter marks its connection up when it connects and down
//! when it gives up; the HTTP server reads them. It holds no lock across an await.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Whether each long-lived connection (Discord's gateway, ...) is up, by connection name.
/// Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<Mutex<BTreeMap<String, bool>>>);

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records whether `connection` is up.
    pub fn set(&self, connection: &str, up: bool) {
        // A panic elsewhere while holding the lock leaves a map that is still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(connection.to_string(), up);
    }

    /// Forgets `connection` (it was removed).
    pub fn remove(&self, connection: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(connection);
    }

    /// Every connection marked so far, with whether it is up.
    pub fn connections(&self) -> BTreeMap<String, bool> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_word_on_a_connection_counts() {
        let health = Health::new();
        let shared = health.clone();
        shared.set("discord", false);
        shared.set("discord", true);
        shared.set("slack", false);
        assert_eq!(health.connections(), BTreeMap::from([("discord".into(), true), ("slack".into(), false)]));
    }
}
