//! `airlock daemon`: poll the fleet server of `[fleet]` and carry out what it asks
//! (library: `airlock::fleet`). This file only picks how the device reboots.

use std::path::{Path, PathBuf};

use airlock::config::Config;
use airlock::fleet::{AfterReboot, Daemon, Next, RebootFn};
use anyhow::{Result, bail};
use tracing::info;

pub fn run(config_path: &Path, once: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let reboot = rebooter(&config)?;
    let mut daemon = Daemon::new(config, reboot)?;
    if once {
        return match daemon.run_once()? {
            Next::Exit | Next::Sleep(_) => Ok(()),
        };
    }
    daemon.run();
    Ok(())
}

/// A simulated device reboots within this process and carries on as the rebooted device
/// would; a real one runs `[device] reboot_command`, and the daemon exits (systemd starts it
/// again after the boot).
fn rebooter(config: &Config) -> Result<RebootFn> {
    if config.fleet.is_none() {
        bail!(
            "{} has no [fleet] section; add one with `server` and `token_file` to run `airlock daemon`",
            config.path.display()
        );
    }
    if let Ok(env) = super::sim::sim_env(config) {
        let config_path: PathBuf = config.path.clone();
        return Ok(Box::new(move || {
            super::sim::reboot_and_boot(&config_path, &env, false, &mut |line| info!("{line}"))
                .map(|()| AfterReboot::Continue)
                .map_err(|e| super::error_chain(&e))
        }));
    }
    let argv = config.device.reboot_command.clone();
    Ok(Box::new(move || {
        super::device::system_reboot(&argv)
            .map(|()| AfterReboot::Exit)
            .map_err(|e| super::error_chain(&e))
    }))
}
