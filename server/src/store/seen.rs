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

    /// What is gathered now, left in place: reads keep seeing it until it is written.
    fn snapshot(&self) -> HashMap<String, i64> {
        self.lock().clone()
    }

    /// Drops the entries `written` holds, unless a newer poll has replaced them since.
    fn forget_written(&self, written: &HashMap<String, i64>) {
        let mut map = self.lock();
        for (id, t) in written {
            if map.get(id) == Some(t) {
                map.remove(id);
            }
        }
    }
}

impl Store {
    /// Writes the gathered last-seen times in one transaction; on failure they are kept for
    /// the next try. They stay in memory until the transaction commits, so a read meanwhile
    /// never sees a device as less recently seen than it was.
    pub async fn flush_seen(&self) -> StoreResult<()> {
        let entries = self.seen.snapshot();
        if entries.is_empty() {
            return Ok(());
        }
        // An error drops the transaction (rolled back) and leaves the entries for the next try.
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
        tx.commit().await?;
        self.seen.forget_written(&entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SeenBuffer;

    #[test]
    fn a_poll_during_a_flush_is_kept_for_the_next_one() {
        let seen = SeenBuffer::default();
        seen.record("a", 10);
        seen.record("b", 10);
        let written = seen.snapshot();
        // Visible while it is being written.
        assert_eq!(seen.pending("a"), Some(10));
        seen.record("b", 20);
        seen.record("c", 5);
        seen.forget_written(&written);
        assert_eq!(seen.pending("a"), None);
        assert_eq!(seen.pending("b"), Some(20));
        assert_eq!(seen.pending("c"), Some(5));
    }

    #[test]
    fn an_older_time_does_not_replace_a_newer_one() {
        let seen = SeenBuffer::default();
        seen.record("a", 20);
        seen.record("a", 10);
        assert_eq!(seen.pending("a"), Some(20));
    }
}
