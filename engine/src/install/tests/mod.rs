//! The state machine driven in-process: a device in a temporary folder with the sim bootloader,
//! file slots and a directory slot, real signed bundles. A restart is a fresh [`Device::open`]
//! of the same folder; a reboot is [`boot::sim_reboot`]. `fake_target` puts a fake target in
//! place of the slots.

mod fake_target;

use std::path::{Path, PathBuf};

use airlock_testkit::{BundleToml, image_bytes, tar_archive};

use super::record::{Ending, Phase};
use super::{Device, InstallError, InstallReport};
use crate::boot::{self, Side};
use crate::bundle::{BundleSpec, CreateOptions, create_bundle};
use crate::config::Config;
use crate::keys;

const SLOT_SIZE: u64 = 4 << 20;

struct SimDevice {
    dir: tempfile::TempDir,
    key: PathBuf,
}

impl SimDevice {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["slots", "boot", "data", "keys"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let (key, _, _) = keys::generate(&root.join("keys/release")).unwrap();
        for side in ["a", "b"] {
            let slot = std::fs::File::create(root.join(format!("slots/rootfs.{side}"))).unwrap();
            slot.set_len(SLOT_SIZE).unwrap();
        }
        boot::sim_init(&root.join("boot/bootloader.env")).unwrap();
        let config = boot::sim_device_config("board");
        std::fs::write(root.join("airlock.toml"), config).unwrap();
        Self { dir, key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The device as a fresh process finds it.
    fn open(&self) -> Device {
        Device::open(Config::load(&self.path("airlock.toml")).unwrap()).unwrap()
    }

    /// A signed bundle of version `version` for device type `device_type`: a rootfs image, and
    /// an app archive when `app` is given.
    fn bundle(&self, version: &str, device_type: &str, app: Option<&[u8]>) -> PathBuf {
        let name = format!("os-{version}-{device_type}");
        let image = self.path(&format!("{name}.img"));
        std::fs::write(&image, rootfs(version)).unwrap();
        let mut toml =
            BundleToml::new("os", version, &[device_type]).payload("rootfs", &image, "rootfs");
        if let Some(content) = app {
            let archive = self.path(&format!("{name}.tar"));
            std::fs::write(&archive, tar_archive(&[("app.bin", content)])).unwrap();
            toml = toml.payload("app", &archive, "app");
        }
        let spec_path = toml.write(&self.path(&format!("{name}.toml")));
        let spec = BundleSpec::load(&spec_path).unwrap();
        let out = self.path(&format!("{name}.airlock"));
        let key = keys::load_signing_key(&self.key).unwrap();
        let options = CreateOptions {
            threads: 1,
            ..Default::default()
        };
        create_bundle(&spec, &[key], &out, &options, &mut |_| {}).unwrap();
        out
    }

    fn install(&self, bundle: &Path) -> Result<InstallReport, InstallError> {
        self.open().install(bundle.to_str().unwrap(), &mut |_| {})
    }

    fn reboot(&self, fail: bool) -> Side {
        boot::sim_reboot(&self.path("boot/bootloader.env"), fail).unwrap()
    }

    /// An interrupted install: still being fetched, to be resumed, and no trial armed.
    fn assert_fetching_and_unarmed(&self) {
        let device = self.open();
        let update = device.state().update.as_ref().unwrap();
        assert_eq!(update.phase, Phase::Fetching);
        assert_eq!(device.boot_backend().pending_trial().unwrap(), None);
    }

    fn slot(&self, side: &str) -> Vec<u8> {
        std::fs::read(self.path(&format!("slots/rootfs.{side}"))).unwrap()
    }
}

/// The rootfs image of a release: 1.5 MiB, different for each version.
fn rootfs(version: &str) -> Vec<u8> {
    image_bytes(
        3 << 19,
        version.len() as u64 * 31 + version.as_bytes()[0] as u64,
    )
}

fn holds(slot: &[u8], image: &[u8]) -> bool {
    slot.len() >= image.len() && slot[..image.len()] == *image
}

#[test]
fn install_reboot_and_boot_commit_the_new_slot() {
    let dev = SimDevice::new();
    let bundle = dev.bundle("2.0.0", "board", None);
    let report = dev.install(&bundle).unwrap();
    assert_eq!(report.slot, Some(Side::B));
    assert!(report.needs_reboot && !report.committed);
    let device = dev.open();
    let update = device.state().update.as_ref().unwrap();
    assert_eq!(update.phase, Phase::Installed);
    assert_eq!(
        device.boot_backend().pending_trial().unwrap(),
        Some(Side::B)
    );
    assert!(holds(&dev.slot("b"), &rootfs("2.0.0")));
    drop(device);

    assert_eq!(dev.reboot(false), Side::B);
    let mut device = dev.open();
    let report = device.boot(&mut |_| {}).unwrap();
    assert!(!report.reboot_needed, "{:?}", report.actions);
    assert!(device.state().update.is_none());
    assert_eq!(
        device
            .state()
            .committed
            .as_ref()
            .unwrap()
            .version
            .to_string(),
        "2.0.0"
    );
    assert_eq!(device.boot_backend().primary().unwrap(), Side::B);
    let last = device.state().last_result.as_ref().unwrap();
    assert_eq!(last.result, Ending::Committed);
}

#[test]
fn the_bootloader_falling_back_rolls_the_update_back() {
    let dev = SimDevice::new();
    dev.install(&dev.bundle("2.0.0", "board", None)).unwrap();
    assert_eq!(dev.reboot(true), Side::A);
    let mut device = dev.open();
    let report = device.boot(&mut |_| {}).unwrap();
    assert!(
        report.actions.iter().any(|a| a.contains("did not boot")),
        "{:?}",
        report.actions
    );
    assert!(device.state().update.is_none());
    assert!(device.state().committed.is_none());
    assert_eq!(device.boot_backend().primary().unwrap(), Side::A);
    let last = device.state().last_result.as_ref().unwrap();
    assert_eq!(last.result, Ending::RolledBack);
}

#[test]
fn a_rollback_before_the_reboot_cancels_the_trial() {
    let dev = SimDevice::new();
    dev.install(&dev.bundle("2.0.0", "board", None)).unwrap();
    let mut device = dev.open();
    let (message, reboot) = device.rollback("operator said no").unwrap();
    assert!(!reboot, "{message}");
    assert!(message.contains("cancelled"), "{message}");
    assert_eq!(device.boot_backend().pending_trial().unwrap(), None);
    let last = device.state().last_result.as_ref().unwrap();
    assert_eq!(last.result, Ending::Cancelled);
    assert_eq!(last.reason.as_deref(), Some("operator said no"));
    drop(device);
    // The next boot finds nothing to do and stays on a.
    assert_eq!(dev.reboot(false), Side::A);
    assert!(dev.open().boot(&mut |_| {}).unwrap().actions[0].contains("no update pending"));
}

#[test]
fn an_interrupted_install_resumes_after_the_chunks_written() {
    let dev = SimDevice::new();
    let bundle = dev.bundle("2.0.0", "board", None);
    let bytes = std::fs::read(&bundle).unwrap();
    let cut = dev.path("cut.airlock");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 4]).unwrap();
    // The same bundle, cut short: a transport error that keeps the update pending.
    std::fs::rename(&bundle, dev.path("whole.airlock")).unwrap();
    std::fs::rename(&cut, &bundle).unwrap();
    let err = dev.install(&bundle).unwrap_err();
    assert!(err.is_transport(), "{err}");
    dev.assert_fetching_and_unarmed();

