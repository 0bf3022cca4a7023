//! Test helpers shared by Airlock's unit and end-to-end tests.
//!
//! - [`FaultServer`]: a loopback HTTP/1.1 server that serves bundles (in memory, from files or
//!   from a directory) and can misbehave on demand ([`Faults`]) — drop connections, stall, lie
//!   about lengths, corrupt bytes, answer errors, ignore `Range` — while recording every
//!   [`Request`] so tests can assert how a client resumed.
//! - [`image_bytes`] and [`random_bytes`]: deterministic images and payloads.
//! - [`BundleToml`] and [`tar_archive`]: bundle descriptions and directory payloads.
//! - [`ddi_table`]: docs/fleet.md's table of the DDI fields each side implements.

mod bundles;
mod ddi_table;
mod fault_server;
mod images;
mod wit;

pub use bundles::{BundleToml, tar_archive, toml_path};
pub use ddi_table::{DdiRow, ddi_table};
pub use fault_server::{FaultServer, Faults, Request};
pub use images::{image_bytes, random_bytes};
pub use wit::wit_stage_names;
