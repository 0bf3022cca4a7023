//! The persistent state journal: one serializable record (the update state machine's), kept in
//! two checksummed copies so that a power cut at any moment loses at most the last transition.
//!
//! Every transition of the update state machine is [`Journal::store`]d here before it takes
//! effect. A store writes generation `g + 1` into the copy that does *not* hold the newest valid
//! record (generation `g`), through [`crate::fsutil::atomic_write`], so the newest record is never
//! the one being overwritten. [`Journal::load`] reads both copies and returns the valid one with the
//! highest generation; a damaged copy is logged and skipped, and the next store overwrites it.
//!
//! The journal assumes a single writer: one `airlock` process owns the directory at a time.
//!
//! # On-disk format (format version 1)
//!
//! The journal is a directory holding `journal.0` and `journal.1`; each is a complete copy:
//!
//! | offset | size | field                                                                    |
//! |-------:|-----:|--------------------------------------------------------------------------|
//! |      0 |   16 | magic: ASCII `AIRLOCK-JOURNAL` and one NUL byte (`41 49 52 … 4c 00`)     |
//! |     16 |    4 | format version, u32 little-endian: `1`                                   |
//! |     20 |    8 | generation, u64 little-endian: `1` for the first record, `+1` per store |
//! |     28 |    4 | body length `N`, u32 little-endian, at most 1 MiB (1 048 576)            |
//! |     32 |    4 | CRC-32, u32 little-endian, of every other byte of the file (see below)   |
//! |     36 |    1 | `0x0a` (`\n`), so that the body starts on a line of its own              |
//! |     37 |  `N` | body: the record as compact, single-line JSON, then `\n`                 |
//!
//! The checksum is CRC-32 (IEEE 802.3, as computed by `crc32fast`) over bytes `0..32` followed by
//! bytes `36..37 + N`: the whole file except the checksum field itself. A file is exactly
//! `37 + N` bytes long. `tail -n 1 journal.0` prints the record; `head -c 16` shows the magic.
//!
//! A reader refuses a copy with a bad magic or separator, an unknown format version (a future
//! format must bump it; this reader cannot know what a newer one means), a body length over 1 MiB
//! (checked before anything is allocated), fewer or more bytes than the header announces, a
//! checksum mismatch, or a body that is not the JSON of the expected record.
//!
//! CRC-32 suffices because the checksum only has to catch accidental damage: a write torn by a
//! power cut on a file system that does not keep its promises, a truncated file, flipped bits on
//! worn flash. CRC-32 detects every error burst up to 32 bits and every odd number of flipped bits,
//! and misses random damage with probability 2⁻³² — and a damaged body must then still parse as
//! the expected record. It is not meant to stop tampering: whoever can write the data directory
//! can write a valid record with any checksum, so a cryptographic hash would cost more and protect
//! nothing more.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::fsutil;

/// The first 16 bytes of every copy.
const MAGIC: [u8; 16] = *b"AIRLOCK-JOURNAL\0";
/// The only format version this code reads and writes.
const FORMAT_VERSION: u32 = 1;
/// Magic, version, generation, body length, checksum, newline.
const HEADER_LEN: usize = 37;
/// Where the checksum field sits in the header.
const CRC_AT: usize = 32;
/// The largest body a reader accepts (and a writer writes): bounds the memory a load can take.
const MAX_BODY_LEN: usize = 1 << 20;
/// The two copies, in a fixed order.
const FILE_NAMES: [&str; 2] = ["journal.0", "journal.1"];

/// What is wrong with one copy of the journal.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    /// The file ends inside the header.
    #[error("truncated: {got} of the {header} header bytes", header = HEADER_LEN)]
    TruncatedHeader { got: usize },
    /// The file does not start with the journal magic, or its header does not end in a newline.
    #[error("bad magic: not an Airlock state journal")]
    BadMagic,
    /// The header names a format version this code does not know.
    #[error(
        "unknown format version {found}; this airlock reads version {known} \
         (written by a newer airlock, or corrupt)",
        known = FORMAT_VERSION
    )]
    UnknownVersion { found: u32 },
    /// The header announces a body over the size limit; nothing was allocated for it.
    #[error("body length {len} is over the {max}-byte limit", max = MAX_BODY_LEN)]
    BodyTooLarge { len: u32 },
    /// The file ends inside the body.
    #[error("truncated: {got} of {expected} bytes")]
    Truncated { got: usize, expected: usize },
    /// The file goes on after the body its header announces.
    #[error("trailing bytes after the {expected} bytes its header announces")]
    TrailingBytes { expected: usize },
    /// The checksum stored in the header does not match the file's content.
    #[error("checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    /// The checksum matches but the body is not the JSON of the expected record.
    #[error("body is not a valid record: {0}")]
    InvalidBody(serde_json::Error),
}

