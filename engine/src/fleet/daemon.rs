//! The daemon's cycle; see the module docs of [`crate::fleet`] for the steps.

use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use airlock_ddi::{
    ActionFeedback, CancelAction, ConfigData, DeploymentBase, Execution, Finished, Link,
    UpdateMode, action_id_of, parse_sleep,
};

use super::FleetError;
use super::action::{Action, JsonFile, Stage};
use super::attributes::{self, Memory, attributes};
use super::client::{DdiClient, feedback_href};
use super::finished::FinishedActions;
use super::outbox::{Entry, Outbox};
use super::reconcile::{Settled, reconcile};
use crate::boot::Side;
use crate::config::{Config, FleetConfig};
use crate::install::record::DeviceState;
use crate::install::{Device, InstallError};

/// The first wait after a failed cycle; it doubles with each failure in a row, up to the
/// configured poll interval.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// Installs broken off by the network before the action is reported failed.
pub(super) const MAX_ATTEMPTS: u32 = 3;
/// The shortest polling interval honoured, whatever the server says.
pub(super) const MIN_SLEEP: Duration = Duration::from_secs(1);

/// What to do after the reboot callback returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReboot {
    /// The device came back within this process (a simulated device): go on cycling.
    Continue,
    /// The machine is going down: stop; the daemon starts again after the boot.
    Exit,
}

/// Reboots into the trial slot (the `reboot-enter` hooks have run already).
pub type RebootFn = Box<dyn FnMut() -> Result<AfterReboot, String> + Send>;

/// What the loop does after a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Sleep(Duration),
    Exit,
}

pub struct Daemon {
    pub(super) config: Config,
    pub(super) fleet: FleetConfig,
    pub(super) client: DdiClient,
    pub(super) outbox: Outbox,
    pub(super) action: JsonFile<Action>,
    pub(super) memory_file: JsonFile<Memory>,
    pub(super) memory: Memory,
    /// The deployments closed lately, to answer a server that offers one again.
    pub(super) finished: FinishedActions,
    pub(super) reboot: RebootFn,
    /// The server's polling interval, or the configured one until it says.
    pub(super) interval: Duration,
    /// Failed cycles in a row.
    pub(super) failures: u32,
}

impl Daemon {
    /// Reads the token, sets up the client and opens the daemon's files in
    /// `<data_dir>/fleet/`. Fails on a configuration the daemon cannot run with.
    pub fn new(config: Config, reboot: RebootFn) -> Result<Self, FleetError> {
        let fleet = config
            .fleet
            .clone()
            .ok_or_else(|| FleetError::NotConfigured {
                path: config.path.clone(),
            })?;
        let client = DdiClient::new(&fleet, &config.download)?;
        let dir = config.device.data_dir.join("fleet");
        std::fs::create_dir_all(&dir).map_err(|e| FleetError::store(&dir, e))?;
        let outbox = Outbox::open(&dir)?;
        let memory_file = JsonFile::new(dir.join("memory.json"));
        let memory = memory_file.load().unwrap_or_else(|e| {
            warn!("{e}; starting afresh (the attributes are sent again)");
            None
        });
        Ok(Self {
            interval: fleet.poll_interval,
            fleet,
            client,
            outbox,
            action: JsonFile::new(dir.join("action.json")),
            memory_file,
            memory: memory.unwrap_or_default(),
            finished: FinishedActions::open(&dir),
            reboot,
            config,
            failures: 0,
        })
    }

    /// Feedback waiting for the server.
    pub fn outbox(&self) -> &[Entry] {
        self.outbox.entries()
    }

    /// The action in hand, if any.
    pub fn action(&self) -> Option<Action> {
        self.action.load().ok().flatten()
    }

    /// Cycles until a reboot stops the process. A failed cycle is logged and retried after a
    /// growing wait; nothing a server says ends the loop.
    pub fn run(&mut self) {
        loop {
            let wait = match self.run_once() {
                Ok(Next::Exit) => return,
                Ok(Next::Sleep(d)) => d,
                Err(e) => {
                    let wait = self.retry_wait();
                    warn!("{e}; trying again in {}", humantime::format_duration(wait));
                    wait
                }
            };
            std::thread::sleep(wait);
        }
    }

    /// One cycle: flush, settle, poll, report, act.
    pub fn run_once(&mut self) -> Result<Next, FleetError> {
        let result = self.cycle();
        self.failures = if result.is_ok() { 0 } else { self.failures + 1 };
        result
    }

    /// How long to wait after the failed cycles so far.
    pub fn retry_wait(&self) -> Duration {
        let doubled = FIRST_RETRY.saturating_mul(1 << self.failures.saturating_sub(1).min(16));
        doubled.min(self.fleet.poll_interval)
    }

