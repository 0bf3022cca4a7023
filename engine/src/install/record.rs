//! What the state journal holds: the device's record of its slots, the update in flight and the
//! last result. Every transition is stored before it takes effect.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::boot::Side;
use crate::bundle::Sha256Hex;

/// The whole persistent record of a device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// What each boot slot holds; `None` when unknown (factory image) or being overwritten.
    #[serde(default)]
    pub slot_a: Option<SlotContent>,
    #[serde(default)]
    pub slot_b: Option<SlotContent>,
    /// The last committed release: the version floor for anti-downgrade.
    #[serde(default)]
    pub committed: Option<Release>,
    /// The sha256 of the signed manifest of the last committed update: the bundle the device
    /// runs, so a fleet server offering it again is told so (unknown for commits made by
    /// engines before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_manifest: Option<Sha256Hex>,
    /// The update in flight, if any.
    #[serde(default)]
    pub update: Option<Update>,
    /// How the last update ended.
    #[serde(default)]
    pub last_result: Option<Outcome>,
    /// A hook asked to try again later: when, and how often it has asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// A hook's retry-later answer, honoured across runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    pub release: Release,
    pub manifest_sha256: Sha256Hex,
    pub stage: String,
    pub plugin: String,
    /// Unix seconds before which the update is not tried again.
    pub not_before: u64,
    pub attempts: u32,
}

/// A bundle name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub bundle: String,
    pub version: semver::Version,
}

/// What a slot holds: which bundle, and the sha256 of each payload written to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotContent {
    pub release: Release,
    pub payloads: BTreeMap<String, Sha256Hex>,
    /// What putting it there cost (unknown for slots written by older engines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadStats>,
}

/// How an update's payload bytes got onto the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadStats {
    /// Payload bytes in the bundle.
    pub payload: u64,
    /// Bytes transferred from the source (head, framing and chunks).
    pub fetched: u64,
    /// Payload bytes copied from the active slot instead of downloaded (delta).
    pub reused: u64,
    /// Payload bytes an interrupted attempt had already written.
    pub resumed: u64,
}

/// Where an update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Payloads are being written to the inactive slots; the active slot is untouched.
    Fetching,
    /// Everything is written and fsynced; the bootloader and directory slots are being switched.
    Switching,
    /// Switched: the next boot tries the new slot once.
    Installed,
    /// Booted into the new slot; checks decide commit or rollback.
    Trial,
}

/// A directory slot switched by this update: from which side to which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySwitch {
    pub class: String,
    pub from: Side,
    pub to: Side,
}

/// The update in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub release: Release,
    /// sha256 of the signed manifest: identifies the bundle for resume.
    pub manifest_sha256: Sha256Hex,
    /// Where the bundle comes from (path or URL), to resume after a power cut.
    pub source: String,
    /// The boot slot being written (the inactive one at the start).
    pub target: Side,
    /// The slot booted (and committed) when the update started.
    pub from: Side,
    pub phase: Phase,
    /// Whether any payload went to a raw (A/B) slot, so a reboot is needed.
    pub needs_reboot: bool,
    #[serde(default)]
    pub directories: Vec<DirectorySwitch>,
    /// Payload sha256s by slot class, recorded in the slot once switched.
    pub payloads: BTreeMap<String, Sha256Hex>,
    pub started: String,
    /// Payloads handed to installer plugins: (payload, plugin). They are told at commit and
    /// rollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installers: Vec<(String, String)>,
    /// Set once the update is being abandoned: how it ends and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<PendingEnding>,
    /// Set once every payload is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadStats>,
    /// The source asked for credentials (a fleet server's token, a client certificate) that
    /// only the process that started the install holds: `airlock boot` leaves it to that one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub credentials: bool,
    /// Plugins the bundle brought, saved on the device: used for this update, in every
    /// process that works on it, instead of the configured ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundled: Vec<BundledPlugin>,
}

/// A plugin a bundle brought, as saved on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundledPlugin {
    pub name: String,
    /// The saved component.
    pub path: std::path::PathBuf,
    /// The sha256 the signed manifest lists for the precompiled form saved beside it (for this
    /// device's CPU), if the bundle carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precompiled: Option<Sha256Hex>,
}

impl BundledPlugin {
    /// Where its precompiled form for this device's CPU is saved: beside the component.
    pub fn precompiled_path(&self) -> std::path::PathBuf {
        use crate::plugin::precompiled;
        precompiled::artifact_path(&self.path, precompiled::native_target())
    }
}

/// An end decided for the update but not yet carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEnding {
    pub ending: Ending,
    pub reason: String,
}

/// How an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    Committed,
    RolledBack,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub release: Release,
    pub result: Ending,
    /// Why, for anything but a commit.
    #[serde(default)]
    pub reason: Option<String>,
    pub at: String,
}

impl DeviceState {
    pub fn slot(&self, slot: Side) -> Option<&SlotContent> {
        match slot {
            Side::A => self.slot_a.as_ref(),
            Side::B => self.slot_b.as_ref(),
        }
    }

    pub fn set_slot(&mut self, slot: Side, content: Option<SlotContent>) {
        match slot {
            Side::A => self.slot_a = content,
            Side::B => self.slot_b = content,
        }
    }
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
