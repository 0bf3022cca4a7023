//! airlock-server: the fleet server for Airlock devices.
//!
//! One module per job:
//! - [`store`]: the storage layer (SQLite or PostgreSQL through one sqlx `AnyPool`)
//! - [`ddi`]: the device API (hawkBit DDI v1 paths and messages)
//! - [`api`]: the management REST API under `/api/v1` (described by `openapi.json`)
//! - [`campaign`]: phased rollouts: the phase decision as pure functions, plus the store calls
//! - [`verify`]: bundle verification on upload
//! - [`dashboard`]: server-rendered HTML pages
//! - [`cli`]: the `airlock-server` command line (serve + a REST client)
//! - [`error`]: typed errors and their JSON answers
//!
//! Several server processes may share one PostgreSQL database (and one artifacts directory):
//! every state change that could race is a transaction or a conditional UPDATE.

pub mod api;
pub mod auth;
pub mod campaign;
pub mod cli;
pub mod dashboard;
pub mod ddi;
pub mod error;
pub mod filter;
mod linger;
pub mod server;
pub mod store;
pub mod verify;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
