//! Cutting payloads into content-defined chunks, and storing, decoding and verifying one chunk.

use sha2::{Digest, Sha256};

use super::index::ChunkEntry;
use super::manifest::Sha256Hex;

/// FastCDC bounds. Changing them changes where chunks are cut, so two bundles built with
/// different bounds share no chunks; readers only rely on `CHUNK_MIN` and `CHUNK_MAX`.
pub const CHUNK_MIN: usize = 16 * 1024;
pub const CHUNK_AVG: usize = 64 * 1024;
pub const CHUNK_MAX: usize = 256 * 1024;

/// Compresses chunks for a writer; one per thread, reused across chunks.
pub(crate) struct ChunkEncoder {
    compressor: Option<zstd::bulk::Compressor<'static>>,
}

impl ChunkEncoder {
    /// `level`: a zstd level, or `None` to store chunks raw.
    pub fn new(level: Option<i32>) -> std::io::Result<Self> {
        let compressor = level.map(zstd::bulk::Compressor::new).transpose()?;
        Ok(Self { compressor })
    }

    /// Returns the index entry and the stored bytes of `data`. A chunk is stored raw when a
    /// zstd frame would not be smaller, so stored length never exceeds the chunk length.
    pub fn encode(&mut self, data: &[u8]) -> std::io::Result<(ChunkEntry, Vec<u8>)> {
        let sha256 = Sha256Hex(Sha256::digest(data).into());
        let length = data.len() as u32;
        if let Some(c) = self.compressor.as_mut() {
            let frame = c.compress(data)?;
            if frame.len() < data.len() {
                let entry = ChunkEntry {
                    length,
                    stored_length: frame.len() as u32,
                    zstd: true,
                    sha256,
                };
                return Ok((entry, frame));
            }
        }
        Ok((
            ChunkEntry {
                length,
                stored_length: length,
                zstd: false,
                sha256,
            },
            data.to_vec(),
        ))
    }
}

/// Decodes and verifies chunks for a reader; reused across chunks.
pub(crate) struct ChunkDecoder {
    decompressor: zstd::bulk::Decompressor<'static>,
}

impl ChunkDecoder {
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            decompressor: zstd::bulk::Decompressor::new()?,
        })
    }

    /// Decodes `stored` into `out` and checks it against `entry`. Decompression is bounded by
    /// the (already verified) length in the index, so a hostile frame cannot inflate memory.
    /// On error `out` holds nothing anyone may use.
    pub fn decode(
        &mut self,
        entry: &ChunkEntry,
        stored: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        out.clear();
        if entry.zstd {
            out.reserve_exact(entry.length as usize);
            self.decompressor
                .decompress_to_buffer(stored, out)
                .map_err(|e| format!("zstd frame does not decode: {e}"))?;
            if out.len() != entry.length as usize {
                let got = out.len();
                out.clear();
                return Err(format!(
                    "decodes to {got} bytes, the index says {}",
                    entry.length
                ));
            }
        } else {
            out.extend_from_slice(stored);
        }
        if Sha256::digest(&out[..]).as_slice() != entry.sha256.0 {
            out.clear();
            return Err("sha256 does not match the signed index".into());
        }
        Ok(())
    }
}