    std::fs::rename(dev.path("whole.airlock"), &bundle).unwrap();
    let report = dev.install(&bundle).unwrap();
    assert!(report.resumed_bytes > 0, "{report:?}");
    assert!(report.resumed_bytes < report.payload_bytes, "{report:?}");
    assert!(holds(&dev.slot("b"), &rootfs("2.0.0")));
    assert_eq!(dev.reboot(false), Side::B);
    dev.open().boot(&mut |_| {}).unwrap();
    assert_eq!(dev.open().boot_backend().primary().unwrap(), Side::B);
}

#[test]
fn a_corrupt_bundle_fails_and_leaves_the_active_slot_and_the_bootloader_alone() {
    let dev = SimDevice::new();
    let before = dev.slot("a");
    let bundle = dev.bundle("2.0.0", "board", None);
    let mut bytes = std::fs::read(&bundle).unwrap();
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 0x55;
    std::fs::write(&bundle, &bytes).unwrap();
    let err = dev.install(&bundle).unwrap_err();
    assert!(!err.is_transport(), "{err}");
    let device = dev.open();
    assert!(device.state().update.is_none());
    assert_eq!(
        device.state().last_result.as_ref().unwrap().result,
        Ending::Failed
    );
    assert_eq!(device.boot_backend().pending_trial().unwrap(), None);
    assert_eq!(device.boot_backend().primary().unwrap(), Side::A);
    assert_eq!(dev.slot("a"), before);
}

#[test]
fn a_bundle_for_another_device_type_is_refused_before_anything_is_recorded() {
    let dev = SimDevice::new();
    let err = dev
        .install(&dev.bundle("2.0.0", "toaster", None))
        .unwrap_err();
    assert!(matches!(err, InstallError::NotAccepted(_)), "{err}");
    let device = dev.open();
    assert!(device.state().update.is_none());
    assert!(device.state().last_result.is_none());
}

#[test]
fn an_older_version_than_the_committed_one_is_refused() {
    let dev = SimDevice::new();
    dev.install(&dev.bundle("2.0.0", "board", None)).unwrap();
    dev.reboot(false);
    dev.open().boot(&mut |_| {}).unwrap();
    let err = dev
        .install(&dev.bundle("1.0.0", "board", None))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("older than the installed version 2.0.0"),
        "{err}"
    );
}

#[test]
fn installing_the_pending_bundle_again_writes_nothing() {
    let dev = SimDevice::new();
    let bundle = dev.bundle("2.0.0", "board", None);
    dev.install(&bundle).unwrap();
    let again = dev.install(&bundle).unwrap();
    assert!(again.already_installed, "{again:?}");
    assert_eq!(again.payload_bytes, 0);
}

#[test]
fn a_directory_payload_goes_live_with_the_trial_and_back_on_rollback() {
    let dev = SimDevice::new();
    dev.install(&dev.bundle("2.0.0", "board", Some(b"version two")))
        .unwrap();
    let live = dev.path("app/app.bin");
    // Not live before the new root filesystem is.
    assert!(std::fs::read(&live).map_or(true, |c| c != b"version two"));
    dev.reboot(false);
    let mut device = dev.open();
    device.boot(&mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&live).unwrap(), b"version two");
    drop(device);

    // Release 3 fails to boot: its app goes back with it.
    dev.install(&dev.bundle("3.0.0", "board", Some(b"version three")))
        .unwrap();
    dev.reboot(true);
    dev.open().boot(&mut |_| {}).unwrap();
    assert_eq!(std::fs::read(&live).unwrap(), b"version two");
}
