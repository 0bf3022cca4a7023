//! Planning a delta install: which byte ranges of a bundle a device reads, given the chunks it
//! already holds.
//!
//! A device that has some of a payload's chunks (in its active slot) reads the bundle's head,
//! the tar framing around each payload, and only the stored bytes of the chunks it lacks. The
//! plan is a list of absolute byte ranges, neighbours closer than [`COALESCE_GAP`] merged, so
//! that a run of scattered missing chunks costs a few requests rather than one each. The same
//! plan serves the install (which asks the source for exactly these ranges) and
//! `airlock bundle diff` (which adds them up), so the figure a vendor sees is the one a device
//! downloads.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use super::index::ChunkIndex;
use super::manifest::{Manifest, Sha256Hex, Target};
use super::reader::BundleReader;
use super::tarstream::BLOCK;
use super::{BundleError, ChunkEntry, check};

/// Held chunks between two missing runs, in stored bytes, up to which it is cheaper to download
/// them too than to make another request (a round trip costs about this much on a slow link).
pub const COALESCE_GAP: u64 = 64 * 1024;

/// What a delta install asks for before it knows the bundle's layout: the manifest and
/// signatures are almost always in it. Counted by [`DeltaPlan::fetched_bytes`].
pub const FIRST_REQUEST: u64 = 64 * 1024;

/// Where each part of a bundle lies, from its manifest (absolute offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleLayout {
    /// The first payload's tar header: everything before it is the head.
    pub head_end: u64,
    pub payloads: Vec<PayloadSpan>,
    /// Just past the end-of-archive marker.
    pub end: u64,
}

/// One payload entry in the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadSpan {
    /// Its tar header.
    pub header: u64,
    /// Its first stored chunk.
    pub data: u64,
    /// Just past its last stored chunk.
    pub data_end: u64,
    /// Just past its zero padding: the next entry's header.
    pub padded_end: u64,
}

impl BundleLayout {
    /// The layout of a bundle whose `manifest.sig` entry (padding included) ends at
    /// `after_signatures`. Plugins (each followed by its precompiled forms) and indexes follow in
    /// manifest order, then the payloads.
    pub fn new(manifest: &Manifest, after_signatures: u64) -> Self {
        // Saturating: an unsigned manifest (`bundle diff`) may claim any size; such a bundle
        // is refused when its entries are read, and the layout must not overflow before that.
        let entry = |size: u64| BLOCK.saturating_add(size.div_ceil(BLOCK).saturating_mul(BLOCK));
        let mut offset = after_signatures;
        for plugin in &manifest.plugins {
            offset = offset.saturating_add(entry(plugin.size));
            for form in &plugin.precompiled {
                offset = offset.saturating_add(entry(form.size));
            }
        }
        for payload in &manifest.payloads {
            offset = offset.saturating_add(entry(ChunkIndex::encoded_len(payload.chunks)));
        }
        let head_end = offset;
        let payloads = manifest
            .payloads
            .iter()
            .map(|p| {
                let data = offset.saturating_add(BLOCK);
                let span = PayloadSpan {
                    header: offset,
                    data,
                    data_end: data.saturating_add(p.stored_size),
                    padded_end: offset.saturating_add(entry(p.stored_size)),
                };
                offset = span.padded_end;
                span
            })
            .collect();
        Self {
            head_end,
            payloads,
            end: offset.saturating_add(2 * BLOCK),
        }
    }
}

/// The ranges a device reads, and which chunks of each payload come from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaPlan {
    /// Sorted, disjoint, absolute byte ranges: one request each.
    pub ranges: Vec<Range<u64>>,
    /// Per payload, per chunk: downloaded (`true`) or taken from the device (`false`).
    /// Chunks already in place (an interrupted install's prefix) count as not downloaded.
    pub fetch: Vec<Vec<bool>>,
}

