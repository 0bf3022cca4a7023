//! The bundle format (`*.airlock`).
//!
//! A bundle is a plain POSIX ustar archive (`tar tvf` lists it) whose entries come in exactly
//! this order; a reader refuses anything else (a missing, extra, duplicated or reordered entry,
//! any entry type but a regular file, any other name):
//!
//! | # | entry                     | content                                                  |
//! |---|---------------------------|----------------------------------------------------------|
//! | 1 | `manifest.json`           | the [`Manifest`], UTF-8 JSON, at most 1 MiB              |
//! | 2 | `manifest.sig`            | the [`SignatureFile`], JSON, at most 64 KiB              |
//! | 3 | `plugins/<name>.wasm`     | one per manifest plugin, in manifest order, each followed |
//! |   | `plugins/<name>.<target>.cwasm` | by its precompiled forms, in manifest order        |
//! | 4 | `payloads/<name>.idx`     | one [`ChunkIndex`] per payload, in manifest order        |
//! | 5 | `payloads/<name>`         | one per payload, in manifest order: its stored chunks    |
//!
//! followed by the usual two zero blocks. Each entry is a 512-byte ustar header, the data, and
//! zero padding to a multiple of 512 bytes. Everything before the first payload data entry is
//! the bundle's *head*; a device that installs a delta fetches the head and then only the byte
//! ranges of the chunks it lacks.
//!
//! ## Chain of verification
//! `manifest.sig` holds detached ed25519 signatures over the exact bytes of `manifest.json`; the
//! device requires a threshold of distinct trusted keys. The manifest names the sha256 of every
//! plugin and every chunk index; each index names the sha256 of every chunk's uncompressed
//! bytes. A reader checks each link before it hands out a single byte that depends on it, so
//! nothing unverified ever reaches a slot or a plugin. The payload-wide sha256 in the manifest
//! names the content (for delta bases and for comparing with a slot); it is not recomputed when
//! installing, because the chunk chain already proves every byte.
//!
//! ## Chunks
//! Payloads are cut by content with FastCDC (16 KiB minimum, 64 KiB average, 256 KiB maximum),
//! so two versions of an image share most chunks. Each chunk is stored on its own: a complete
//! zstd frame, or the raw bytes when compression would not make it smaller. The stored chunks
//! of a payload follow each other without gaps; a chunk's offset in the entry is the sum of the
//! stored lengths before it, so an install can resume at any chunk.
//!
//! ## Compatibility
//! `format` in the manifest is the format version (currently 1); a reader refuses a newer one.
//! Fields a reader does not know are ignored, so they may only add information an older reader
//! can safely skip. An addition an older reader must not skip is named in the manifest's
//! `requires` list, and a reader refuses a bundle that requires anything it does not know:
//! `precompiled-plugins` marks a bundle whose plugins carry precompiled forms.

mod check;
mod chunk;
mod delta;
mod error;
mod index;
mod manifest;
mod reader;
mod signature;
mod spec;
mod tarstream;
mod writer;

pub use check::{VerifyReport, extract, open_file, verify};
pub use chunk::{CHUNK_AVG, CHUNK_MAX, CHUNK_MIN};
pub use delta::{
    BundleLayout, COALESCE_GAP, DeltaPlan, DiffReport, FIRST_REQUEST, PayloadDiff, PayloadSpan,
    diff,
};
pub use error::BundleError;
pub use index::{ChunkEntry, ChunkIndex};
pub use manifest::{
    Compression, FORMAT_VERSION, Manifest, PRECOMPILED_PLUGINS, PayloadInfo, PluginInfo,
    PrecompiledInfo, Sha256Hex, Target, check_slot_class,
};
pub use reader::{BundleReader, PLUGIN_MAX, VerifiedChunk, decode_chunk};
pub use signature::{SignatureEntry, SignatureFile};
pub use spec::{BundleSpec, PayloadSpec, PluginSpec, PrecompiledFile};
pub use tarstream::BundleInput;
pub use writer::{CreateOptions, create_bundle, sign_bundle};

#[cfg(test)]
mod tests;
