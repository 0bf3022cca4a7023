//! The update state machine: install, boot-time settlement, commit and rollback.
//!
//! ```text
//! idle -> fetching -> switching -> installed -> (reboot) -> trial -> committed
//!             \                                    \-> rolled back (bootloader fell back)
//!              \-> failed (bad bundle, full slot)   trial -> rolled back (check failed, operator)
//! ```
//!
//! Every transition is written to the journal before it takes effect, and the active slot is
//! never written. After a power cut at any point, [`Device::boot`] (run at every boot) or the
//! next [`Device::install`] of the same bundle finds a consistent state and goes on from it.
//!
//! `device` opens the device; this file installs (open and verify the bundle, check it is for
//! this device, gate, prepare the targets, write, switch). Where each payload goes is a
//! [`target::PayloadTarget`] (`target/`), written by `stream`, with `delta` and `local_chunks`
//! for delta installs. `settle` is what every boot does, `ending` commits or abandons, `gate`
//! runs the hooks that may stop or postpone a step, `bundled` keeps the plugins a bundle brings,
//! `record` is the journal's content.

mod bundled;
mod delta;
mod device;
mod ending;
mod error;
pub mod faults;
mod gate;
mod local_chunks;
mod plugins;
pub mod record;
mod settle;
mod stream;
mod target;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tracing::{info, warn};

pub use device::Device;
pub use error::InstallError;
pub use gate::unix_to_rfc3339;
pub use plugins::HookOutcome;
pub use record::BundledPlugin;
use record::{DownloadStats, Ending, Phase, Release, SlotContent, Update, now};
use target::PayloadTarget;

use crate::boot::Side;
use crate::bundle::{BundleInput, BundleReader, FIRST_REQUEST, Manifest, Sha256Hex, Target};
use crate::config::{Config, SlotConfig};
use crate::plugin::{PluginContext, Stage};
use crate::source::{self, ByteSource, HttpExtras, HttpOptions};
use crate::trust::{Acceptance, TrustPolicy};

impl BundleInput for Box<dyn ByteSource> {
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let to = self.position() + n;
        self.skip_to(to).map_err(std::io::Error::other)
    }
}

/// Progress of an install, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Payload bytes done (written, or found intact when resuming).
    pub done: u64,
    /// Payload bytes in the bundle.
    pub total: u64,
}

/// What an install did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstallReport {
    pub bundle: String,
    pub version: semver::Version,
    /// The boot slot written, when any payload went to an A/B slot.
    pub slot: Option<Side>,
    pub payload_bytes: u64,
    /// Payload bytes found intact in the slot from an interrupted attempt and not written again.
    pub resumed_bytes: u64,
    /// Bytes transferred from the source: the bundle's size, or less when resuming or when a
    /// delta install reused chunks.
    pub fetched_bytes: u64,
    /// Payload bytes copied from the active slot instead of downloaded (delta installs).
    pub reused_bytes: u64,
    /// A reboot into the new slot is needed to try it.
    pub needs_reboot: bool,
    /// Directory-only updates commit at once.
    pub committed: bool,
    /// The bundle was already installed and waits for a reboot.
    pub already_installed: bool,
    /// The device already runs the bundle (asked with [`InstallRequest::unless_running`]):
    /// nothing was written.
    pub already_running: bool,
}

/// How an install is asked for, beyond where the bundle is.
#[derive(Debug, Clone, Default)]
pub struct InstallRequest {
    /// Sent with every HTTP request: a fleet server's token, a client certificate. They open
    /// the door to the bundle, nothing more: its signature, device type and version are checked
    /// as always.
    pub extras: HttpExtras,
    /// A bundle the device already runs (committed, nothing pending) is reported as such,
    /// without writing it again: what a fleet server that offers it again must be told.
    pub unless_running: bool,
}

/// How the payloads of an install are written.
#[derive(Debug, Clone, Copy)]
struct Written {
    /// Continue after the chunks an interrupted attempt left intact in the targets.
    resuming: bool,
    /// Reuse the chunks the device holds, fetching the others by range.
    delta: bool,
}

