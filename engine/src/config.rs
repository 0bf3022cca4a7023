//! The device configuration, `/etc/airlock/airlock.toml`: one device, its trust, bootloader,
//! slots, downloads and the fleet server. Unknown keys are refused, so that a misspelt key fails
//! loudly instead of silently turning a feature off. Relative paths are relative to the file's
//! directory.

mod fleet;
mod plugin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::boot::BootConfig;
use crate::chain::{Chain, World};
#[cfg(feature = "device")]
use crate::source::{HttpExtras, HttpOptions};

pub use fleet::{
    AttributeValue, DEFAULT_POLL_INTERVAL, DEFAULT_TENANT, DailyWindow, FleetAuth, FleetConfig,
    MAX_ATTRIBUTE_LEN,
};
pub use plugin::{ByteSize, DEFAULT_MEMORY, DEFAULT_TIMEOUT, DirGrant, PluginConfig};

/// Where the configuration lives unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/airlock/airlock.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}; pass --config or create it")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A validated device configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub device: DeviceConfig,
    pub trust: TrustConfig,
    pub boot: BootConfig,
    /// Slot classes by name (`rootfs`, `app`, …).
    pub slots: BTreeMap<String, SlotConfig>,
    pub download: DownloadConfig,
    /// `[plugins.NAME]`: every plugin the device may run, with its limits and capabilities.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// The plugin chain in force for this device's type.
    pub chain: Chain,
    /// `[fleet]`: the server `airlock daemon` polls, if any.
    pub fleet: Option<FleetConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Selects which bundles fit and which plugin chain runs.
    #[serde(rename = "type")]
    pub device_type: String,
    /// Where the state journal and resumable downloads live.
    pub data_dir: PathBuf,
    /// The kernel command line naming the booted slot (`airlock.slot=`).
    #[serde(default = "default_cmdline")]
    pub cmdline: PathBuf,
    /// A folder holding plugins' precompiled forms (`NAME.TARGET.cwasm`), looked at before the
    /// folder of each `.wasm`.
    #[serde(default)]
    pub precompiled_dir: Option<PathBuf>,
    /// How `airlock reboot`, `airlock boot --reboot` and the daemon reboot the device: a program
    /// and its arguments.
    #[serde(default = "default_reboot_command")]
    pub reboot_command: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// ed25519 public keys (SPKI PEM).
    pub keys: Vec<PathBuf>,
    /// Distinct trusted signatures a bundle needs.
    #[serde(default = "one")]
    pub threshold: usize,
    /// Accept bundles older than what the device runs.
    #[serde(default)]
    pub allow_downgrade: bool,
}

/// A slot class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotConfig {
    /// A pair of files or block devices, switched by the bootloader.
    Raw { a: PathBuf, b: PathBuf },
    /// A pair of regular files, each holding exactly one payload (created if missing, sized to
    /// it), switched by the bootloader: kernels and initramfs images on an ESP.
    File { a: PathBuf, b: PathBuf },
    /// A symlink at `path` to `<path>.a` or `<path>.b`, switched without reboot.
    Directory { path: PathBuf },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotTable {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    a: Option<PathBuf>,
    b: Option<PathBuf>,
    path: Option<PathBuf>,
}

/// How HTTP(S) downloads behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadConfig {
    /// Attempts in a row after a dropped connection, stall or server error.
    pub retries: u32,
    #[serde(with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
    /// A download that delivers nothing for this long is resumed.
    #[serde(with = "humantime_serde_compat")]
    pub read_timeout: Duration,
    /// First wait before a retry; doubles each time.
    #[serde(with = "humantime_serde_compat")]
    pub backoff: Duration,
    /// An extra CA certificate (PEM) to trust for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Delta installs over HTTP(S): download only the chunks the active slot does not hold.
    pub delta: bool,
}

impl Default for DownloadConfig {
    /// The one definition of the download defaults; the HTTP client's defaults are these.
    fn default() -> Self {
        Self {
            retries: 8,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            backoff: Duration::from_secs(1),
            ca_file: None,
            delta: true,
        }
    }
}

impl DownloadConfig {
    /// These settings as the HTTP client's options: one open-ended request per transfer and no
    /// extras, until the caller sets them.
    #[cfg(feature = "device")]
    pub fn http_options(&self) -> HttpOptions {
        HttpOptions {
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
            retries: self.retries,
            backoff: self.backoff,
            ca_file: self.ca_file.clone(),
            window: None,
            extras: HttpExtras::default(),
        }
    }
}

/// Durations written as humantime strings ("10s", "2m 30s").
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration like \"30s\" or \"2m\": {e}"
            ))
        })
    }

    /// For `Option<Duration>` fields.
    pub mod option {
        use std::time::Duration;

        use serde::Deserializer;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    device: DeviceConfig,
    trust: TrustConfig,
    boot: BootConfig,
    #[serde(default)]
    slots: BTreeMap<String, SlotTable>,
    #[serde(default)]
    download: DownloadConfig,
    #[serde(default)]
    plugins: BTreeMap<String, PluginConfig>,
    #[serde(default)]
    chain: toml::Table,
    #[serde(default)]
    fleet: Option<fleet::RawFleet>,
}

