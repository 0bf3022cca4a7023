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

mod delta;
mod error;
pub mod faults;
mod local_chunks;
mod plugins;
pub mod record;
mod stream;

use std::collections::BTreeMap;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tracing::{info, warn};

pub use error::InstallError;
pub use plugins::HookOutcome;
use plugins::PluginRunner;
pub use record::BundledPlugin;
use record::{
    DeviceState, DirectorySwitch, DownloadStats, Ending, Outcome, PendingEnding, Phase, Release,
    Retry, SlotContent, Update, now,
};

use crate::boot::{self, BootBackend, Slot};
use crate::bundle::{
    BundleInput, BundleReader, FIRST_REQUEST, Manifest, PluginInfo, Sha256Hex, Target,
};
use crate::config::{Config, SlotConfig};
use crate::fsutil::FileLock;
use crate::plugin::{self, Stage};
use crate::slot::{DirectorySlot, RawSlot};
use crate::source::{self, ByteSource, HttpExtras, HttpOptions};
use crate::state::Journal;
use crate::trust::TrustPolicy;

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
    pub slot: Option<Slot>,
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
}

/// What `airlock boot` found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BootReport {
    pub booted: Slot,
    /// One line per thing done, for the log and the user.
    pub actions: Vec<String>,
    /// A rollback on the trial slot needs a reboot into the old slot.
    pub reboot_needed: bool,
}

/// A device: its configuration, bootloader and journal.
pub struct Device {
    config: Config,
    boot: Box<dyn BootBackend>,
    journal: Journal<DeviceState>,
    state: DeviceState,
    plugins: PluginRunner,
    /// Held while the device may be changed.
    _lock: Option<FileLock>,
}

impl Device {
    /// Opens the device to change it: takes the device lock, so that two Airlock processes
    /// (say the daemon and an operator) never interleave transitions.
    pub fn open(config: Config) -> Result<Self, InstallError> {
        let data_dir = &config.device.data_dir;
        let lock_path = data_dir.join("lock");
        let lock = std::fs::create_dir_all(data_dir)
            .and_then(|()| FileLock::try_acquire(&lock_path))
            .map_err(|source| InstallError::DataDir {
                action: "lock",
                path: lock_path.clone(),
                source,
            })?
            .ok_or_else(|| InstallError::Busy {
                lock: lock_path.clone(),
            })?;
        let mut device = Self::open_read_only(config)?;
        device._lock = Some(lock);
        Ok(device)
    }

