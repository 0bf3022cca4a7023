//! `[plugins.NAME]` of `airlock.toml`: which component to run and what its sandbox may reach.
//!
//! ```toml
//! [plugins.health]
//! path = "/usr/lib/airlock/plugins/http-health.wasm"
//! timeout = "10s"                              # wall clock per call (default 10s)
//! memory = "32MiB"                             # all its linear memories together (default 64MiB)
//! http = ["http://127.0.0.1:8080/health"]      # URLs probes.http-get may fetch
//! units = ["app.service"]                      # units probes.unit-state may query
//! commands = [["/usr/bin/modem-status", "--short"]]  # exact argv probes.run may run
//! dirs = [{ host = "/var/lib/app", guest = "/data", writable = true }]
//! [plugins.health.config]                      # handed to the plugin, every value as a string
//! url = "http://127.0.0.1:8080/health"
//! ```
//!
//! Every key is optional except `path`; unknown keys are refused.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The wall-clock budget of one call unless `timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The memory cap of one call unless `memory` says otherwise.
pub const DEFAULT_MEMORY: ByteSize = ByteSize(64 << 20);

/// A plugin's entry in `airlock.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The `.wasm` component. Callers resolve it to an absolute path.
    pub path: PathBuf,
    /// Wall-clock budget of one call (humantime: `"10s"`, `"1m 30s"`). For an installer it is
    /// the longest the plugin may go without reading from its payload.
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Cap on all of the component's linear memories together (`"32MiB"`).
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    /// URLs `probes.http-get` may fetch, compared after normalisation (`HTTP://Host:80/a` is
    /// `http://host/a`); every redirect hop must be one of them too.
    #[serde(default)]
    pub http: Vec<String>,
    /// systemd units `probes.unit-state` may query.
    #[serde(default)]
    pub units: Vec<String>,
    /// Exact argv lists `probes.run` may run.
    #[serde(default)]
    pub commands: Vec<Vec<String>>,
    /// Host directories pre-opened for the plugin.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// `[plugins.NAME.config]`, handed to the plugin through the `config` interface.
    #[serde(default)]
    pub config: toml::Table,
}

impl PluginConfig {
    /// A configuration with every limit at its default and nothing granted.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PluginConfig {
            path: path.into(),
            timeout: DEFAULT_TIMEOUT,
            memory: DEFAULT_MEMORY,
            http: Vec::new(),
            units: Vec::new(),
            commands: Vec::new(),
            dirs: Vec::new(),
            config: toml::Table::new(),
        }
    }

    /// The config table as the plugin sees it: every value a string, sorted by key. Strings
    /// are given as they are, other values in their TOML spelling (`42`, `true`, `[1, 2]`).
    pub fn config_entries(&self) -> Vec<(String, String)> {
        let mut entries: Vec<(String, String)> = self
            .config
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect();
        entries.sort();
        entries
    }
}

/// A host directory the plugin may open, at `guest` inside its sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    /// Read-only unless set.
    #[serde(default)]
    pub writable: bool,
}

/// A number of bytes, written in `airlock.toml` as `"32MiB"`, `"512 KiB"`, `"1GiB"`, `"64MB"`
/// or a plain integer of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (size, unit) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{} {unit}", self.0 / size);
            }
        }
        for (size, unit) in UNITS {
            if self.0 >= size {
                return write!(f, "{:.1} {unit}", self.0 as f64 / size as f64);
            }
        }
        write!(f, "{} B", self.0)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let bad = || format!("invalid size {s:?}: write it like \"32MiB\", \"512KiB\" or \"1GiB\"");
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" | "K" | "k" => 1 << 10,
            "MiB" | "M" => 1 << 20,
            "GiB" | "G" => 1 << 30,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(factor).map(ByteSize).ok_or_else(bad)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_memory() -> ByteSize {
    DEFAULT_MEMORY
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?} ({e}): write it like \"10s\" or \"1m 30s\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_entry() {
        let c: PluginConfig = toml::from_str(
            r#"
            path = "/p.wasm"
            timeout = "1m 30s"
            memory = "32MiB"
            http = ["http://127.0.0.1:8080/health"]
            units = ["app.service"]
            commands = [["/bin/true"]]
            dirs = [{ host = "/var/lib/x", guest = "/data", writable = true }]
            [config]
            url = "http://x"
            retries = 3
            verbose = true
            "#,
        )
        .unwrap();
        assert_eq!(c.timeout, Duration::from_secs(90));
        assert_eq!(c.memory, ByteSize(32 << 20));
        assert!(c.dirs[0].writable);
        assert_eq!(
            c.config_entries(),
            vec![
                ("retries".into(), "3".into()),
                ("url".into(), "http://x".into()),
                ("verbose".into(), "true".into()),
            ]
        );
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c: PluginConfig = toml::from_str("path = \"/p.wasm\"").unwrap();
        assert_eq!(c, PluginConfig::new("/p.wasm"));
        let e = toml::from_str::<PluginConfig>("path = \"/p.wasm\"\ntimeot = \"1s\"").unwrap_err();
        assert!(e.to_string().contains("timeot"), "{e}");
        let e =
            toml::from_str::<PluginConfig>("path = \"/p.wasm\"\nmemory = \"lots\"").unwrap_err();
        assert!(e.to_string().contains("32MiB"), "{e}");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!("64MiB".parse::<ByteSize>(), Ok(ByteSize(64 << 20)));
        assert_eq!("512 KiB".parse::<ByteSize>(), Ok(ByteSize(512 << 10)));
        assert_eq!("1GiB".parse::<ByteSize>(), Ok(ByteSize(1 << 30)));
        assert_eq!("10MB".parse::<ByteSize>(), Ok(ByteSize(10_000_000)));
        assert_eq!("4096".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert!("MiB".parse::<ByteSize>().is_err());
        assert!("99999999999999GiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(32 << 20).to_string(), "32 MiB");
        assert_eq!(ByteSize(1536).to_string(), "1.5 KiB");
    }
}
