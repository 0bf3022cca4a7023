//! `manifest.json`: what a bundle is. Signed; everything else in the bundle is proven through it.

use std::collections::BTreeSet;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::BundleError;
use super::chunk::{CHUNK_MAX, CHUNK_MIN};
use crate::trust::Claims;

/// The bundle format version this reader and writer speak.
pub const FORMAT_VERSION: u32 = 1;

/// The largest manifest a reader accepts.
pub const MANIFEST_MAX: u64 = 1024 * 1024;

/// The `requires` entry of a bundle whose plugins carry precompiled forms: their entries follow
/// each plugin's `.wasm`, so a reader that does not know them must refuse the bundle rather
/// than misread it.
pub const PRECOMPILED_PLUGINS: &str = "precompiled-plugins";

/// Features a bundle may list in `requires` that this reader understands.
const KNOWN_REQUIREMENTS: &[&str] = &[PRECOMPILED_PLUGINS];

/// The signed description of a bundle.
///
/// Required: `format`, `name`, `version`, `compatible`, `created`, `payloads`. Optional:
/// `requires` (must-understand extensions), `expires`, `plugins`, `description`. Unknown fields are
/// ignored by readers; see the module documentation of [`crate::bundle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    pub name: String,
    pub version: semver::Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Device types this bundle may be installed on.
    pub compatible: Vec<String>,
    /// RFC 3339 UTC time of creation.
    pub created: String,
    /// RFC 3339 UTC time after which devices refuse the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub payloads: Vec<PayloadInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginInfo>,
}

/// Where a payload goes: a slot class (`rootfs`, `app`, …) or an installer plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Slot(String),
    Installer(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Slot(s) => write!(f, "slot {s}"),
            Target::Installer(p) => write!(f, "installer plugin {p}"),
        }
    }
}

/// How the chunks of a payload are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Each chunk is a zstd frame, or raw where compression did not help.
    Zstd,
    /// Every chunk is stored raw.
    None,
}

/// One payload: an image for a slot or an input for an installer plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadInfo {
    pub name: String,
    pub target: Target,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// sha256 of the uncompressed payload: names the content.
    pub sha256: Sha256Hex,
    /// Number of chunks in the index.
    pub chunks: u64,
    /// Size of the `payloads/<name>` entry: the sum of the stored chunk lengths.
    pub stored_size: u64,
    /// sha256 of the `payloads/<name>.idx` entry.
    pub index_sha256: Sha256Hex,
    pub compression: Compression,
}

/// A plugin shipped inside the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub size: u64,
    pub sha256: Sha256Hex,
    /// The WIT world it implements (`installer`, `check`, `hook`).
    pub world: String,
    /// Its precompiled forms, one per target, each in the entry
    /// `plugins/<name>.<target>.cwasm` right after the `.wasm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub precompiled: Vec<PrecompiledInfo>,
}

/// A plugin compiled ahead of time for one target (`x86_64-unknown-linux-gnu`,
/// `aarch64-unknown-linux-gnu`, or `pulley32` for 32-bit ARM). Its sha256 in the signed
/// manifest is what lets a device load it: the artifact is native code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecompiledInfo {
    pub target: String,
    pub size: u64,
    pub sha256: Sha256Hex,
}

impl PluginInfo {
    /// The tar entry of the component.
    pub fn entry(&self) -> String {
        format!("plugins/{}.wasm", self.name)
    }

    /// The tar entry of its precompiled form for `target`.
    pub fn precompiled_entry(&self, target: &str) -> String {
        format!("plugins/{}.{target}.cwasm", self.name)
    }

    /// Its precompiled form for `target`, if the bundle carries one.
    pub fn precompiled_for(&self, target: &str) -> Option<&PrecompiledInfo> {
        self.precompiled.iter().find(|p| p.target == target)
    }
}

/// A sha256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hex(pub [u8; 32]);

impl fmt::Debug for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0))
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.0))
    }
}

impl Serialize for Sha256Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(|_| {
            serde::de::Error::custom(format!("{text:?} is not a sha256 (64 hex digits)"))
        })?;
        Ok(Sha256Hex(out))
    }
}

