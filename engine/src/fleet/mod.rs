//! `airlock daemon`: the device side of a fleet, over hawkBit's DDI protocol (the messages are
//! in the `airlock-ddi` crate), against Eclipse hawkBit or `airlock-server` alike.
//!
//! Each cycle ([`Daemon::run_once`]):
//!
//! 1. send the feedback still in the [outbox](outbox) (results made while offline); out of
//!    reach, the cycle still does step 2, then waits and tries again;
//! 2. settle the [action](action) in hand after a reboot: committed → `closed`/`success`,
//!    rolled back → `closed`/`failure` naming the check or hook and why; still armed → reboot;
//! 3. poll `{server}/{tenant}/controller/v1/{controllerId}` and take the polling interval;
//! 4. `PUT configData` with the [attributes](attributes) when asked or when they changed;
//! 5. `cancelAction`: honoured while nothing was written, else rejected with the reason;
//! 6. `deploymentBase`: an action the device closed already is answered with its result again,
//!    never run twice (`finished`); otherwise install now or wait ([plan]); install the
//!    `.airlock` artifact through the normal install path — signature, threshold, device type
//!    and version floor are checked as for any bundle; the server is never trusted for
//!    authenticity — then reboot into the trial when the update needs it. A bundle the device
//!    already runs is closed as installed, with nothing written and no reboot;
//! 7. `installedBase`: compared with what the device runs, for the log.
//!
//! The device is opened only around what changes it, never across a sleep: an operator's
//! `airlock status` or `airlock install` works while the daemon runs.

mod action;
pub mod attributes;
mod client;
mod daemon;
mod deploy;
mod finished;
pub mod outbox;
pub mod plan;
pub mod reconcile;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use action::{Action, Stage};
pub use client::{ClientError, DdiClient, feedback_href};
pub use daemon::{AfterReboot, Daemon, Next, RebootFn};

use crate::install::InstallError;
use crate::source::SourceError;

/// Why the daemon could not start or finish a cycle. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(
        "{path} has no [fleet] section; add one with `server` and `token_file` to run `airlock daemon`"
    )]
    NotConfigured { path: PathBuf },
    #[error(
        "cannot use the token file {}: {reason}; put the token the server issued for this device in it",
        path.display()
    )]
    Token { path: PathBuf, reason: String },
    #[error("cannot set up the connection to the fleet server: {0}")]
    Setup(SourceError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error("cannot write {}: {reason}; check [device] data_dir", path.display())]
    Store { path: PathBuf, reason: String },
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot reboot into the new slot: {0}")]
    Reboot(String),
}

impl FleetError {
    fn store(path: &Path, e: std::io::Error) -> Self {
        FleetError::Store {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }
}
