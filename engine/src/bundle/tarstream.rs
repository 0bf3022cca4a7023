//! A strict, forward-only reader of the bundle's tar framing over any byte stream.
//!
//! The `tar` crate parses each 512-byte header; this module only walks the stream in order,
//! without seeking, so a bundle can be installed straight from a socket. It accepts regular
//! files with short ustar names and nothing else.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use super::BundleError;

pub(crate) const BLOCK: u64 = 512;

/// A forward-only byte stream a bundle is read from.
pub trait BundleInput: Read {
    /// Skips `n` bytes. The default reads and discards; a file seeks and an HTTP source issues
    /// a new Range request.
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut Read::take(&mut *self, n), &mut io::sink())?;
        if copied != n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream ended while skipping",
            ));
        }
        Ok(())
    }
}

impl BundleInput for File {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let n = i64::try_from(n).map_err(io::Error::other)?;
        self.seek(SeekFrom::Current(n)).map(|_| ())
    }
}

impl BundleInput for io::BufReader<File> {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        self.seek_relative(i64::try_from(n).map_err(io::Error::other)?)
    }
}

impl<T: AsRef<[u8]>> BundleInput for io::Cursor<T> {}
impl BundleInput for io::Empty {}
impl<B: BundleInput + ?Sized> BundleInput for Box<B> {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        (**self).skip(n)
    }
}
impl<B: BundleInput + ?Sized> BundleInput for &mut B {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        (**self).skip(n)
    }
}

/// One entry header: its name, data size and where its data starts in the bundle.
#[derive(Debug, Clone)]
pub(crate) struct EntryHeader {
    pub name: String,
    pub size: u64,
    pub data_offset: u64,
}

impl EntryHeader {
    /// Bytes of zero padding after the data.
    pub fn padding(&self) -> u64 {
        (BLOCK - self.size % BLOCK) % BLOCK
    }
}

/// Walks tar entries, tracking the absolute position in the bundle.
pub(crate) struct TarStream<R> {
    input: R,
    pos: u64,
}

impl<R: BundleInput> TarStream<R> {
    pub fn new(input: R) -> Self {
        Self { input, pos: 0 }
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    pub fn input_mut(&mut self) -> &mut R {
        &mut self.input
    }

    pub fn into_inner(self) -> R {
        self.input
    }

    /// Reads the next header. `Ok(None)` at the end-of-archive marker (a zero block).
    pub fn next_header(&mut self) -> Result<Option<EntryHeader>, BundleError> {
        let offset = self.pos;
        let mut block = [0u8; BLOCK as usize];
        let got = read_full(&mut self.input, &mut block)
            .map_err(|e| BundleError::io(format!("reading the tar header at byte {offset}"), e))?;
        if got == 0 && offset == 0 {
            return Err(BundleError::Empty);
        }
        if got < block.len() {
            return Err(BundleError::Truncated {
                expected: "a 512-byte tar header".into(),
                offset,
            });
        }
        self.pos += BLOCK;
        if block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let bad = |reason: String| BundleError::TarHeader { offset, reason };
        let header = tar::Header::from_byte_slice(&block);
        let stored_sum = header
            .cksum()
            .map_err(|e| bad(format!("unreadable checksum field: {e}")))?;
        // The checksum is the byte sum of the header with the checksum field read as spaces.
        let computed: u32 = block[..148]
            .iter()
            .chain(&[b' '; 8])
            .chain(&block[156..])
            .map(|&b| u32::from(b))
            .sum();
        if stored_sum != computed {
            return Err(bad(format!(
                "checksum {stored_sum} does not match the header ({computed})"
            )));
        }
        if !header.entry_type().is_file() {
            return Err(bad(format!(
                "entry type {:?} is not a regular file",
                header.entry_type()
            )));
        }
        let name = std::str::from_utf8(&header.path_bytes())
            .map_err(|_| bad("entry name is not UTF-8".into()))?
            .to_string();
        let size = header
            .entry_size()
            .map_err(|e| bad(format!("unreadable size field: {e}")))?;
        Ok(Some(EntryHeader {
            name,
            size,
            data_offset: self.pos,
        }))
    }

    /// Reads exactly `buf.len()` bytes of entry data.
    pub fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), BundleError> {
        let offset = self.pos;
        let got = read_full(&mut self.input, buf)
            .map_err(|e| BundleError::io(format!("reading {what} at byte {offset}"), e))?;
        self.pos += got as u64;
        if got < buf.len() {
            return Err(BundleError::Truncated {
                expected: format!("{} bytes of {what}", buf.len()),
                offset,
            });
        }
        Ok(())
    }

