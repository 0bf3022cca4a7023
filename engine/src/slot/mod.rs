//! Slot backends: where a verified payload is written.
//!
//! A device has slot classes (`rootfs`, `app`, …), each a pair of sides `a` and `b`
//! ([`crate::boot::Side`]). The engine only ever writes the inactive side, makes it durable,
//! then switches.
//!
//! | backend           | a side is                                        | switched by         |
//! |-------------------|--------------------------------------------------|---------------------|
//! | [`RawSlot`]       | a regular file (pre-allocated) or a block device | the bootloader      |
//! | [`RawSlot::file`] | a regular file holding exactly one payload       | the bootloader      |
//! | [`DirectorySlot`] | the directory `<path>.a` or `<path>.b`           | flipping `<path>`   |
//!
//! A raw slot receives the payload bytes as they are ([`RawWriter`]: sequential, buffered,
//! resumable at any byte, durable after [`RawWriter::sync`]). A directory slot receives a tar
//! archive, which [`DirectorySlot::install`] checks entry by entry: only regular files,
//! directories and symlinks that stay inside the slot directory are unpacked.
//!
//! A raw slot is never created or truncated here (a file slot's side is: created if missing, sized
//! to its payload); the active side of a directory slot is never written.

mod directory;
mod raw;

use std::io;
use std::path::PathBuf;

pub use directory::DirectorySlot;
pub use raw::{RawReader, RawSlot, RawWriter};

/// Everything that can go wrong with a slot. Each message names the slot path (and the archive
/// entry or byte offset where it applies) and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("{what} {path} does not exist; {hint}")]
    Missing {
        what: &'static str,
        path: PathBuf,
        hint: String,
    },
    #[error("slot {path} is {kind}, not a regular file or a block device; {hint}")]
    NotRaw {
        path: PathBuf,
        kind: &'static str,
        hint: String,
    },
    #[error(
        "file slot {path} is {kind}, not a regular file; a `type = \"file\"` slot holds each \
         payload in a file of its own (use type = \"raw\" for a partition)"
    )]
    NotFile { path: PathBuf, kind: &'static str },
    #[error("cannot {action} {path}: {source}; {hint}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
        hint: String,
    },
    #[error(
        "payload of {payload_size} bytes does not fit in slot {path} of {capacity} bytes; \
         use a larger partition (or slot file) or a smaller image"
    )]
    TooSmall {
        path: PathBuf,
        payload_size: u64,
        capacity: u64,
    },
    #[error(
        "cannot resume writing {path} at byte {start}: the payload has only {payload_size} \
         bytes; start the install over"
    )]
    BadStart {
        path: PathBuf,
        start: u64,
        payload_size: u64,
    },
    #[error(
        "refusing to write past byte {payload_size} of {path}: the payload is longer than its \
         declared size; the bundle is inconsistent, rebuild it"
    )]
    Overrun { path: PathBuf, payload_size: u64 },
    #[error(
        "no space left writing {path} at byte {offset}; free space on its filesystem, or \
         pre-allocate a slot file at its full size (fallocate -l SIZE FILE)"
    )]
    NoSpace { path: PathBuf, offset: u64 },
    #[error("cannot write {path} at byte {offset}: {source}; check the storage (dmesg) and retry")]
    Write {
        path: PathBuf,
        offset: u64,
        source: io::Error,
    },
    #[error(
        "cannot sync {path}: {source}; what was written is not known to be durable, so do not \
         switch to this slot: retry the install"
    )]
    Sync { path: PathBuf, source: io::Error },
    #[error("cannot read {path} at byte {offset}: {source}; check the storage (dmesg)")]
    Read {
        path: PathBuf,
        offset: u64,
        source: io::Error,
    },
    #[error(
        "slot {path} ends before byte {end} (it holds {capacity} bytes); the slot is smaller \
         than the content expected in it: check the slot paths in airlock.toml"
    )]
    ShortRead {
        path: PathBuf,
        end: u64,
        capacity: u64,
    },
    #[error("directory slot {path} {problem}; {hint}")]
    Layout {
        path: PathBuf,
        problem: String,
        hint: String,
    },
    #[error(
        "refusing to install into {dir}: it is the active side of {path}; install into \
         {other} instead"
    )]
    ActiveSide {
        path: PathBuf,
        dir: PathBuf,
        other: PathBuf,
    },
    #[error(
        "archive entry {entry:?} refused for {dir}: {reason}; rebuild the payload archive \
         without it"
    )]
    UnsafeEntry {
        dir: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("cannot unpack archive entry {entry:?} into {dir}: {source}")]
    Unpack {
        dir: PathBuf,
        entry: String,
        source: io::Error,
    },
    #[error(
        "cannot read the payload archive for {dir}{}: {source}; the archive is truncated or \
         corrupt, rebuild it",
        at_entry(.entry)
    )]
    Archive {
        dir: PathBuf,
        entry: Option<String>,
        source: io::Error,
    },
}

fn at_entry(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" at entry {e:?}"),
        None => String::new(),
    }
}

/// What to tell the operator when a configured slot path is wrong: the airlock.toml key it came
/// from when the caller said so, the `[slots]` section otherwise.
fn config_hint(key: Option<&str>) -> String {
    match key {
        Some(key) => format!("check {key} in airlock.toml"),
        None => "check the slot paths under [slots] in airlock.toml".to_string(),
    }
}

/// ENOSPC and its relatives: the storage is full, not broken.
fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}