impl DeltaPlan {
    /// Plans the reads for `layout` and `indexes`. `held(payload, chunk)` says whether the
    /// device has that chunk; `done[payload]` chunks at the start of each payload are already
    /// in place and are neither read nor downloaded.
    pub fn new(
        layout: &BundleLayout,
        indexes: &[ChunkIndex],
        done: &[u64],
        held: impl Fn(usize, &ChunkEntry) -> bool,
    ) -> Self {
        let mut ranges = vec![Range {
            start: 0,
            end: layout.head_end,
        }];
        let mut fetch = Vec::with_capacity(indexes.len());
        for (n, (span, index)) in layout.payloads.iter().zip(indexes).enumerate() {
            let done = done.get(n).copied().unwrap_or(0);
            ranges.push(span.header..span.data);
            let mut stored = span.data;
            let mut missing = Vec::with_capacity(index.entries.len());
            for (i, entry) in index.entries.iter().enumerate() {
                let end = stored + u64::from(entry.stored_length);
                let wanted = i as u64 >= done && !held(n, entry);
                if wanted {
                    ranges.push(stored..end);
                }
                missing.push(wanted);
                stored = end;
            }
            ranges.push(span.data_end..span.padded_end);
            fetch.push(missing);
        }
        ranges.push(layout.end - 2 * BLOCK..layout.end);
        let ranges = coalesce(ranges);
        // A held chunk that falls inside a merged range is downloaded with it: it costs nothing
        // more, and reading it from the device would only split the request.
        for (n, (span, index)) in layout.payloads.iter().zip(indexes).enumerate() {
            let done = done.get(n).copied().unwrap_or(0);
            let mut stored = span.data;
            let mut at = 0;
            for (i, entry) in index.entries.iter().enumerate() {
                let end = stored + u64::from(entry.stored_length);
                while at < ranges.len() && ranges[at].end <= stored {
                    at += 1;
                }
                let covered = ranges
                    .get(at)
                    .is_some_and(|r| r.start <= stored && end <= r.end);
                if covered && i as u64 >= done {
                    fetch[n][i] = true;
                }
                stored = end;
            }
        }
        Self { ranges, fetch }
    }

    /// Bytes a device downloads with this plan: the ranges, plus whatever of the first request
    /// (made before the layout is known) falls outside them.
    pub fn fetched_bytes(&self, bundle_len: u64) -> u64 {
        let mut with_first = self.ranges.clone();
        with_first.push(0..FIRST_REQUEST.min(bundle_len));
        coalesce_touching(with_first)
            .iter()
            .map(|r| r.end - r.start)
            .sum()
    }

    /// Payload bytes (uncompressed) the device takes from what it holds.
    pub fn reused_bytes(&self, indexes: &[ChunkIndex], done: &[u64]) -> u64 {
        self.fetch
            .iter()
            .zip(indexes)
            .enumerate()
            .map(|(n, (fetch, index))| {
                let done = done.get(n).copied().unwrap_or(0) as usize;
                fetch
                    .iter()
                    .zip(&index.entries)
                    .skip(done)
                    .filter(|(fetched, _)| !**fetched)
                    .map(|(_, e)| u64::from(e.length))
                    .sum::<u64>()
            })
            .sum()
    }
}

/// What a device that runs OLD downloads to install NEW (`airlock bundle diff`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiffReport {
    pub old: String,
    pub new: String,
    /// NEW's size: what a device with nothing to reuse downloads.
    pub bundle_size: u64,
    /// Bytes a device running OLD downloads.
    pub download: u64,
    /// HTTP requests it makes for them (after the first).
    pub requests: usize,
    pub payloads: Vec<PayloadDiff>,
}

/// One payload of NEW.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PayloadDiff {
    pub name: String,
    pub size: u64,
    pub chunks: u64,
    /// Chunks (and their payload bytes) taken from the device.
    pub reused_chunks: u64,
    pub reused_bytes: u64,
    /// Stored bytes downloaded for this payload's chunks.
    pub download: u64,
    /// Why nothing is reused, when that is so.
    pub note: Option<String>,
}

