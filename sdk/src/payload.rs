//! The verified payload an installer installs, as a stream (installer world only).
//!
//! Every byte has already been checked against the bundle's signed chunk index before the
//! plugin sees it. [`PayloadReader`] is the payload as a [`std::io::Read`], so it plugs into
//! `std::io::copy`, the `tar` crate, a decompressor and so on:
//!
//! ```
//! use std::io::Read;
//!
//! use airlock_sdk::payload::PayloadReader;
//!
//! # airlock_sdk::testing::set_payload(b"hello".to_vec());
//! let mut text = String::new();
//! PayloadReader::new().read_to_string(&mut text).map_err(|e| e.to_string())?;
//! # assert_eq!(text, "hello");
//! # Ok::<(), String>(())
//! ```

use std::io;

/// How much [`PayloadReader`] asks the host for at a time, at least.
const CHUNK: u32 = 64 * 1024;

/// How often, in bytes, [`PayloadReader::with_progress`] reports.
const REPORT_EVERY: u64 = 1 << 20;

/// Reads up to `max` bytes of the payload; an empty vector means the payload is complete.
pub fn read(max: u32) -> Result<Vec<u8>, String> {
    crate::sys::payload_read(max)
}

/// The payload as a [`std::io::Read`].
///
/// It asks the host for 64 KiB or the caller's buffer size, whichever is larger, and keeps
/// what doesn't fit for the next read. A host error becomes an [`io::Error`] of kind
/// [`io::ErrorKind::Other`] carrying the host's message.
#[derive(Debug, Default)]
pub struct PayloadReader {
    pending: Vec<u8>,
    offset: usize,
    read: u64,
    finished: bool,
    progress_total: Option<u64>,
    reported: u64,
}

impl PayloadReader {
    /// A reader over the payload from its current position.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader that also reports [`progress`](crate::progress) as it goes: every MiB and at
    /// the end, as bytes read of `total` (pass the context's `payload.size`).
    pub fn with_progress(total: u64) -> Self {
        Self {
            progress_total: Some(total),
            ..Self::default()
        }
    }

    /// How many bytes the reader has handed out so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn report(&mut self, force: bool) {
        if let Some(total) = self.progress_total
            && (force || self.read - self.reported >= REPORT_EVERY)
        {
            crate::progress::report(self.read, total);
            self.reported = self.read;
        }
    }
}

impl io::Read for PayloadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.offset == self.pending.len() {
            if self.finished {
                return Ok(0);
            }
            let want = u32::try_from(buf.len()).unwrap_or(u32::MAX).max(CHUNK);
            self.pending = read(want).map_err(io::Error::other)?;
            self.offset = 0;
            if self.pending.is_empty() {
                self.finished = true;
                self.report(true);
            }
        }
        let n = buf.len().min(self.pending.len() - self.offset);
        buf[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
        self.offset += n;
        self.read += n as u64;
        self.report(false);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::testing;

    #[test]
    fn reads_everything_in_small_and_large_buffers() {
        let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        for size in [1, 7, 4096, 70_000, 1 << 20] {
            testing::reset();
            testing::set_payload(data.clone());
            let mut reader = PayloadReader::with_progress(data.len() as u64);
            let mut out = Vec::new();
            let mut buf = vec![0; size];
            loop {
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, data, "buffer size {size}");
            assert_eq!(reader.bytes_read(), data.len() as u64);
            let progress = testing::progress();
            assert_eq!(progress.last(), Some(&(300_000, 300_000)));
            assert_eq!(reader.read(&mut buf).unwrap(), 0, "stays finished");
        }
    }

    #[test]
    fn host_errors_become_io_errors() {
        testing::reset();
        testing::fail_payload("chunk 3 failed verification");
        let err = PayloadReader::new().read(&mut [0; 16]).unwrap_err();
        assert_eq!(err.to_string(), "chunk 3 failed verification");
    }
}