fn default_cmdline() -> PathBuf {
    PathBuf::from("/proc/cmdline")
}

fn default_reboot_command() -> Vec<String> {
    vec!["systemctl".into(), "reboot".into()]
}

fn one() -> usize {
    1
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_string()))?;
        let base = crate::fsutil::parent_dir(path);
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };

        let mut device = raw.device;
        device.data_dir = resolve(&device.data_dir);
        device.cmdline = resolve(&device.cmdline);
        device.precompiled_dir = device.precompiled_dir.as_deref().map(resolve);
        if device.device_type.trim().is_empty() {
            return Err(invalid(
                "[device] type is empty; name the device type bundles are built for".into(),
            ));
        }
        if device
            .reboot_command
            .first()
            .is_none_or(|p| p.trim().is_empty())
        {
            return Err(invalid(
                "[device] reboot_command is empty; give the program and its arguments, e.g. [\"systemctl\", \"reboot\"]".into(),
            ));
        }
        let mut trust = raw.trust;
        trust.keys = trust.keys.iter().map(|k| resolve(k)).collect();
        if trust.keys.is_empty() {
            return Err(invalid(
                "[trust] keys is empty; list at least one public key".into(),
            ));
        }
        if trust.threshold == 0 || trust.threshold > trust.keys.len() {
            return Err(invalid(format!(
                "[trust] threshold = {} but {} key(s) are listed; it must be between 1 and the number of keys",
                trust.threshold,
                trust.keys.len()
            )));
        }
        let boot = match raw.boot {
            BootConfig::Grub { env } => BootConfig::Grub { env: resolve(&env) },
            BootConfig::Sim { env } => BootConfig::Sim { env: resolve(&env) },
            BootConfig::SystemdBoot { esp, tries } => BootConfig::SystemdBoot {
                esp: resolve(&esp),
                tries,
            },
            BootConfig::Uboot { config } => BootConfig::Uboot {
                config: resolve(&config),
            },
            other => other,
        };
        let mut slots = BTreeMap::new();
        for (name, table) in raw.slots {
            crate::bundle::check_slot_class(&name)
                .map_err(|e| invalid(format!("[slots.{name}]: {e}")))?;
            let slot = match (
                table.kind.as_deref().unwrap_or("raw"),
                table.a,
                table.b,
                table.path,
            ) {
                ("raw", Some(a), Some(b), None) => SlotConfig::Raw {
                    a: resolve(&a),
                    b: resolve(&b),
                },
                ("file", Some(a), Some(b), None) => SlotConfig::File {
                    a: resolve(&a),
                    b: resolve(&b),
                },
                ("directory", None, None, Some(p)) => SlotConfig::Directory { path: resolve(&p) },
                ("raw", ..) => {
                    return Err(invalid(format!(
                        "[slots.{name}] a raw slot needs `a` and `b` (two files or block devices) and no `path`"
                    )));
                }
                ("file", ..) => {
                    return Err(invalid(format!(
                        "[slots.{name}] a file slot needs `a` and `b` (two regular files) and no `path`"
                    )));
                }
                ("directory", ..) => {
                    return Err(invalid(format!(
                        "[slots.{name}] a directory slot needs `path` and no `a`/`b`"
                    )));
                }
                (other, ..) => {
                    return Err(invalid(format!(
                        "[slots.{name}] type = {other:?} is unknown; use \"raw\" (default), \"file\" or \"directory\""
                    )));
                }
            };
            slots.insert(name, slot);
        }
        if slots.is_empty() {
            return Err(invalid(
                "no [slots.*] defined; describe at least one slot class".into(),
            ));
        }
        let mut download = raw.download;
        download.ca_file = download.ca_file.map(|p| resolve(&p));
        let mut plugins = raw.plugins;
        for (name, plugin) in &mut plugins {
            crate::bundle::check_slot_class(name)
                .map_err(|e| invalid(format!("[plugins.{name}]: {e}")))?;
            plugin.path = resolve(&plugin.path);
            for dir in &mut plugin.dirs {
                dir.host = resolve(&dir.host);
            }
        }
        let chain = Chain::from_table(&raw.chain, &device.device_type).map_err(invalid)?;
        for (name, world) in chain.named() {
            let bundled_installer = world == World::Installer && chain.bundled_plugins;
            if !plugins.contains_key(name) && !bundled_installer {
                return Err(invalid(format!(
                    "the chain names plugin {name:?} ({world}), but there is no [plugins.{name}] table; add one with its path"
                )));
            }
        }
        let fleet = raw
            .fleet
            .map(|f| f.validate(&resolve))
            .transpose()
            .map_err(invalid)?;
        Ok(Config {
            path: path.to_owned(),
            device,
            trust,
            boot,
            slots,
            download,
            plugins,
            chain,
            fleet,
        })
    }

    /// Where compiled plugins are cached.
    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.device.data_dir.join("plugin-cache")
    }

    /// Where plugins that bundles brought are saved, one folder per bundle.
    pub fn bundled_plugins_dir(&self) -> PathBuf {
        self.device.data_dir.join("bundled-plugins")
    }

    /// Where the state journal lives.
    pub fn state_dir(&self) -> PathBuf {
        self.device.data_dir.join("state")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[device]
type = "acme-gateway-v2"
data_dir = "data"

[trust]
keys = ["keys/release.pub"]

[boot]
backend = "sim"
env = "boot/bootloader"

[slots.rootfs]
a = "slots/rootfs.a"
b = "/dev/mmcblk0p3"

[slots.app]
type = "directory"
path = "app"
"#;

    #[test]
    fn parses_and_resolves_relative_paths() {
        let c = Config::parse(GOOD, Path::new("/dev-dir/airlock.toml")).unwrap();
        assert_eq!(c.device.data_dir, Path::new("/dev-dir/data"));
        assert_eq!(c.device.precompiled_dir, None);
        let with_folder = GOOD.replace("data_dir", "precompiled_dir = \"cwasm\"\ndata_dir");
        let c2 = Config::parse(&with_folder, Path::new("/dev-dir/airlock.toml")).unwrap();
        assert_eq!(
            c2.device.precompiled_dir.unwrap(),
            Path::new("/dev-dir/cwasm")
        );
        assert_eq!(
            c.trust.keys,
            vec![PathBuf::from("/dev-dir/keys/release.pub")]
        );
        assert_eq!(c.trust.threshold, 1);
        assert_eq!(
            c.slots["rootfs"],
            SlotConfig::Raw {
                a: "/dev-dir/slots/rootfs.a".into(),
                b: "/dev/mmcblk0p3".into()
            }
        );
        assert_eq!(
            c.slots["app"],
            SlotConfig::Directory {
                path: "/dev-dir/app".into()
            }
        );
        assert_eq!(c.download.retries, 8);
        assert_eq!(c.device.reboot_command, ["systemctl", "reboot"]);
        let busybox = GOOD.replace("data_dir", "reboot_command = [\"/sbin/reboot\"]\ndata_dir");
        let c3 = Config::parse(&busybox, Path::new("/dev-dir/airlock.toml")).unwrap();
        assert_eq!(c3.device.reboot_command, ["/sbin/reboot"]);
    }

    #[test]
    fn file_slots_need_a_and_b() {
        let with_kernel = format!(
            "{GOOD}\n[slots.kernel]\ntype = \"file\"\na = \"esp/a/vmlinuz\"\nb = \"/boot/efi/b/vmlinuz\"\n"
        );
        let c = Config::parse(&with_kernel, Path::new("/dev-dir/airlock.toml")).unwrap();
        assert_eq!(
            c.slots["kernel"],
            SlotConfig::File {
                a: "/dev-dir/esp/a/vmlinuz".into(),
                b: "/boot/efi/b/vmlinuz".into()
            }
        );
        let bad = with_kernel.replace("b = \"/boot/efi/b/vmlinuz\"", "path = \"x\"");
        let e = Config::parse(&bad, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[slots.kernel] a file slot needs `a` and `b`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_line_and_key() {
        let bad = GOOD
            .replace("threshold", "x")
            .replace("[trust]\n", "[trust]\nthreshhold = 1\n");
        let e = Config::parse(&bad, Path::new("/etc/airlock/airlock.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/airlock/airlock.toml")
                && e.contains("threshhold")
                && e.contains("line"),
            "{e}"
        );

        let bad = GOOD.replace(
            "keys = [\"keys/release.pub\"]",
            "keys = [\"k.pub\"]\nthreshold = 2",
        );
        let e = Config::parse(&bad, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("threshold = 2"), "{e}");

        let bad = GOOD.replace("type = \"directory\"", "type = \"folder\"");
        let e = Config::parse(&bad, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[slots.app]") && e.contains("folder"), "{e}");

        let bad = GOOD.replace("backend = \"sim\"", "backend = \"lilo\"");
        let e = Config::parse(&bad, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lilo"), "{e}");

        let bad = GOOD.replace("data_dir", "reboot_command = []\ndata_dir");
        let e = Config::parse(&bad, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[device] reboot_command is empty") && e.contains("systemctl"),
            "{e}"
        );

        let bad = format!("{GOOD}\n[download]\nread_timeout = \"soon\"\n");
        let e = Config::parse(&bad, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("soon") && e.contains("read_timeout"), "{e}");
    }

    #[test]
    fn unreadable_file_says_what_to_do() {
        let e = Config::load(Path::new("/nonexistent/airlock.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/airlock.toml") && e.contains("--config"),
            "{e}"
        );
    }
}