/// Why the journal could not be opened, loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot create the state journal directory {}: {error}; \
         check that its parent exists and is writable",
        .dir.display()
    )]
    CreateDir { dir: PathBuf, error: io::Error },
    #[error(
        "cannot read state journal {}: {error}; check its permissions and the storage device",
        .path.display()
    )]
    Read { path: PathBuf, error: io::Error },
    #[error(
        "state journal {} is corrupt ({first}) and so is {} ({second}); the device's update \
         state is lost — inspect the slots and run `airlock status`, then remove both files to \
         start fresh",
        .first_path.display(), .second_path.display()
    )]
    BothDamaged {
        first_path: PathBuf,
        first: Damage,
        second_path: PathBuf,
        second: Damage,
    },
    #[error(
        "state journal {} is corrupt ({damage}) and its other copy {} does not exist; the \
         device's update state is lost — inspect the slots and run `airlock status`, then remove \
         {} to start fresh",
        .path.display(), .missing.display(), .path.display()
    )]
    OnlyCopyDamaged {
        path: PathBuf,
        damage: Damage,
        missing: PathBuf,
    },
    #[error(
        "cannot encode the update state for {}: {error}; nothing was written and the previous \
         state is intact — this is a bug in airlock, please report it",
        .path.display()
    )]
    Encode {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error(
        "the update state for {} encodes to {len} bytes, over the journal's {max}-byte limit; \
         nothing was written and the previous state is intact — this is a bug in airlock, please \
         report it",
        .path.display(), max = MAX_BODY_LEN
    )]
    RecordTooLarge { path: PathBuf, len: usize },
    #[error(
        "cannot write state journal {}: {error}; the previous state is intact — check free space \
         and the storage device",
        .path.display()
    )]
    Write { path: PathBuf, error: io::Error },
    #[error(
        "state journal in {} is at generation {generation}, the last one there is; remove both \
         journal files to start fresh",
        .dir.display()
    )]
    GenerationExhausted { dir: PathBuf, generation: u64 },
}

/// A power-safe journal holding one value of type `T`, in two copies in one directory.
pub struct Journal<T> {
    dir: PathBuf,
    paths: [PathBuf; 2],
    newest: Newest,
    generation: u64,
    record: PhantomData<fn() -> T>,
}

/// Which copy holds the newest valid record, as far as this handle knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Newest {
    /// Not read yet, or a store failed part-way: read both copies before the next store.
    Unknown,
    /// Neither copy exists.
    Empty,
    /// This copy (index into `paths`) holds the newest valid record.
    In(usize),
}

/// One copy as read from disk.
enum Replica<T> {
    Missing,
    Damaged(Damage),
    Valid { generation: u64, value: T },
}

