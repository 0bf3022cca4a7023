//! Streaming verified payload chunks into slots. Only chunks that matched the signed index are
//! written; the active slot is never opened for writing.

use std::io::{self, Read};

use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use super::delta::Delta;
use super::local_chunks::{self, LocalChunks};
use super::{InstallError, PayloadPlan, Progress, RawPlan, faults};
use crate::bundle::{BundleError, BundleInput, BundleReader, ChunkIndex};
use crate::plugin::PayloadInfo;
use crate::slot::RawSlot;

pub(crate) struct Context<'a> {
    pub progress: &'a mut dyn FnMut(Progress),
    pub done: u64,
    pub total: u64,
    /// Per payload: chunks at the start of its slot that an interrupted attempt already wrote
    /// (and their length), to continue after.
    pub intact: Vec<(u64, u64)>,
    /// Bytes found intact in slots when resuming.
    pub resumed: u64,
    /// Bytes copied from the active slots instead of downloaded (delta).
    pub reused: u64,
}

impl Context<'_> {
    fn advance(&mut self, n: u64) {
        self.done += n;
        (self.progress)(Progress {
            done: self.done,
            total: self.total,
        });
    }
}

/// Hands one payload to an installer plugin: (plugin name, payload, verified bytes).
pub(crate) type PluginInstall<'a> =
    dyn FnMut(&str, PayloadInfo, &mut (dyn Read + Send)) -> Result<(), InstallError> + 'a;

pub(crate) fn write_payloads<R: BundleInput + Send>(
    reader: &mut BundleReader<R>,
    plan: &[PayloadPlan],
    ctx: &mut Context<'_>,
    delta: Option<&Delta>,
    plugin_install: &mut PluginInstall<'_>,
) -> Result<(), InstallError> {
    while let Some(n) = reader.next_payload()? {
        let name = reader.manifest().payloads[n].name.clone();
        match &plan[n] {
            PayloadPlan::Raw(raw) => {
                let held = delta.and_then(|d| {
                    let local = d.local.get(n)?.as_ref()?;
                    Some((local, d.plan.fetch.get(n)?.as_slice()))
                });
                write_raw(reader, n, raw, ctx, held)?;
            }
            PayloadPlan::Plugin { name: plugin } => {
                let p = &reader.manifest().payloads[n];
                let info = PayloadInfo {
                    name: p.name.clone(),
                    size: p.size,
                    sha256: p.sha256.to_string(),
                };
                let size = p.size;
                info!(payload = %name, plugin = %plugin, "handing the payload to its installer plugin");
                let mut chunks = ChunkRead {
                    reader,
                    buf: Vec::new(),
                    pos: 0,
                    error: None,
                };
                let result = plugin_install(plugin, info, &mut chunks);
                if let Some(e) = chunks.error.take() {
                    return Err(e.into());
                }
                result?;
                ctx.advance(size);
                faults::point("installer-plugin-done");
            }
            PayloadPlan::Directory { slot, class } => {
                let to = slot.active()?.other();
                info!(payload = %name, class = %class, dir = %slot.dir(to).display(), "unpacking");
                let size = reader.manifest().payloads[n].size;
                let mut chunks = ChunkRead {
                    reader,
                    buf: Vec::new(),
                    pos: 0,
                    error: None,
                };
                let result = slot.install(to, &mut chunks);
                if let Some(e) = chunks.error.take() {
                    return Err(e.into());
                }
                result?;
                ctx.advance(size);
                faults::point("directory-unpacked");
            }
        }
    }
    reader.finish()?;
    Ok(())
}