    /// Reads an entry's whole data into memory (callers bound `entry.size` first) and skips
    /// its padding.
    ///
    /// Memory grows with the bytes that arrive, not with the size the header claims: a 3 KiB
    /// bundle whose header claims a 128 MiB plugin (or an index sized by a huge payload in an
    /// unsigned manifest) made us allocate all of it before noticing the truncation (the
    /// bundle_reader fuzz target's `huge-plugin` seed).
    pub fn read_entry(&mut self, entry: &EntryHeader) -> Result<Vec<u8>, BundleError> {
        const UPFRONT: u64 = 1024 * 1024;
        let offset = self.pos;
        let mut data = Vec::with_capacity(entry.size.min(UPFRONT) as usize);
        let got = Read::take(&mut self.input, entry.size)
            .read_to_end(&mut data)
            .map_err(|e| BundleError::io(format!("reading {} at byte {offset}", entry.name), e))?;
        self.pos += got as u64;
        if (got as u64) < entry.size {
            return Err(BundleError::Truncated {
                expected: format!("{} bytes of {}", entry.size, entry.name),
                offset,
            });
        }
        self.read_padding(entry)?;
        Ok(data)
    }

    /// Streams an entry's data into `out` (an `io::sink()` to check and drop it) and skips its
    /// padding; returns the sha256 of the data, for the caller to compare before it uses `out`.
    pub fn copy_entry(
        &mut self,
        entry: &EntryHeader,
        out: &mut dyn Write,
    ) -> Result<[u8; 32], BundleError> {
        let offset = self.pos;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = entry.size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let got = read_full(&mut self.input, &mut buf[..want]).map_err(|e| {
                BundleError::io(format!("reading {} at byte {}", entry.name, self.pos), e)
            })?;
            self.pos += got as u64;
            if got < want {
                return Err(BundleError::Truncated {
                    expected: format!("{} bytes of {}", entry.size, entry.name),
                    offset,
                });
            }
            hasher.update(&buf[..got]);
            out.write_all(&buf[..got])
                .map_err(|e| BundleError::io(format!("saving {}", entry.name), e))?;
            left -= got as u64;
        }
        self.read_padding(entry)?;
        Ok(hasher.finalize().into())
    }

    /// Reads the zero padding after an entry's data. Checked, not skipped, so that no byte of
    /// the bundle can change without the bundle being refused.
    pub fn read_padding(&mut self, entry: &EntryHeader) -> Result<(), BundleError> {
        let mut pad = [0u8; BLOCK as usize];
        let pad = &mut pad[..entry.padding() as usize];
        let offset = self.pos;
        self.read_exact(pad, &format!("the padding after {}", entry.name))?;
        if pad.iter().any(|&b| b != 0) {
            return Err(BundleError::TarHeader {
                offset,
                reason: format!("the padding after {} is not zero", entry.name),
            });
        }
        Ok(())
    }

    /// Reads the second zero block of the end-of-archive marker (the first ended the entries).
    pub fn read_end_marker(&mut self) -> Result<(), BundleError> {
        let mut block = [0u8; BLOCK as usize];
        let offset = self.pos;
        self.read_exact(&mut block, "the end-of-archive marker")?;
        if block.iter().any(|&b| b != 0) {
            return Err(BundleError::TarHeader {
                offset,
                reason: "the end-of-archive marker is not zero".into(),
            });
        }
        Ok(())
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: u64, what: &str) -> Result<(), BundleError> {
        if n == 0 {
            return Ok(());
        }
        let offset = self.pos;
        self.input.skip(n).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                BundleError::Truncated {
                    expected: format!("{n} bytes of {what}"),
                    offset,
                }
            } else {
                BundleError::io(format!("skipping {what} at byte {offset}"), e)
            }
        })?;
        self.pos += n;
        Ok(())
    }
}

/// Reads until `buf` is full or the stream ends; returns the count read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod read_entry_tests {
    use super::*;

    /// An entry that claims far more than the stream holds fails as truncated, without
    /// allocating what it claims (1 TiB here: the allocation itself would abort the test).
    #[test]
    fn read_entry_allocates_what_arrives_not_what_is_claimed() {
        let mut tar = TarStream::new(io::Cursor::new(vec![7u8; 100]));
        let entry = EntryHeader {
            name: "plugins/huge.wasm".into(),
            size: 1 << 40,
            data_offset: 0,
        };
        let err = tar.read_entry(&entry).unwrap_err();
        assert!(
            matches!(&err, BundleError::Truncated { offset: 0, expected }
                if expected.contains("plugins/huge.wasm")),
            "{err}"
        );
        assert_eq!(tar.position(), 100);

        let mut tar = TarStream::new(io::Cursor::new(vec![0u8; 512]));
        let entry = EntryHeader {
            name: "manifest.json".into(),
            size: 100,
            data_offset: 0,
        };
        assert_eq!(tar.read_entry(&entry).unwrap(), vec![0u8; 100]);
        assert_eq!(tar.position(), 512);
    }
}