/// What `airlock boot` found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BootReport {
    pub booted: Side,
    /// One line per thing done, for the log and the user.
    pub actions: Vec<String>,
    /// A rollback on the trial slot needs a reboot into the old slot.
    pub reboot_needed: bool,
}

impl Device {
    /// `delta`: ask for bounded ranges, starting with the head, instead of the whole bundle.
    fn http_options(&self, delta: bool, extras: &HttpExtras) -> HttpOptions {
        HttpOptions {
            window: delta.then_some(FIRST_REQUEST),
            extras: extras.clone(),
            ..self.config.download.http_options()
        }
    }

    /// Installs the bundle at `location` (a path or an http(s) URL) into the inactive slots and
    /// arms a one-shot trial boot of them. Installing the bundle of an interrupted install again
    /// continues where it stopped.
    pub fn install(
        &mut self,
        location: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<InstallReport, InstallError> {
        self.install_with(location, &InstallRequest::default(), progress)
    }

    /// [`install`](Self::install) as `request` asks.
    pub fn install_with(
        &mut self,
        location: &str,
        request: &InstallRequest,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<InstallReport, InstallError> {
        let extras = &request.extras;
        let booted = self.booted()?;
        let primary = self.boot.primary()?;
        if let Some(u) = &self.state.update
            && u.phase == Phase::Trial
        {
            return Err(InstallError::UpdateOnTrial {
                bundle: describe(&u.release),
                slot: u.target,
            });
        }
        if booted != primary {
            return Err(InstallError::NotOnPrimary { booted, primary });
        }
        let trust = TrustPolicy::load(&self.config.trust.keys, self.config.trust.threshold)?;
        let delta = self.config.download.delta && source::is_http(location);
        let source = source::open(location, &self.http_options(delta, extras))?;
        let mut reader = BundleReader::open(source, &trust)?;
        let manifest = reader.manifest().clone();
        let manifest_sha256 = Sha256Hex(Sha256::digest(reader.manifest_bytes()).into());
        info!(bundle = %manifest.name, version = %manifest.version, signers = ?reader.signers(), "bundle signature verified");
        let release = Release {
            bundle: manifest.name.clone(),
            version: manifest.version.clone(),
        };
        if request.unless_running
            && self.state.update.is_none()
            && self.state.committed_manifest == Some(manifest_sha256)
        {
            info!(bundle = %manifest.name, version = %manifest.version, slot = %booted, "the device already runs this bundle; nothing to write");
            return Ok(InstallReport {
                slot: Some(booted),
                already_running: true,
                ..nothing_written(&release)
            });
        }
        self.check_policy(&manifest)?;
        let side = booted.other();
        let bundled = self.take_bundled_plugins(&mut reader, &manifest_sha256)?;
        // The whole head (every chunk index) is verified before the update is recorded, so a
        // corrupt head is a clean refusal that touches nothing.
        reader.read_indexes()?;
        let targets = (self.planner)(&self.config, &manifest, side)?;
        self.check_retry(&manifest_sha256)?;
        // Every plugin this update will need must load, as the world the chain names it for,
        // before anything is written: otherwise a missing or mistyped check plugin is found
        // only on the trial boot, after a reboot spent on an update that can only roll back.
        let installers: Vec<&str> = targets.iter().filter_map(|t| t.installer()).collect();
        self.plugins.preflight(&installers)?;
        let needs_reboot = targets.iter().any(|t| t.needs_reboot());
        let slot_name = needs_reboot.then(|| side.to_string());
        self.gate(
            Stage::DownloadEnter,
            &release,
            &manifest_sha256,
            slot_name.clone(),
        )?;

        if let Some(u) = self.state.update.clone()
            && let Some(pending) = u.ending.clone()
        {
            // An earlier command was interrupted while ending this update: finish that first.
            self.abandon(u, pending.ending, &pending.reason)?;
        }
        let pending = self.state.update.clone();
        let resuming = match &pending {
            Some(u) if u.manifest_sha256 == manifest_sha256 && u.target == side => match u.phase {
                Phase::Fetching => true,
                Phase::Switching => {
                    return self.finish_switch().map(|_| self.report_pending(u, true));
                }
                Phase::Installed => return Ok(self.report_pending(u, true)),
                Phase::Trial => false,
            },
            Some(u) => {
                let reason = format!("superseded by {} {}", manifest.name, manifest.version);
                self.abandon(u.clone(), Ending::Cancelled, &reason)?;
                false
            }
            None => false,
        };

        // From here on the targets are overwritten.
        for t in &targets {
            t.prepare()?;
        }
        let directories = targets
            .iter()
            .filter_map(|t| t.directory_switch())
            .collect();
        let installers = targets
            .iter()
            .zip(&manifest.payloads)
            .filter_map(|(t, p)| Some((p.name.clone(), t.installer()?.to_string())))
            .collect();
        let update = Update {
            release: release.clone(),
            manifest_sha256,
            source: location.to_string(),
            target: side,
            from: booted,
            phase: Phase::Fetching,
            needs_reboot,
            directories,
            payloads: manifest
                .payloads
                .iter()
                .filter_map(|p| match &p.target {
                    Target::Slot(class) => Some((class.clone(), p.sha256)),
                    Target::Installer(_) => None,
                })
                .collect(),
            started: pending.filter(|_| resuming).map_or_else(now, |u| u.started),
            installers,
            ending: None,
            download: None,
            credentials: !extras.headers.is_empty() || extras.identity.is_some(),
            bundled,
        };
        // The record of the target slot goes in the same write that starts the update: from now
        // on it holds whatever the update has written so far, and the journal says so.
        self.state.update = Some(update);
        if needs_reboot {
            self.state.set_slot(side, None);
        }
        // A trial armed earlier for the target must never boot a half-written slot: disarm it
        // before the journal says the slot is being written.
        self.boot.cancel_trial()?;
        self.store("journal-fetching")?;

        let plugin_ctx = plugins::context(
            &self.config,
            &self.state,
            &release,
            slot_name.clone(),
            Stage::Install,
        );
        let written = Written { resuming, delta };
        let stats = self.write(reader, &targets, written, &plugin_ctx, progress)?;
        info!(
            fetched = stats.fetched,
            reused = stats.reused,
            resumed = stats.resumed,
            payload = stats.payload,
            "payloads written"
        );
        self.gate(
            Stage::DownloadLeave,
            &release,
            &manifest_sha256,
            slot_name.clone(),
        )?;
        self.gate(
            Stage::InstallEnter,
            &release,
            &manifest_sha256,
            slot_name.clone(),
        )?;
        if let Some(u) = self.state.update.as_mut() {
            u.phase = Phase::Switching;
            u.download = Some(stats);
        }
        self.store("journal-switching")?;
        let committed = self.finish_switch()?;
        if !committed {
            self.gate(
                Stage::InstallLeave,
                &release,
                &manifest_sha256,
                slot_name.clone(),
            )?;
        }
        Ok(InstallReport {
            bundle: manifest.name.clone(),
            version: manifest.version.clone(),
            slot: needs_reboot.then_some(side),
            payload_bytes: stats.payload,
            resumed_bytes: stats.resumed,
            fetched_bytes: stats.fetched,
            reused_bytes: stats.reused,
            needs_reboot,
            committed,
            already_installed: false,
            already_running: false,
        })
    }

    /// Writes every payload to its target: after the chunks an interrupted attempt left intact,
    /// reusing the chunks the device holds for a delta install. A bad bundle or a failing
    /// target fails the update; a transport error leaves it pending, to be resumed.
    fn write(
        &mut self,
        mut reader: stream::Reader,
        targets: &[Box<dyn PayloadTarget>],
        how: Written,
        plugin_ctx: &PluginContext,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<DownloadStats, InstallError> {
        let intact = targets
            .iter()
            .enumerate()
            .map(|(n, t)| match reader.index(n) {
                Some(index) if how.resuming => t.intact(index),
                _ => Ok((0, 0)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let delta = if how.delta {
            delta::plan(&mut reader, targets, &intact)
        } else {
            None
        };
        let runner = &mut self.plugins;
        let mut install_with_plugin =
            |name: &str,
             payload: crate::plugin::PayloadInfo,
             data: &mut (dyn std::io::Read + Send)| {
                let mut ctx = plugin_ctx.clone();
                ctx.payload = Some(payload);
                runner.install(name, &ctx, data)
            };
        let mut ctx = stream::Context {
            progress,
            done: 0,
            total: reader.manifest().payloads.iter().map(|p| p.size).sum(),
            intact,
            resumed: 0,
            reused: 0,
            installers: &mut install_with_plugin,
        };
        match stream::write_payloads(&mut reader, targets, &mut ctx, delta.as_ref()) {
            Ok(()) => Ok(DownloadStats {
                payload: ctx.total,
                fetched: reader.into_inner().bytes_transferred(),
                reused: ctx.reused,
                resumed: ctx.resumed,
            }),
            Err(e) if e.is_transport() => {
                warn!(
                    "the download was interrupted: {e}; running the same install again resumes it"
                );
                Err(e)
            }
            Err(e) => {
                if let Some(u) = self.state.update.clone() {
                    self.fail(u, &e.to_string())?;
                }
                Err(e)
            }
        }
    }

    fn report_pending(&self, u: &Update, already: bool) -> InstallReport {
        InstallReport {
            slot: u.needs_reboot.then_some(u.target),
            needs_reboot: u.needs_reboot,
            already_installed: already,
            ..nothing_written(&u.release)
        }
    }

    /// Switching → Installed: record the new slot content, arm the trial, flip directory slots.
    /// Idempotent, so it can be re-run after a power cut. Returns whether the update committed
    /// at once (nothing needed a reboot).
    fn finish_switch(&mut self) -> Result<bool, InstallError> {
        let Some(u) = self.state.update.clone() else {
            return Ok(false);
        };
        if u.needs_reboot {
            let content = SlotContent {
                release: u.release.clone(),
                payloads: raw_payloads(&self.config, &u),
                download: u.download,
            };
            self.state.set_slot(u.target, Some(content));
            self.store("journal-slot-recorded")?;
            self.boot.set_trial(u.target)?;
            faults::point("boot-trial-armed");
        }
        if !u.needs_reboot {
            self.switch_targets(&u)?;
        }
        if u.needs_reboot {
            if let Some(u) = self.state.update.as_mut() {
                u.phase = Phase::Installed;
            }
            self.store("journal-installed")?;
            info!(slot = %u.target, "installed; reboot to try the new slot once");
            Ok(false)
        } else {
            self.finish_commit(u)?;
            Ok(true)
        }
    }

    /// Refuses bundles not meant for this device, expired or older than what it runs.
    fn check_policy(&self, manifest: &Manifest) -> Result<(), InstallError> {
        let acceptance = Acceptance {
            device_type: &self.config.device.device_type,
            floor: self.state.committed.as_ref().map(|r| &r.version),
            allow_downgrade: self.config.trust.allow_downgrade,
        };
        acceptance.check(&manifest.claims()?, SystemTime::now())?;
        Ok(())
    }
}

fn raw_payloads(config: &Config, u: &Update) -> BTreeMap<String, Sha256Hex> {
    u.payloads
        .iter()
        .filter(|(class, _)| {
            matches!(
                config.slots.get(*class),
                Some(SlotConfig::Raw { .. } | SlotConfig::File { .. })
            )
        })
        .map(|(c, h)| (c.clone(), *h))
        .collect()
}

/// The report of an install that wrote nothing.
fn nothing_written(r: &Release) -> InstallReport {
    InstallReport {
        bundle: r.bundle.clone(),
        version: r.version.clone(),
        slot: None,
        payload_bytes: 0,
        resumed_bytes: 0,
        fetched_bytes: 0,
        reused_bytes: 0,
        needs_reboot: false,
        committed: false,
        already_installed: false,
        already_running: false,
    }
}

pub fn describe(r: &Release) -> String {
    format!("{} {}", r.bundle, r.version)
}

pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Fetching => "being fetched",
        Phase::Switching => "being switched",
        Phase::Installed => "installed, waiting for a reboot",
        Phase::Trial => "on trial",
    }
}
