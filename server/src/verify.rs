//! Bundle uploads: streamed to a temporary file next to the artifacts, hashed on the way, then
//! verified in full (trusted signatures up to the threshold, every index and chunk) and refused
//! when expired, by the device's own rules, before they are kept under their SHA-256.

use std::io::Write;
use std::path::{Path, PathBuf};

use airlock::bundle::{self, BundleError, Manifest};
use airlock::trust::{self, AcceptanceError, TrustPolicy};
use axum::body::Body;
use futures_util::StreamExt;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Where an uploaded artifact lives (a verified bundle, or another updater's artifact).
pub fn artifact_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(format!("{sha256}.airlock"))
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the bundle is larger than the server's limit of {limit} bytes (--max-bundle-size)")]
    TooLarge { limit: u64 },
    #[error("the upload was cut: {0}")]
    Body(String),
    #[error("the upload is empty; send the bundle file as the request body")]
    Empty,
    #[error("storing the upload in {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
    #[error("the bundle failed verification: {0}")]
    Verify(#[from] BundleError),
    /// Good signatures, but no device would install it.
    #[error("{0}")]
    NotAccepted(#[from] AcceptanceError),
}

/// A verified bundle, still in its temporary file.
pub struct Verified {
    pub received: Received,
    pub manifest: Manifest,
    pub signers: Vec<String>,
}

/// The hashes hawkBit lists beside SHA-256 (hex). They only let a DDI client check its download:
/// a bundle's authenticity is its signature, which the device verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyHashes {
    pub sha1: String,
    pub md5: String,
}

/// Computes [`LegacyHashes`] from bytes given piece by piece.
#[derive(Default)]
struct LegacyHasher {
    sha1: Sha1,
    md5: Md5,
}

impl LegacyHasher {
    fn update(&mut self, piece: &[u8]) {
        self.sha1.update(piece);
        self.md5.update(piece);
    }

    fn finish(self) -> LegacyHashes {
        LegacyHashes {
            sha1: hex::encode(self.sha1.finalize()),
            md5: hex::encode(self.md5.finalize()),
        }
    }
}

/// SHA-1 and MD5 of a file, for artifacts kept before they were recorded at upload.
pub fn legacy_hashes(path: &Path) -> std::io::Result<LegacyHashes> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = LegacyHasher::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// An upload in its temporary file, hashed, not yet looked into.
pub struct Received {
    pub file: tempfile::NamedTempFile,
    pub sha256: String,
    /// The SHA-1 and MD5 DDI clients check, as hawkBit lists them.
    pub legacy: LegacyHashes,
    pub size: u64,
}

/// Streams `body` into `dir` and verifies it against `trust`.
pub async fn receive(
    body: Body,
    dir: &Path,
    limit: u64,
    trust: &TrustPolicy,
) -> Result<Verified, UploadError> {
    let received = stream_in(body, dir, limit).await?;
    let trust = trust.clone();
    let path = received.file.path().to_owned();
    let report = tokio::task::spawn_blocking(move || {
        bundle::verify(bundle::open_file(&path)?, &trust, &mut |_| {})
    })
    .await
    .map_err(|e| UploadError::Body(format!("verification task failed: {e}")))??;
    trust::check_unexpired(&report.manifest.claims()?, std::time::SystemTime::now())?;
    Ok(Verified {
        received,
        manifest: report.manifest,
        signers: report.signers,
    })
}

/// Streams `body` into a temporary file in `dir`, hashing it on the way: an artifact for
/// another updater (`.swu`, …), which the server cannot verify, or a bundle before it is.
pub async fn stream_in(body: Body, dir: &Path, limit: u64) -> Result<Received, UploadError> {
    let io = |source| UploadError::Io {
        dir: dir.display().to_string(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(dir)
        .map_err(io)?;
    let mut hasher = Sha256::new();
    let mut legacy = LegacyHasher::default();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| UploadError::Body(e.to_string()))?;
        size += piece.len() as u64;
        if size > limit {
            return Err(UploadError::TooLarge { limit });
        }
        hasher.update(&piece);
        legacy.update(&piece);
        // Small synchronous writes into the page cache; the verification below is the slow part.
        file.write_all(&piece).map_err(io)?;
    }
    if size == 0 {
        return Err(UploadError::Empty);
    }
    file.as_file().sync_all().map_err(io)?;
    Ok(Received {
        file,
        sha256: hex::encode(hasher.finalize()),
        legacy: legacy.finish(),
        size,
    })
}

/// Moves an upload to its final name, durably (idempotent: equal content, equal name).
pub fn keep(
    file: tempfile::NamedTempFile,
    sha256: &str,
    dir: &Path,
) -> Result<PathBuf, UploadError> {
    let path = artifact_path(dir, sha256);
    airlock::fsutil::persist(file, &path).map_err(|source| UploadError::Io {
        dir: dir.display().to_string(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_hashes_of_a_file_are_its_sha1_and_md5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            legacy_hashes(&path).unwrap(),
            LegacyHashes {
                sha1: "a9993e364706816aba3e25717850c26c9cd0d89d".into(),
                md5: "900150983cd24fb0d6963f7d28e17f72".into(),
            }
        );
        let e = legacy_hashes(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
