//! Last-seen times, written in batches. Every poll authenticates a device and would otherwise
//! write its last-seen time, turning each poll into a write transaction (one journal sync each).
//! Polls record the time in memory instead; the server's ticker writes what gathered in one
//! transaction every few seconds, and reads of this process see the newer time at once.
//! A crash loses at most those few seconds of last-seen times, nothing else.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Store, StoreResult};

#[derive(Debug, Default)]
pub struct SeenBuffer(Mutex<HashMap<String, i64>>);

impl SeenBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // A panic elsewhere while holding the lock leaves a map that is still valid.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, id: &str, now: i64) {
        let mut map = self.lock();
        let t = map.entry(id.to_string()).or_insert(now);
        *t = (*t).max(now);
    }

    /// The newest unwritten time of `id`, if any.
    pub fn pending(&self, id: &str) -> Option<i64> {
        self.lock().get(id).copied()
    }

    fn take(&self) -> HashMap<String, i64> {
        std::mem::take(&mut *self.lock())
    }

    fn put_back(&self, entries: HashMap<String, i64>) {
        for (id, t) in entries {
            self.record(&id, t);
        }
    }
}

impl Store {
    /// Writes the gathered last-seen times in one transaction; on failure they are kept for
    /// the next try.
    pub async fn flush_seen(&self) -> StoreResult<()> {
        let entries = self.seen.take();
        if entries.is_empty() {
            return Ok(());
        }
        let result = async {
            let mut tx = self.pool.begin().await?;
            for (id, t) in &entries {
                sqlx::query(
                    "UPDATE devices SET last_seen_ms = $1
                     WHERE controller_id = $2 AND (last_seen_ms IS NULL OR last_seen_ms < $1)",
                )
                .bind(*t)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            self.seen.put_back(entries);
            return Err(e.into());
        }
        Ok(())
    }
}
