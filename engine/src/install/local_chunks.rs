//! The chunks a device already holds, for delta installs: the content of the active slot, found
//! through the record of what was installed there or, without one, by cutting the slot into
//! chunks the way bundles are cut.
//!
//! Nothing here is trusted: a chunk is used only after its bytes, read from the slot, match the
//! signed index of the bundle being installed. A stale record or a slot changed behind the
//! engine's back costs a download, never a wrong byte.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::boot::Side;
use crate::bundle::{CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, ChunkEntry, ChunkIndex, Sha256Hex};
use crate::fsutil;
use crate::slot::RawSlot;

/// Where the record of the chunks installed into a raw slot lives.
pub(crate) fn record_path(data_dir: &Path, class: &str, slot: Side) -> PathBuf {
    data_dir
        .join("slot-chunks")
        .join(format!("{class}.{slot}.idx"))
}

/// Records the chunk index of the payload just written (and synced) into a slot.
pub(crate) fn save_record(path: &Path, index: &ChunkIndex) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    fsutil::atomic_write(path, &index.encode())
}

/// Forgets the record of a slot about to be overwritten.
pub(crate) fn forget_record(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Where the chunks came from, for the log and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// The record saved when the slot was installed.
    Record,
    /// Cutting the slot's bytes into chunks (no record: a factory image, or an older engine).
    Scan,
}

impl Found {
    pub fn describe(self) -> &'static str {
        match self {
            Found::Record => "its record",
            Found::Scan => "a scan of the slot",
        }
    }
}

/// The chunks of one active slot, by content.
pub(crate) struct LocalChunks {
    path: PathBuf,
    file: File,
    /// sha256 → (offset in the slot, length).
    chunks: HashMap<Sha256Hex, (u64, u32)>,
    pub found: Found,
}

impl LocalChunks {
    /// The chunks of `slot` (the active side), from `record` when it is there and readable,
    /// else by scanning the slot. `None` when the slot cannot be read at all: the install then
    /// downloads everything, which is slower but never wrong.
    pub fn open(slot: &RawSlot, record: &Path) -> Option<Self> {
        let path = slot.path().to_path_buf();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                warn!(slot = %path.display(), "cannot read the active slot ({e}); downloading every chunk");
                return None;
            }
        };
        if let Some(chunks) = from_record(record) {
            debug!(record = %record.display(), chunks = chunks.len(), "chunks of the active slot, from its record");
            return Some(Self {
                path,
                file,
                chunks,
                found: Found::Record,
            });
        }
        let capacity = match slot.capacity() {
            Ok(capacity) => capacity,
            Err(e) => {
                warn!("{e}; downloading every chunk");
                return None;
            }
        };
        info!(slot = %path.display(), "no record of the active slot's chunks: scanning it");
        match scan(&file, capacity) {
            Ok(chunks) => Some(Self {
                path,
                file,
                chunks,
                found: Found::Scan,
            }),
            Err(e) => {
                warn!(slot = %path.display(), "cannot scan the active slot ({e}); downloading every chunk");
                None
            }
        }
    }

    /// How many distinct chunks the slot holds.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether the slot is believed to hold this chunk (to be confirmed by [`Self::read`]).
    pub fn holds(&self, entry: &ChunkEntry) -> bool {
        self.chunks
            .get(&entry.sha256)
            .is_some_and(|(_, len)| *len == entry.length)
    }

    /// Reads the chunk from the slot into `buf`; true only when its bytes match `entry`.
    pub fn read(&self, entry: &ChunkEntry, buf: &mut Vec<u8>) -> bool {
        let Some(&(offset, len)) = self.chunks.get(&entry.sha256) else {
            return false;
        };
        if len != entry.length {
            return false;
        }
        buf.resize(len as usize, 0);
        if let Err(e) = self.file.read_exact_at(buf, offset) {
            debug!(slot = %self.path.display(), offset, "cannot read a held chunk ({e}); downloading it");
            return false;
        }
        let matches = Sha256::digest(&buf[..]).as_slice() == entry.sha256.0;
        if !matches {
            debug!(slot = %self.path.display(), offset, "a held chunk changed; downloading it");
        }
        matches
    }
}

