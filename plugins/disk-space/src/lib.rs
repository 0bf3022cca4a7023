//! `disk-space`: a hook that aborts an update when a filesystem has too little free space.
//!
//! Config (`[plugins.NAME.config]`):
//!
//! | key        | default  | meaning                                                        |
//! |------------|----------|----------------------------------------------------------------|
//! | `path`     | —        | a path on the device whose filesystem to measure, e.g. `"/data"` |
//! | `min_free` | —        | the least free space to go on with, e.g. `"512MiB"`, `"2GB"`    |
//! | `timeout`  | `"5s"`   | how long `df` may take                                          |
//! | `df`       | `"df"`   | the `df` program; an absolute path (`"/bin/df"`) if the engine, which runs commands with an empty environment, cannot find it by name |
//!
//! # How it measures
//!
//! WASI preview 2 has no `statvfs`: `wasi:filesystem` can stat files but not ask a
//! filesystem for its free space, and a plugin has no other way out of its sandbox. So the
//! hook asks the engine to run `df` through the allow-listed `run` probe, with exactly this
//! argv, which the operator allows for the plugin:
//!
//! ```text
//! ["df", "-P", "-k", PATH]          # airlock.toml: commands = [["df", "-P", "-k", "/data"]]
//! ```
//!
//! `-P` is the POSIX output format (one line per filesystem, fixed columns) and `-k` counts
//! 1024-byte blocks. Unlike GNU's `-B1 --output=avail`, this spelling works the same with GNU
//! coreutils, BusyBox and toybox, which is what embedded images ship. The free space is the
//! `Available` column (what an unprivileged writer may use, not counting blocks reserved for
//! root), times 1024. Because `path` is read by `df` on the device, it is a device path: the
//! plugin needs no pre-opened directory at all.

use std::time::Duration;

use airlock_sdk::{Context, Hook, HookResult, config, log, probes};

struct DiskSpace;

impl Hook for DiskSpace {
    fn run(ctx: Context) -> HookResult {
        match enough_space(&ctx) {
            Ok(()) => HookResult::Proceed,
            Err(reason) => {
                log::warn!("abort: {reason}");
                HookResult::Abort(reason)
            }
        }
    }
}

airlock_sdk::export_hook!(DiskSpace);

fn enough_space(ctx: &Context) -> Result<(), String> {
    let path = config::require("path")?;
    let min_free = config::bytes("min_free")?
        .ok_or("config key `min_free` is required but not set (e.g. min_free = \"512MiB\")")?;
    let timeout = config::duration_or("timeout", Duration::from_secs(5))?;
    let df = config::get_or("df", "df");
    let argv = [df.as_str(), "-P", "-k", path.as_str()];
    let output = probes::run(&argv, timeout).map_err(|e| format!("{}: {e}", argv.join(" ")))?;
    if !output.success() {
        return Err(format!(
            "{} exited with status {}: {}",
            argv.join(" "),
            output.status,
            output.stderr.trim()
        ));
    }
    let free = available_bytes(&output.stdout)
        .map_err(|e| format!("{}: {e}; it printed {:?}", argv.join(" "), output.stdout))?;
    if free < min_free {
        return Err(format!(
            "{path} has {} free, {} needed (min_free)",
            human(free),
            human(min_free)
        ));
    }
    log::info!(
        "{} at {}: {path} has {} free, at least {} needed: proceed",
        ctx.bundle,
        ctx.stage,
        human(free),
        human(min_free)
    );
    Ok(())
}

