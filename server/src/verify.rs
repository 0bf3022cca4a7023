//! Bundle uploads: streamed to a temporary file next to the artifacts, hashed on the way, then
//! verified in full (trusted signatures up to the threshold, every index and chunk) and refused
//! when expired, by the device's own rules, before they are kept under their SHA-256.

use std::io::Write;
use std::path::{Path, PathBuf};

use airlock::bundle::{self, BundleError, Manifest};
use airlock::trust::{self, AcceptanceError, TrustPolicy};
use axum::body::Body;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// Where a verified bundle lives.
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
    pub file: tempfile::NamedTempFile,
    pub manifest: Manifest,
    pub signers: Vec<String>,
    pub sha256: String,
    pub size: u64,
}

/// Streams `body` into `dir` and verifies it against `trust`.
pub async fn receive(
    body: Body,
    dir: &Path,
    limit: u64,
    trust: &TrustPolicy,
) -> Result<Verified, UploadError> {
    let io = |source| UploadError::Io {
        dir: dir.display().to_string(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(dir)
        .map_err(io)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| UploadError::Body(e.to_string()))?;
        size += piece.len() as u64;
        if size > limit {
            return Err(UploadError::TooLarge { limit });
        }
        hasher.update(&piece);
        // Small synchronous writes into the page cache; the verification below is the slow part.
        file.write_all(&piece).map_err(io)?;
    }
    if size == 0 {
        return Err(UploadError::Empty);
    }
    file.as_file().sync_all().map_err(io)?;
    let sha256 = hex::encode(hasher.finalize());
    let trust = trust.clone();
    let path = file.path().to_owned();
    let report = tokio::task::spawn_blocking(move || {
        bundle::verify(bundle::open_file(&path)?, &trust, &mut |_| {})
    })
    .await
    .map_err(|e| UploadError::Body(format!("verification task failed: {e}")))??;
    trust::check_unexpired(&report.manifest.claims()?, std::time::SystemTime::now())?;
    Ok(Verified {
        file,
        manifest: report.manifest,
        signers: report.signers,
        sha256,
        size,
    })
}

/// Moves a verified upload to its final name, durably (idempotent: equal content, equal name).
pub fn keep(v: Verified, dir: &Path) -> Result<PathBuf, UploadError> {
    let path = artifact_path(dir, &v.sha256);
    airlock::fsutil::persist(v.file, &path).map_err(|source| UploadError::Io {
        dir: dir.display().to_string(),
        source,
    })?;
    Ok(path)
}
