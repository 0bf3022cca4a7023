//! Planning a delta install on the device: which chunks the device holds for each payload,
//! and the byte ranges of the bundle to download for the rest; the source is told the ranges.

use std::ops::Range;

use tracing::{info, warn};

use super::local_chunks::LocalChunks;
use super::target::PayloadTarget;
use crate::bundle::{BundleReader, ChunkIndex, DeltaPlan};
use crate::source::ByteSource;

/// A delta install: the reads planned, and the chunks the device holds for each payload.
pub(crate) struct Delta {
    pub plan: DeltaPlan,
    pub local: Vec<Option<LocalChunks>>,
}

/// Plans a delta install: which chunks the device holds for each payload, and the byte
/// ranges to download for the rest; tells the source. `None` when a delta cannot help: the
/// server ignores Range requests (then the whole bundle streams, as the log says).
pub(crate) fn plan(
    reader: &mut BundleReader<Box<dyn ByteSource>>,
    targets: &[Box<dyn PayloadTarget>],
    intact: &[(u64, u64)],
) -> Option<Delta> {
    let layout = reader.layout();
    let input = reader.input_mut();
    if input.ignores_ranges() {
        warn!(
            "{} ignores Range requests: downloading the whole bundle instead of only the chunks this device lacks",
            input.describe()
        );
        input.plan_reads(vec![Range {
            start: 0,
            end: u64::MAX,
        }]);
        return None;
    }
    let local: Vec<_> = targets.iter().map(|t| t.local_chunks()).collect();
    let indexes: Vec<_> = (0..targets.len())
        .map(|n| {
            reader.index(n).cloned().unwrap_or(ChunkIndex {
                entries: Vec::new(),
            })
        })
        .collect();
    let done: Vec<u64> = intact.iter().map(|(chunks, _)| *chunks).collect();
    let delta = DeltaPlan::new(&layout, &indexes, &done, |n, entry| {
        local
            .get(n)
            .and_then(Option::as_ref)
            .is_some_and(|l| l.holds(entry))
    });
    let input = reader.input_mut();
    let len = input.len().unwrap_or(layout.end);
    info!(
        download = delta.fetched_bytes(len),
        reuse = delta.reused_bytes(&indexes, &done),
        requests = delta.ranges.len(),
        bundle = len,
        "delta install: downloading only the chunks this device lacks"
    );
    input.plan_reads(delta.ranges.clone());
    Some(Delta { plan: delta, local })
}