    pub(super) fn cycle(&mut self) -> Result<Next, FleetError> {
        // Settled even when the server is out of reach: the result is then kept in the outbox,
        // and a device waiting for its reboot reboots.
        let flushed = self.flush();
        if let Some(next) = self.settle()? {
            return Ok(next);
        }
        flushed?;
        let base = self.client.poll()?;
        self.interval = match parse_sleep(&base.config.polling.sleep) {
            Ok(d) => d.max(MIN_SLEEP),
            Err(e) => {
                warn!(
                    "{e}; polling every {}",
                    humantime::format_duration(self.fleet.poll_interval)
                );
                self.fleet.poll_interval
            }
        };
        let links = &base.links;
        let id = |l: &Option<Link>| {
            l.as_ref()
                .and_then(|l| action_id_of(&l.href))
                .map(str::to_string)
        };
        info!(
            sleep = %base.config.polling.sleep,
            deployment = ?id(&links.deployment_base),
            cancel = ?id(&links.cancel_action),
            installed = ?id(&links.installed_base),
            config_data = links.config_data.is_some(),
            "polled"
        );
        if let Err(e) = self.send_attributes(links.config_data.as_ref()) {
            warn!("cannot report the attributes: {e}");
        }
        if let Some(link) = &links.installed_base
            && let Err(e) = self.look_at_installed_base(&link.href)
        {
            debug!("cannot read the installed base: {e}");
        }
        if let Some(link) = &links.cancel_action {
            self.cancel(&link.href)?;
            return Ok(Next::Sleep(self.interval));
        }
        match &links.deployment_base {
            Some(link) => self.deployment(&link.href),
            None => {
                if let Some(a) = self.load_action()?
                    && a.stage == Stage::Waiting
                {
                    info!(action = %a.id, "the server no longer offers action {}; forgetting it", a.id);
                    self.action.clear()?;
                }
                Ok(Next::Sleep(self.interval))
            }
        }
    }

    pub(super) fn flush(&mut self) -> Result<(), FleetError> {
        let client = &self.client;
        self.outbox
            .flush(&mut |e: &Entry| client.post_feedback(&e.href, &e.feedback))
            .map(|_| ())
    }

    /// Queues feedback durably, then tries to deliver it (and anything before it) now.
    /// Reports the action's final result and forgets it.
    pub(super) fn close_action(
        &mut self,
        href: &str,
        finished: Finished,
        detail: String,
    ) -> Result<(), FleetError> {
        self.report(
            href,
            ActionFeedback::new(Execution::Closed, finished, vec![detail]),
        )?;
        self.action.clear()
    }

    pub(super) fn report(
        &mut self,
        href: &str,
        mut feedback: ActionFeedback,
    ) -> Result<(), FleetError> {
        feedback.timestamp = Some(unix_millis());
        let status = &feedback.status;
        info!(
            href,
            execution = ?status.execution,
            finished = ?status.result.finished,
            details = ?status.details,
            "feedback"
        );
        if feedback.status.execution == Execution::Closed
            && let Some(id) = href
                .strip_suffix("/feedback")
                .filter(|base| base.contains("/deploymentBase/"))
                .and_then(action_id_of)
            && let Err(e) = self.finished.record(id, &feedback)
        {
            warn!("cannot remember that action {id} closed: {e}");
        }
        self.outbox.push(Entry {
            href: href.to_string(),
            feedback,
        })?;
        if let Err(e) = self.flush() {
            warn!("the feedback stays in the outbox until the server takes it: {e}");
        }
        Ok(())
    }

    pub(super) fn load_action(&self) -> Result<Option<Action>, FleetError> {
        match self.action.load() {
            Err(e @ FleetError::Corrupt { .. }) => {
                warn!(
                    "{e}; forgetting the action (the server offers it again if it is still open)"
                );
                self.action.clear()?;
                Ok(None)
            }
            other => other,
        }
    }

    /// The device as it is: its journal, the booted slot, the trial armed.
    pub(super) fn look(&self) -> Result<(DeviceState, Side, Option<Side>), FleetError> {
        let device = Device::open_read_only(self.config.clone())?;
        let booted = device.booted()?;
        let pending = device
            .boot_backend()
            .pending_trial()
            .map_err(InstallError::from)?;
        Ok((device.state().clone(), booted, pending))
    }