fn write_raw<R: BundleInput>(
    reader: &mut BundleReader<R>,
    n: usize,
    raw: &RawPlan,
    ctx: &mut Context<'_>,
    held: Option<(&LocalChunks, &[bool])>,
) -> Result<(), InstallError> {
    let info = reader.manifest().payloads[n].clone();
    let index = reader.index(n).cloned().unwrap_or(ChunkIndex {
        entries: Vec::new(),
    });
    let (skip_chunks, start) = ctx.intact.get(n).copied().unwrap_or((0, 0));
    if skip_chunks > 0 {
        info!(payload = %info.name, chunks = skip_chunks, bytes = start, "resuming after the chunks already in the slot");
        reader.skip_chunks(skip_chunks)?;
        ctx.resumed += start;
        ctx.advance(start);
    }
    let mut writer = raw.slot.open_writer(info.size, start)?;
    // If the download breaks off (retries used up, a file cut short), the same install will be
    // run again: keep the verified chunks still in the writer's buffer (up to 1 MiB), which
    // dropping it would discard, so the next attempt continues after them. Best effort: that
    // attempt re-checks the slot anyway.
    let keep_written = |writer: &mut crate::slot::RawWriter, e: BundleError| {
        let e = InstallError::from(e);
        if e.is_transport() {
            let _ = writer.sync();
        }
        e
    };
    let count = index.entries.len() as u64;
    let half = count / 2;
    let mut local_buf = Vec::new();
    let mut number = skip_chunks;
    while number < count {
        // A chunk the active slot holds is copied from there once its bytes verify; one that
        // no longer does is downloaded like any other.
        let entry = &index.entries[number as usize];
        let from_slot = held.is_some_and(|(local, fetch)| {
            !fetch.get(number as usize).copied().unwrap_or(true)
                && local.read(entry, &mut local_buf)
        });
        let len = u64::from(entry.length);
        if from_slot {
            reader
                .skip_chunks(1)
                .map_err(|e| keep_written(&mut writer, e))?;
            writer.write(&local_buf)?;
            ctx.reused += len;
        } else {
            match reader.next_chunk() {
                Ok(Some(chunk)) => writer.write(chunk.data)?,
                Ok(None) => break,
                Err(e) => return Err(keep_written(&mut writer, e)),
            }
        }
        if number == half {
            // A checkpoint: make the first half durable. The writer gathers up to 1 MiB before
            // it writes anything out, so without this an install cut short here (power cut,
            // kill) had written nothing of a small payload and the next attempt started from
            // zero.
            writer.sync()?;
            faults::point("payload-half-written");
        }
        ctx.advance(len);
        number += 1;
    }
    // Durable before anything (journal, bootloader) may point at it.
    writer.sync()?;
    debug!(payload = %info.name, slot = %raw.slot.path().display(), "payload written and synced");
    faults::point("payload-synced");
    // What the slot now holds, for the next delta install from it. Without the record that
    // install scans the slot instead, so failing to write it is no reason to fail this one.
    if let Err(e) = local_chunks::save_record(&raw.record, &index) {
        warn!(
            "cannot save {}: {e}; the next delta install will scan the slot instead",
            raw.record.display()
        );
    }
    Ok(())
}

/// The chunks at the start of the slot that already hold what the index says: an interrupted
/// attempt wrote them. Returns their count and total length.
pub(crate) fn intact_prefix(
    slot: &RawSlot,
    index: &ChunkIndex,
) -> Result<(u64, u64), InstallError> {
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for (i, entry) in index.entries.iter().enumerate() {
        buf.resize(entry.length as usize, 0);
        if slot.read_at(offset, &mut buf).is_err()
            || Sha256::digest(&buf).as_slice() != entry.sha256.0
        {
            return Ok((i as u64, offset));
        }
        offset += u64::from(entry.length);
    }
    Ok((index.entries.len() as u64, offset))
}

/// The verified chunks of the current payload as a byte stream (for archive payloads).
struct ChunkRead<'a, R> {
    reader: &'a mut BundleReader<R>,
    buf: Vec<u8>,
    pos: usize,
    /// The bundle error behind an io::Error handed to the consumer, to report it as such.
    error: Option<BundleError>,
}

impl<R: BundleInput> Read for ChunkRead<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            match self.reader.next_chunk() {
                Ok(Some(chunk)) => {
                    self.buf.clear();
                    self.buf.extend_from_slice(chunk.data);
                    self.pos = 0;
                }
                Ok(None) => return Ok(0),
                Err(e) => {
                    let msg = e.to_string();
                    self.error = Some(e);
                    return Err(io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
