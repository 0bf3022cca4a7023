//! `manifest.sig`: detached ed25519 signatures over the exact bytes of `manifest.json`.
//!
//! ```json
//! {"signatures": [{"key_id": "0123456789abcdef", "algorithm": "ed25519", "signature": "<128 hex digits>"}]}
//! ```
//! `key_id` is [`crate::keys::key_id`] of the signer's public key. Adding a signature rewrites
//! only this entry; the manifest and the payloads stay byte-identical.

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use super::BundleError;
use crate::keys::key_id;
pub use crate::trust::SignatureEntry;

/// The largest signature file a reader accepts (room for hundreds of signatures).
pub const SIGNATURE_FILE_MAX: u64 = 64 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureFile {
    pub signatures: Vec<SignatureEntry>,
}

impl SignatureFile {
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let file: SignatureFile = serde_json::from_slice(bytes)
            .map_err(|e| BundleError::InvalidSignatureFile(e.to_string()))?;
        // One spelling per signature: lowercase hex, so that no byte of the file can change
        // without the change being noticed.
        let canonical = |h: &str| {
            h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if let Some(bad) = file
            .signatures
            .iter()
            .find(|s| !canonical(&s.signature) || !canonical(&s.key_id))
        {
            return Err(BundleError::InvalidSignatureFile(format!(
                "signature by {:?} is not written in lowercase hex",
                bad.key_id
            )));
        }
        if let Some(other) = file.signatures.iter().find(|s| s.algorithm != "ed25519") {
            return Err(BundleError::InvalidSignatureFile(format!(
                "signature by {} uses algorithm {:?}; only ed25519 is supported",
                other.key_id, other.algorithm
            )));
        }
        Ok(file)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Signs `manifest` with `key`, replacing an earlier signature by the same key.
    pub fn add(&mut self, manifest: &[u8], key: &SigningKey) {
        let id = key_id(&key.verifying_key());
        self.signatures.retain(|s| s.key_id != id);
        self.signatures.push(SignatureEntry {
            key_id: id,
            algorithm: "ed25519".into(),
            signature: hex::encode(key.sign(manifest).to_bytes()),
        });
    }

    pub fn key_ids(&self) -> Vec<String> {
        self.signatures.iter().map(|s| s.key_id.clone()).collect()
    }
}
