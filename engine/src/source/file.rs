//! A bundle in a local file.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{ByteSource, SourceError};

/// Reads are buffered: the bundle reader asks for small pieces (tar headers, index entries).
const BUFFER: usize = 64 * 1024;

/// A bundle in a local file (or anything `open()` can read, such as a block device).
pub struct FileSource {
    path: PathBuf,
    reader: BufReader<File>,
    pos: u64,
    len: Option<u64>,
    transferred: u64,
}

impl FileSource {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |error| SourceError::FileOpen {
            path: path.clone(),
            error,
        };
        let file = File::open(&path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if meta.is_dir() {
            return Err(open_err(io::ErrorKind::IsADirectory.into()));
        }
        Ok(Self {
            len: meta.is_file().then_some(meta.len()),
            reader: BufReader::with_capacity(BUFFER, file),
            path,
            pos: 0,
            transferred: 0,
        })
    }

    fn read_error(&self, error: io::Error) -> SourceError {
        SourceError::FileRead {
            path: self.path.clone(),
            offset: self.pos,
            error,
        }
    }
}

impl Read for FileSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.reader.read(buf) {
            Ok(n) => {
                self.pos += n as u64;
                self.transferred += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => Err(io::Error::new(e.kind(), self.read_error(e))),
        }
    }
}

impl ByteSource for FileSource {
    fn position(&self) -> u64 {
        self.pos
    }

    fn skip_to(&mut self, offset: u64) -> Result<(), SourceError> {
        if offset < self.pos {
            return Err(SourceError::SkipBackwards {
                location: self.describe(),
                position: self.pos,
                offset,
            });
        }
        if let Some(len) = self.len
            && offset > len
        {
            return Err(SourceError::SkipPastEnd {
                location: self.describe(),
                offset,
                len,
            });
        }
        // A short hop stays inside the buffer.
        let seek = match i64::try_from(offset - self.pos) {
            Ok(delta) => self.reader.seek_relative(delta),
            Err(_) => self.reader.seek(SeekFrom::Start(offset)).map(drop),
        };
        seek.map_err(|e| self.read_error(e))?;
        self.pos = offset;
        Ok(())
    }

    fn len(&self) -> Option<u64> {
        self.len
    }

    fn bytes_transferred(&self) -> u64 {
        self.transferred
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 253) as u8).collect()
    }

    #[test]
    fn skip_to_seeks_forward_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.airlock");
        let content = data(300_000);
        std::fs::write(&path, &content).unwrap();

        let mut src = FileSource::open(&path).unwrap();
        assert_eq!(src.len(), Some(300_000));
        let mut head = [0u8; 10];
        src.read_exact(&mut head).unwrap();
        assert_eq!(head, content[..10]);

        // Inside the buffer, then far beyond it.
        src.skip_to(5_000).unwrap();
        assert_eq!(src.position(), 5_000);
        src.read_exact(&mut head).unwrap();
        assert_eq!(head, content[5_000..5_010]);
        src.skip_to(200_000).unwrap();
        let mut rest = Vec::new();
        src.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, content[200_000..]);
        assert_eq!(src.position(), 300_000);
        assert_eq!(src.bytes_transferred(), 20 + 100_000);

        let err = src.skip_to(10).unwrap_err();
        assert!(matches!(err, SourceError::SkipBackwards { .. }), "{err}");
        let err = src.skip_to(300_001).unwrap_err();
        assert!(
            matches!(err, SourceError::SkipPastEnd { len: 300_000, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("b.airlock"), "{err}");
        src.skip_to(300_000).unwrap();
    }
}
