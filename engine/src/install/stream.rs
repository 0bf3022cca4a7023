//! Streaming a bundle's verified payload chunks to their targets, one payload after the other.
//! Only chunks that matched the signed index (or, in a delta install, chunks of the active slot
//! whose bytes match it) reach a target; the active slot is never opened for writing.

use std::io::{self, Read};

use super::delta::Delta;
use super::local_chunks::LocalChunks;
use super::target::PayloadTarget;
use super::{InstallError, Progress};
use crate::bundle::{BundleError, BundleInput, BundleReader, ChunkEntry, ChunkIndex, PayloadInfo};
use crate::plugin;
use crate::source::ByteSource;

/// The bundle being installed, as the install reads it.
pub(crate) type Reader = BundleReader<Box<dyn ByteSource>>;

/// Hands one payload to an installer plugin: (plugin name, payload, verified bytes).
pub(crate) type PluginInstall<'a> =
    dyn FnMut(&str, plugin::PayloadInfo, &mut (dyn Read + Send)) -> Result<(), InstallError> + 'a;

/// What the writing of all payloads shares: progress and its counters, and the installer plugins.
pub(crate) struct Context<'a> {
    pub progress: &'a mut dyn FnMut(Progress),
    pub done: u64,
    pub total: u64,
    /// Per payload: chunks at the start of its target that an interrupted attempt already wrote
    /// (and their length), to continue after.
    pub intact: Vec<(u64, u64)>,
    /// Bytes found intact in targets when resuming.
    pub resumed: u64,
    /// Bytes copied from the active slots instead of downloaded (delta).
    pub reused: u64,
    pub installers: &'a mut PluginInstall<'a>,
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

/// Writes every payload of the bundle to its target (`targets[n]` for payload `n`), then checks
/// that nothing follows in the bundle.
pub(crate) fn write_payloads(
    reader: &mut Reader,
    targets: &[Box<dyn PayloadTarget>],
    ctx: &mut Context<'_>,
    delta: Option<&Delta>,
) -> Result<(), InstallError> {
    while let Some(n) = reader.next_payload()? {
        let held = delta.and_then(|d| {
            let local = d.local.get(n)?.as_ref()?;
            Some((local, d.plan.fetch.get(n)?.as_slice()))
        });
        let mut payload = PayloadWrite {
            reader: &mut *reader,
            n,
            ctx: &mut *ctx,
            held,
        };
        targets[n].write(&mut payload)?;
    }
    reader.finish()?;
    Ok(())
}

/// One payload being written: what a [`PayloadTarget`] reads its verified chunks from.
pub(crate) struct PayloadWrite<'a, 'c> {
    reader: &'a mut Reader,
    n: usize,
    ctx: &'a mut Context<'c>,
    /// Delta installs: the chunks the active slot holds, and per chunk whether it is fetched.
    held: Option<(&'a LocalChunks, &'a [bool])>,
}

impl PayloadWrite<'_, '_> {
    pub fn info(&self) -> &PayloadInfo {
        &self.reader.manifest().payloads[self.n]
    }

    /// The payload's signed chunk index.
    pub fn index(&self) -> ChunkIndex {
        self.reader.index(self.n).cloned().unwrap_or(ChunkIndex {
            entries: Vec::new(),
        })
    }

    /// The chunks an interrupted attempt already wrote: count and length.
    pub fn intact(&self) -> (u64, u64) {
        self.ctx.intact.get(self.n).copied().unwrap_or((0, 0))
    }

    /// Passes over the first `chunks` chunks (`bytes` long), found intact in the target.
    pub fn skip_intact(&mut self, chunks: u64, bytes: u64) -> Result<(), InstallError> {
        self.reader.skip_chunks(chunks)?;
        self.ctx.resumed += bytes;
        self.ctx.advance(bytes);
        Ok(())
    }

    /// Reads chunk `number` from the active slot into `buf` when the delta plan copies it from
    /// there and its bytes still match `entry`; false: fetch it.
    pub fn read_local(&self, number: u64, entry: &ChunkEntry, buf: &mut Vec<u8>) -> bool {
        self.held.is_some_and(|(local, fetch)| {
            !fetch.get(number as usize).copied().unwrap_or(true) && local.read(entry, buf)
        })
    }

    /// Passes over the next chunk in the bundle, `len` bytes copied from the active slot.
    pub fn skip_reused(&mut self, len: u64) -> Result<(), BundleError> {
        self.reader.skip_chunks(1)?;
        self.ctx.reused += len;
        Ok(())
    }

    /// The next verified chunk of the payload, or `None` after the last.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, BundleError> {
        Ok(self.reader.next_chunk()?.map(|c| c.data))
    }

    /// `n` more payload bytes are in place.
    pub fn advance(&mut self, n: u64) {
        self.ctx.advance(n);
    }

    /// Gives the payload's verified bytes to `consume` as one stream.
    pub fn stream(
        &mut self,
        consume: impl FnOnce(&mut (dyn Read + Send)) -> Result<(), InstallError>,
    ) -> Result<(), InstallError> {
        stream_chunks(self.reader, consume)
    }

    /// Streams the payload to installer plugin `plugin`.
    pub fn stream_to_installer(
        &mut self,
        plugin: &str,
        info: plugin::PayloadInfo,
    ) -> Result<(), InstallError> {
        let installers = &mut self.ctx.installers;
        stream_chunks(self.reader, |data| installers(plugin, info, data))
    }
}

/// Gives the current payload's verified bytes to `consume` as one stream. A bundle error behind
/// a failed read is reported as itself, not as what the consumer made of it.
fn stream_chunks(
    reader: &mut Reader,
    consume: impl FnOnce(&mut (dyn Read + Send)) -> Result<(), InstallError>,
) -> Result<(), InstallError> {
    let mut chunks = ChunkRead {
        reader,
        buf: Vec::new(),
        pos: 0,
        error: None,
    };
    let result = consume(&mut chunks);
    if let Some(e) = chunks.error.take() {
        return Err(e.into());
    }
    result
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
