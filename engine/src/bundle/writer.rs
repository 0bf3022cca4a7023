//! Building bundles and adding signatures to them. Both stream: memory stays bounded by a few
//! batches of chunks whatever the payload size.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::SystemTime;

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use super::BundleError;
use super::chunk::{CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, ChunkEncoder};
use super::index::{ChunkEntry, ChunkIndex};
use super::manifest::{
    Compression, FORMAT_VERSION, Manifest, PRECOMPILED_PLUGINS, PayloadInfo, PluginInfo,
    PrecompiledInfo, Sha256Hex,
};
use super::reader::{BundleReader, PLUGIN_MAX};
use super::signature::SignatureFile;
use super::spec::{BundleSpec, PayloadSpec};
use crate::fsutil;

/// How to build a bundle.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// zstd level for payloads that are compressed (1..=19; 3 is a good default).
    pub level: i32,
    /// Store every chunk raw, whatever the bundle description says.
    pub no_compress: bool,
    /// Threads compressing chunks.
    pub threads: usize,
    /// Creation time written to the manifest (now by default).
    pub created: SystemTime,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            level: 3,
            no_compress: false,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            created: SystemTime::now(),
        }
    }
}

/// Chunks compressed together by the worker threads.
const BATCH: usize = 64;

/// Builds the bundle described by `spec` into `out`, signed by every key in `keys`.
/// `progress` is called with the number of payload bytes processed so far.
pub fn create_bundle(
    spec: &BundleSpec,
    keys: &[SigningKey],
    out: &Path,
    options: &CreateOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Manifest, BundleError> {
    if !(1..=22).contains(&options.level) {
        return Err(BundleError::invalid(format!(
            "compression level {} is outside 1..=22",
            options.level
        )));
    }
    let out_dir = fsutil::parent_dir(out);
    let mut payloads = Vec::new();
    let mut done = 0u64;
    for p in &spec.payloads {
        let compress =
            !options.no_compress && p.compression.unwrap_or(Compression::Zstd) == Compression::Zstd;
        let built = build_payload(
            p,
            compress.then_some(options.level),
            options.threads.max(1),
            out_dir,
            &mut |n| progress(done + n),
        )?;
        done += built.info.size;
        payloads.push(built);
    }
    let mut plugins = Vec::new();
    for p in &spec.plugins {
        if !p.precompile.is_empty() && p.precompiled.is_empty() {
            return Err(BundleError::invalid(format!(
                "plugin {:?} asks for precompiled forms ({}) but none were made; `airlock bundle \
                 create` of the full build makes them",
                p.name,
                p.precompile.join(", ")
            )));
        }
        let (size, sha256) = hash_plugin_file(&p.file)?;
        let mut precompiled = Vec::new();
        for form in &p.precompiled {
            let (size, sha256) = hash_plugin_file(&form.file)?;
            precompiled.push(PrecompiledInfo {
                target: form.target.clone(),
                size,
                sha256,
            });
        }
        plugins.push(PluginInfo {
            name: p.name.clone(),
            size,
            sha256,
            world: p.world.clone(),
            precompiled,
        });
    }
    let requires = if plugins.iter().any(|p| !p.precompiled.is_empty()) {
        vec![PRECOMPILED_PLUGINS.to_string()]
    } else {
        Vec::new()
    };
    let created = humantime::format_rfc3339_seconds(options.created).to_string();
    let manifest = Manifest {
        format: FORMAT_VERSION,
        requires,
        name: spec.name.clone(),
        version: spec.version.clone(),
        description: spec.description.clone(),
        compatible: spec.compatible.clone(),
        created,
        expires: spec.expires.clone(),
        payloads: payloads.iter().map(|b| b.info.clone()).collect(),
        plugins,
    };
    manifest.validate()?;
    let manifest_bytes = manifest.to_bytes();
    let mut signatures = SignatureFile::default();
    for key in keys {
        signatures.add(&manifest_bytes, key);
    }
    let mtime = unix_seconds(options.created);

    let write_err = |e| BundleError::io(format!("writing {}", out.display()), e);
    let tmp = NamedTempFile::new_in(out_dir).map_err(write_err)?;
    let mut tar = BufWriter::with_capacity(1 << 20, tmp);
    write_entry(&mut tar, "manifest.json", mtime, &manifest_bytes).map_err(write_err)?;
    write_entry(&mut tar, "manifest.sig", mtime, &signatures.to_bytes()).map_err(write_err)?;
    for (spec, info) in spec.plugins.iter().zip(&manifest.plugins) {
        let files = std::iter::once((info.entry(), &spec.file, info.size)).chain(
            spec.precompiled
                .iter()
                .zip(&info.precompiled)
                .map(|(file, form)| (info.precompiled_entry(&form.target), &file.file, form.size)),
        );
        for (name, path, size) in files {
            let mut file = File::open(path)
                .map_err(|e| BundleError::io(format!("reading {}", path.display()), e))?;
            copy_entry(&mut tar, &name, mtime, size, &mut file).map_err(write_err)?;
        }
    }
    for b in &payloads {
        let idx = b.index.encode();
        write_entry(
            &mut tar,
            &format!("payloads/{}.idx", b.info.name),
            mtime,
            &idx,
        )
        .map_err(write_err)?;
    }
    for b in payloads {
        let mut data = b.stored.reopen().map_err(write_err)?;
        data.seek(SeekFrom::Start(0)).map_err(write_err)?;
        let name = format!("payloads/{}", b.info.name);
        copy_entry(&mut tar, &name, mtime, b.info.stored_size, &mut data).map_err(write_err)?;
    }
    // The end-of-archive marker: two zero blocks.
    tar.write_all(&[0u8; 1024]).map_err(write_err)?;
    let tmp = tar.into_inner().map_err(|e| write_err(e.into_error()))?;
    persist(tmp, out)?;
    Ok(manifest)
}

/// A payload chunked and compressed into a temporary file, with its index.
struct BuiltPayload {
    info: PayloadInfo,
    index: ChunkIndex,
    stored: NamedTempFile,
}

fn build_payload(
    spec: &PayloadSpec,
    level: Option<i32>,
    threads: usize,
    tmp_dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<BuiltPayload, BundleError> {
    let path = &spec.file;
    let read_err = |e| {
        BundleError::io(
            format!("reading payload {:?} from {}", spec.name, path.display()),
            e,
        )
    };
    let file = File::open(path).map_err(read_err)?;
    let stored = NamedTempFile::new_in(tmp_dir)
        .map_err(|e| BundleError::io("creating a temporary file", e))?;
    let mut writer = BufWriter::with_capacity(1 << 20, stored.reopen().map_err(read_err)?);
    let mut whole = Sha256::new();
    let mut entries: Vec<ChunkEntry> = Vec::new();
    let (mut size, mut stored_size) = (0u64, 0u64);

    let chunker = fastcdc::v2020::StreamCDC::new(
        BufReader::with_capacity(1 << 20, file),
        CHUNK_MIN as u32,
        CHUNK_AVG as u32,
        CHUNK_MAX as u32,
    );
    let mut chunks = chunker.map(|c| c.map(|c| c.data));
    loop {
        let batch: Vec<Vec<u8>> = chunks
            .by_ref()
            .take(BATCH)
            .collect::<Result<_, _>>()
            .map_err(|e| read_err(io::Error::other(e.to_string())))?;
        if batch.is_empty() {
            break;
        }
        let encoded = encode_batch(&batch, level, threads, &mut whole)
            .map_err(|e| BundleError::io("compressing", e))?;
        for (entry, bytes) in encoded {
            writer
                .write_all(&bytes)
                .map_err(|e| BundleError::io("writing a temporary file", e))?;
            size += u64::from(entry.length);
            stored_size += u64::from(entry.stored_length);
            entries.push(entry);
        }
        progress(size);
    }
    writer
        .flush()
        .map_err(|e| BundleError::io("writing a temporary file", e))?;
    let index = ChunkIndex { entries };
    let info = PayloadInfo {
        name: spec.name.clone(),
        target: spec.target()?,
        size,
        sha256: Sha256Hex(whole.finalize().into()),
        chunks: index.entries.len() as u64,
        stored_size,
        index_sha256: Sha256Hex(Sha256::digest(index.encode()).into()),
        compression: if level.is_some() {
            Compression::Zstd
        } else {
            Compression::None
        },
    };
    Ok(BuiltPayload {
        info,
        index,
        stored,
    })
}

/// Compresses a batch on `threads` threads while this thread feeds the payload-wide hash.
fn encode_batch(
    batch: &[Vec<u8>],
    level: Option<i32>,
    threads: usize,
    whole: &mut Sha256,
) -> io::Result<Vec<(ChunkEntry, Vec<u8>)>> {
    let per_thread = batch.len().div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = batch
            .chunks(per_thread)
            .map(|part| {
                s.spawn(move || {
                    let mut encoder = ChunkEncoder::new(level)?;
                    part.iter()
                        .map(|c| encoder.encode(c))
                        .collect::<io::Result<Vec<_>>>()
                })
            })
            .collect();
        for c in batch {
            whole.update(c);
        }
        let mut out = Vec::with_capacity(batch.len());
        for w in workers {
            out.extend(
                w.join()
                    .map_err(|_| io::Error::other("a compression thread panicked"))??,
            );
        }
        Ok(out)
    })
}

