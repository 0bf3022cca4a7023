//! `airlock sim …`: a simulated device in a folder, for the demo, tests and trying things out.
//! The engine code is the same as on a device; only the slot and boot backends differ.

use std::fs;
use std::path::{Path, PathBuf};

use airlock::boot::{self, BootConfig};
use airlock::config::Config;
use airlock::slot::DirectorySlot;
use anyhow::{Context, Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SimCommand {
    /// Create a simulated device in DIR: configuration, slot files, bootloader.
    Init {
        dir: PathBuf,
        /// Public key the device trusts (SPKI PEM).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "airlock-sim")]
        device_type: String,
        /// Size of each rootfs slot file (sparse), e.g. 64MiB, 2GiB.
        #[arg(long, default_value = "64MiB", value_parser = parse_size)]
        slot_size: u64,
    },
    /// Reboot the simulated device and run what it runs at boot (`airlock boot`).
    Reboot {
        dir: PathBuf,
        /// The new slot does not come up: the bootloader falls back to the old one.
        #[arg(long)]
        fail: bool,
    },
}

pub fn run(cmd: SimCommand) -> Result<()> {
    match cmd {
        SimCommand::Init {
            dir,
            key,
            device_type,
            slot_size,
        } => init(&dir, &key, &device_type, slot_size),
        SimCommand::Reboot { dir, fail } => reboot(&dir, fail),
    }
}

fn init(dir: &Path, key: &Path, device_type: &str, slot_size: u64) -> Result<()> {
    if dir.join("airlock.toml").exists() {
        bail!(
            "{} already holds a simulated device; remove the folder or choose another",
            dir.display()
        );
    }
    airlock::keys::load_verifying_key(key)?;
    for sub in ["keys", "slots", "boot", "data"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    fs::copy(key, dir.join("keys/release.pub"))
        .with_context(|| format!("cannot copy {}", key.display()))?;
    for side in ["a", "b"] {
        let path = dir.join(format!("slots/rootfs.{side}"));
        let file =
            fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        file.set_len(slot_size)?;
    }
    boot::sim_init(&dir.join("boot/bootloader.env"))?;
    DirectorySlot::new(dir.join("app")).init()?;
    let config = boot::sim_device_config(device_type);
    airlock::fsutil::atomic_write(&dir.join("airlock.toml"), config.as_bytes())?;
    println!(
        "simulated device {device_type} in {}: slot a active, rootfs slots of {} each",
        dir.display(),
        indicatif::HumanBytes(slot_size)
    );
    println!(
        "install with: airlock --config {} install BUNDLE",
        dir.join("airlock.toml").display()
    );
    Ok(())
}

fn reboot(dir: &Path, fail: bool) -> Result<()> {
    let config_path = dir.join("airlock.toml");
    let env = sim_env(&Config::load(&config_path)?)?;
    // What `airlock reboot` does on a device: the reboot-enter hooks may veto or postpone.
    super::device::open(&config_path)?.before_reboot()?;
    reboot_and_boot(&config_path, &env, fail, &mut |line| println!("{line}"))
}

/// The sim bootloader file of a simulated device's configuration.
pub fn sim_env(config: &Config) -> Result<PathBuf> {
    match &config.boot {
        BootConfig::Sim { env } => Ok(env.clone()),
        _ => bail!(
            "{} is not a simulated device (its [boot] backend is not \"sim\")",
            config.path.display()
        ),
    }
}

/// The simulated reboot itself, after the reboot-enter hooks: the bootloader picks the slot
/// (`fail`: the new slot does not come up), then what the device runs at boot (`airlock
/// boot`), and once more when that rolled back on the trial slot. `airlock sim reboot` and a
/// simulated device's `airlock daemon` both go through here.
pub fn reboot_and_boot(
    config_path: &Path,
    env: &Path,
    fail: bool,
    say: &mut dyn FnMut(&str),
) -> Result<()> {
    let booted = boot::sim_reboot(env, fail)?;
    say(&format!(
        "simulated reboot{}: booted slot {booted}",
        if fail {
            " (the new slot failed to come up)"
        } else {
            ""
        }
    ));
    let report = super::device::settle(config_path)?;
    report.actions.iter().for_each(|a| say(a));
    if report.reboot_needed {
        say("reboot to return to the committed slot");
        let booted = boot::sim_reboot(env, false)?;
        say(&format!("simulated reboot: booted slot {booted}"));
        let report = super::device::settle(config_path)?;
        report.actions.iter().for_each(|a| say(a));
    }
    Ok(())
}

/// Sizes like `64MiB`, `2GiB`, `512k`, or plain bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 64MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        other => return Err(format!("unknown size unit {other:?}; use KiB, MiB or GiB")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text} is too large"))
}