impl<T> fmt::Debug for Journal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("newest", &self.newest)
            .field("generation", &self.generation)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Journal<T> {
    /// Opens the journal in `dir` (files `journal.0`, `journal.1`), creating the directory (and
    /// its missing parents, durably) if needed. Reads nothing: call [`Journal::load`] next.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        if !dir.is_dir() {
            let create_error = |error| StateError::CreateDir {
                dir: dir.to_owned(),
                error,
            };
            let missing: Vec<&Path> = dir
                .ancestors()
                .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
                .collect();
            fs::create_dir_all(dir).map_err(create_error)?;
            for created in missing {
                fsutil::sync_dir(fsutil::parent_dir(created)).map_err(create_error)?;
            }
        }
        Ok(Journal {
            dir: dir.to_owned(),
            paths: FILE_NAMES.map(|name| dir.join(name)),
            newest: Newest::Unknown,
            generation: 0,
            record: PhantomData,
        })
    }

    /// The newest valid record, or `None` for a journal never written.
    ///
    /// A damaged copy is logged (`warn!`) and the other one used. If no copy is valid but at least
    /// one exists, the update state is lost and this is an error naming each file and its damage.
    pub fn load(&mut self) -> Result<Option<T>, StateError> {
        self.newest = Newest::Unknown;
        let replicas = [read_copy(&self.paths[0])?, read_copy(&self.paths[1])?];
        let mut best: Option<(usize, u64, T)> = None;
        let mut damaged = Vec::new();
        for (index, replica) in replicas.into_iter().enumerate() {
            match replica {
                Replica::Missing => {}
                Replica::Damaged(damage) => damaged.push((index, damage)),
                Replica::Valid { generation, value } => match &best {
                    Some((_, best_generation, _)) if *best_generation > generation => {}
                    Some((_, best_generation, _)) if *best_generation == generation => warn!(
                        dir = %self.dir.display(),
                        generation,
                        "both state journal copies hold the same generation; using {}",
                        FILE_NAMES[0]
                    ),
                    _ => best = Some((index, generation, value)),
                },
            }
        }

        if let Some((index, generation, value)) = best {
            for (bad, damage) in damaged {
                warn!(
                    "state journal {} is damaged ({damage}); using {} (generation {generation}) \
                     instead, the last transition may have been lost",
                    self.paths[bad].display(),
                    self.paths[index].display(),
                );
            }
            self.newest = Newest::In(index);
            self.generation = generation;
            debug!(path = %self.paths[index].display(), generation, "loaded state journal");
            return Ok(Some(value));
        }

        let mut damaged = damaged.into_iter();
        match (damaged.next(), damaged.next()) {
            (None, _) => {
                self.newest = Newest::Empty;
                self.generation = 0;
                Ok(None)
            }
            (Some((index, damage)), None) => Err(StateError::OnlyCopyDamaged {
                path: self.paths[index].clone(),
                damage,
                missing: self.paths[1 - index].clone(),
            }),
            (Some((_, first)), Some((_, second))) => Err(StateError::BothDamaged {
                first_path: self.paths[0].clone(),
                first,
                second_path: self.paths[1].clone(),
                second,
            }),
        }
    }

    /// Writes `value` as the next generation into the copy that does not hold the newest valid
    /// record, so that record survives a torn write. Durable when it returns.
    ///
    /// If the journal has not been loaded yet, it is loaded first (and that load's errors
    /// returned), so a store never overwrites the newest record.
    pub fn store(&mut self, value: &T) -> Result<(), StateError> {
        if self.newest == Newest::Unknown {
            self.load()?;
        }
        let target = match self.newest {
            Newest::In(index) => 1 - index,
            Newest::Empty | Newest::Unknown => 0,
        };
        let path = &self.paths[target];
        let generation =
            self.generation
                .checked_add(1)
                .ok_or_else(|| StateError::GenerationExhausted {
                    dir: self.dir.clone(),
                    generation: self.generation,
                })?;
        let bytes = encode(generation, value, path)?;
        // Until the write is known durable, the target may hold either record: re-read both
        // copies before the next store.
        self.newest = Newest::Unknown;
        fsutil::atomic_write(path, &bytes).map_err(|error| StateError::Write {
            path: path.clone(),
            error,
        })?;
        self.newest = Newest::In(target);
        self.generation = generation;
        debug!(path = %path.display(), generation, "stored state journal");
        Ok(())
    }

    /// Generation of the last loaded or stored record (0 when empty or not loaded yet).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The directory holding the journal.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// One copy of the journal as it goes on disk: header, then `value` as one JSON line.