/// Plans the install of `new` on a device whose active slots hold `old`'s payloads. Payloads
/// for an installer plugin, and for the slot classes in `whole` (directory slots on the
/// device), are always downloaded whole. Signatures are not checked: this is a planning tool
/// for the vendor, who built both bundles.
pub fn diff(old: &Path, new: &Path, whole: &[String]) -> Result<DiffReport, BundleError> {
    let in_file = |path: &Path| {
        let path = path.display().to_string();
        move |e: BundleError| BundleError::InFile {
            path: path.clone(),
            source: Box::new(e),
        }
    };
    let head = |path: &Path| -> Result<_, BundleError> {
        let mut reader = BundleReader::open_unverified(check::open_file(path)?)?;
        let layout = reader.layout();
        let indexes = reader.read_indexes()?.to_vec();
        Ok((reader.manifest().clone(), layout, indexes))
    };
    let (old_manifest, _, old_indexes) = head(old).map_err(in_file(old))?;
    let (manifest, layout, indexes) = head(new).map_err(in_file(new))?;
    let mut held: HashMap<&str, HashSet<(Sha256Hex, u32)>> = HashMap::new();
    for (payload, index) in old_manifest.payloads.iter().zip(&old_indexes) {
        if let Target::Slot(class) = &payload.target {
            held.entry(class.as_str())
                .or_default()
                .extend(index.entries.iter().map(|e| (e.sha256, e.length)));
        }
    }

    let notes: Vec<Option<String>> = manifest
        .payloads
        .iter()
        .map(|p| match &p.target {
            Target::Installer(plugin) => Some(format!(
                "handed to installer plugin {plugin}: downloaded whole"
            )),
            Target::Slot(class) if whole.contains(class) => Some(format!(
                "slot {class} is a directory slot: downloaded whole"
            )),
            Target::Slot(class) if !held.contains_key(class.as_str()) => Some(format!(
                "{} has no payload for slot {class}: downloaded whole",
                old.display()
            )),
            Target::Slot(_) => None,
        })
        .collect();
    let plan = DeltaPlan::new(&layout, &indexes, &[], |n, entry| {
        notes[n].is_none()
            && match &manifest.payloads[n].target {
                Target::Slot(class) => held
                    .get(class.as_str())
                    .is_some_and(|set| set.contains(&(entry.sha256, entry.length))),
                Target::Installer(_) => false,
            }
    });
    let bundle_size = std::fs::metadata(new)
        .map(|m| m.len())
        .unwrap_or(layout.end);
    let payloads = manifest
        .payloads
        .iter()
        .zip(&indexes)
        .zip(plan.fetch.iter().zip(notes))
        .map(|((p, index), (fetch, note))| {
            let (mut reused_chunks, mut reused_bytes, mut download) = (0, 0, 0);
            for (entry, fetched) in index.entries.iter().zip(fetch) {
                if *fetched {
                    download += u64::from(entry.stored_length);
                } else {
                    reused_chunks += 1;
                    reused_bytes += u64::from(entry.length);
                }
            }
            PayloadDiff {
                name: p.name.clone(),
                size: p.size,
                chunks: p.chunks,
                reused_chunks,
                reused_bytes,
                download,
                note,
            }
        })
        .collect();
    Ok(DiffReport {
        old: old.display().to_string(),
        new: new.display().to_string(),
        bundle_size,
        download: plan.fetched_bytes(bundle_size),
        requests: plan.ranges.len(),
        payloads,
    })
}

/// Sorts and merges ranges that overlap or lie within [`COALESCE_GAP`] of each other.
fn coalesce(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    merge(&mut ranges, COALESCE_GAP)
}

/// Sorts and merges ranges that overlap or touch.
fn coalesce_touching(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    merge(&mut ranges, 0)
}

