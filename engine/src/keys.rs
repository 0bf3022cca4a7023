//! Ed25519 signing keys on disk: PKCS#8 PEM private keys and SPKI PEM public keys, the formats
//! `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` use, so either tool's keys work
//! with the other.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Errors reading or writing key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an ed25519 private key in PKCS#8 PEM (\"BEGIN PRIVATE KEY\"): {reason}; \
         make one with `airlock key generate` or `openssl genpkey -algorithm ed25519`"
    )]
    BadPrivateKey { path: PathBuf, reason: String },
    #[error(
        "{path} is not an ed25519 public key in SPKI PEM (\"BEGIN PUBLIC KEY\"): {reason}; \
         export one with `openssl pkey -in KEY -pubout` or use the .pub file `airlock key generate` wrote"
    )]
    BadPublicKey { path: PathBuf, reason: String },
    #[error("{path} already exists; remove it or choose another --out, keys are never overwritten")]
    Exists { path: PathBuf },
    #[error("could not encode the key as PEM: {0}")]
    Encode(String),
}

/// The short, stable id of a public key: the first 8 bytes of the SHA-256 of its 32 raw bytes,
/// in hex. Signatures name their key by it.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}

/// Generates a new key pair and writes `<out>.key` (mode 0600) and `<out>.pub`.
/// Returns the two paths and the key id.
pub fn generate(out: &Path) -> Result<(PathBuf, PathBuf, String), KeyError> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let private_path = with_suffix(out, "key");
    let public_path = with_suffix(out, "pub");
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    // PKCS#8 v1 (the seed alone), which every OpenSSL 3 reads; v2 with the public key is not.
    let keypair = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let private_pem = keypair
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode(e.to_string()))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode(e.to_string()))?;
    write_new(&private_path, private_pem.as_bytes(), 0o600)?;
    write_new(&public_path, public_pem.as_bytes(), 0o644)?;
    Ok((private_path, public_path, key_id(&key.verifying_key())))
}

/// Reads a PKCS#8 PEM ed25519 private key.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = read_text(path)?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::BadPrivateKey {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads an SPKI PEM ed25519 public key.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = read_text(path)?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| KeyError::BadPublicKey {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    // Key files are tiny; refuse to slurp something that obviously is not one.
    let meta = fs::metadata(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.len() > 64 * 1024 {
        return Err(KeyError::BadPublicKey {
            path: path.to_owned(),
            reason: format!("the file is {} bytes, far too large for a key", meta.len()),
        });
    }
    fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

fn with_suffix(out: &Path, ext: &str) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        f.write_all(data)?;
        f.sync_all()
    };
    write().map_err(|source| KeyError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_keys_load_back_and_private_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let (key_path, pub_path, id) = generate(&dir.path().join("release")).unwrap();
        let key = load_signing_key(&key_path).unwrap();
        let public = load_verifying_key(&pub_path).unwrap();
        assert_eq!(key.verifying_key(), public);
        assert_eq!(key_id(&public), id);
        assert_eq!(
            fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            generate(&dir.path().join("release")),
            Err(KeyError::Exists { .. })
        ));
    }

    #[test]
    fn openssl_reads_our_keys_and_we_read_openssl_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (key_path, pub_path, _) = generate(&dir.path().join("ours")).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key_path)
            .output()
            .expect("openssl must be installed (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl refused our key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            fs::read_to_string(&pub_path).unwrap()
        );

        let theirs = dir.path().join("theirs.key");
        let status = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&theirs)
            .status()
            .unwrap();
        assert!(status.success());
        load_signing_key(&theirs).unwrap();
    }

    #[test]
    fn wrong_kind_of_file_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.pub");
        fs::write(&path, "hello").unwrap();
        let err = load_verifying_key(&path).unwrap_err().to_string();
        assert!(
            err.contains("junk.pub") && err.contains("SPKI PEM"),
            "{err}"
        );
        let err = load_signing_key(&path).unwrap_err().to_string();
        assert!(err.contains("PKCS#8"), "{err}");
    }
}
