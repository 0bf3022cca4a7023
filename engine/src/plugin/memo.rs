//! What the plugin host works out once per process and then shares: a map filled once per key.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// A map whose values are made on first use. The lock is not held while a value is made (a
/// compilation can take seconds), so two callers may both make one; the first stored wins.
pub(super) struct Memo<K, V>(Mutex<HashMap<K, V>>);

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// The value for `key`, made by `make` if there is none yet.
    pub fn get_or_try_insert<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(value) = self.map().get(&key) {
            return Ok(value.clone());
        }
        let value = make()?;
        Ok(self.map().entry(key).or_insert(value).clone())
    }

    /// Forgets the value for `key`, so that the next use makes it again.
    pub fn remove(&self, key: &K) {
        self.map().remove(key);
    }

    #[cfg(all(test, feature = "compiler"))]
    pub fn len(&self) -> usize {
        self.map().len()
    }

    fn map(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
