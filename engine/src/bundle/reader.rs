//! Reading a bundle front to back from any byte stream, verifying each link of the chain before
//! handing out anything that depends on it: the manifest's signatures first, then each plugin
//! and index against the manifest, then each chunk against its index.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

use super::chunk::ChunkDecoder;
use super::delta::BundleLayout;
use super::index::ChunkIndex;
use super::manifest::{MANIFEST_MAX, Manifest, PluginInfo, PrecompiledInfo};
use super::signature::{SIGNATURE_FILE_MAX, SignatureFile};
use super::tarstream::{BLOCK, BundleInput, EntryHeader, TarStream};
use super::{BundleError, ChunkEntry};
use crate::trust::TrustPolicy;

/// The largest plugin a bundle may carry (Python and JavaScript components reach tens of MiB).
pub const PLUGIN_MAX: u64 = 128 * 1024 * 1024;

/// A chunk whose bytes matched the signed index.
#[derive(Debug)]
pub struct VerifiedChunk<'a> {
    /// Position of the chunk in its payload's index.
    pub number: u64,
    /// Offset of the chunk in the uncompressed payload.
    pub offset: u64,
    pub data: &'a [u8],
}

/// What the reader is positioned at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Before plugin `n`.
    Plugin(usize),
    /// After plugin `plugin`'s component, before its precompiled form `form`.
    Precompiled {
        plugin: usize,
        form: usize,
    },
    /// Before index `n`.
    Index(usize),
    /// Before the header of payload `n`.
    PayloadHeader(usize),
    /// Inside payload `payload`, before chunk `chunk`, which starts at `offset` of the
    /// uncompressed payload.
    Chunk {
        payload: usize,
        chunk: u64,
        offset: u64,
    },
    /// After the last payload, before the end-of-archive marker.
    End,
    Finished,
}

/// A bundle being read in order. See [`crate::bundle`] for the format.
pub struct BundleReader<R> {
    tar: TarStream<R>,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    signatures: SignatureFile,
    signers: Vec<String>,
    indexes: Vec<ChunkIndex>,
    at: Position,
    stored: Vec<u8>,
    plain: Vec<u8>,
    decoder: ChunkDecoder,
    payload_entry: Option<EntryHeader>,
    /// Where `manifest.sig` (with its padding) ends: the layout follows from the manifest.
    after_signatures: u64,
}

impl<R: BundleInput> BundleReader<R> {
    /// Opens a bundle and checks the manifest's signatures against `trust` before anything else.
    pub fn open(input: R, trust: &TrustPolicy) -> Result<Self, BundleError> {
        let mut reader = Self::open_unverified(input)?;
        reader.signers = trust.verify(&reader.manifest_bytes, &reader.signatures.signatures)?;
        Ok(reader)
    }

    /// Opens a bundle without checking signatures: for `inspect` and for adding a signature.
    /// Indexes and chunks are still checked against the (unverified) manifest.
    pub fn open_unverified(input: R) -> Result<Self, BundleError> {
        let mut tar = TarStream::new(input);
        let entry = expect_entry(&mut tar, "manifest.json", MANIFEST_MAX)?;
        let manifest_bytes = tar.read_entry(&entry)?;
        let manifest = Manifest::parse(&manifest_bytes)?;
        let entry = expect_entry(&mut tar, "manifest.sig", SIGNATURE_FILE_MAX)?;
        let signatures = SignatureFile::parse(&tar.read_entry(&entry)?)?;
        let after_signatures = tar.position();
        Ok(Self {
            tar,
            manifest,
            manifest_bytes,
            signatures,
            signers: Vec::new(),
            indexes: Vec::new(),
            at: Position::Plugin(0),
            stored: Vec::new(),
            plain: Vec::new(),
            decoder: ChunkDecoder::new()
                .map_err(|e| BundleError::io("starting the zstd decoder", e))?,
            payload_entry: None,
            after_signatures,
        })
    }

    /// Where every entry of the bundle lies, as the manifest describes it (a bundle that does
    /// not match is refused when the reader gets there).
    pub fn layout(&self) -> BundleLayout {
        BundleLayout::new(&self.manifest, self.after_signatures)
    }

