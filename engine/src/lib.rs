//! Airlock: an over-the-air update engine for embedded Linux.
//!
//! A small trusted core downloads, verifies and atomically installs signed bundles into A/B slots,
//! with commit and rollback. One module per responsibility:
//!
//! - `source`: where bundle bytes come from (file, HTTP(S) with Range resume)
//! - `bundle`: the bundle format: manifest, signatures, chunk index, reader and writer
//! - `trust`: keyring and signature threshold
//! - `boot`: bootloader backends (grub, uboot, systemd-boot, sim, command)
//! - `state`: the persistent, redundant, checksummed state journal
//! - `fleet`: `airlock daemon`, the device side of hawkBit's DDI protocol (`device` feature)
//! - [`fsutil`]: durable file writes shared by everything that persists
//!
//! The `device` feature (on by default) adds what runs an update: `source` (reqwest), `plugin`
//! (the wasmtime host) and `install`, and is what the `airlock` binary needs. Without it
//! (`default-features = false`) the crate is the formats and their parsers — bundle, manifest,
//! chunk index, configuration, boot environments, state journal, slots — which is what the fuzz
//! targets (`fuzz/`) build against without compiling wasmtime.
//!
//! The `compiler` feature (on by default, implies `device`) adds Cranelift, so that the engine
//! compiles plugins itself and `airlock plugin compile` precompiles them for devices. The device
//! build (`scripts/build-device`) is `device` without it: it runs precompiled plugins only
//! ([`plugin::precompiled`]).

pub mod boot;
pub mod bundle;
pub mod chain;
pub mod config;
#[cfg(feature = "device")]
pub mod fleet;
pub mod fsutil;
#[cfg(feature = "device")]
pub mod install;
pub mod keys;
#[cfg(feature = "device")]
pub mod plugin;
pub mod slot;
#[cfg(feature = "device")]
pub mod source;
pub mod state;
pub mod trust;
