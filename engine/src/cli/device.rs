//! `airlock install | boot | status | commit | rollback`: the device's update commands.

use std::path::Path;

use airlock::config::{Config, SlotConfig};
use airlock::install::record::{DeviceState, Ending};
use airlock::install::{Device, describe, phase_name};
use airlock::slot::DirectorySlot;
use anyhow::Result;
use indicatif::HumanBytes;
use serde_json::json;

use super::progress;

pub fn open(config: &Path) -> Result<Device> {
    Ok(Device::open(Config::load(config)?)?)
}

pub fn install(config: &Path, source: &str, json: bool) -> Result<()> {
    let mut device = open(config)?;
    let mut bar = progress::Progress::bytes("installing", 0);
    let result = device.install(source, &mut |p| {
        bar.set(p.done, p.total);
    });
    bar.finish();
    let report = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if report.already_installed {
        println!(
            "{} {} is already installed; reboot to try it",
            report.bundle, report.version
        );
    } else if report.committed {
        println!(
            "installed and committed {} {} (no reboot needed)",
            report.bundle, report.version
        );
    } else {
        let mut sources = vec![format!("{} downloaded", HumanBytes(report.fetched_bytes))];
        if report.reused_bytes > 0 {
            sources.push(format!(
                "{} reused from the active slot",
                HumanBytes(report.reused_bytes)
            ));
        }
        if report.resumed_bytes > 0 {
            sources.push(format!(
                "{} already in the slot from an interrupted attempt",
                HumanBytes(report.resumed_bytes)
            ));
        }
        println!(
            "installed {} {} into slot {} ({} of payload: {})",
            report.bundle,
            report.version,
            report.slot.map_or("-".into(), |s| s.to_string()),
            HumanBytes(report.payload_bytes),
            sources.join(", ")
        );
        println!(
            "reboot to try it once; `airlock boot` commits it on the new slot, or the bootloader falls back"
        );
    }
    Ok(())
}

pub fn boot(config: &Path, json: bool) -> Result<bool> {
    let report = settle(config)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for a in &report.actions {
            println!("{a}");
        }
        if report.reboot_needed {
            println!("reboot to return to the committed slot");
        }
    }
    Ok(report.reboot_needed)
}

/// What `airlock boot` does, without printing: settle whatever is pending.
pub fn settle(config: &Path) -> Result<airlock::install::BootReport> {
    Ok(open(config)?.boot(&mut |_| {})?)
}

pub fn commit(config: &Path) -> Result<()> {
    println!("{}", open(config)?.commit()?);
    Ok(())
}

pub fn rollback(config: &Path) -> Result<()> {
    let (msg, _) = open(config)?.rollback("rolled back by the operator (`airlock rollback`)")?;
    println!("{msg}");
    Ok(())
}