impl Manifest {
    /// Parses and validates manifest bytes. The format version is checked first, so that a
    /// bundle from the future is refused as such rather than as a list of odd fields.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        #[derive(Deserialize)]
        struct FormatOnly {
            format: Option<serde_json::Value>,
        }
        let probe: FormatOnly = serde_json::from_slice(bytes).map_err(BundleError::ManifestJson)?;
        match probe.format.as_ref().and_then(|v| v.as_u64()) {
            None => {
                return Err(BundleError::invalid(
                    "missing or non-numeric `format` field",
                ));
            }
            Some(f) if f > u64::from(FORMAT_VERSION) || f == 0 => {
                return Err(BundleError::UnsupportedFormat {
                    found: f,
                    supported: FORMAT_VERSION,
                });
            }
            Some(_) => {}
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(BundleError::ManifestJson)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The canonical bytes a writer signs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Checks everything a reader relies on before it trusts sizes and names from the manifest.
    pub fn validate(&self) -> Result<(), BundleError> {
        let unknown: Vec<&str> = self
            .requires
            .iter()
            .map(String::as_str)
            .filter(|r| !KNOWN_REQUIREMENTS.contains(r))
            .collect();
        if !unknown.is_empty() {
            return Err(BundleError::UnknownRequirement(unknown.join(", ")));
        }
        check_name("bundle name", &self.name)?;
        if self.compatible.is_empty() {
            return Err(BundleError::invalid("`compatible` lists no device types"));
        }
        for t in &self.compatible {
            check_name("device type", t)?;
        }
        parse_time("created", &self.created)?;
        if let Some(e) = &self.expires {
            parse_time("expires", e)?;
        }
        if self.payloads.is_empty() {
            return Err(BundleError::invalid("the bundle has no payloads"));
        }
        let mut names = BTreeSet::new();
        for p in &self.payloads {
            check_name("payload name", &p.name)?;
            if !names.insert(p.name.as_str()) {
                return Err(BundleError::invalid(format!(
                    "payload {:?} appears twice",
                    p.name
                )));
            }
            match &p.target {
                Target::Slot(s) | Target::Installer(s) => check_name("payload target", s)?,
            }
            check_payload_sizes(p)?;
        }
        let mut plugin_names = BTreeSet::new();
        for p in &self.plugins {
            check_name("plugin name", &p.name)?;
            if !plugin_names.insert(p.name.as_str()) {
                return Err(BundleError::invalid(format!(
                    "plugin {:?} appears twice",
                    p.name
                )));
            }
            check_precompiled(p, &self.requires)?;
        }
        Ok(())
    }

    /// What the acceptance rules of [`crate::trust`] read in this manifest.
    pub fn claims(&self) -> Result<Claims<'_>, BundleError> {
        let expires = match &self.expires {
            Some(written) => Some((parse_time("expires", written)?, written.as_str())),
            None => None,
        };
        Ok(Claims {
            name: &self.name,
            version: &self.version,
            compatible: &self.compatible,
            expires,
        })
    }

    pub fn payload(&self, name: &str) -> Option<&PayloadInfo> {
        self.payloads.iter().find(|p| p.name == name)
    }
}

/// Slot class names share the rules of payload names: they become file names.
pub fn check_slot_class(name: &str) -> Result<(), BundleError> {
    check_name("slot class", name)
}

/// Precompiled forms: one per target, named safely, and announced in `requires` so that an
/// older reader refuses the bundle instead of tripping over entries it does not expect.
fn check_precompiled(p: &PluginInfo, requires: &[String]) -> Result<(), BundleError> {
    if p.precompiled.is_empty() {
        return Ok(());
    }
    if !requires.iter().any(|r| r == PRECOMPILED_PLUGINS) {
        return Err(BundleError::invalid(format!(
            "plugin {:?} has precompiled forms but `requires` does not list {PRECOMPILED_PLUGINS:?}",
            p.name
        )));
    }
    let mut targets = BTreeSet::new();
    for form in &p.precompiled {
        check_name("precompiled target", &form.target)?;
        if !targets.insert(form.target.as_str()) {
            return Err(BundleError::invalid(format!(
                "plugin {:?} has two precompiled forms for {}",
                p.name, form.target
            )));
        }
    }
    Ok(())
}

