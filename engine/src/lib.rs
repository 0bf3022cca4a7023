//! Airlock: an over-the-air update engine for embedded Linux.
//!
//! A small trusted core downloads, verifies and atomically installs signed bundles into A/B slots,
//! with commit and rollback. One module per responsibility:
//!
//! - `source`: where bundle bytes come from (file, HTTP(S) with Range resume)
//! - `bundle`: the bundle format: manifest, signatures, chunk index, reader and writer
//! - `trust`: keyring and signature threshold
//! - `boot`: bootloader backends (grub, uboot, sim, command)
//! - `state`: the persistent, redundant, checksummed state journal
//! - [`fsutil`]: durable file writes shared by everything that persists

pub mod boot;
pub mod bundle;
pub mod chain;
pub mod config;
pub mod fsutil;
pub mod install;
pub mod keys;
pub mod plugin;
pub mod slot;
pub mod source;
pub mod state;
pub mod trust;