fn encode<T: Serialize>(generation: u64, value: &T, path: &Path) -> Result<Vec<u8>, StateError> {
    let mut body = serde_json::to_vec(value).map_err(|error| StateError::Encode {
        path: path.to_owned(),
        error,
    })?;
    body.push(b'\n');
    let too_large = || StateError::RecordTooLarge {
        path: path.to_owned(),
        len: body.len(),
    };
    if body.len() > MAX_BODY_LEN {
        return Err(too_large());
    }
    let len = u32::try_from(body.len()).map_err(|_| too_large())?;
    let mut file = Vec::with_capacity(HEADER_LEN + body.len());
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&generation.to_le_bytes());
    file.extend_from_slice(&len.to_le_bytes());
    file.extend_from_slice(&[0; 4]); // the checksum, filled in below
    file.push(b'\n');
    file.extend_from_slice(&body);
    seal(&mut file);
    Ok(file)
}

/// Fills in the checksum field of a complete copy (header and body).
fn seal(file: &mut [u8]) {
    let (header, body) = file.split_at_mut(HEADER_LEN);
    let crc = checksum(header, body);
    header[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 of the header without its checksum field, then the body.
fn checksum(header: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..CRC_AT]);
    hasher.update(&header[CRC_AT + 4..HEADER_LEN]);
    hasher.update(body);
    hasher.finalize()
}

/// Reads one copy; only I/O errors other than "not found" are errors, damage is a value.
fn read_copy<T: DeserializeOwned>(path: &Path) -> Result<Replica<T>, StateError> {
    let read_error = |error| StateError::Read {
        path: path.to_owned(),
        error,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Replica::Missing),
        Err(error) => return Err(read_error(error)),
    };
    Ok(match decode(&mut file).map_err(read_error)? {
        Ok((generation, value)) => Replica::Valid { generation, value },
        Err(damage) => Replica::Damaged(damage),
    })
}

/// Decodes one copy, allocating no more than the header and a body within the size limit.
fn decode<T: DeserializeOwned>(input: &mut impl Read) -> io::Result<Result<(u64, T), Damage>> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_up_to(input, &mut header)?;
    if got < HEADER_LEN {
        return Ok(Err(Damage::TruncatedHeader { got }));
    }
    if header[..MAGIC.len()] != MAGIC || header[HEADER_LEN - 1] != b'\n' {
        return Ok(Err(Damage::BadMagic));
    }
    let version = u32_at(&header, 16);
    if version != FORMAT_VERSION {
        return Ok(Err(Damage::UnknownVersion { found: version }));
    }
    let generation = u64::from_le_bytes(std::array::from_fn(|i| header[20 + i]));
    let len = u32_at(&header, 28);
    let Some(body_len) = usize::try_from(len).ok().filter(|&n| n <= MAX_BODY_LEN) else {
        return Ok(Err(Damage::BodyTooLarge { len }));
    };
    let expected = HEADER_LEN + body_len;
    let mut body = vec![0u8; body_len];
    let got = read_up_to(input, &mut body)?;
    if got < body_len {
        return Ok(Err(Damage::Truncated {
            got: HEADER_LEN + got,
            expected,
        }));
    }
    if read_up_to(input, &mut [0u8; 1])? != 0 {
        return Ok(Err(Damage::TrailingBytes { expected }));
    }
    let stored = u32_at(&header, CRC_AT);
    let computed = checksum(&header, &body);
    if stored != computed {
        return Ok(Err(Damage::ChecksumMismatch { stored, computed }));
    }
    Ok(serde_json::from_slice(&body)
        .map(|value| (generation, value))
        .map_err(Damage::InvalidBody))
}

