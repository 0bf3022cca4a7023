//! A payload written byte for byte into the inactive side of a raw slot (a partition or block
//! device) or a file slot (a file, such as a kernel on the ESP). The only target that resumes
//! where an interrupted attempt stopped and that reuses the active side's chunks in a delta
//! install; it takes effect with a reboot into the side written.

use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use super::PayloadTarget;
use crate::boot::Side;
use crate::bundle::{BundleError, ChunkIndex, PayloadInfo};
use crate::config::Config;
use crate::install::local_chunks::{self, LocalChunks};
use crate::install::stream::PayloadWrite;
use crate::install::{InstallError, faults};
use crate::slot::{RawSlot, RawWriter};

pub(crate) struct RawTarget {
    /// The side written.
    slot: RawSlot,
    /// The side running now, which a delta install copies chunks from; never written.
    active: RawSlot,
    /// The records of the chunks each side holds.
    record: std::path::PathBuf,
    active_record: std::path::PathBuf,
}

impl RawTarget {
    /// Payload `p` for slot class `class` on the `side` of `sides` (slot a, slot b); refuses a
    /// payload larger than that side.
    pub fn plan(
        config: &Config,
        p: &PayloadInfo,
        class: &str,
        side: Side,
        sides: [RawSlot; 2],
    ) -> Result<Self, InstallError> {
        let [a, b] = sides;
        let (slot, active) = match side {
            Side::A => (a, b),
            Side::B => (b, a),
        };
        let capacity = slot.max_payload()?;
        if p.size > capacity {
            return Err(InstallError::PayloadTooLarge {
                payload: p.name.clone(),
                size: p.size,
                class: class.to_string(),
                target: side,
                path: slot.path().to_path_buf(),
                capacity,
            });
        }
        let data_dir = &config.device.data_dir;
        Ok(Self {
            slot,
            active,
            record: local_chunks::record_path(data_dir, class, side),
            active_record: local_chunks::record_path(data_dir, class, side.other()),
        })
    }
}

impl PayloadTarget for RawTarget {
    fn needs_reboot(&self) -> bool {
        true
    }

    /// The side is about to be overwritten: its record no longer holds.
    fn prepare(&self) -> Result<(), InstallError> {
        local_chunks::forget_record(&self.record).map_err(|source| InstallError::DataDir {
            action: "remove",
            path: self.record.clone(),
            source,
        })
    }

    fn intact(&self, index: &ChunkIndex) -> Result<(u64, u64), InstallError> {
        let mut buf = Vec::new();
        let mut offset = 0u64;
        for (i, entry) in index.entries.iter().enumerate() {
            buf.resize(entry.length as usize, 0);
            if self.slot.read_at(offset, &mut buf).is_err()
                || Sha256::digest(&buf).as_slice() != entry.sha256.0
            {
                return Ok((i as u64, offset));
            }
            offset += u64::from(entry.length);
        }
        Ok((index.entries.len() as u64, offset))
    }

    fn local_chunks(&self) -> Option<LocalChunks> {
        let local = LocalChunks::open(&self.active, &self.active_record)?;
        info!(slot = %self.active.path().display(), chunks = local.len(), from = local.found.describe(), "chunks the active slot holds");
        Some(local)
    }

    fn write(&self, payload: &mut PayloadWrite<'_, '_>) -> Result<(), InstallError> {
        let info = payload.info().clone();
        let index = payload.index();
        let (skip_chunks, start) = payload.intact();
        if skip_chunks > 0 {
            info!(payload = %info.name, chunks = skip_chunks, bytes = start, "resuming after the chunks already in the slot");
            payload.skip_intact(skip_chunks, start)?;
        }
        let mut writer = self.slot.open_writer(info.size, start)?;
        let count = index.entries.len() as u64;
        let half = count / 2;
        let mut local_buf = Vec::new();
        let mut number = skip_chunks;
        while number < count {
            // A chunk the active slot holds is copied from there once its bytes verify; one
            // that no longer does is downloaded like any other.
            let entry = &index.entries[number as usize];
            let len = u64::from(entry.length);
            if payload.read_local(number, entry, &mut local_buf) {
                payload
                    .skip_reused(len)
                    .map_err(|e| keep_written(&mut writer, e))?;
                writer.write(&local_buf)?;
            } else {
                match payload.next_chunk() {
                    Ok(Some(data)) => writer.write(data)?,
                    Ok(None) => break,
                    Err(e) => return Err(keep_written(&mut writer, e)),
                }
            }
            if number == half {
                // A checkpoint: make the first half durable. The writer gathers up to 1 MiB
                // before it writes anything out, so without this an install cut short here
                // (power cut, kill) had written nothing of a small payload and the next attempt
                // started from zero.
                writer.sync()?;
                faults::point("payload-half-written");
            }
            payload.advance(len);
            number += 1;
        }
        // Durable before anything (journal, bootloader) may point at it.
        writer.sync()?;
        debug!(payload = %info.name, slot = %self.slot.path().display(), "payload written and synced");
        faults::point("payload-synced");
        // What the slot now holds, for the next delta install from it. Without the record that
        // install scans the slot instead, so failing to write it is no reason to fail this one.
        if let Err(e) = local_chunks::save_record(&self.record, &index) {
            warn!(
                "cannot save {}: {e}; the next delta install will scan the slot instead",
                self.record.display()
            );
        }
        Ok(())
    }
}

/// If the download breaks off (retries used up, a file cut short), the same install will be run
/// again: keep the verified chunks still in the writer's buffer (up to 1 MiB), which dropping it
/// would discard, so that the next attempt continues after them. Best effort: that attempt
/// re-checks the slot anyway.
fn keep_written(writer: &mut RawWriter, e: BundleError) -> InstallError {
    let e = InstallError::from(e);
    if e.is_transport() {
        let _ = writer.sync();
    }
    e
}