/// Adds a signature by `key` to the bundle at `path` in place. The manifest and payloads stay
/// byte-identical; only `manifest.sig` is rewritten. The bundle's content is checked against
/// its manifest first, so a signer never vouches for a corrupt bundle.
pub fn sign_bundle(path: &Path, key: &SigningKey) -> Result<SignatureFile, BundleError> {
    let open =
        || File::open(path).map_err(|e| BundleError::io(format!("opening {}", path.display()), e));
    let mut check = BundleReader::open_unverified(BufReader::new(open()?))?;
    while check.next_payload()?.is_some() {
        while check.next_chunk()?.is_some() {}
    }
    check.finish()?;

    let reader = BundleReader::open_unverified(open()?)?;
    let manifest_bytes = reader.manifest_bytes().to_vec();
    let mut signatures = reader.signatures().clone();
    signatures.add(&manifest_bytes, key);
    let rest_offset = reader.position();
    let mtime = reader
        .manifest()
        .created
        .parse::<humantime::Timestamp>()
        .map(|t| unix_seconds(t.into()))
        .unwrap_or(0);
    let mut rest = reader.into_inner();
    rest.seek(SeekFrom::Start(rest_offset))
        .map_err(|e| BundleError::io("reading the bundle", e))?;

    let write_err = |e| BundleError::io(format!("writing {}", path.display()), e);
    let tmp = NamedTempFile::new_in(fsutil::parent_dir(path)).map_err(write_err)?;
    let mut out = BufWriter::with_capacity(1 << 20, tmp);
    let sig_bytes = signatures.to_bytes();
    write_entry(&mut out, "manifest.json", mtime, &manifest_bytes).map_err(write_err)?;
    write_entry(&mut out, "manifest.sig", mtime, &sig_bytes).map_err(write_err)?;
    // The rest (plugins, indexes, payloads, end marker) is copied as raw tar blocks.
    io::copy(&mut BufReader::with_capacity(1 << 20, rest), &mut out).map_err(write_err)?;
    let tmp = out.into_inner().map_err(|e| write_err(e.into_error()))?;
    persist(tmp, path)?;
    Ok(signatures)
}