    /// The input the bundle is read from, e.g. to tell a source which ranges will be read.
    pub fn input_mut(&mut self) -> &mut R {
        self.tar.input_mut()
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The exact signed bytes of `manifest.json`.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    pub fn signatures(&self) -> &SignatureFile {
        &self.signatures
    }

    /// Ids of the trusted keys whose signatures were verified (empty when opened unverified).
    pub fn signers(&self) -> &[String] {
        &self.signers
    }

    /// Absolute offset in the bundle of the next byte to be read.
    pub fn position(&self) -> u64 {
        self.tar.position()
    }

    /// Reads the next bundled plugin's component, verified against the manifest (checking and
    /// skipping the precompiled forms of the one before); `None` after the last.
    pub fn next_plugin(&mut self) -> Result<Option<(PluginInfo, Vec<u8>)>, BundleError> {
        self.read_precompiled("", &mut io::sink())?;
        let Position::Plugin(n) = self.at else {
            return Ok(None);
        };
        let Some(info) = self.manifest.plugins.get(n).cloned() else {
            self.at = Position::Index(0);
            return Ok(None);
        };
        let name = info.entry();
        let entry = expect_entry(&mut self.tar, &name, PLUGIN_MAX)?;
        if entry.size != info.size {
            return Err(BundleError::HashMismatch { entry: name });
        }
        let bytes = self.tar.read_entry(&entry)?;
        if Sha256::digest(&bytes).as_slice() != info.sha256.0 {
            return Err(BundleError::HashMismatch { entry: name });
        }
        self.at = Position::Precompiled { plugin: n, form: 0 };
        Ok(Some((info, bytes)))
    }

    /// Reads the precompiled forms of the plugin [`Self::next_plugin`] returned last: the one
    /// for `target` is written to `out`, the others are checked and dropped. Returns what the
    /// manifest says of the form written, or `None` when the plugin has none for `target`.
    /// An error means `out` holds bytes that must not be used: write to a temporary file.
    pub fn read_precompiled(
        &mut self,
        target: &str,
        out: &mut dyn Write,
    ) -> Result<Option<PrecompiledInfo>, BundleError> {
        let mut kept = None;
        while let Position::Precompiled { plugin, form } = self.at {
            let info = &self.manifest.plugins[plugin];
            let Some(precompiled) = info.precompiled.get(form).cloned() else {
                self.at = Position::Plugin(plugin + 1);
                break;
            };
            let name = info.precompiled_entry(&precompiled.target);
            let entry = expect_entry(&mut self.tar, &name, PLUGIN_MAX)?;
            if entry.size != precompiled.size {
                return Err(BundleError::HashMismatch { entry: name });
            }
            let keep = precompiled.target == target;
            let digest = if keep {
                self.tar.copy_entry(&entry, out)?
            } else {
                self.tar.copy_entry(&entry, &mut io::sink())?
            };
            if digest != precompiled.sha256.0 {
                return Err(BundleError::HashMismatch { entry: name });
            }
            if keep {
                kept = Some(precompiled);
            }
            self.at = Position::Precompiled {
                plugin,
                form: form + 1,
            };
        }
        Ok(kept)
    }

    /// Reads (skipping any plugins not yet read) and verifies every chunk index. After this,
    /// [`Self::position`] is the end of the bundle's head.
    pub fn read_indexes(&mut self) -> Result<&[ChunkIndex], BundleError> {
        while self.next_plugin()?.is_some() {}
        while let Position::Index(n) = self.at {
            let Some(payload) = self.manifest.payloads.get(n).cloned() else {
                self.at = Position::PayloadHeader(0);
                break;
            };
            let name = format!("payloads/{}.idx", payload.name);
            let entry = expect_entry(
                &mut self.tar,
                &name,
                ChunkIndex::encoded_len(payload.chunks),
            )?;
            let bytes = self.tar.read_entry(&entry)?;
            if Sha256::digest(&bytes).as_slice() != payload.index_sha256.0 {
                return Err(BundleError::HashMismatch { entry: name });
            }
            self.indexes.push(ChunkIndex::decode(&bytes, &payload)?);
            self.at = Position::Index(n + 1);
        }
        Ok(&self.indexes)
    }

    /// The verified index of payload `n` (after [`Self::read_indexes`]).
    pub fn index(&self, payload: usize) -> Option<&ChunkIndex> {
        self.indexes.get(payload)
    }

    /// Moves to the next payload (skipping the rest of the current one and any head not yet
    /// read); returns its position in the manifest, or `None` after the last.
    pub fn next_payload(&mut self) -> Result<Option<usize>, BundleError> {
        self.read_indexes()?;
        if let Position::Chunk { payload, chunk, .. } = self.at {
            let remaining = self.indexes[payload].entries.len() as u64 - chunk;
            self.skip_chunks(remaining)?;
        }
        let Position::PayloadHeader(n) = self.at else {
            return Ok(None);
        };
        let Some(payload) = self.manifest.payloads.get(n) else {
            self.at = Position::End;
            return Ok(None);
        };
        let name = format!("payloads/{}", payload.name);
        let entry = expect_entry(&mut self.tar, &name, payload.stored_size)?;
        if entry.size != payload.stored_size {
            return Err(BundleError::UnexpectedEntry {
                offset: entry.data_offset - BLOCK,
                found: format!("{name} of {} bytes", entry.size),
                expected: format!("{} bytes as the manifest says", payload.stored_size),
            });
        }
        self.payload_entry = Some(entry);
        self.at = Position::Chunk {
            payload: n,
            chunk: 0,
            offset: 0,
        };
        self.after_chunks()?;
        Ok(Some(n))
    }

    /// Reads the stored bytes of the next chunk of the current payload without decoding them,
    /// so a caller can decode and verify on other threads ([`decode_chunk`]). Returns the chunk's
    /// number and index entry; the stored bytes are in `buf`.
    pub fn next_stored_chunk(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> Result<Option<(u64, ChunkEntry)>, BundleError> {
        let Position::Chunk {
            payload,
            chunk,
            offset,
        } = self.at
        else {
            return Ok(None);
        };
        let entry = self.indexes[payload].entries[chunk as usize];
        buf.resize(entry.stored_length as usize, 0);
        let what = format!(
            "payload {} chunk {chunk}",
            self.manifest.payloads[payload].name
        );
        self.tar.read_exact(buf, &what)?;
        self.at = Position::Chunk {
            payload,
            chunk: chunk + 1,
            offset: offset + u64::from(entry.length),
        };
        self.after_chunks()?;
        Ok(Some((chunk, entry)))
    }

    /// Reads, decodes and verifies the next chunk of the current payload.
    pub fn next_chunk(&mut self) -> Result<Option<VerifiedChunk<'_>>, BundleError> {
        let Position::Chunk {
            payload, offset, ..
        } = self.at
        else {
            return Ok(None);
        };
        let mut stored = std::mem::take(&mut self.stored);
        let next = self.next_stored_chunk(&mut stored);
        self.stored = stored;
        let Some((number, entry)) = next? else {
            return Ok(None);
        };
        let info = &self.manifest.payloads[payload];
        self.decoder
            .decode(&entry, &self.stored, &mut self.plain)
            .map_err(|reason| BundleError::BadChunk {
                payload: info.name.clone(),
                chunk: number,
                offset,
                end: offset + u64::from(entry.length),
                reason,
            })?;
        Ok(Some(VerifiedChunk {
            number,
            offset,
            data: &self.plain,
        }))
    }

    /// Skips `n` chunks of the current payload without reading them (resume, delta).
    pub fn skip_chunks(&mut self, n: u64) -> Result<(), BundleError> {
        let Position::Chunk {
            payload,
            chunk,
            offset,
        } = self.at
        else {
            return Ok(());
        };
        let entries = &self.indexes[payload].entries;
        let end = chunk.saturating_add(n).min(entries.len() as u64);
        let skipped = &entries[chunk as usize..end as usize];
        let stored: u64 = skipped.iter().map(|e| u64::from(e.stored_length)).sum();
        let plain: u64 = skipped.iter().map(|e| u64::from(e.length)).sum();
        let what = format!("payload {}", self.manifest.payloads[payload].name);
        self.tar.skip(stored, &what)?;
        self.at = Position::Chunk {
            payload,
            chunk: end,
            offset: offset + plain,
        };
        self.after_chunks()
    }

    /// Checks that nothing follows the last payload but the end-of-archive marker.
    pub fn finish(&mut self) -> Result<(), BundleError> {
        while self.next_payload()?.is_some() {}
        if self.at == Position::End {
            let offset = self.tar.position();
            if let Some(extra) = self.tar.next_header()? {
                return Err(BundleError::UnexpectedEntry {
                    offset,
                    found: extra.name,
                    expected: "the end of the bundle".into(),
                });
            }
            self.tar.read_end_marker()?;
            self.at = Position::Finished;
        }
        Ok(())
    }

    /// Gives back the input, positioned wherever reading stopped.
    pub fn into_inner(self) -> R {
        self.tar.into_inner()
    }

    /// At the end of a payload's chunks: skip the entry's padding and move on.
    fn after_chunks(&mut self) -> Result<(), BundleError> {
        if let Position::Chunk { payload, chunk, .. } = self.at
            && chunk == self.indexes[payload].entries.len() as u64
        {
            if let Some(entry) = self.payload_entry.take() {
                self.tar.read_padding(&entry)?;
            }
            self.at = Position::PayloadHeader(payload + 1);
        }
        Ok(())
    }
}

/// Decodes and verifies stored chunk bytes against their index entry on any thread.
pub fn decode_chunk(entry: &ChunkEntry, stored: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    thread_local! {
        static DECODER: std::cell::RefCell<Option<ChunkDecoder>> = const { std::cell::RefCell::new(None) };
    }
    DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(ChunkDecoder::new().map_err(|e| e.to_string())?);
        }
        match slot.as_mut() {
            Some(decoder) => decoder.decode(entry, stored, out),
            None => Err("no zstd decoder".into()),
        }
    })
}

/// Reads the next header and checks that it is `name` and at most `limit` bytes.
fn expect_entry<R: BundleInput>(
    tar: &mut TarStream<R>,
    name: &str,
    limit: u64,
) -> Result<EntryHeader, BundleError> {
    let offset = tar.position();
    let entry = tar
        .next_header()?
        .ok_or_else(|| BundleError::UnexpectedEntry {
            offset,
            found: "the end of the archive".into(),
            expected: name.into(),
        })?;
    if entry.name != name {
        return Err(BundleError::UnexpectedEntry {
            offset,
            found: entry.name,
            expected: name.into(),
        });
    }
    if entry.size > limit {
        return Err(BundleError::EntryTooLarge {
            entry: entry.name,
            size: entry.size,
            limit,
        });
    }
    Ok(entry)
}
