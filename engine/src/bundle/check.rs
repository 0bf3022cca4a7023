//! Whole-bundle operations built on the reader: verify everything, or extract one payload.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::reader::BundleReader;
use super::tarstream::BundleInput;
use super::{BundleError, Manifest};
use crate::fsutil;
use crate::trust::TrustPolicy;

/// What a complete verification proved.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub manifest: Manifest,
    /// Trusted keys whose signatures are valid.
    pub signers: Vec<String>,
    pub chunks: u64,
    pub bytes: u64,
}

/// Checks the signatures, every plugin, every index and every chunk, and that nothing follows.
/// `progress` gets the number of payload bytes verified so far.
pub fn verify<R: BundleInput>(
    input: R,
    trust: &TrustPolicy,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, BundleError> {
    let mut reader = BundleReader::open(input, trust)?;
    while reader.next_plugin()?.is_some() {}
    let (mut chunks, mut bytes) = (0u64, 0u64);
    while reader.next_payload()?.is_some() {
        while let Some(chunk) = reader.next_chunk()? {
            chunks += 1;
            bytes += chunk.data.len() as u64;
            progress(bytes);
        }
    }
    reader.finish()?;
    Ok(VerifyReport {
        manifest: reader.manifest().clone(),
        signers: reader.signers().to_vec(),
        chunks,
        bytes,
    })
}

/// Writes payload `name` to `out`, verified chunk by chunk. The file appears under its name only
/// once every chunk has been verified and written. Without `trust` only the bundle's internal
/// chain (manifest → index → chunk) is checked, not who signed the manifest.
pub fn extract<R: BundleInput>(
    input: R,
    trust: Option<&TrustPolicy>,
    name: &str,
    out: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, BundleError> {
    let mut reader = match trust {
        Some(trust) => BundleReader::open(input, trust)?,
        None => BundleReader::open_unverified(input)?,
    };
    let Some(wanted) = reader
        .manifest()
        .payloads
        .iter()
        .position(|p| p.name == name)
    else {
        let names: Vec<_> = reader
            .manifest()
            .payloads
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        return Err(BundleError::NoSuchPayload(name.into(), names.join(", ")));
    };
    let write_err = |e| BundleError::io(format!("writing {}", out.display()), e);
    let tmp = tempfile::NamedTempFile::new_in(fsutil::parent_dir(out)).map_err(write_err)?;
    let mut writer = BufWriter::with_capacity(1 << 20, tmp);
    let mut written = 0u64;
    while let Some(n) = reader.next_payload()? {
        if n != wanted {
            continue;
        }
        while let Some(chunk) = reader.next_chunk()? {
            writer.write_all(chunk.data).map_err(write_err)?;
            written += chunk.data.len() as u64;
            progress(written);
        }
        break;
    }
    let tmp = writer.into_inner().map_err(|e| write_err(e.into_error()))?;
    crate::fsutil::persist(tmp, out).map_err(write_err)?;
    Ok(written)
}

/// Opens a bundle file for reading with a large buffer.
pub fn open_file(path: &Path) -> Result<std::io::BufReader<File>, BundleError> {
    let file = File::open(path)
        .map_err(|e| BundleError::io(format!("opening bundle {}", path.display()), e))?;
    Ok(std::io::BufReader::with_capacity(1 << 20, file))
}
