//! A chunk index and stored chunks, decoded without the sha256 checks that stand in front of them
//! in a bundle (the `bundle_reader` target cannot get a mutated index past the manifest's hash).
//! The input is an index followed by the stored bytes of its chunks; the payload the index is
//! checked against is derived from the index itself, so that the per-entry checks are reached.
#![no_main]

use airlock::bundle::{ChunkIndex, Compression, PayloadInfo, Sha256Hex, Target, decode_chunk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(count) = data.get(16..24) else {
        return;
    };
    let chunks = u64::from_le_bytes(count.try_into().unwrap());
    let Some(len) = ChunkIndex::encoded_len(chunks.min(1 << 20)).try_into().ok() else {
        return;
    };
    let Some((index, mut stored)) = data.split_at_checked(len) else {
        return;
    };
    // Sizes as the index claims them, so that only a lie in an entry is refused.
    let (mut size, mut stored_size) = (0u64, 0u64);
    for raw in index[24..].chunks_exact(48) {
        size += u64::from(u32::from_le_bytes(raw[0..4].try_into().unwrap()));
        stored_size += u64::from(u32::from_le_bytes(raw[4..8].try_into().unwrap()));
    }
    let payload = PayloadInfo {
        name: "fuzz".into(),
        target: Target::Slot("rootfs".into()),
        size,
        sha256: Sha256Hex([0; 32]),
        chunks,
        stored_size,
        index_sha256: Sha256Hex([0; 32]),
        compression: Compression::Zstd,
    };
    let Ok(index) = ChunkIndex::decode(index, &payload) else {
        return;
    };
    let mut out = Vec::new();
    for entry in &index.entries {
        let Some((bytes, rest)) = stored.split_at_checked(entry.stored_length as usize) else {
            return;
        };
        stored = rest;
        if decode_chunk(entry, bytes, &mut out).is_ok() {
            assert_eq!(out.len(), entry.length as usize);
        }
        assert!(out.capacity() <= airlock::bundle::CHUNK_MAX.max(entry.length as usize) * 2);
    }
});