pub fn status(config: &Path, json: bool) -> Result<()> {
    let device = Device::open_read_only(Config::load(config)?)?;
    let cfg = device.config();
    let booted = device.booted()?;
    let backend = device.boot_backend();
    let primary = backend.primary()?;
    let trial = backend.pending_trial()?;
    let state = device.state();
    let directories: Vec<(String, Option<String>)> = cfg
        .slots
        .iter()
        .filter_map(|(class, s)| match s {
            SlotConfig::Directory { path } => Some((
                class.clone(),
                DirectorySlot::new(path)
                    .active()
                    .ok()
                    .map(|s| s.to_string()),
            )),
            SlotConfig::Raw { .. } | SlotConfig::File { .. } => None,
        })
        .collect();
    let uncommitted = device.booted_uncommitted()?.is_some();
    if json {
        let out = json!({
            "device_type": cfg.device.device_type,
            "booted": booted,
            "booted_uncommitted": uncommitted,
            "primary": primary,
            "pending_trial": trial,
            "slots": {"a": state.slot_a, "b": state.slot_b},
            "directories": directories.iter().map(|(c, a)| json!({"class": c, "active": a})).collect::<Vec<_>>(),
            "committed": state.committed,
            "update": state.update,
            "last_result": state.last_result,
            "retry": state.retry,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_status(
            cfg,
            state,
            booted,
            primary,
            trial,
            uncommitted,
            &directories,
        );
    }
    // Printed in full, and an exit status a monitoring script notices.
    if uncommitted {
        anyhow::bail!(
            "{}",
            airlock::install::InstallError::BootedUncommitted { booted, primary }
        );
    }
    Ok(())
}

fn print_status(
    cfg: &Config,
    state: &DeviceState,
    booted: airlock::boot::Side,
    primary: airlock::boot::Side,
    trial: Option<airlock::boot::Side>,
    uncommitted: bool,
    directories: &[(String, Option<String>)],
) {
    println!(
        "device        {} ({})",
        cfg.device.device_type,
        cfg.path.display()
    );
    let role = if booted == primary {
        "committed"
    } else if uncommitted {
        "NOT COMMITTED: the bootloader did not boot the committed slot"
    } else {
        "trial"
    };
    println!("booted        slot {booted} ({role})");
    for slot in [airlock::boot::Side::A, airlock::boot::Side::B] {
        let content = match state.slot(slot) {
            None => "unknown (factory image or partly written)".to_string(),
            Some(c) if slot != primary && state.committed.as_ref() != Some(&c.release) => {
                format!("{} (not committed){}", describe(&c.release), download(c))
            }
            Some(c) => format!("{}{}", describe(&c.release), download(c)),
        };
        let mark = if slot == primary { "  [primary]" } else { "" };
        println!("slot {slot}        {content}{mark}");
    }
    if let Some(t) = trial {
        println!("next boot     tries slot {t} once");
    }
    for (class, active) in directories {
        println!(
            "{class:<13} directory slot, active side {}",
            active.as_deref().unwrap_or("not set up")
        );
    }
    println!(
        "installed     {}",
        state
            .committed
            .as_ref()
            .map_or("nothing committed yet".to_string(), describe)
    );
    match &state.update {
        Some(u) => println!(
            "update        {} {} (slot {})",
            describe(&u.release),
            phase_name(u.phase),
            u.target
        ),
        None => println!("update        none pending"),
    }
    if let Some(r) = &state.retry {
        let at = airlock::install::unix_to_rfc3339(r.not_before);
        println!(
            "retry         {} after {at}: hook {} asked to wait at {} (attempt {})",
            describe(&r.release),
            r.plugin,
            r.stage,
            r.attempts
        );
    }
    if let Some(o) = &state.last_result {
        let what = match o.result {
            Ending::Committed => "committed",
            Ending::RolledBack => "rolled back",
            Ending::Failed => "failed",
            Ending::Cancelled => "cancelled",
        };
        let why = o
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        println!(
            "last result   {what} {} at {}{why}",
            describe(&o.release),
            o.at
        );
    }
}

/// How a slot's content got there: `; 3.1 MiB downloaded, 60 MiB reused`.
fn download(content: &airlock::install::record::SlotContent) -> String {
    let Some(d) = content.download else {
        return String::new();
    };
    let mut parts = vec![format!("{} downloaded", HumanBytes(d.fetched))];
    if d.reused > 0 {
        parts.push(format!("{} reused", HumanBytes(d.reused)));
    }
    format!("; {}", parts.join(", "))
}

/// `airlock reboot`: the reboot-enter hooks may veto or postpone, then the system reboots.
pub fn reboot(config: &Path) -> Result<()> {
    let mut device = open(config)?;
    device.before_reboot()?;
    let argv = device.config().device.reboot_command.clone();
    drop(device);
    system_reboot(&argv)
}

/// `airlock boot --reboot` after a failed trial: back to the committed slot, without hooks.
pub fn reboot_after_boot(config: &Path) -> Result<()> {
    let config = Config::load(config)?;
    system_reboot(&config.device.reboot_command)
}

/// Reboots the machine with `[device] reboot_command` (`systemctl reboot` unless configured).
pub fn system_reboot(argv: &[String]) -> Result<()> {
    let shown = argv.join(" ");
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("[device] reboot_command is empty"))?;
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run `{shown}`: {e}; check [device] reboot_command, or reboot the device by other means"
            )
        })?;
    if !status.success() {
        anyhow::bail!(
            "`{shown}` failed ({status}); check [device] reboot_command, or reboot the device by other means"
        );
    }
    Ok(())
}