/// The `Available` column of `df -P -k` output, in bytes.
///
/// The data line is `Filesystem 1024-blocks Used Available Capacity Mounted-on`; the
/// filesystem's name and the mount point may contain spaces, so the columns are found around
/// the capacity (`NN%`), the first field after three numbers that ends in `%`.
fn available_bytes(stdout: &str) -> Result<u64, String> {
    let line = stdout
        .lines()
        .skip(1)
        .find(|line| !line.trim().is_empty())
        .ok_or("no data line after the header")?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let capacity = (4..fields.len())
        .find(|&i| {
            let percent = fields[i].strip_suffix('%').unwrap_or("");
            (is_number(percent) || fields[i] == "-")
                && fields[i - 3..i].iter().all(|f| is_number(f))
        })
        .ok_or("no `Available` column in its data line")?;
    let blocks: u64 = fields[capacity - 1]
        .parse()
        .map_err(|_| "the `Available` column is out of range")?;
    blocks
        .checked_mul(1024)
        .ok_or_else(|| "the `Available` column is out of range".into())
}

/// Bytes for a person: `1.5 GiB`, `512 MiB`, `100 B`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::probes::CommandOutput;
    use airlock_sdk::testing;

    const GNU: &str = "Filesystem     1024-blocks    Used Available Capacity Mounted on\n\
                       /dev/sda3         98497780 6102340  87345476       7% /data\n";
    const BUSYBOX: &str = "Filesystem           1024-blocks    Used Available Capacity Mounted on\n\
                           /dev/root               507904    406528    101376  80% /\n";
    const SPACES: &str = "Filesystem 1024-blocks Used Available Capacity Mounted on\n\
                          my disk 1 100 40 60 40% /mnt/my data\n";

    #[test]
    fn parses_df_p_k() {
        assert_eq!(available_bytes(GNU), Ok(87_345_476 * 1024));
        assert_eq!(available_bytes(BUSYBOX), Ok(101_376 * 1024));
        assert_eq!(available_bytes(SPACES), Ok(60 * 1024));
        assert!(available_bytes("Filesystem\n").is_err());
        assert!(available_bytes("").is_err());
        assert!(available_bytes("h\nnot df at all\n").is_err());
    }

    fn context() -> Context {
        Context {
            bundle: airlock_sdk::Release {
                name: "rootfs".into(),
                version: "1.2.0".into(),
            },
            current: None,
            device_type: "sim".into(),
            stage: airlock_sdk::Stage::DownloadEnter,
            payload: None,
            slot: Some("b".into()),
        }
    }

    fn df_prints(stdout: &'static str) {
        testing::on_run(move |argv, _| {
            assert_eq!(argv, ["df", "-P", "-k", "/"]);
            Ok(CommandOutput {
                status: 0,
                stdout: stdout.into(),
                stderr: String::new(),
            })
        });
    }

    #[test]
    fn proceeds_or_aborts_on_the_threshold() {
        testing::reset();
        df_prints(BUSYBOX);
        testing::set_config(&[("path", "/"), ("min_free", "99MiB")]);
        assert_eq!(DiskSpace::run(context()), HookResult::Proceed);
        testing::set_config(&[("path", "/"), ("min_free", "100MiB")]);
        let HookResult::Abort(reason) = DiskSpace::run(context()) else {
            panic!("did not abort")
        };
        assert_eq!(
            reason,
            "/ has 99.0 MiB (103809024 bytes) free, 100.0 MiB (104857600 bytes) needed (min_free)"
        );
    }

    #[test]
    fn aborts_on_refusal_failure_and_bad_config() {
        testing::reset();
        testing::set_config(&[("path", "/"), ("min_free", "1GiB")]);
        let HookResult::Abort(reason) = DiskSpace::run(context()) else {
            panic!("did not abort")
        };
        assert!(reason.starts_with("df -P -k /: run"), "{reason}");

        testing::on_run(|_, _| {
            Ok(CommandOutput {
                status: 1,
                stdout: String::new(),
                stderr: "df: /: No such file or directory\n".into(),
            })
        });
        assert_eq!(
            DiskSpace::run(context()),
            HookResult::Abort(
                "df -P -k / exited with status 1: df: /: No such file or directory".into()
            )
        );

        testing::set_config(&[("path", "/")]);
        assert!(
            matches!(DiskSpace::run(context()), HookResult::Abort(r) if r.contains("`min_free`"))
        );
    }
}