/// Chunk counts and sizes must be consistent with the chunker's bounds, so that no later
/// allocation or loop can be driven by an absurd number.
fn check_payload_sizes(p: &PayloadInfo) -> Result<(), BundleError> {
    let min_chunks = p.size.div_ceil(CHUNK_MAX as u64);
    let max_chunks = p.size / CHUNK_MIN as u64 + 1;
    if p.size > 0 && (p.chunks < min_chunks || p.chunks > max_chunks)
        || p.size == 0 && p.chunks != 0
    {
        return Err(BundleError::invalid(format!(
            "payload {:?} claims {} chunks for {} bytes; chunks are {}..{} bytes",
            p.name, p.chunks, p.size, CHUNK_MIN, CHUNK_MAX
        )));
    }
    if p.stored_size > p.size {
        return Err(BundleError::invalid(format!(
            "payload {:?} claims {} stored bytes for {} bytes of content; chunks are never stored larger",
            p.name, p.stored_size, p.size
        )));
    }
    Ok(())
}

/// Names become file names and tar paths: keep them to a safe alphabet so that no `..`, `/` or
/// control character can sneak through.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), BundleError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with('.')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(BundleError::invalid(format!(
            "{what} {name:?} is not allowed: use 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
        )))
    }
}

fn parse_time(field: &str, value: &str) -> Result<SystemTime, BundleError> {
    humantime::parse_rfc3339_weak(value).map_err(|e| {
        BundleError::invalid(format!("`{field}` {value:?} is not an RFC 3339 time: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            requires: vec![],
            name: "acme-os".into(),
            version: semver::Version::new(1, 2, 0),
            description: None,
            compatible: vec!["acme-gateway-v2".into()],
            created: "2026-11-25T12:00:00Z".into(),
            expires: None,
            payloads: vec![PayloadInfo {
                name: "rootfs".into(),
                target: Target::Slot("rootfs".into()),
                size: 1 << 20,
                sha256: Sha256Hex([1; 32]),
                chunks: 16,
                stored_size: 1000,
                index_sha256: Sha256Hex([2; 32]),
                compression: Compression::Zstd,
            }],
            plugins: vec![],
        }
    }

    #[test]
    fn round_trips_and_ignores_unknown_fields() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        let mut v: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
        v["something_new"] = serde_json::json!({"a": 1});
        assert_eq!(
            Manifest::parse(&serde_json::to_vec(&v).unwrap()).unwrap(),
            m
        );
    }

    #[test]
    fn refuses_future_formats_and_unknown_requirements() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["format"] = 2.into();
        let e = Manifest::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            matches!(e, BundleError::UnsupportedFormat { found: 2, .. }),
            "{e}"
        );
        v["format"] = 1.into();
        v["requires"] = serde_json::json!(["encrypted-payloads"]);
        let e = Manifest::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("encrypted-payloads"), "{e}");
    }

    #[test]
    fn refuses_missing_fields_bad_names_and_absurd_counts() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v.as_object_mut().unwrap().remove("payloads");
        assert!(
            Manifest::parse(&serde_json::to_vec(&v).unwrap())
                .unwrap_err()
                .to_string()
                .contains("payloads")
        );

        let mut m = sample();
        m.payloads[0].name = "../etc".into();
        assert!(
            Manifest::parse(&m.to_bytes())
                .unwrap_err()
                .to_string()
                .contains("not allowed")
        );

        let mut m = sample();
        m.payloads[0].chunks = 1 << 40;
        assert!(
            Manifest::parse(&m.to_bytes())
                .unwrap_err()
                .to_string()
                .contains("claims")
        );

        assert!(matches!(
            Manifest::parse(b"{not json"),
            Err(BundleError::ManifestJson(_))
        ));
        assert!(Manifest::parse(b"").is_err());
    }
}
