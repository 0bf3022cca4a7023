use crate::trust::TrustError;

/// Everything that can be wrong with a bundle. Each message names the entry, payload or chunk
/// and the byte offset where it went wrong.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("the bundle is empty (0 bytes); it is not an Airlock bundle")]
    Empty,
    #[error(
        "the bundle ends early: expected {expected} at byte {offset}; the file is truncated or the download was cut"
    )]
    Truncated { expected: String, offset: u64 },
    #[error("bad tar header at byte {offset}: {reason}; the bundle is corrupt")]
    TarHeader { offset: u64, reason: String },
    #[error(
        "unexpected entry at byte {offset}: found {found:?}, expected {expected}; the bundle is corrupt or was not made by `airlock bundle create`"
    )]
    UnexpectedEntry {
        offset: u64,
        found: String,
        expected: String,
    },
    #[error("{entry} is {size} bytes, more than the limit of {limit} bytes")]
    EntryTooLarge {
        entry: String,
        size: u64,
        limit: u64,
    },
    #[error("manifest.json is not valid: {0}")]
    ManifestJson(#[source] serde_json::Error),
    #[error(
        "this bundle has format version {found}, but this airlock reads version {supported} at most; update airlock on the device first"
    )]
    UnsupportedFormat { found: u64, supported: u32 },
    #[error(
        "this bundle requires features this airlock does not know: {0}; update airlock on the device first"
    )]
    UnknownRequirement(String),
    #[error("manifest.json is not valid: {0}")]
    InvalidManifest(String),
    #[error("manifest.sig is not valid: {0}")]
    InvalidSignatureFile(String),
    #[error("signature check failed: {0}")]
    Trust(#[from] TrustError),
    #[error(
        "{entry}: sha256 does not match the signed manifest; the bundle was altered or corrupted"
    )]
    HashMismatch { entry: String },
    #[error("chunk index of payload {payload} is not valid: {reason}")]
    InvalidIndex { payload: String, reason: String },
    #[error(
        "payload {payload}, chunk {chunk} (payload bytes {offset}..{end}): {reason}; the bundle was altered or corrupted"
    )]
    BadChunk {
        payload: String,
        chunk: u64,
        offset: u64,
        end: u64,
        reason: String,
    },
    #[error("the bundle has no payload named {0:?}; it has: {1}")]
    NoSuchPayload(String, String),
    #[error("bundle description {path}: {reason}")]
    Spec { path: String, reason: String },
    /// An error in one of several bundles, naming which.
    #[error("{path}: {source}")]
    InFile {
        path: String,
        #[source]
        source: Box<BundleError>,
    },
}

impl BundleError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BundleError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        BundleError::InvalidManifest(reason.into())
    }
}
