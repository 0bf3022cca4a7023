//! The storage layer: one sqlx `AnyPool` over SQLite (one process, the default) or PostgreSQL
//! (several stateless server processes). The SQL is portable: `$1` placeholders, BIGINT and TEXT
//! columns only, timestamps as Unix milliseconds. The backends differ only in the DDL of the id
//! column. State changes that several processes could race on are transactions or conditional
//! UPDATEs; "one open action per device" is a unique index.

mod actions;
mod bundles;
mod campaigns;
mod devices;
mod groups;
mod seen;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use actions::{Action, ActionStatus, FeedbackOutcome, Finished, LogLine, NewAction};
pub use bundles::{Bundle, NewBundle};
pub use campaigns::{Campaign, CampaignDevice, CampaignState, NewCampaign};
pub use devices::{Device, DeviceStatus};
pub use groups::Group;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub backend: Backend,
    seen: std::sync::Arc<seen::SeenBuffer>,
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and creates the schema if missing.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        // SQLite: one connection, so write transactions never meet SQLITE_BUSY; it is the
        // one-process setup. PostgreSQL: a pool per process.
        let max = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 8,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: one sync per commit instead of several, and readers never wait
                        // for the writer. It cannot be switched inside a transaction.
                        sqlx::query("PRAGMA journal_mode=WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout=5000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let store = Store {
            pool,
            backend,
            seen: Default::default(),
        };
        store.create_schema().await?;
        Ok(store)
    }

    async fn create_schema(&self) -> StoreResult<()> {
        let id = match self.backend {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // Several processes starting at once must not race on CREATE TABLE.
            sqlx::query("SELECT pg_advisory_xact_lock(7243901)")
                .execute(&mut *tx)
                .await?;
        }
        for ddl in SCHEMA {
            sqlx::query(&ddl.replace("{ID}", id))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS devices (
        controller_id TEXT PRIMARY KEY, name TEXT NOT NULL, token_hash TEXT,
        status TEXT NOT NULL, created_ms BIGINT NOT NULL, last_seen_ms BIGINT,
        attributes TEXT NOT NULL, attrs_requested BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS device_groups (
        id {ID}, name TEXT NOT NULL UNIQUE, filter TEXT, created_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS group_members (
        group_id BIGINT NOT NULL, controller_id TEXT NOT NULL,
        PRIMARY KEY (group_id, controller_id))",
    "CREATE TABLE IF NOT EXISTS bundles (
        id {ID}, name TEXT NOT NULL, version TEXT NOT NULL, compatible TEXT NOT NULL,
        filename TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL UNIQUE,
        signers TEXT NOT NULL, uploaded_ms BIGINT NOT NULL)",
    // Apart from bundles so that databases made before it need no migration: a bundle without
    // a row gets it the first time a device asks (see ddi::legacy_hashes).
    "CREATE TABLE IF NOT EXISTS artifact_hashes (
        sha256 TEXT PRIMARY KEY, sha1 TEXT NOT NULL, md5 TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS campaigns (
        id {ID}, name TEXT NOT NULL, bundle_id BIGINT NOT NULL, group_name TEXT NOT NULL,
        phases TEXT NOT NULL, success_threshold BIGINT NOT NULL, error_threshold BIGINT NOT NULL,
        download TEXT NOT NULL, update_handling TEXT NOT NULL,
        window_start BIGINT, window_duration BIGINT,
        state TEXT NOT NULL, reason TEXT, current_phase BIGINT NOT NULL,
        accepted_failures BIGINT NOT NULL, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS campaign_devices (
        campaign_id BIGINT NOT NULL, controller_id TEXT NOT NULL, phase BIGINT NOT NULL,
        position BIGINT NOT NULL, action_id BIGINT, PRIMARY KEY (campaign_id, controller_id))",
    // `open` is 1 while the action is open and NULL after: NULLs are distinct in a unique
    // index on both backends, so this allows any number of closed actions but one open one.
    "CREATE TABLE IF NOT EXISTS actions (
        id {ID}, controller_id TEXT NOT NULL, bundle_id BIGINT NOT NULL, campaign_id BIGINT,
        status TEXT NOT NULL, open BIGINT, last_status TEXT,
        download TEXT NOT NULL, update_handling TEXT NOT NULL,
        window_start BIGINT, window_duration BIGINT,
        created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS actions_one_open ON actions (controller_id, open)",
    "CREATE TABLE IF NOT EXISTS action_log (
        id {ID}, action_id BIGINT NOT NULL, ts_ms BIGINT NOT NULL, message TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS action_log_by_action ON action_log (action_id)",
];

/// Reads a JSON text column.
fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

impl Store {
    /// Closes the pool (tests drop their database afterwards).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