fn u32_at(header: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes(std::array::from_fn(|i| header[at + i]))
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Record {
        stage: String,
        attempt: u32,
    }

    fn rec(stage: &str, attempt: u32) -> Record {
        Record {
            stage: stage.to_owned(),
            attempt,
        }
    }

    fn open(dir: &Path) -> Journal<Record> {
        Journal::open(dir).unwrap()
    }

    /// A fresh handle's view of the journal: (record, generation).
    fn reload(dir: &Path) -> Result<(Option<Record>, u64), StateError> {
        let mut journal = open(dir);
        let record = journal.load()?;
        Ok((record, journal.generation()))
    }

    fn copy(dir: &Path, index: usize) -> PathBuf {
        dir.join(FILE_NAMES[index])
    }

    fn decode_bytes(bytes: &[u8]) -> Result<(u64, Record), Damage> {
        decode(&mut &bytes[..]).unwrap()
    }

    fn is_damaged(path: &Path) -> bool {
        matches!(read_copy::<Record>(path).unwrap(), Replica::Damaged(_))
    }

    /// A journal with generation 1 = `rec("fetching", 1)` in journal.0 and generation 2 =
    /// `rec("installed", 2)` in journal.1; returns the bytes of both copies.
    fn two_generations(dir: &Path) -> [Vec<u8>; 2] {
        let mut journal = open(dir);
        journal.store(&rec("fetching", 1)).unwrap();
        journal.store(&rec("installed", 2)).unwrap();
        [0, 1].map(|i| fs::read(copy(dir, i)).unwrap())
    }

    /// After damaging copy `index` of [`two_generations`], the other copy must be used.
    fn assert_falls_back(dir: &Path, index: usize, what: &str) {
        assert!(is_damaged(&copy(dir, index)), "{what}: not detected");
        let expected = if index == 1 {
            (Some(rec("fetching", 1)), 1)
        } else {
            (Some(rec("installed", 2)), 2)
        };
        assert_eq!(reload(dir).unwrap(), expected, "{what}");
    }

    #[test]
    fn empty_directory_loads_none_and_is_created_if_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("var/lib/airlock");
        let mut journal = open(&dir);
        assert!(dir.is_dir());
        assert_eq!(journal.load().unwrap(), None);
        assert_eq!(journal.generation(), 0);
    }

    #[test]
    fn store_then_load_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let mut journal = open(tmp.path());
        assert_eq!(journal.load().unwrap(), None);
        journal.store(&rec("fetching", 1)).unwrap();
        assert_eq!(journal.generation(), 1);
        assert_eq!(journal.load().unwrap(), Some(rec("fetching", 1)));
        assert_eq!(reload(tmp.path()).unwrap(), (Some(rec("fetching", 1)), 1));
    }

    #[test]
    fn stores_alternate_between_copies_and_load_returns_the_newest() {
        let tmp = tempfile::tempdir().unwrap();
        let mut journal = open(tmp.path());
        for generation in 1..=10u64 {
            let record = rec("trial", generation as u32);
            journal.store(&record).unwrap();
            assert_eq!(journal.generation(), generation);
            // Generation g went into the copy that did not hold g - 1.
            let written = copy(tmp.path(), if generation % 2 == 1 { 0 } else { 1 });
            let (on_disk, value) = decode_bytes(&fs::read(&written).unwrap()).unwrap();
            assert_eq!((on_disk, &value), (generation, &record));
            if generation > 1 {
                let other = copy(tmp.path(), if generation % 2 == 1 { 1 } else { 0 });
                let (previous, _) = decode_bytes(&fs::read(&other).unwrap()).unwrap();
                assert_eq!(previous, generation - 1);
            }
            assert_eq!(reload(tmp.path()).unwrap(), (Some(record), generation));
        }
    }

    #[test]
    fn a_flipped_byte_anywhere_in_either_copy_falls_back_to_the_other() {
        let tmp = tempfile::tempdir().unwrap();
        let originals = two_generations(tmp.path());
        for index in 0..2 {
            for at in 0..originals[index].len() {
                let mut damaged = originals[index].clone();
                damaged[at] ^= 0xff;
                fs::write(copy(tmp.path(), index), &damaged).unwrap();
                fs::write(copy(tmp.path(), 1 - index), &originals[1 - index]).unwrap();
                let part = if at < HEADER_LEN { "header" } else { "body" };
                assert_falls_back(
                    tmp.path(),
                    index,
                    &format!("copy {index}, {part} byte {at}"),
                );
            }
        }
    }

    #[test]
    fn truncation_to_every_length_falls_back_to_the_other_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let originals = two_generations(tmp.path());
        for index in 0..2 {
            for len in 0..originals[index].len() {
                fs::write(copy(tmp.path(), index), &originals[index][..len]).unwrap();
                fs::write(copy(tmp.path(), 1 - index), &originals[1 - index]).unwrap();
                assert_falls_back(tmp.path(), index, &format!("copy {index} cut to {len}"));
            }
        }
    }

    #[test]
    fn after_the_newest_copy_is_damaged_a_store_overwrites_it_not_the_previous_one() {
        let tmp = tempfile::tempdir().unwrap();
        let originals = two_generations(tmp.path());
        fs::write(copy(tmp.path(), 1), &originals[1][..10]).unwrap();
        let mut journal = open(tmp.path());
        assert_eq!(journal.load().unwrap(), Some(rec("fetching", 1)));
        journal.store(&rec("failed", 3)).unwrap();
        assert_eq!(journal.generation(), 2);
        assert_eq!(fs::read(copy(tmp.path(), 0)).unwrap(), originals[0]);
        assert_eq!(reload(tmp.path()).unwrap(), (Some(rec("failed", 3)), 2));
    }

    #[test]
    fn both_copies_damaged_is_an_error_naming_both_files() {
        let tmp = tempfile::tempdir().unwrap();
        let originals = two_generations(tmp.path());
        let mut flipped = originals[0].clone();
        flipped[HEADER_LEN + 2] ^= 0x20;
        fs::write(copy(tmp.path(), 0), &flipped).unwrap();
        fs::write(copy(tmp.path(), 1), &originals[1][..12]).unwrap();
        let error = reload(tmp.path()).unwrap_err();
        assert!(matches!(error, StateError::BothDamaged { .. }), "{error:?}");
        let message = error.to_string();
        for needle in [
            copy(tmp.path(), 0).display().to_string(),
            copy(tmp.path(), 1).display().to_string(),
            "checksum mismatch".to_owned(),
            format!("truncated: 12 of the {HEADER_LEN} header bytes"),
            "remove both files".to_owned(),
        ] {
            assert!(message.contains(&needle), "{needle:?} not in {message:?}");
        }
        // A store cannot paper over it either.
        assert!(open(tmp.path()).store(&rec("idle", 0)).is_err());
    }

    #[test]
    fn the_only_copy_damaged_is_an_error_not_an_empty_journal() {
        let tmp = tempfile::tempdir().unwrap();
        open(tmp.path()).store(&rec("fetching", 1)).unwrap();
        let path = copy(tmp.path(), 0);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let error = reload(tmp.path()).unwrap_err();
        assert!(
            matches!(error, StateError::OnlyCopyDamaged { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("journal.1"), "{message}");
    }

    #[test]
    fn a_leftover_temp_file_from_a_torn_write_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("journal.0.tmp"), b"AIRLOCK-JOUR").unwrap();
        assert_eq!(reload(tmp.path()).unwrap(), (None, 0));

        two_generations(tmp.path());
        fs::write(tmp.path().join("journal.0.tmp"), b"AIRLOCK-JOURNAL\0\x01").unwrap();
        fs::write(tmp.path().join("journal.1.tmp"), b"").unwrap();
        assert_eq!(reload(tmp.path()).unwrap(), (Some(rec("installed", 2)), 2));
        let mut journal = open(tmp.path());
        journal.load().unwrap();
        journal.store(&rec("trial", 3)).unwrap();
        assert_eq!(reload(tmp.path()).unwrap(), (Some(rec("trial", 3)), 3));
    }

    #[test]
    fn generation_increases_monotonically_across_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let mut last = 0;
        for round in 0..3 {
            let mut journal = open(tmp.path());
            journal.load().unwrap();
            assert_eq!(journal.generation(), last);
            for _ in 0..3 {
                journal.store(&rec("trial", round)).unwrap();
                assert_eq!(journal.generation(), last + 1);
                last += 1;
            }
        }
        // A store on a handle that was never loaded still continues the sequence and keeps the
        // newest record (generation 9, in journal.0) as the fallback.
        let newest = fs::read(copy(tmp.path(), 0)).unwrap();
        let mut journal = open(tmp.path());
        journal.store(&rec("committed", 10)).unwrap();
        assert_eq!(journal.generation(), 10);
        assert_eq!(fs::read(copy(tmp.path(), 0)).unwrap(), newest);
        assert_eq!(
            reload(tmp.path()).unwrap(),
            (Some(rec("committed", 10)), 10)
        );
    }

    #[test]
    fn an_over_large_length_field_is_refused_before_reading_the_body() {
        // The file is only a header: a reader that allocated and read the announced length
        // before checking it would report "truncated", not "too large".
        for len in [MAX_BODY_LEN as u32 + 1, u32::MAX] {
            let mut file = encode(1, &rec("idle", 0), Path::new("t")).unwrap();
            file.truncate(HEADER_LEN);
            file[28..32].copy_from_slice(&len.to_le_bytes());
            seal(&mut file);
            assert!(
                matches!(decode_bytes(&file), Err(Damage::BodyTooLarge { len: l }) if l == len),
                "{:?}",
                decode_bytes(&file)
            );
        }
    }

    #[test]
    fn a_body_of_exactly_the_limit_is_accepted() {
        let mut body = b"\"x\"".to_vec();
        body.resize(MAX_BODY_LEN - 1, b' ');
        body.push(b'\n');
        let mut file = encode(7, &(), Path::new("t")).unwrap();
        file.truncate(HEADER_LEN);
        file[28..32].copy_from_slice(&(MAX_BODY_LEN as u32).to_le_bytes());
        file.extend_from_slice(&body);
        seal(&mut file);
        let decoded: (u64, String) = decode(&mut &file[..]).unwrap().unwrap();
        assert_eq!(decoded, (7, "x".to_owned()));
    }

    #[test]
    fn each_kind_of_damage_is_named() {
        let good = encode(3, &rec("trial", 1), Path::new("t")).unwrap();
        let with = |edit: &dyn Fn(&mut Vec<u8>), reseal: bool| {
            let mut file = good.clone();
            edit(&mut file);
            if reseal {
                seal(&mut file);
            }
            decode_bytes(&file)
        };
        assert_eq!(decode_bytes(&good).unwrap(), (3, rec("trial", 1)));
        assert!(matches!(
            with(&|f| f[0] = b'X', true),
            Err(Damage::BadMagic)
        ));
        assert!(matches!(
            with(&|f| f[36] = b' ', true),
            Err(Damage::BadMagic)
        ));
        assert!(matches!(
            with(&|f| f[16] = 2, true),
            Err(Damage::UnknownVersion { found: 2 })
        ));
        let len = good.len();
        assert!(matches!(
            with(&|f| f.truncate(len - 5), false),
            Err(Damage::Truncated { got, expected }) if got == len - 5 && expected == len
        ));
        assert!(matches!(
            with(&|f| f.push(b'\n'), false),
            Err(Damage::TrailingBytes { .. })
        ));
        assert!(matches!(
            with(&|f| f[25] ^= 1, false),
            Err(Damage::ChecksumMismatch { .. })
        ));
        let not_json = |f: &mut Vec<u8>| {
            let body = HEADER_LEN;
            f[body] = b'[';
        };
        assert!(matches!(with(&not_json, true), Err(Damage::InvalidBody(_))));
        // Well-formed JSON of the wrong shape is refused too.
        let wrong_shape = encode(3, &[1, 2, 3], Path::new("t")).unwrap();
        assert!(matches!(
            decode_bytes(&wrong_shape),
            Err(Damage::InvalidBody(_))
        ));
    }

    #[test]
    fn a_record_over_the_limit_is_refused_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let originals = two_generations(tmp.path());
        let mut journal = open(tmp.path());
        let huge = rec(&"x".repeat(MAX_BODY_LEN), 0);
        let error = journal.store(&huge).unwrap_err();
        assert!(
            matches!(error, StateError::RecordTooLarge { .. }),
            "{error:?}"
        );
        assert_eq!(
            [0, 1].map(|i| fs::read(copy(tmp.path(), i)).unwrap()),
            originals
        );
        assert_eq!(reload(tmp.path()).unwrap(), (Some(rec("installed", 2)), 2));
    }

    #[test]
    fn the_record_is_the_last_line_of_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        two_generations(tmp.path());
        let bytes = fs::read(copy(tmp.path(), 1)).unwrap();
        assert_eq!(bytes[..16], *b"AIRLOCK-JOURNAL\0");
        let body = bytes.strip_suffix(b"\n").unwrap();
        let start = body.iter().rposition(|&b| b == b'\n').unwrap() + 1;
        assert_eq!(start, HEADER_LEN);
        let last_line: Record = serde_json::from_slice(&body[start..]).unwrap();
        assert_eq!(last_line, rec("installed", 2));
    }
}
