//! Raw slots: one side is a regular file, pre-created at its full size, or a block device.
//!
//! The payload is written as it is, from byte 0, sequentially. A raw slot is never created or
//! truncated here: partitions exist, and slot files are allocated once (`airlock sim init`,
//! `fallocate`). Bytes past the payload keep whatever they held.
//!
//! A file slot ([`RawSlot::file`], `type = "file"`) is the exception: each side is a regular
//! file that holds exactly one payload, such as a kernel or an initramfs on the ESP. Writing it
//! creates the file if it is missing and sets its length to the payload's before the first byte,
//! so a resumed write finds it as it left it and nothing of an older, longer payload remains.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Take, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use super::{SlotError, config_hint, is_no_space};

/// What a path that is not a slot is, for messages: "a directory", "a block device", …
fn describe(kind: fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_fifo() {
        "a fifo"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "of an unknown file type"
    }
}

/// Bytes a [`RawWriter`] gathers before it writes them out, and a [`RawReader`] reads at once.
const BUFFER: usize = 1 << 20;

/// A raw slot: a regular file (pre-created at its full size) or a block device.
#[derive(Clone, Debug)]
pub struct RawSlot {
    path: PathBuf,
    /// Where the path came from in airlock.toml (`[slots.rootfs] b`), for error messages.
    key: Option<String>,
    /// A file slot: created if missing and sized to each payload.
    sized_to_payload: bool,
}

impl RawSlot {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RawSlot {
            path: path.into(),
            key: None,
            sized_to_payload: false,
        }
    }

    /// A file slot: a regular file that holds exactly the payload written into it.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        RawSlot {
            sized_to_payload: true,
            ..RawSlot::new(path)
        }
    }

    /// The largest payload the slot takes: its capacity, or no limit for a file slot (a full
    /// filesystem is reported while writing, naming the byte), whose path it first checks is a
    /// regular file or can become one.
    pub fn max_payload(&self) -> Result<u64, SlotError> {
        if self.sized_to_payload {
            self.check_file_side().map(|_| u64::MAX)
        } else {
            self.capacity()
        }
    }

    /// A file slot's side: a regular file, or missing in a directory that exists. Returns that
    /// directory.
    fn check_file_side(&self) -> Result<&Path, SlotError> {
        match fs::metadata(&self.path) {
            Ok(meta) if meta.is_file() => {}
            Ok(meta) => {
                return Err(SlotError::NotFile {
                    path: self.path.clone(),
                    kind: describe(meta.file_type()),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io_error("inspect", e)),
        }
        let dir = crate::fsutil::parent_dir(&self.path);
        if !dir.is_dir() {
            return Err(SlotError::Missing {
                what: "directory of slot file",
                path: dir.to_path_buf(),
                hint: "a file slot's file is created when it is first written, its directory \
                       must exist: make it on the image"
                    .into(),
            });
        }
        Ok(dir)
    }

    /// Names the airlock.toml key this path came from (e.g. `[slots.rootfs] b`), so that an
    /// error about the slot tells the operator what to fix.
    pub fn with_config_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Capacity in bytes: the length of a regular file, the size of a block device. A missing
    /// path, a directory, a character device (MTD raw flash is not supported) or anything else
    /// is an error.
    pub fn capacity(&self) -> Result<u64, SlotError> {
        let meta = fs::metadata(&self.path).map_err(|e| self.open_error("inspect", e))?;
        let kind = meta.file_type();
        if kind.is_file() {
            return Ok(meta.len());
        }
        if kind.is_block_device() {
            let mut file = File::open(&self.path).map_err(|e| self.open_error("open", e))?;
            return file
                .seek(SeekFrom::End(0))
                .map_err(|e| self.io_error("find the size of", e));
        }
        Err(SlotError::NotRaw {
            path: self.path.clone(),
            kind: describe(kind),
            hint: config_hint(self.key.as_deref()),
        })
    }

    /// Opens the slot for writing a payload of `payload_size` bytes, from byte `start` (0 for a
    /// fresh install, the first byte not yet durable when resuming). Refuses, before writing
    /// anything, a payload larger than the slot. Only a file slot is created or resized, and
    /// only once every check passed.
    pub fn open_writer(&self, payload_size: u64, start: u64) -> Result<RawWriter, SlotError> {
        let capacity = self.max_payload()?;
        if payload_size > capacity {
            return Err(SlotError::TooSmall {
                path: self.path.clone(),
                payload_size,
                capacity,
            });
        }
        if start > payload_size {
            return Err(SlotError::BadStart {
                path: self.path.clone(),
                start,
                payload_size,
            });
        }
        if self.sized_to_payload {
            self.size_file(payload_size)?;
        }
        RawWriter::open(&self.path, start, payload_size)
            .map_err(|e| self.open_error("open for writing", e))
    }

    /// Reads exactly `buf.len()` bytes at `offset`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SlotError> {
        let file = File::open(&self.path).map_err(|e| self.open_error("open", e))?;
        match file.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(SlotError::ShortRead {
                path: self.path.clone(),
                end: offset.saturating_add(buf.len() as u64),
                capacity: self.capacity()?,
            }),
            Err(source) => Err(SlotError::Read {
                path: self.path.clone(),
                offset,
                source,
            }),
        }
    }

    /// Streams the first `len` bytes of the slot (to hash what it holds). Refuses a `len` past
    /// the end of the slot; the reader fails rather than end early.
    pub fn reader(&self, len: u64) -> Result<RawReader, SlotError> {
        let capacity = self.capacity()?;
        if len > capacity {
            return Err(SlotError::ShortRead {
                path: self.path.clone(),
                end: len,
                capacity,
            });
        }
        let file = File::open(&self.path).map_err(|e| self.open_error("open", e))?;
        Ok(RawReader {
            inner: BufReader::with_capacity(BUFFER, file.take(len)),
            path: self.path.clone(),
            position: 0,
            len,
        })
    }

    /// A file slot before it is written, once [`Self::check_file_side`] passed: create it if
    /// missing (durably, in its directory) and set its length to the payload's.
    fn size_file(&self, payload_size: u64) -> Result<(), SlotError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(|e| self.io_error("create", e))?;
        file.set_len(payload_size).map_err(|source| {
            if is_no_space(&source) {
                SlotError::NoSpace {
                    path: self.path.clone(),
                    offset: 0,
                }
            } else {
                self.io_error("set the length of", source)
            }
        })?;
        file.sync_all()
            .and_then(|()| crate::fsutil::sync_dir(crate::fsutil::parent_dir(&self.path)))
            .map_err(|e| self.io_error("sync", e))
    }

    fn open_error(&self, action: &'static str, source: io::Error) -> SlotError {
        if source.kind() == io::ErrorKind::NotFound {
            let what = if self.path.starts_with("/dev") {
                "slot device"
            } else {
                "slot file"
            };
            return SlotError::Missing {
                what,
                path: self.path.clone(),
                hint: config_hint(self.key.as_deref()),
            };
        }
        self.io_error(action, source)
    }

    fn io_error(&self, action: &'static str, source: io::Error) -> SlotError {
        let hint = if source.kind() == io::ErrorKind::PermissionDenied {
            "airlock needs read and write access to its slots: run it as root".to_string()
        } else {
            config_hint(self.key.as_deref())
        };
        SlotError::Io {
            action,
            path: self.path.clone(),
            source,
            hint,
        }
    }
}