fn entry_header(name: &str, mtime: u64, size: u64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// Writes one entry (header, data, padding) without a `tar::Builder`, which would end the
/// archive when it is done.
fn write_entry(out: &mut impl Write, name: &str, mtime: u64, data: &[u8]) -> io::Result<()> {
    out.write_all(entry_header(name, mtime, data.len() as u64)?.as_bytes())?;
    out.write_all(data)?;
    let padding = (512 - data.len() % 512) % 512;
    out.write_all(&[0u8; 512][..padding])
}

/// Writes one entry whose data comes from a file. Between two files `io::copy` lets the kernel
/// move the bytes (copy_file_range), so a payload is not copied through user space again.
fn copy_entry(
    out: &mut BufWriter<NamedTempFile>,
    name: &str,
    mtime: u64,
    size: u64,
    data: &mut File,
) -> io::Result<()> {
    out.write_all(entry_header(name, mtime, size)?.as_bytes())?;
    out.flush()?;
    let copied = io::copy(&mut data.take(size), out.get_mut().as_file_mut())?;
    // A source that changes size while we read it must not produce a bundle with a lying header.
    if copied != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{name} shrank while it was being written"),
        ));
    }
    let padding = ((512 - size % 512) % 512) as usize;
    out.write_all(&[0u8; 512][..padding])
}

/// Moves the finished temporary file into place, durably.
fn persist(tmp: NamedTempFile, out: &Path) -> Result<(), BundleError> {
    fsutil::persist(tmp, out).map_err(|e| BundleError::io(format!("writing {}", out.display()), e))
}

/// Size and sha256 of a plugin file (a component or a precompiled form), within [`PLUGIN_MAX`].
fn hash_plugin_file(path: &Path) -> Result<(u64, Sha256Hex), BundleError> {
    let (size, sha256) = hash_file(path)?;
    if size > PLUGIN_MAX {
        return Err(BundleError::EntryTooLarge {
            entry: path.display().to_string(),
            size,
            limit: PLUGIN_MAX,
        });
    }
    Ok((size, sha256))
}

fn hash_file(path: &Path) -> Result<(u64, Sha256Hex), BundleError> {
    let mut file =
        File::open(path).map_err(|e| BundleError::io(format!("reading {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher)
        .map_err(|e| BundleError::io(format!("reading {}", path.display()), e))?;
    Ok((size, Sha256Hex(hasher.finalize().into())))
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
