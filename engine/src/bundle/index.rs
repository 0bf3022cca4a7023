//! `payloads/<name>.idx`: the chunk index of one payload. Little-endian, byte for byte:
//!
//! | offset   | size | field                                                      |
//! |----------|------|------------------------------------------------------------|
//! | 0        | 8    | magic `AIRLKIDX`                                           |
//! | 8        | 4    | index version, 1                                           |
//! | 12       | 4    | entry size, 48                                             |
//! | 16       | 8    | chunk count N                                              |
//! | 24 + 48i | 4    | chunk i: uncompressed length (1..=256 KiB)                 |
//! |          | 4    | chunk i: stored length (1..=uncompressed length)           |
//! |          | 4    | chunk i: flags; bit 0 = zstd frame, other bits must be 0   |
//! |          | 4    | reserved, 0                                                |
//! |          | 32   | chunk i: sha256 of the uncompressed bytes                  |
//!
//! The manifest carries the sha256 of the whole index, its chunk count, the payload size and the
//! stored size; a reader checks the index against all four before it uses any entry.

use super::BundleError;
use super::chunk::CHUNK_MAX;
use super::manifest::{PayloadInfo, Sha256Hex};

const MAGIC: &[u8; 8] = b"AIRLKIDX";
const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: u64 = 24;
pub(crate) const ENTRY_LEN: u64 = 48;
const FLAG_ZSTD: u32 = 1;

/// One chunk as the index describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    pub length: u32,
    pub stored_length: u32,
    pub zstd: bool,
    pub sha256: Sha256Hex,
}

/// The verified chunk index of one payload, with each chunk's offsets precomputed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    pub entries: Vec<ChunkEntry>,
}

impl ChunkIndex {
    /// The size of the encoded index for `chunks` chunks.
    pub fn encoded_len(chunks: u64) -> u64 {
        HEADER_LEN.saturating_add(chunks.saturating_mul(ENTRY_LEN))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(self.entries.len() as u64) as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(ENTRY_LEN as u32).to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.length.to_le_bytes());
            out.extend_from_slice(&e.stored_length.to_le_bytes());
            out.extend_from_slice(&(if e.zstd { FLAG_ZSTD } else { 0 }).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&e.sha256.0);
        }
        out
    }

    /// Decodes an index whose bytes already matched the manifest's `index_sha256`, and checks
    /// it against the manifest's counts and sizes.
    pub fn decode(bytes: &[u8], payload: &PayloadInfo) -> Result<Self, BundleError> {
        let bad = |reason: String| BundleError::InvalidIndex {
            payload: payload.name.clone(),
            reason,
        };
        if bytes.len() as u64 != Self::encoded_len(payload.chunks) {
            return Err(bad(format!(
                "{} bytes, but {} chunks need {}",
                bytes.len(),
                payload.chunks,
                Self::encoded_len(payload.chunks)
            )));
        }
        let (index, total, stored_total) = Self::decode_entries(bytes, &payload.name)?;
        if index.entries.len() as u64 != payload.chunks {
            return Err(bad(format!(
                "{} chunks, the manifest says {}",
                index.entries.len(),
                payload.chunks
            )));
        }
        if total != payload.size || stored_total != payload.stored_size {
            return Err(bad(format!(
                "chunks add up to {total} bytes ({stored_total} stored), the manifest says {} ({} stored)",
                payload.size, payload.stored_size
            )));
        }
        Ok(index)
    }

    /// Decodes an index with nothing to check it against but itself: the device's own record
    /// of what it wrote into a slot. Whatever it names is checked against the slot's bytes
    /// before use, so a stale or damaged record costs bandwidth, never correctness.
    pub fn decode_record(bytes: &[u8], name: &str) -> Result<Self, BundleError> {
        Self::decode_entries(bytes, name).map(|(index, _, _)| index)
    }

    /// The entries, and their total and stored lengths.
    fn decode_entries(bytes: &[u8], name: &str) -> Result<(Self, u64, u64), BundleError> {
        let bad = |reason: String| BundleError::InvalidIndex {
            payload: name.to_string(),
            reason,
        };
        if (bytes.len() as u64) < HEADER_LEN {
            return Err(bad(format!(
                "{} bytes, shorter than the header",
                bytes.len()
            )));
        }
        let (header, body) = bytes.split_at(HEADER_LEN as usize);
        if &header[..8] != MAGIC {
            return Err(bad("missing AIRLKIDX magic".into()));
        }
        let version = le_u32(&header[8..12]);
        if version != VERSION {
            return Err(bad(format!(
                "index version {version} is not supported (only {VERSION})"
            )));
        }
        if u64::from(le_u32(&header[12..16])) != ENTRY_LEN {
            return Err(bad("entry size is not 48".into()));
        }
        let count = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
        if body.len() as u64 != count.saturating_mul(ENTRY_LEN) {
            return Err(bad(format!(
                "{} bytes of entries, but the header says {count} chunks",
                body.len()
            )));
        }
        let mut entries = Vec::with_capacity(body.len() / ENTRY_LEN as usize);
        let (mut total, mut stored_total) = (0u64, 0u64);
        for (i, raw) in body.chunks_exact(ENTRY_LEN as usize).enumerate() {
            let length = le_u32(&raw[0..4]);
            let stored_length = le_u32(&raw[4..8]);
            let flags = le_u32(&raw[8..12]);
            if length == 0 || length as usize > CHUNK_MAX {
                return Err(bad(format!(
                    "chunk {i} claims {length} bytes; chunks are 1..={CHUNK_MAX}"
                )));
            }
            if stored_length == 0 || stored_length > length {
                return Err(bad(format!(
                    "chunk {i} claims {stored_length} stored bytes for {length} bytes"
                )));
            }
            if flags & !FLAG_ZSTD != 0 || le_u32(&raw[12..16]) != 0 {
                return Err(bad(format!("chunk {i} has unknown flags {flags:#x}")));
            }
            let zstd = flags & FLAG_ZSTD != 0;
            if !zstd && stored_length != length {
                return Err(bad(format!(
                    "raw chunk {i} has stored length {stored_length} != {length}"
                )));
            }
            let mut sha = [0u8; 32];
            sha.copy_from_slice(&raw[16..48]);
            total += u64::from(length);
            stored_total += u64::from(stored_length);
            entries.push(ChunkEntry {
                length,
                stored_length,
                zstd,
                sha256: Sha256Hex(sha),
            });
        }
        Ok((ChunkIndex { entries }, total, stored_total))
    }

    /// Offset of chunk `i` in the uncompressed payload.
    pub fn offsets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.entries
            .iter()
            .scan((0u64, 0u64), |(plain, stored), e| {
                let here = (*plain, *stored);
                *plain += u64::from(e.length);
                *stored += u64::from(e.stored_length);
                Some(here)
            })
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap_or_default())
}