/// Writes a payload into a raw slot: sequential, buffered (1 MiB). Bytes are durable only once
/// [`RawWriter::sync`] returns; bytes still buffered when the writer is dropped are not written.
#[derive(Debug)]
pub struct RawWriter {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    /// The slot offset of `buf[0]`: everything before it has been handed to the kernel.
    written: u64,
    /// The declared payload size; nothing is written past it.
    end: u64,
}

impl RawWriter {
    /// Opens `path` (which must exist) for writing from `start`, refusing to go past `end`.
    /// Sizes are the caller's business: [`RawSlot::open_writer`] checks them.
    fn open(path: &Path, start: u64, end: u64) -> io::Result<RawWriter> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.seek(SeekFrom::Start(start))?;
        Ok(RawWriter {
            file,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(BUFFER),
            written: start,
            end,
        })
    }

    /// Appends `data` at [`RawWriter::position`].
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), SlotError> {
        if data.len() as u64 > self.end.saturating_sub(self.position()) {
            return Err(SlotError::Overrun {
                path: self.path.clone(),
                payload_size: self.end,
            });
        }
        while !data.is_empty() {
            let n = (BUFFER - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == BUFFER {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// The slot offset the next byte goes to (bytes before it are written or buffered).
    pub fn position(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Writes out the buffer and fsyncs (fdatasync): everything written so far is durable when
    /// this returns.
    pub fn sync(&mut self) -> Result<(), SlotError> {
        self.flush()?;
        self.file.sync_data().map_err(|source| {
            if is_no_space(&source) {
                SlotError::NoSpace {
                    path: self.path.clone(),
                    offset: self.written,
                }
            } else {
                SlotError::Sync {
                    path: self.path.clone(),
                    source,
                }
            }
        })
    }

    /// Hands the buffer to the kernel; on failure, the error names the first byte not written.
    fn flush(&mut self) -> Result<(), SlotError> {
        let mut done = 0;
        let result = loop {
            if done == self.buf.len() {
                break Ok(());
            }
            match self.file.write(&self.buf[done..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..done);
        self.written += done as u64;
        result.map_err(|source| {
            if is_no_space(&source) {
                SlotError::NoSpace {
                    path: self.path.clone(),
                    offset: self.written,
                }
            } else {
                SlotError::Write {
                    path: self.path.clone(),
                    offset: self.written,
                    source,
                }
            }
        })
    }
}

/// The first bytes of a raw slot, streamed (see [`RawSlot::reader`]). Read errors name the slot
/// and the offset; a slot that ends early is an error, not a short read.
#[derive(Debug)]
pub struct RawReader {
    inner: BufReader<Take<File>>,
    path: PathBuf,
    position: u64,
    len: u64,
}

impl Read for RawReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot read slot {} at byte {}: {e}",
                    self.path.display(),
                    self.position
                ),
            )
        })?;
        if n == 0 && !buf.is_empty() && self.position < self.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "slot {} ended at byte {}, before byte {}",
                    self.path.display(),
                    self.position,
                    self.len
                ),
            ));
        }
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot file of `size` bytes, each `fill`.
    fn slot_file(dir: &Path, size: usize, fill: u8) -> RawSlot {
        let path = dir.join("slot-b.img");
        fs::write(&path, vec![fill; size]).unwrap();
        RawSlot::new(path)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn write_then_read_back_across_buffer_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let slot = slot_file(dir.path(), 3 * BUFFER, 0xAA);
        assert_eq!(slot.capacity().unwrap(), 3 * BUFFER as u64);
        let data = pattern(2 * BUFFER + 12_345);
        let mut w = slot.open_writer(data.len() as u64, 0).unwrap();
        for chunk in data.chunks(65_537) {
            w.write(chunk).unwrap();
        }
        assert_eq!(w.position(), data.len() as u64);
        w.sync().unwrap();
        drop(w);

        let mut back = vec![0; 1000];
        slot.read_at(BUFFER as u64 - 500, &mut back).unwrap();
        assert_eq!(back, data[BUFFER - 500..BUFFER + 500]);
        let mut all = Vec::new();
        slot.reader(data.len() as u64)
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, data);
        // Bytes past the payload keep what they held; the file keeps its size.
        let mut tail = [0; 4];
        slot.read_at(data.len() as u64, &mut tail).unwrap();
        assert_eq!(tail, [0xAA; 4]);
        assert_eq!(slot.capacity().unwrap(), 3 * BUFFER as u64);
    }

    #[test]
    fn resume_writes_from_start() {
        let dir = tempfile::tempdir().unwrap();
        let slot = slot_file(dir.path(), 10_000, 0);
        let data = pattern(8_000);
        let mut w = slot.open_writer(8_000, 0).unwrap();
        w.write(&data[..3_000]).unwrap();
        w.sync().unwrap();
        drop(w);
        let mut w = slot.open_writer(8_000, 3_000).unwrap();
        assert_eq!(w.position(), 3_000);
        w.write(&data[3_000..]).unwrap();
        w.sync().unwrap();
        drop(w);
        assert_eq!(fs::read(slot.path()).unwrap()[..8_000], data[..]);
    }

    #[test]
    fn payload_larger_than_slot_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let slot = slot_file(dir.path(), 4096, 0x55);
        let err = slot.open_writer(4097, 0).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SlotError::TooSmall { .. }), "{msg}");
        assert!(msg.contains("4097") && msg.contains("4096"), "{msg}");
        assert!(msg.contains("slot-b.img"), "{msg}");
        assert_eq!(fs::read(slot.path()).unwrap(), vec![0x55; 4096]);
    }

    #[test]
    fn writing_past_the_declared_size_or_resuming_past_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let slot = slot_file(dir.path(), 4096, 0);
        let mut w = slot.open_writer(100, 0).unwrap();
        w.write(&[1; 60]).unwrap();
        let err = w.write(&[1; 41]).unwrap_err();
        assert!(matches!(err, SlotError::Overrun { .. }), "{err}");
        w.write(&[1; 40]).unwrap();
        let err = slot.open_writer(100, 101).unwrap_err();
        assert!(matches!(err, SlotError::BadStart { .. }), "{err}");
    }

    #[test]
    fn missing_slot_names_the_path_and_the_config_key() {
        let slot =
            RawSlot::new("/dev/airlock-test-no-such-partition").with_config_key("[slots.rootfs] b");
        for err in [
            slot.capacity().unwrap_err(),
            slot.open_writer(1, 0).unwrap_err(),
            slot.read_at(0, &mut [0; 1]).unwrap_err(),
        ] {
            assert_eq!(
                err.to_string(),
                "slot device /dev/airlock-test-no-such-partition does not exist; \
                 check [slots.rootfs] b in airlock.toml"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let missing = RawSlot::new(dir.path().join("gone.img"));
        assert!(matches!(
            missing.open_writer(0, 0),
            Err(SlotError::Missing { .. })
        ));
        // Never created on the way.
        assert!(!dir.path().join("gone.img").exists());
    }

    #[test]
    fn directory_and_character_device_are_not_raw_slots() {
        let dir = tempfile::tempdir().unwrap();
        let err = RawSlot::new(dir.path()).capacity().unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        let err = RawSlot::new("/dev/full").capacity().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("slot /dev/full is a character device"),
            "{err}"
        );
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let slot = slot_file(dir.path(), 100, 0);
        let err = slot.read_at(90, &mut [0; 20]).unwrap_err();
        assert!(
            matches!(err, SlotError::ShortRead { end: 110, .. }),
            "{err}"
        );
        assert!(matches!(slot.reader(101), Err(SlotError::ShortRead { .. })));
        // A slot that shrinks under a reader fails the read instead of ending early.
        let mut r = slot.reader(100).unwrap();
        OpenOptions::new()
            .write(true)
            .open(slot.path())
            .unwrap()
            .set_len(50)
            .unwrap();
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("ended at byte 50"), "{err}");
    }

    /// ENOSPC, simulated with /dev/full (every write fails with ENOSPC). capacity() refuses a
    /// character device, so the writer is opened directly.
    #[test]
    fn no_space_names_the_slot_and_the_offset() {
        let mut w = RawWriter::open(Path::new("/dev/full"), 0, u64::MAX).unwrap();
        w.write(b"buffered, not yet written").unwrap();
        let err = w.sync().unwrap_err();
        assert!(matches!(err, SlotError::NoSpace { offset: 0, .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("no space left writing /dev/full at byte 0;"),
            "{err}"
        );
        // A full buffer surfaces the error from write() itself.
        let mut w = RawWriter::open(Path::new("/dev/full"), 0, u64::MAX).unwrap();
        let err = w.write(&vec![0; BUFFER + 1]).unwrap_err();
        assert!(matches!(err, SlotError::NoSpace { .. }), "{err}");
    }

    #[test]
    fn a_file_slot_is_created_sized_to_the_payload_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let slot = RawSlot::file(dir.path().join("vmlinuz"));
        assert_eq!(slot.max_payload().unwrap(), u64::MAX);
        let data = pattern(BUFFER + 5_000);
        let mut w = slot.open_writer(data.len() as u64, 0).unwrap();
        w.write(&data[..3_000]).unwrap();
        w.sync().unwrap();
        drop(w);
        // Resumed: the file is found as it was left, at the payload's length.
        assert_eq!(slot.capacity().unwrap(), data.len() as u64);
        let mut w = slot.open_writer(data.len() as u64, 3_000).unwrap();
        w.write(&data[3_000..]).unwrap();
        w.sync().unwrap();
        drop(w);
        assert_eq!(fs::read(slot.path()).unwrap(), data);

        // A shorter payload leaves nothing of the longer one behind.
        let short = pattern(1_000);
        let mut w = slot.open_writer(1_000, 0).unwrap();
        w.write(&short).unwrap();
        w.sync().unwrap();
        drop(w);
        assert_eq!(fs::read(slot.path()).unwrap(), short);
    }

    #[test]
    fn a_file_slot_refuses_what_is_not_a_regular_file_and_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = RawSlot::file(dir.path())
            .open_writer(10, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is a directory, not a regular file") && err.contains("type = \"raw\""),
            "{err}"
        );
        let missing = dir.path().join("no-such-dir/vmlinuz");
        let err = RawSlot::file(&missing)
            .open_writer(10, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no-such-dir") && err.contains("directory must exist"),
            "{err}"
        );
        assert!(!missing.exists());
    }
}