    /// After a reboot or a restart: report how the installed action ended, or reboot into it.
    pub(super) fn settle(&mut self) -> Result<Option<Next>, FleetError> {
        let Some(action) = self.load_action()? else {
            return Ok(None);
        };
        if action.stage != Stage::Installed {
            return Ok(None);
        }
        let (state, booted, pending) = self.look()?;
        match reconcile(&action, &state, booted, pending) {
            Settled::Nothing => Ok(None),
            Settled::Unsettled(why) => {
                info!(action = %action.id, "{why}");
                Ok(None)
            }
            Settled::AwaitReboot => self.reboot_into_trial(action).map(Some),
            Settled::Done { feedback, health } => {
                if let Some(health) = health {
                    self.memory.health = Some(health);
                    self.save_memory();
                }
                self.report(&feedback_href(&action.href), feedback)?;
                self.action.clear()?;
                Ok(None)
            }
        }
    }

    pub(super) fn save_memory(&self) {
        if let Err(e) = self.memory_file.save(&self.memory) {
            warn!("{e}");
        }
    }

    pub(super) fn send_attributes(&mut self, link: Option<&Link>) -> Result<(), FleetError> {
        let device = Device::open_read_only(self.config.clone())?;
        let booted = device.booted()?;
        // Running a slot that was never committed outranks the last trial's health: the device
        // runs a release nobody chose (the bootloader did not read its environment).
        let health = match device.booted_uncommitted()? {
            Some((booted, primary)) => {
                let e = InstallError::BootedUncommitted { booted, primary };
                warn!("{e}");
                Some(format!(
                    "failed: runs slot {booted}, never committed (committed: {primary}); the bootloader ignored its environment"
                ))
            }
            None => self.memory.health.clone(),
        };
        let mut attrs = attributes::configured(&self.fleet.attributes);
        attrs.extend(attributes(
            &self.config.device.device_type,
            device.state(),
            booted,
            health.as_deref(),
        ));
        if link.is_none() && self.memory.sent.as_ref() == Some(&attrs) {
            return Ok(());
        }
        let href = link.map_or_else(
            || format!("{}/configData", self.client.base_url()),
            |l| l.href.clone(),
        );
        let body = ConfigData {
            mode: Some(UpdateMode::Merge),
            data: attrs.clone(),
        };
        self.client.put_config_data(&href, &body)?;
        info!(version = %attrs["airlock.version"], health = %attrs["airlock.health"], "attributes reported");
        self.memory.sent = Some(attrs);
        self.save_memory();
        Ok(())
    }

    /// `installedBase`: what the server believes the device runs. The device's journal is the
    /// authority; a difference is only logged.
    pub(super) fn look_at_installed_base(&mut self, href: &str) -> Result<(), FleetError> {
        if self.memory.installed_base.as_deref() == Some(href) {
            return Ok(());
        }
        let base: DeploymentBase = self.client.get(href)?;
        let (state, ..) = self.look()?;
        let server: Vec<String> = base
            .deployment
            .chunks
            .iter()
            .map(|c| format!("{} {}", c.name, c.version))
            .collect();
        let device = state
            .committed
            .as_ref()
            .map_or("nothing committed".into(), crate::install::describe);
        info!(action = %base.id, "the server records {} as installed; the device runs {device}", server.join(", "));
        self.memory.installed_base = Some(href.to_string());
        self.save_memory();
        Ok(())
    }

    /// `cancelAction`: honoured while nothing of the action was written, rejected after.
    pub(super) fn cancel(&mut self, href: &str) -> Result<(), FleetError> {
        let cancel: CancelAction = self.client.get(href)?;
        let stop = cancel.cancel_action.stop_id;
        let fb = feedback_href(href);
        let held = self.load_action()?.filter(|a| a.id == stop);
        let (execution, finished, detail) = match &held {
            Some(a) if a.stage == Stage::Installing => (
                Execution::Rejected,
                Finished::None,
                format!(
                    "{} is being written to the inactive slots; it can no longer be cancelled",
                    a.describe()
                ),
            ),
            Some(a) if a.stage == Stage::Installed => (
                Execution::Rejected,
                Finished::None,
                format!(
                    "{} is installed{} and waits for its trial boot; it can no longer be cancelled",
                    a.describe(),
                    a.slot.map_or(String::new(), |s| format!(" in slot {s}"))
                ),
            ),
            Some(a) => {
                self.action.clear()?;
                (
                    Execution::Closed,
                    Finished::Success,
                    format!("cancelled {} before anything was installed", a.describe()),
                )
            }
            None => (
                Execution::Closed,
                Finished::Success,
                format!("nothing of action {stop} is in progress on the device"),
            ),
        };
        self.report(&fb, ActionFeedback::new(execution, finished, vec![detail]))
    }
}

pub(super) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) fn unix_secs() -> u64 {
    unix_millis() / 1000
}
