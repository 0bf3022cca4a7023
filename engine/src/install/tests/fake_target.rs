//! The state machine with a fake [`PayloadTarget`] in place of the configured slots: what it
//! hands a target, and what it does when a target fails, is interrupted or needs no reboot.

use std::io;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{SimDevice, rootfs};
use crate::boot::Side;
use crate::bundle::{BundleError, ChunkIndex};
use crate::install::record::{Ending, Phase};
use crate::install::stream::PayloadWrite;
use crate::install::target::PayloadTarget;
use crate::install::{Device, InstallError, InstallReport};

/// What the fake target is told to do.
#[derive(Clone, Copy, Default)]
struct Script {
    needs_reboot: bool,
    fail_prepare: bool,
    /// Fail (as a full or broken device would) when this many chunks are written.
    fail_at: Option<usize>,
    /// Be cut off (as a dropped download would) when this many chunks are written.
    cut_at: Option<usize>,
}

/// What the fake target holds, shared by every device opened in one test, as a slot would be.
#[derive(Default)]
struct Held {
    prepared: usize,
    /// The chunks written, in order: the target's content.
    chunks: Vec<Vec<u8>>,
    /// Chunks handed over in the last attempt.
    last_attempt: usize,
}

struct FakeTarget {
    script: Script,
    held: Arc<Mutex<Held>>,
}

fn broken(what: &str) -> InstallError {
    InstallError::DataDir {
        action: "write",
        path: "fake-target".into(),
        source: io::Error::other(what.to_string()),
    }
}

impl PayloadTarget for FakeTarget {
    fn needs_reboot(&self) -> bool {
        self.script.needs_reboot
    }

    fn prepare(&self) -> Result<(), InstallError> {
        self.held.lock().unwrap().prepared += 1;
        match self.script.fail_prepare {
            true => Err(broken("read-only target")),
            false => Ok(()),
        }
    }

    /// The leading chunks whose bytes still match the index, as a real target reads them back.
    fn intact(&self, index: &ChunkIndex) -> Result<(u64, u64), InstallError> {
        let held = self.held.lock().unwrap();
        let matching = held
            .chunks
            .iter()
            .zip(&index.entries)
            .take_while(|(data, entry)| Sha256::digest(data).as_slice() == entry.sha256.0)
            .count();
        let bytes = index.entries[..matching]
            .iter()
            .map(|e| u64::from(e.length))
            .sum();
        Ok((matching as u64, bytes))
    }

    fn write(&self, payload: &mut PayloadWrite<'_, '_>) -> Result<(), InstallError> {
        let (skip, bytes) = payload.intact();
        payload.skip_intact(skip, bytes)?;
        let mut held = self.held.lock().unwrap();
        held.chunks.truncate(skip as usize);
        held.last_attempt = 0;
        while let Some(data) = payload.next_chunk()? {
            let written = held.chunks.len();
            if self.script.fail_at == Some(written) {
                return Err(broken("no space left on the fake target"));
            }
            if self.script.cut_at == Some(written) {
                return Err(BundleError::Truncated {
                    expected: "the next chunk".into(),
                    offset: 0,
                }
                .into());
            }
            let len = data.len() as u64;
            held.chunks.push(data.to_vec());
            held.last_attempt += 1;
            payload.advance(len);
        }
        Ok(())
    }
}

/// The device of `dev` with every payload going to a fake target that follows `script`.
fn with_fake(dev: &SimDevice, script: Script, held: &Arc<Mutex<Held>>) -> Device {
    let held = held.clone();
    dev.open().with_planner(Box::new(move |_, manifest, _| {
        Ok(manifest
            .payloads
            .iter()
            .map(|_| {
                Box::new(FakeTarget {
                    script,
                    held: held.clone(),
                }) as Box<dyn PayloadTarget>
            })
            .collect())
    }))
}

/// Installs release 2.0.0 (the same bundle file each time: a bundle built again is another
/// bundle, which would supersede rather than resume).
fn install(
    dev: &SimDevice,
    script: Script,
    held: &Arc<Mutex<Held>>,
) -> Result<InstallReport, InstallError> {
    let bundle = dev.path("os-2.0.0-board.airlock");
    if !bundle.exists() {
        dev.bundle("2.0.0", "board", None);
    }
    with_fake(dev, script, held).install(bundle.to_str().unwrap(), &mut |_| {})
}