    /// Opens the device to look at it (`status`), without the lock.
    pub fn open_read_only(config: Config) -> Result<Self, InstallError> {
        let boot = boot::open(&config.boot)?;
        let mut journal = Journal::open(&config.state_dir())?;
        let state: DeviceState = journal.load()?.unwrap_or_default();
        let mut plugins = PluginRunner::new(&config);
        for p in state.update.iter().flat_map(|u| &u.bundled) {
            plugins.use_bundled(p);
        }
        Ok(Self {
            config,
            boot,
            journal,
            state,
            plugins,
            _lock: None,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn state(&self) -> &DeviceState {
        &self.state
    }

    pub fn boot_backend(&self) -> &dyn BootBackend {
        self.boot.as_ref()
    }

    /// The slot the running system booted from.
    pub fn booted(&self) -> Result<Slot, InstallError> {
        Ok(boot::booted_slot(
            self.boot.as_ref(),
            &self.config.device.cmdline,
        )?)
    }

    /// `(booted, committed)` when the device runs a slot it never committed to with no update
    /// that explains it: the bootloader did not boot the committed slot (it could not read its
    /// environment, or someone changed the boot order by hand).
    pub fn booted_uncommitted(&self) -> Result<Option<(Slot, Slot)>, InstallError> {
        if self.state.update.is_some() {
            return Ok(None);
        }
        let booted = self.booted()?;
        let primary = self.boot.primary()?;
        Ok((booted != primary).then_some((booted, primary)))
    }

    fn store(&mut self, point: &str) -> Result<(), InstallError> {
        self.journal.store(&self.state)?;
        faults::point(point);
        Ok(())
    }

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
        self.install_with(location, &HttpExtras::default(), progress)
    }

    /// [`install`](Self::install), sending `extras` (a fleet server's token, a client
    /// certificate) with every HTTP request. They open the door to the bundle, nothing more:
    /// its signature, device type and version are checked as always.
    pub fn install_with(
        &mut self,
        location: &str,
        extras: &HttpExtras,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<InstallReport, InstallError> {
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
        self.check_policy(&manifest)?;
        let target = booted.other();
        let bundled = self.take_bundled_plugins(&mut reader, &manifest_sha256)?;
        // The whole head (every chunk index) is verified before the update is recorded, so a
        // corrupt head is a clean refusal that touches nothing.
        reader.read_indexes()?;
        let plan = self.plan(&manifest, target)?;
        let release = Release {
            bundle: manifest.name.clone(),
            version: manifest.version.clone(),
        };
        self.check_retry(&manifest_sha256)?;
        // Every plugin this update will need must load, as the world the chain names it for,
        // before anything is written: otherwise a missing or mistyped check plugin is found
        // only on the trial boot, after a reboot spent on an update that can only roll back.
        let installers: Vec<&str> = plan
            .iter()
            .filter_map(|p| match p {
                PayloadPlan::Plugin { name } => Some(name.as_str()),
                PayloadPlan::Raw(_) | PayloadPlan::Directory { .. } => None,
            })
            .collect();
        self.plugins.preflight(&installers)?;
        let slot_name = plan
            .iter()
            .any(|p| matches!(p, PayloadPlan::Raw(_)))
            .then(|| target.to_string());
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
            Some(u) if u.manifest_sha256 == manifest_sha256 && u.target == target => {
                match u.phase {
                    Phase::Fetching => true,
                    Phase::Switching => {
                        return self.finish_switch().map(|_| self.report_pending(u, true));
                    }
                    Phase::Installed => return Ok(self.report_pending(u, true)),
                    Phase::Trial => false,
                }
            }
            Some(u) => {
                let reason = format!("superseded by {} {}", manifest.name, manifest.version);
                self.abandon(u.clone(), Ending::Cancelled, &reason)?;
                false
            }
            None => false,
        };

        let needs_reboot = plan.iter().any(|p| matches!(p, PayloadPlan::Raw(_)));
        // From here on the target slots are overwritten: their records no longer hold.
        for p in &plan {
            if let PayloadPlan::Raw(raw) = p {
                local_chunks::forget_record(&raw.record).map_err(|source| {
                    InstallError::DataDir {
                        action: "remove",
                        path: raw.record.clone(),
                        source,
                    }
                })?;
            }
        }
        let directories = plan
            .iter()
            .filter_map(|p| match p {
                PayloadPlan::Directory { class, slot, .. } => {
                    slot.active().ok().map(|from| DirectorySwitch {
                        class: class.clone(),
                        from,
                        to: from.other(),
                    })
                }
                PayloadPlan::Raw(_) | PayloadPlan::Plugin { .. } => None,
            })
            .collect();
        let installers = manifest
            .payloads
            .iter()
            .filter_map(|p| match &p.target {
                Target::Installer(plugin) => Some((p.name.clone(), plugin.clone())),
                Target::Slot(_) => None,
            })
            .collect();
        let update = Update {
            release: release.clone(),
            manifest_sha256,
            source: location.to_string(),
            target,
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
            self.state.set_slot(target, None);
        }
        // A trial armed earlier for the target must never boot a half-written slot: disarm it
        // before the journal says the slot is being written.
        self.boot.cancel_trial()?;
        self.store("journal-fetching")?;

        let intact = plan
            .iter()
            .enumerate()
            .map(|(n, p)| match (p, reader.index(n)) {
                (PayloadPlan::Raw(raw), Some(index)) if resuming => {
                    stream::intact_prefix(&raw.slot, index)
                }
                _ => Ok((0, 0)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let delta = if delta {
            delta::plan(&mut reader, &plan, &intact)
        } else {
            None
        };
        let mut ctx = stream::Context {
            progress,
            done: 0,
            total: manifest.payloads.iter().map(|p| p.size).sum(),
            intact,
            resumed: 0,
            reused: 0,
        };
        let plugin_ctx = plugins::context(
            &self.config,
            &self.state,
            &release,
            slot_name.clone(),
            Stage::Install,
        );
        let runner = &mut self.plugins;
        let mut install_with_plugin =
            |name: &str,
             payload: crate::plugin::PayloadInfo,
             data: &mut (dyn std::io::Read + Send)| {
                let mut ctx = plugin_ctx.clone();
                ctx.payload = Some(payload);
                runner.install(name, &ctx, data)
            };
        match stream::write_payloads(
            &mut reader,
            &plan,
            &mut ctx,
            delta.as_ref(),
            &mut install_with_plugin,
        ) {
            Ok(()) => {}
            Err(e) if e.is_transport() => {
                warn!(
                    "the download was interrupted: {e}; running the same install again resumes it"
                );
                return Err(e);
            }
            Err(e) => {
                let update = self.state.update.clone();
                if let Some(u) = update {
                    self.fail(u, &e.to_string())?;
                }
                return Err(e);
            }
        }
        let stats = DownloadStats {
            payload: ctx.total,
            fetched: reader.into_inner().bytes_transferred(),
            reused: ctx.reused,
            resumed: ctx.resumed,
        };
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
            slot: needs_reboot.then_some(target),
            payload_bytes: stats.payload,
            resumed_bytes: stats.resumed,
            fetched_bytes: stats.fetched,
            reused_bytes: stats.reused,
            needs_reboot,
            committed,
            already_installed: false,
        })
    }

    fn report_pending(&self, u: &Update, already: bool) -> InstallReport {
        InstallReport {
            bundle: u.release.bundle.clone(),
            version: u.release.version.clone(),
            slot: u.needs_reboot.then_some(u.target),
            payload_bytes: 0,
            resumed_bytes: 0,
            fetched_bytes: 0,
            reused_bytes: 0,
            needs_reboot: u.needs_reboot,
            committed: false,
            already_installed: already,
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
            self.switch_directories(&u)?;
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

    /// What the device runs at every boot: settle whatever is pending.
    pub fn boot(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<BootReport, InstallError> {
        let booted = self.booted()?;
        let mut report = BootReport {
            booted,
            actions: Vec::new(),
            reboot_needed: false,
        };
        let Some(u) = self.state.update.clone() else {
            if let Some((booted, primary)) = self.booted_uncommitted()? {
                return Err(InstallError::BootedUncommitted { booted, primary });
            }
            report
                .actions
                .push(format!("booted slot {booted}; no update pending"));
            return Ok(report);
        };
        if let Some(pending) = u.ending.clone() {
            // Interrupted while ending the update: finish that, as decided.
            let on_new_slot = u.needs_reboot && booted == u.target;
            self.abandon(u, pending.ending, &pending.reason)?;
            report
                .actions
                .push(format!("finished ending the update: {}", pending.reason));
            // The power cut let the bootloader try the abandoned slot: go back to the old one.
            report.reboot_needed = on_new_slot;
            return Ok(report);
        }
        match u.phase {
            // A fleet server's download needs the daemon's token: the daemon resumes it on its
            // next poll, where the boot flow would only be refused.
            Phase::Fetching if u.credentials => {
                report.actions.push(format!(
                    "the interrupted download of {} is resumed by airlock daemon",
                    describe(&u.release)
                ));
            }
            Phase::Fetching => {
                report.actions.push(format!(
                    "resuming the interrupted install of {} from {}",
                    describe(&u.release),
                    u.source
                ));
                match self.install(&u.source, progress) {
                    Ok(r) => report.actions.push(format!(
                        "installed {} {}; reboot to try it",
                        r.bundle, r.version
                    )),
                    Err(e) => {
                        // Whatever happened, don't leave a half-written update pending at boot.
                        let reason = format!("the interrupted install could not be resumed: {e}");
                        if let Some(u) = self
                            .state
                            .update
                            .clone()
                            .filter(|u| u.phase == Phase::Fetching)
                        {
                            self.fail(u, &reason)?;
                        }
                        report.actions.push(reason);
                    }
                }
            }
            Phase::Switching if booted == u.target => self.enter_trial(u, &mut report)?,
            Phase::Switching => {
                self.finish_switch()?;
                report.actions.push(format!(
                    "finished switching to {}; reboot to try it",
                    describe(&u.release)
                ));
            }
            Phase::Installed | Phase::Trial if booted == u.target => {
                self.enter_trial(u, &mut report)?
            }
            Phase::Installed if self.boot.pending_trial()? == Some(u.target) => {
                report.actions.push(format!(
                    "{} waits in slot {} for a reboot",
                    describe(&u.release),
                    u.target
                ));
            }
            Phase::Installed | Phase::Trial => {
                let reason = format!(
                    "slot {} did not boot; the bootloader fell back to slot {booted}",
                    u.target
                );
                self.abandon(u, Ending::RolledBack, &reason)?;
                report.actions.push(format!("rolled back: {reason}"));
            }
        }
        Ok(report)
    }

    /// Booted into the new slot: run the checks and commit (the plugin chain supplies checks;
    /// without any, booting is the check).
    fn enter_trial(&mut self, mut u: Update, report: &mut BootReport) -> Result<(), InstallError> {
        if u.phase != Phase::Trial {
            u.phase = Phase::Trial;
            self.state.update = Some(u.clone());
            self.store("journal-trial")?;
        }
        // Directory slots go live with the new root filesystem, not before it.
        self.switch_directories(&u)?;
        let slot = Some(u.target.to_string());
        let ctx = plugins::context(&self.config, &self.state, &u.release, slot, Stage::Check);
        let verdict = match self.plugins.run_checks(&ctx)? {
            Some((plugin, reason)) => Some(format!("check {plugin} failed: {reason}")),
            None => match self.plugins.run_hooks(Stage::CommitEnter, &ctx)? {
                HookOutcome::Abort { plugin, reason } => {
                    Some(format!("hook {plugin} aborted the commit: {reason}"))
                }
                HookOutcome::RetryLater { plugin, .. } => {
                    warn!(plugin = %plugin, "retry-later at commit-enter cannot wait across a reboot; committing");
                    None
                }
                HookOutcome::Proceed => None,
            },
        };
        if let Some(reason) = verdict {
            let from = u.from;
            self.abandon(u, Ending::RolledBack, &reason)?;
            report.actions.push(format!("rolled back: {reason}"));
            report.actions.push(format!("rebooting into slot {from}"));
            report.reboot_needed = true;
            return Ok(());
        }
        self.finish_commit(u.clone())?;
        report.actions.push(format!(
            "trial boot of {} in slot {} passed{}; committed",
            describe(&u.release),
            u.target,
            if self.config.chain.checks.is_empty() {
                ""
            } else {
                " its checks"
            }
        ));
        Ok(())
    }

    /// Points every directory slot of the update at its new side. Idempotent.
    fn switch_directories(&self, u: &Update) -> Result<(), InstallError> {
        for d in &u.directories {
            self.directory(&d.class)?.switch_to(d.to)?;
            faults::point("directory-switched");
        }
        Ok(())
    }

    /// Makes the update permanent. Idempotent.
    fn finish_commit(&mut self, u: Update) -> Result<(), InstallError> {
        let slot = u.needs_reboot.then(|| u.target.to_string());
        let ctx = plugins::context(
            &self.config,
            &self.state,
            &u.release,
            slot,
            Stage::CommitLeave,
        );
        // Installers make their part permanent first: if one cannot, nothing is committed yet.
        self.plugins.finish_installers(&u, &ctx, true)?;
        if u.needs_reboot {
            self.boot.commit(u.target)?;
            faults::point("boot-committed");
        }
        self.state.committed = Some(u.release.clone());
        self.state.update = None;
        self.state.last_result = Some(Outcome {
            release: u.release.clone(),
            result: Ending::Committed,
            reason: None,
            at: now(),
        });
        self.store("journal-committed")?;
        info!(bundle = %u.release.bundle, version = %u.release.version, "committed");
        self.plugins.notify(Stage::CommitLeave, &ctx);
        Ok(())
    }

    /// `airlock commit`: make an update on trial permanent without waiting for checks.
    /// Idempotent: with nothing on trial it says so and changes nothing.
    pub fn commit(&mut self) -> Result<String, InstallError> {
        let booted = self.booted()?;
        match self.state.update.clone() {
            None => Ok(match &self.state.committed {
                Some(r) => format!("nothing to commit: {} is committed", describe(r)),
                None => "nothing to commit: no update pending".into(),
            }),
            Some(u) if u.phase >= Phase::Installed && booted == u.target => {
                self.finish_commit(u.clone())?;
                Ok(format!(
                    "committed {} in slot {}",
                    describe(&u.release),
                    u.target
                ))
            }
            Some(u) => Err(InstallError::NotBootedIntoUpdate {
                release: describe(&u.release),
                phase: phase_name(u.phase),
                target: u.target,
                booted,
            }),
        }
    }

    /// `airlock rollback`: abandon the pending update. Before its trial boot this cancels the
    /// trial; on the trial boot it makes the old slot the one booted next. Idempotent.
    pub fn rollback(&mut self, reason: &str) -> Result<(String, bool), InstallError> {
        let booted = self.booted()?;
        let Some(u) = self.state.update.clone() else {
            return Ok(("nothing to roll back: no update pending".into(), false));
        };
        let on_trial = booted == u.target && u.needs_reboot;
        let ending = if on_trial {
            Ending::RolledBack
        } else {
            Ending::Cancelled
        };
        self.abandon(u.clone(), ending, reason)?;
        let msg = if on_trial {
            format!(
                "rolled back {}: reboot to return to slot {}",
                describe(&u.release),
                u.from
            )
        } else {
            format!(
                "cancelled {}; slot {} stays active",
                describe(&u.release),
                u.from
            )
        };
        Ok((msg, on_trial))
    }

    /// Ends the pending update without committing it: cancel the trial, switch directory slots
    /// back, record why. The old slots were never written, so they are as they were.
    fn abandon(&mut self, mut u: Update, ending: Ending, reason: &str) -> Result<(), InstallError> {
        // Record the decision first, so that a power cut half-way through finishes this
        // abandon, with this reason, instead of guessing one from the bootloader.
        if u.ending.is_none() {
            u.ending = Some(PendingEnding {
                ending,
                reason: reason.to_string(),
            });
            self.state.update = Some(u.clone());
            self.store("journal-abandoning")?;
        }
        let slot = u.needs_reboot.then(|| u.target.to_string());
        let (enter, leave) = match ending {
            Ending::Failed => (Stage::Failure, None),
            _ => (Stage::RollbackEnter, Some(Stage::RollbackLeave)),
        };
        let ctx = plugins::context(&self.config, &self.state, &u.release, slot, enter);
        self.plugins.notify(enter, &ctx);
        if let Err(e) = self.plugins.finish_installers(&u, &ctx, false) {
            warn!("installer plugins could not roll back: {e}");
        }
        self.boot.cancel_trial()?;
        // The primary slot is the one the update started from; make sure the bootloader agrees.
        if self.boot.primary()? != u.from {
            self.boot.commit(u.from)?;
        }
        for d in &u.directories {
            let dir = self.directory(&d.class)?;
            if dir.active()? == d.to {
                dir.switch_to(d.from)?;
            }
        }
        faults::point("abandon-switched-back");
        self.state.update = None;
        self.state.last_result = Some(Outcome {
            release: u.release,
            result: ending,
            reason: Some(reason.into()),
            at: now(),
        });
        self.store("journal-abandoned")?;
        info!("update ended without commit: {reason}");
        if let Some(leave) = leave {
            self.plugins.notify(leave, &ctx);
        }
        Ok(())
    }

    /// Runs the hooks of a stage before anything irreversible and acts on their answer:
    /// abort ends the update (or refuses it, before it started), retry-later is recorded and
    /// honoured by the next attempt, up to the chain's retry limit.
    fn gate(
        &mut self,
        stage: Stage,
        release: &Release,
        sha: &Sha256Hex,
        slot: Option<String>,
    ) -> Result<(), InstallError> {
        if self.plugins.chain().hooks(stage).is_empty() {
            return Ok(());
        }
        let ctx = plugins::context(&self.config, &self.state, release, slot, stage);
        let (plugin, reason) = match self.plugins.run_hooks(stage, &ctx)? {
            HookOutcome::Proceed => {
                if self
                    .state
                    .retry
                    .as_ref()
                    .is_some_and(|r| r.manifest_sha256 == *sha && r.stage == stage.as_str())
                {
                    self.state.retry = None;
                    self.store("journal-retry-cleared")?;
                }
                return Ok(());
            }
            HookOutcome::RetryLater { plugin, seconds } => {
                let attempts = self
                    .state
                    .retry
                    .as_ref()
                    .filter(|r| r.manifest_sha256 == *sha && r.stage == stage.as_str())
                    .map_or(0, |r| r.attempts)
                    + 1;
                let limit = self.plugins.chain().retry_limit;
                if attempts > limit {
                    let reason = format!(
                        "asked to retry later {attempts} times; the chain's retry-limit is {limit}"
                    );
                    (plugin, reason)
                } else {
                    let not_before = unix_now() + u64::from(seconds);
                    self.state.retry = Some(Retry {
                        release: release.clone(),
                        manifest_sha256: *sha,
                        stage: stage.as_str().to_string(),
                        plugin: plugin.clone(),
                        not_before,
                        attempts,
                    });
                    self.store("journal-retry-later")?;
                    return Err(InstallError::RetryLater {
                        plugin,
                        stage: stage.to_string(),
                        seconds: u64::from(seconds),
                        at: unix_to_rfc3339(not_before),
                    });
                }
            }
            HookOutcome::Abort { plugin, reason } => (plugin, reason),
        };
        let err = InstallError::HookAborted {
            plugin,
            stage: stage.to_string(),
            reason,
        };
        self.state.retry = None;
        // Only this bundle's update ends here; another one waiting for its reboot is not ours.
        match self
            .state
            .update
            .clone()
            .filter(|u| u.manifest_sha256 == *sha)
        {
            Some(u) => {
                let ending = if u.phase >= Phase::Installed {
                    Ending::RolledBack
                } else {
                    Ending::Failed
                };
                self.abandon(u, ending, &err.to_string())?;
            }
            None => {
                self.state.last_result = Some(Outcome {
                    release: release.clone(),
                    result: Ending::Failed,
                    reason: Some(err.to_string()),
                    at: now(),
                });
                self.store("journal-refused-by-hook")?;
            }
        }
        Err(err)
    }

    /// Refuses to try a bundle again before the time a hook asked for.
    fn check_retry(&self, sha: &Sha256Hex) -> Result<(), InstallError> {
        if let Some(r) = &self.state.retry
            && r.manifest_sha256 == *sha
            && unix_now() < r.not_before
        {
            return Err(InstallError::RetryLater {
                plugin: r.plugin.clone(),
                stage: r.stage.clone(),
                seconds: r.not_before - unix_now(),
                at: unix_to_rfc3339(r.not_before),
            });
        }
        Ok(())
    }

    /// Saves the plugins a bundle brings for this update, when the chain allows bundled plugins:
    /// installers one of its payloads names, and checks the chain runs. Each is verified against
    /// the signed manifest already; so is the precompiled form for this device's CPU, saved
    /// beside it, which that digest alone vouches for. A device build, which cannot compile,
    /// refuses a bundle that has no precompiled form for it before anything is saved.
    fn take_bundled_plugins<R: BundleInput>(
        &mut self,
        reader: &mut BundleReader<R>,
        manifest_sha256: &Sha256Hex,
    ) -> Result<Vec<BundledPlugin>, InstallError> {
        let manifest = reader.manifest();
        let wanted: Vec<&PluginInfo> = manifest
            .plugins
            .iter()
            .filter(|p| {
                let installer = manifest
                    .payloads
                    .iter()
                    .any(|pl| pl.target == Target::Installer(p.name.clone()));
                installer || self.config.chain.checks.contains(&p.name)
            })
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        if !self.config.chain.bundled_plugins {
            let names: Vec<&str> = wanted.iter().map(|p| p.name.as_str()).collect();
            info!(plugins = ?names, "the bundle brings plugins but [chain] bundled-plugins is off; using the device's own");
            return Ok(Vec::new());
        }
        let target = plugin::precompiled::native_target();
        if !cfg!(feature = "compiler")
            && let Some(p) = wanted.iter().find(|p| p.precompiled_for(target).is_none())
        {
            return Err(InstallError::NoPrecompiledForm {
                plugin: p.name.clone(),
                target: target.to_string(),
            });
        }
        let wanted: Vec<String> = wanted.iter().map(|p| p.name.clone()).collect();
        let dir = self.bundled_dir(manifest_sha256);
        let saving = |name: &str, source: std::io::Error| InstallError::SaveBundledPlugin {
            plugin: name.to_string(),
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(|e| saving("plugins", e))?;
        let mut saved = Vec::new();
        while let Some((info, bytes)) = reader.next_plugin()? {
            if !wanted.contains(&info.name) {
                continue;
            }
            let mut plugin = BundledPlugin {
                name: info.name.clone(),
                path: dir.join(format!("{}.wasm", info.name)),
                precompiled: None,
            };
            crate::fsutil::atomic_write(&plugin.path, &bytes).map_err(|e| saving(&info.name, e))?;
            let artifact = plugin.precompiled_path();
            let mut tmp =
                tempfile::NamedTempFile::new_in(&dir).map_err(|e| saving(&info.name, e))?;
            let precompiled = reader.read_precompiled(target, tmp.as_file_mut())?;
            plugin.precompiled = precompiled.map(|p| p.sha256);
            match plugin.precompiled {
                Some(_) => {
                    crate::fsutil::persist(tmp, &artifact).map_err(|e| saving(&info.name, e))?
                }
                None => match std::fs::remove_file(&artifact) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(saving(&info.name, e));
                    }
                    _ => {}
                },
            }
            crate::fsutil::sync_dir(&dir).map_err(|e| saving(&info.name, e))?;
            info!(plugin = %plugin.name, precompiled = plugin.precompiled.is_some(), "using the plugin the bundle brought");
            self.plugins.use_bundled(&plugin);
            saved.push(plugin);
        }
        self.forget_bundled_except(&dir);
        Ok(saved)
    }

    /// Where the plugins of the bundle with this manifest are saved: one folder per bundle, so
    /// that a bundle that is refused cannot overwrite what a pending update uses.
    fn bundled_dir(&self, manifest_sha256: &Sha256Hex) -> std::path::PathBuf {
        let id = manifest_sha256.to_string();
        self.config.bundled_plugins_dir().join(&id[..16])
    }

    /// Removes the saved plugins of bundles other than `keep` and the pending update's.
    fn forget_bundled_except(&self, keep: &std::path::Path) {
        let pending = self
            .state
            .update
            .as_ref()
            .map(|u| self.bundled_dir(&u.manifest_sha256));
        let root = self.config.bundled_plugins_dir();
        let Ok(entries) = std::fs::read_dir(&root) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir()
                && path != keep
                && Some(&path) != pending.as_ref()
                && let Err(e) = std::fs::remove_dir_all(&path)
            {
                warn!(path = %path.display(), "cannot remove old bundled plugins: {e}");
            }
        }
    }

    /// Runs the reboot-enter hooks before the device reboots into a pending update. An abort
    /// cancels the update; retry-later is recorded and refused until its time.
    pub fn before_reboot(&mut self) -> Result<(), InstallError> {
        let Some(u) = self.state.update.clone() else {
            return Ok(());
        };
        if u.phase != Phase::Installed {
            return Ok(());
        }
        self.check_retry(&u.manifest_sha256)?;
        self.gate(
            Stage::RebootEnter,
            &u.release,
            &u.manifest_sha256,
            Some(u.target.to_string()),
        )
    }

    fn fail(&mut self, u: Update, reason: &str) -> Result<(), InstallError> {
        self.abandon(u, Ending::Failed, reason)
    }

    /// Refuses bundles not meant for this device, expired or older than what it runs.
    fn check_policy(&self, manifest: &Manifest) -> Result<(), InstallError> {
        let device_type = &self.config.device.device_type;
        if !manifest.compatible.iter().any(|t| t == device_type) {
            return Err(InstallError::WrongDevice {
                bundle: format!("{} {}", manifest.name, manifest.version),
                compatible: manifest.compatible.join(", "),
                device_type: device_type.clone(),
            });
        }
        if let Some(expires) = manifest.expires_at()?
            && expires <= SystemTime::now()
        {
            return Err(InstallError::Expired {
                bundle: format!("{} {}", manifest.name, manifest.version),
                expires: manifest.expires.clone().unwrap_or_default(),
            });
        }
        if let Some(floor) = &self.state.committed
            && manifest.version < floor.version
            && !self.config.trust.allow_downgrade
        {
            return Err(InstallError::Downgrade {
                version: manifest.version.clone(),
                floor: floor.version.clone(),
            });
        }
        Ok(())
    }

    /// Where each payload goes; checks every slot exists and is large enough before anything is
    /// written.
    fn plan(&self, manifest: &Manifest, target: Slot) -> Result<Vec<PayloadPlan>, InstallError> {
        let configured = || {
            self.config
                .slots
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        manifest
            .payloads
            .iter()
            .map(|p| match &p.target {
                Target::Installer(plugin) if self.config.chain.installers.contains(plugin) => {
                    Ok(PayloadPlan::Plugin {
                        name: plugin.clone(),
                    })
                }
                Target::Installer(plugin) => Err(InstallError::NoInstaller {
                    payload: p.name.clone(),
                    plugin: plugin.clone(),
                }),
                Target::Slot(class) => match self.config.slots.get(class) {
                    None => Err(InstallError::UnknownSlotClass {
                        payload: p.name.clone(),
                        class: class.clone(),
                        configured: configured(),
                    }),
                    Some(SlotConfig::Raw { a, b }) => {
                        self.raw_plan(p, class, target, [RawSlot::new(a), RawSlot::new(b)])
                    }
                    Some(SlotConfig::File { a, b }) => {
                        self.raw_plan(p, class, target, [RawSlot::file(a), RawSlot::file(b)])
                    }
                    Some(SlotConfig::Directory { path }) => {
                        let slot = DirectorySlot::new(path);
                        slot.init()?;
                        Ok(PayloadPlan::Directory {
                            class: class.clone(),
                            slot,
                        })
                    }
                },
            })
            .collect()
    }

    /// A payload for a raw or file slot: `sides` are slot a and slot b; refuses a payload
    /// larger than the side it goes to.
    fn raw_plan(
        &self,
        p: &crate::bundle::PayloadInfo,
        class: &str,
        target: Slot,
        sides: [RawSlot; 2],
    ) -> Result<PayloadPlan, InstallError> {
        let [a, b] = sides;
        let (slot, active) = match target {
            Slot::A => (a, b),
            Slot::B => (b, a),
        };
        let capacity = slot.max_payload()?;
        if p.size > capacity {
            return Err(InstallError::PayloadTooLarge {
                payload: p.name.clone(),
                size: p.size,
                class: class.to_string(),
                target,
                path: slot.path().to_path_buf(),
                capacity,
            });
        }
        let data_dir = &self.config.device.data_dir;
        Ok(PayloadPlan::Raw(RawPlan {
            slot,
            active,
            record: local_chunks::record_path(data_dir, class, target),
            active_record: local_chunks::record_path(data_dir, class, target.other()),
        }))
    }

    fn directory(&self, class: &str) -> Result<DirectorySlot, InstallError> {
        match self.config.slots.get(class) {
            Some(SlotConfig::Directory { path }) => Ok(DirectorySlot::new(path)),
            _ => Err(InstallError::DirectorySlotGone {
                class: class.to_string(),
            }),
        }
    }
}

/// Where one payload goes.
pub(crate) enum PayloadPlan {
    Raw(RawPlan),
    Directory {
        class: String,
        slot: DirectorySlot,
    },
    /// Handed to an installer plugin.
    Plugin {
        name: String,
    },
}

/// A payload for a raw slot: the side written, and the active side a delta install copies from.
pub(crate) struct RawPlan {
    pub slot: RawSlot,
    pub active: RawSlot,
    /// The record of the chunks written into `slot`, and the one of `active`.
    pub record: std::path::PathBuf,
    pub active_record: std::path::PathBuf,
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds as an RFC 3339 UTC time, as the journal's other times are written.
pub fn unix_to_rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}