/// The chunks named by a record, at their offsets; `None` if there is no usable record.
fn from_record(record: &Path) -> Option<HashMap<Sha256Hex, (u64, u32)>> {
    let bytes = std::fs::read(record).ok()?;
    let index = match ChunkIndex::decode_record(&bytes, &record.display().to_string()) {
        Ok(index) => index,
        Err(e) => {
            warn!("ignoring the damaged record {}: {e}", record.display());
            return None;
        }
    };
    let mut chunks = HashMap::with_capacity(index.entries.len());
    for (entry, (offset, _)) in index.entries.iter().zip(index.offsets()) {
        chunks.entry(entry.sha256).or_insert((offset, entry.length));
    }
    Some(chunks)
}

/// Cuts the first `len` bytes of a slot into chunks as a bundle writer would, and hashes them.
fn scan(file: &File, len: u64) -> io::Result<HashMap<Sha256Hex, (u64, u32)>> {
    let reader = BufReader::with_capacity(1 << 20, io::Read::take(file, len));
    let chunker = fastcdc::v2020::StreamCDC::new(
        reader,
        CHUNK_MIN as u32,
        CHUNK_AVG as u32,
        CHUNK_MAX as u32,
    );
    let mut chunks = HashMap::new();
    for chunk in chunker {
        let chunk = chunk.map_err(|e| io::Error::other(e.to_string()))?;
        let sha = Sha256Hex(Sha256::digest(&chunk.data).into());
        chunks
            .entry(sha)
            .or_insert((chunk.offset, chunk.length as u32));
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(len: usize, seed: u32) -> Vec<u8> {
        airlock_testkit::random_bytes(len, seed.into())
    }

    fn entry_of(data: &[u8]) -> ChunkEntry {
        ChunkEntry {
            length: data.len() as u32,
            stored_length: data.len() as u32,
            zstd: false,
            sha256: Sha256Hex(Sha256::digest(data).into()),
        }
    }

    #[test]
    fn a_scan_finds_the_chunks_a_bundle_of_the_same_bytes_has() {
        let dir = tempfile::tempdir().unwrap();
        let data = content(2_000_000, 1);
        let path = dir.path().join("slot");
        std::fs::write(&path, &data).unwrap();
        let slot = RawSlot::new(&path);
        let local = LocalChunks::open(&slot, &dir.path().join("no-record")).unwrap();
        assert_eq!(local.found, Found::Scan);

        // Cut the same bytes as the writer does: every chunk is held and reads back verified.
        let cuts = fastcdc::v2020::FastCDC::new(
            &data,
            CHUNK_MIN as u32,
            CHUNK_AVG as u32,
            CHUNK_MAX as u32,
        );
        let mut buf = Vec::new();
        let mut count = 0;
        for c in cuts {
            let entry = entry_of(&data[c.offset..c.offset + c.length]);
            assert!(local.holds(&entry));
            assert!(local.read(&entry, &mut buf));
            assert_eq!(buf, data[c.offset..c.offset + c.length]);
            count += 1;
        }
        assert!(count > 10);
        assert!(!local.holds(&entry_of(b"something else")));
    }

    #[test]
    fn a_record_is_used_but_never_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let data = content(300_000, 2);
        let path = dir.path().join("slot");
        std::fs::write(&path, &data).unwrap();
        let first = entry_of(&data[..100_000]);
        let second = entry_of(&data[100_000..]);
        let record = record_path(dir.path(), "rootfs", Side::A);
        save_record(
            &record,
            &ChunkIndex {
                entries: vec![first, second],
            },
        )
        .unwrap();
        let local = LocalChunks::open(&RawSlot::new(&path), &record).unwrap();
        assert_eq!(local.found, Found::Record);
        let mut buf = Vec::new();
        assert!(local.read(&second, &mut buf));
        assert_eq!(buf, data[100_000..]);

        // The slot changed after the record was written: the chunk no longer verifies.
        let mut changed = data.clone();
        changed[150_000] ^= 1;
        std::fs::write(&path, &changed).unwrap();
        assert!(local.holds(&second));
        assert!(!local.read(&second, &mut buf));
        assert!(local.read(&first, &mut buf));

        // A damaged record falls back to scanning.
        std::fs::write(&record, b"AIRLKIDX garbage").unwrap();
        let local = LocalChunks::open(&RawSlot::new(&path), &record).unwrap();
        assert_eq!(local.found, Found::Scan);
        forget_record(&record).unwrap();
        forget_record(&record).unwrap();
        assert!(!record.exists());
    }

    #[test]
    fn an_unreadable_slot_means_no_local_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let slot = RawSlot::new(dir.path().join("missing"));
        assert!(LocalChunks::open(&slot, &dir.path().join("r")).is_none());
    }
}