const REBOOT: Script = Script {
    needs_reboot: true,
    fail_prepare: false,
    fail_at: None,
    cut_at: None,
};

#[test]
fn the_target_gets_every_verified_chunk_in_order_and_the_trial_is_armed() {
    let dev = SimDevice::new();
    let held = Arc::default();
    let report = install(&dev, REBOOT, &held).unwrap();
    assert!(report.needs_reboot && !report.committed, "{report:?}");
    let held = held.lock().unwrap();
    assert_eq!(held.prepared, 1);
    assert!(held.chunks.len() > 1, "the test image must span chunks");
    assert_eq!(held.chunks.concat(), rootfs("2.0.0"));
    let device = dev.open();
    assert_eq!(
        device.state().update.as_ref().unwrap().phase,
        Phase::Installed
    );
    assert_eq!(
        device.boot_backend().pending_trial().unwrap(),
        Some(Side::B)
    );
    // The planner chose the target: the configured slot was never written.
    assert!(dev.slot("b").iter().all(|&b| b == 0));
}

#[test]
fn a_target_failing_mid_write_fails_the_update_and_arms_nothing() {
    let dev = SimDevice::new();
    let held = Arc::default();
    let script = Script {
        fail_at: Some(1),
        ..REBOOT
    };
    let err = install(&dev, script, &held).unwrap_err();
    assert!(!err.is_transport(), "{err}");
    assert!(err.to_string().contains("no space left"), "{err}");
    let device = dev.open();
    assert!(device.state().update.is_none());
    let last = device.state().last_result.as_ref().unwrap();
    assert_eq!(last.result, Ending::Failed);
    assert!(
        last.reason.as_deref().unwrap().contains("no space left"),
        "{last:?}"
    );
    assert_eq!(device.boot_backend().pending_trial().unwrap(), None);
    assert_eq!(device.boot_backend().primary().unwrap(), Side::A);
}

#[test]
fn a_cut_off_write_stays_pending_and_the_next_attempt_gets_only_the_rest() {
    let dev = SimDevice::new();
    let held: Arc<Mutex<Held>> = Arc::default();
    let script = Script {
        cut_at: Some(1),
        ..REBOOT
    };
    let err = install(&dev, script, &held).unwrap_err();
    assert!(err.is_transport(), "{err}");
    let first = held.lock().unwrap().chunks[0].len() as u64;
    dev.assert_fetching_and_unarmed();

    let report = install(&dev, REBOOT, &held).unwrap();
    assert_eq!(report.resumed_bytes, first, "{report:?}");
    let held = held.lock().unwrap();
    assert_eq!(held.last_attempt, held.chunks.len() - 1);
    assert_eq!(held.chunks.concat(), rootfs("2.0.0"));
    assert_eq!(
        dev.open().boot_backend().pending_trial().unwrap(),
        Some(Side::B)
    );
}

#[test]
fn a_target_that_needs_no_reboot_commits_at_once() {
    let dev = SimDevice::new();
    let held = Arc::default();
    let report = install(&dev, Script::default(), &held).unwrap();
    assert!(report.committed && !report.needs_reboot, "{report:?}");
    assert_eq!(report.slot, None);
    let device = dev.open();
    assert!(device.state().update.is_none());
    let committed = device.state().committed.as_ref().unwrap();
    assert_eq!(committed.version.to_string(), "2.0.0");
    assert_eq!(device.boot_backend().pending_trial().unwrap(), None);
    assert_eq!(device.boot_backend().primary().unwrap(), Side::A);
}

#[test]
fn a_target_that_cannot_be_prepared_stops_the_install_before_it_is_recorded() {
    let dev = SimDevice::new();
    let held: Arc<Mutex<Held>> = Arc::default();
    let script = Script {
        fail_prepare: true,
        ..REBOOT
    };
    let err = install(&dev, script, &held).unwrap_err();
    assert!(err.to_string().contains("read-only target"), "{err}");
    assert!(held.lock().unwrap().chunks.is_empty());
    let device = dev.open();
    assert!(device.state().update.is_none());
    assert!(device.state().last_result.is_none());
    assert_eq!(device.boot_backend().pending_trial().unwrap(), None);
}