fn merge(ranges: &mut Vec<Range<u64>>, gap: u64) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(gap) => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Sha256Hex;

    fn entry(tag: u8, stored: u32) -> ChunkEntry {
        ChunkEntry {
            length: stored * 2,
            stored_length: stored,
            zstd: true,
            sha256: Sha256Hex([tag; 32]),
        }
    }

    /// One payload of `entries` right after a 1536-byte head.
    fn layout(entries: &[ChunkEntry]) -> (BundleLayout, Vec<ChunkIndex>) {
        let stored: u64 = entries.iter().map(|e| u64::from(e.stored_length)).sum();
        let header = 1536;
        let data = header + BLOCK;
        let padded_end = data + stored.div_ceil(BLOCK) * BLOCK;
        let layout = BundleLayout {
            head_end: header,
            payloads: vec![PayloadSpan {
                header,
                data,
                data_end: data + stored,
                padded_end,
            }],
            end: padded_end + 2 * BLOCK,
        };
        let index = ChunkIndex {
            entries: entries.to_vec(),
        };
        (layout, vec![index])
    }

    const K: u32 = 1024;

    #[test]
    fn holding_nothing_reads_everything_in_one_range() {
        let entries: Vec<_> = (0..10).map(|i| entry(i, 100 * K)).collect();
        let (layout, indexes) = layout(&entries);
        let plan = DeltaPlan::new(&layout, &indexes, &[], |_, _| false);
        assert_eq!(
            plan.ranges,
            vec![Range {
                start: 0,
                end: layout.end
            }]
        );
        assert!(plan.fetch[0].iter().all(|f| *f));
        assert_eq!(plan.fetched_bytes(layout.end), layout.end);
        assert_eq!(plan.reused_bytes(&indexes, &[]), 0);
    }

    #[test]
    fn holding_everything_reads_only_the_framing() {
        let entries: Vec<_> = (0..10).map(|i| entry(i, 100 * K)).collect();
        let (layout, indexes) = layout(&entries);
        let plan = DeltaPlan::new(&layout, &indexes, &[], |_, _| true);
        let span = layout.payloads[0];
        assert_eq!(plan.ranges, vec![0..span.data, span.data_end..layout.end]);
        assert!(plan.fetch[0].iter().all(|f| !*f));
        assert_eq!(plan.reused_bytes(&indexes, &[]), 10 * 200 * u64::from(K));
        // The first request (64 KiB) reaches into chunk 0.
        assert_eq!(
            plan.fetched_bytes(layout.end),
            FIRST_REQUEST + (layout.end - span.data_end)
        );
    }

    #[test]
    fn missing_chunks_far_apart_are_separate_ranges() {
        let entries: Vec<_> = (0..10).map(|i| entry(i, 100 * K)).collect();
        let (layout, indexes) = layout(&entries);
        let plan = DeltaPlan::new(&layout, &indexes, &[], |_, e| {
            e.sha256.0[0] != 3 && e.sha256.0[0] != 7
        });
        let data = layout.payloads[0].data;
        let chunk = |i: u64| data + i * 100 * u64::from(K)..data + (i + 1) * 100 * u64::from(K);
        assert_eq!(plan.ranges[1], chunk(3));
        assert_eq!(plan.ranges[2], chunk(7));
        assert_eq!(plan.ranges.len(), 4);
        let fetched: Vec<usize> = (0..10).filter(|i| plan.fetch[0][*i]).collect();
        assert_eq!(fetched, [3, 7]);
    }

    #[test]
    fn small_gaps_are_downloaded_rather_than_requested_around() {
        // Chunks 2 and 4 missing; chunk 3 between them is only 10 KiB: one request for 2..=4.
        let mut entries: Vec<_> = (0..8).map(|i| entry(i, 100 * K)).collect();
        entries[3] = entry(3, 10 * K);
        let (layout, indexes) = layout(&entries);
        let plan = DeltaPlan::new(&layout, &indexes, &[], |_, e| {
            ![2, 4].contains(&e.sha256.0[0])
        });
        assert_eq!(plan.ranges.len(), 3, "{:?}", plan.ranges);
        let fetched: Vec<usize> = (0..8).filter(|i| plan.fetch[0][*i]).collect();
        assert_eq!(fetched, [2, 3, 4]);
        assert_eq!(plan.reused_bytes(&indexes, &[]), 5 * 200 * u64::from(K));
    }

    #[test]
    fn chunks_already_in_place_are_neither_read_nor_reused() {
        let entries: Vec<_> = (0..6).map(|i| entry(i, 100 * K)).collect();
        let (layout, indexes) = layout(&entries);
        let plan = DeltaPlan::new(&layout, &indexes, &[4], |_, _| false);
        let fetched: Vec<usize> = (0..6).filter(|i| plan.fetch[0][*i]).collect();
        assert_eq!(fetched, [4, 5]);
        assert_eq!(plan.reused_bytes(&indexes, &[4]), 0);
        let data = layout.payloads[0].data;
        assert!(
            plan.ranges
                .iter()
                .all(|r| r.end <= data || r.start >= data + 400 * u64::from(K))
        );
    }

    #[test]
    fn coalesce_merges_overlaps_and_near_neighbours() {
        let merged = coalesce(vec![500..600, 0..100, 90..200, 200_000..200_001, 0..0]);
        assert_eq!(merged, vec![0..600, 200_000..200_001]);
        assert_eq!(coalesce_touching(vec![0..10, 11..20]), vec![0..10, 11..20]);
    }
}
