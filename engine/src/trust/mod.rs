//! Every rule that decides whether a bundle is accepted. Who is trusted: a keyring of ed25519
//! public keys and how many of them must have signed a manifest (this module); whether a signed
//! manifest is meant for this device now: its device type, expiry and version floor
//! ([`acceptance`]). A bundle's authenticity rests on these checks alone; the server it came
//! from is never trusted. The device's install and the server's upload use the same functions.

mod acceptance;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::keys::{self, KeyError};

pub use acceptance::{Acceptance, AcceptanceError, Claims, check_unexpired};

/// One detached signature over a manifest's exact bytes, as `manifest.sig` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureEntry {
    /// [`keys::key_id`] of the signer's public key.
    pub key_id: String,
    pub algorithm: String,
    /// The ed25519 signature, 128 lowercase hex digits.
    pub signature: String,
}

/// Errors from signature verification.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "no trusted keys are configured; add at least one public key (`[trust] keys` or --key)"
    )]
    NoKeys,
    #[error("signature threshold must be at least 1 (got 0)")]
    ZeroThreshold,
    #[error(
        "the signature threshold {threshold} is larger than the {keys} trusted key(s); \
         no bundle could ever be accepted"
    )]
    ThresholdUnreachable { threshold: usize, keys: usize },
    #[error(
        "the bundle has {valid} valid signature(s) from trusted keys but {threshold} are required \
         ({details}); sign it with more trusted keys (`airlock bundle sign`) or check the device's keys"
    )]
    BelowThreshold {
        valid: usize,
        threshold: usize,
        details: String,
    },
}

/// A public key the device trusts, with where it came from.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub id: String,
    pub key: VerifyingKey,
    pub source: PathBuf,
}

/// The trusted keys and the number of distinct trusted signatures a manifest needs.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    keys: Vec<TrustedKey>,
    threshold: usize,
}

impl TrustPolicy {
    /// Loads the public keys at `paths` and checks that `threshold` can be met.
    pub fn load(paths: &[PathBuf], threshold: usize) -> Result<Self, TrustError> {
        let keys = paths
            .iter()
            .map(|p| load_trusted_key(p))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys, threshold)
    }

    pub fn new(keys: Vec<TrustedKey>, threshold: usize) -> Result<Self, TrustError> {
        if keys.is_empty() {
            return Err(TrustError::NoKeys);
        }
        if threshold == 0 {
            return Err(TrustError::ZeroThreshold);
        }
        let distinct: BTreeSet<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        if threshold > distinct.len() {
            return Err(TrustError::ThresholdUnreachable {
                threshold,
                keys: distinct.len(),
            });
        }
        Ok(Self { keys, threshold })
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Checks the signatures over `manifest`; returns the ids of the trusted keys whose
    /// signatures are valid, or an error explaining each signature when there are too few.
    pub fn verify(
        &self,
        manifest: &[u8],
        signatures: &[SignatureEntry],
    ) -> Result<Vec<String>, TrustError> {
        let mut valid = BTreeSet::new();
        let mut notes = Vec::new();
        for sig in signatures {
            let Some(trusted) = self.keys.iter().find(|k| k.id == sig.key_id) else {
                notes.push(format!("{}: not a trusted key", sig.key_id));
                continue;
            };
            let ok = hex::decode(&sig.signature)
                .ok()
                .and_then(|bytes| Signature::from_slice(&bytes).ok())
                .is_some_and(|s| trusted.key.verify(manifest, &s).is_ok());
            if ok {
                valid.insert(trusted.id.clone());
                notes.push(format!("{}: valid", sig.key_id));
            } else {
                notes.push(format!(
                    "{}: INVALID signature (manifest altered or wrong key)",
                    sig.key_id
                ));
            }
        }
        if valid.len() < self.threshold {
            let details = if notes.is_empty() {
                "the bundle carries no signatures".to_string()
            } else {
                notes.join(", ")
            };
            return Err(TrustError::BelowThreshold {
                valid: valid.len(),
                threshold: self.threshold,
                details,
            });
        }
        Ok(valid.into_iter().collect())
    }
}

/// Loads one public key file as a trusted key.
pub fn load_trusted_key(path: &Path) -> Result<TrustedKey, TrustError> {
    let key = keys::load_verifying_key(path)?;
    Ok(TrustedKey {
        id: keys::key_id(&key),
        key,
        source: path.to_owned(),
    })
}
