//! Progress of a long call, shown to the operator (imported by the `hook` and `installer`
//! worlds, not by `check`).

/// Reports that `done` of `total` units are complete (bytes, for an installer).
///
/// [`PayloadReader::with_progress`](crate::payload::PayloadReader::with_progress) reports
/// for an installer as it reads.
pub fn report(done: u64, total: u64) {
    crate::sys::progress(done, total);
}
