//! The plugin chain of a device: which hooks run at which stage, which checks decide a trial
//! boot, which installer plugins may take payloads. `[chain]` holds the defaults for every
//! device type; `[chain."DEVICE-TYPE"]` overrides them key by key for one type:
//!
//! ```toml
//! [chain]
//! download-enter = ["battery", "maintenance-window"]
//! check = ["health"]
//! installers = ["archive-installer"]
//! bundled-plugins = false      # may a bundle bring its own installers and checks?
//! retry-limit = 5              # retry-later answers honoured before the update fails
//!
//! [chain."acme-gateway-v1"]
//! check = ["health", "legacy-modem"]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which world of `airlock:plugin` a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    Hook,
    Check,
    Installer,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::Hook => "hook",
            World::Check => "check",
            World::Installer => "installer",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for World {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hook" => Ok(World::Hook),
            "check" => Ok(World::Check),
            "installer" => Ok(World::Installer),
            _ => Err(format!(
                "unknown plugin world {s:?}: expected hook, check or installer"
            )),
        }
    }
}

/// Where in an update a plugin is called (`stage` of the WIT `context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    DownloadEnter,
    DownloadLeave,
    InstallEnter,
    InstallLeave,
    RebootEnter,
    CommitEnter,
    CommitLeave,
    RollbackEnter,
    RollbackLeave,
    Failure,
    Check,
    Install,
}

impl Stage {
    pub const ALL: [Stage; 12] = [
        Stage::DownloadEnter,
        Stage::DownloadLeave,
        Stage::InstallEnter,
        Stage::InstallLeave,
        Stage::RebootEnter,
        Stage::CommitEnter,
        Stage::CommitLeave,
        Stage::RollbackEnter,
        Stage::RollbackLeave,
        Stage::Failure,
        Stage::Check,
        Stage::Install,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::DownloadEnter => "download-enter",
            Stage::DownloadLeave => "download-leave",
            Stage::InstallEnter => "install-enter",
            Stage::InstallLeave => "install-leave",
            Stage::RebootEnter => "reboot-enter",
            Stage::CommitEnter => "commit-enter",
            Stage::CommitLeave => "commit-leave",
            Stage::RollbackEnter => "rollback-enter",
            Stage::RollbackLeave => "rollback-leave",
            Stage::Failure => "failure",
            Stage::Check => "check",
            Stage::Install => "install",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown stage {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// The hook stages, in the order an update passes them.
pub const HOOK_STAGES: [Stage; 10] = [
    Stage::DownloadEnter,
    Stage::DownloadLeave,
    Stage::InstallEnter,
    Stage::InstallLeave,
    Stage::RebootEnter,
    Stage::CommitEnter,
    Stage::CommitLeave,
    Stage::RollbackEnter,
    Stage::RollbackLeave,
    Stage::Failure,
];

/// One `[chain]` table as written; every key optional so a device type overrides only some.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ChainTable {
    download_enter: Option<Vec<String>>,
    download_leave: Option<Vec<String>>,
    install_enter: Option<Vec<String>>,
    install_leave: Option<Vec<String>>,
    reboot_enter: Option<Vec<String>>,
    commit_enter: Option<Vec<String>>,
    commit_leave: Option<Vec<String>>,
    rollback_enter: Option<Vec<String>>,
    rollback_leave: Option<Vec<String>>,
    failure: Option<Vec<String>>,
    check: Option<Vec<String>>,
    installers: Option<Vec<String>>,
    bundled_plugins: Option<bool>,
    retry_limit: Option<u32>,
}

/// The chain in force for one device type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub hooks: BTreeMap<&'static str, Vec<String>>,
    pub checks: Vec<String>,
    pub installers: Vec<String>,
    pub bundled_plugins: bool,
    pub retry_limit: u32,
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            hooks: BTreeMap::new(),
            checks: Vec::new(),
            installers: Vec::new(),
            bundled_plugins: false,
            retry_limit: 5,
        }
    }
}

impl Chain {
    /// The hooks for `stage`, in order.
    pub fn hooks(&self, stage: Stage) -> &[String] {
        self.hooks.get(stage.as_str()).map_or(&[], Vec::as_slice)
    }

    /// Every plugin the chain names, with the world it must implement.
    pub fn named(&self) -> Vec<(&str, World)> {
        let mut out: Vec<(&str, World)> = Vec::new();
        for names in self.hooks.values() {
            out.extend(names.iter().map(|n| (n.as_str(), World::Hook)));
        }
        out.extend(self.checks.iter().map(|n| (n.as_str(), World::Check)));
        out.extend(
            self.installers
                .iter()
                .map(|n| (n.as_str(), World::Installer)),
        );
        out
    }

    /// Builds the chain for `device_type` from the raw `[chain]` table.
    pub fn from_table(table: &toml::Table, device_type: &str) -> Result<Chain, String> {
        let mut defaults = toml::Table::new();
        let mut overrides: BTreeMap<&str, &toml::Table> = BTreeMap::new();
        for (key, value) in table {
            match value {
                toml::Value::Table(t) => {
                    overrides.insert(key, t);
                }
                other => {
                    defaults.insert(key.clone(), other.clone());
                }
            }
        }
        let parse = |t: toml::Table, what: &str| -> Result<ChainTable, String> {
            t.try_into()
                .map_err(|e: toml::de::Error| format!("{what}: {}", e.message()))
        };
        let base = parse(defaults, "[chain]")?;
        let mut chain = Chain::default();
        chain.apply(base);
        for (name, table) in &overrides {
            // Validate every device type's table, not only this device's: a typo in another
            // type's chain must not wait until that type's devices run this file.
            let parsed = parse((*table).clone(), &format!("[chain.\"{name}\"]"))?;
            if *name == device_type {
                chain.apply(parsed);
            }
        }
        Ok(chain)
    }

    fn apply(&mut self, t: ChainTable) {
        let stages = [
            (Stage::DownloadEnter, t.download_enter),
            (Stage::DownloadLeave, t.download_leave),
            (Stage::InstallEnter, t.install_enter),
            (Stage::InstallLeave, t.install_leave),
            (Stage::RebootEnter, t.reboot_enter),
            (Stage::CommitEnter, t.commit_enter),
            (Stage::CommitLeave, t.commit_leave),
            (Stage::RollbackEnter, t.rollback_enter),
            (Stage::RollbackLeave, t.rollback_leave),
            (Stage::Failure, t.failure),
        ];
        for (stage, hooks) in stages {
            if let Some(h) = hooks {
                self.hooks.insert(stage.as_str(), h);
            }
        }
        if let Some(c) = t.check {
            self.checks = c;
        }
        if let Some(i) = t.installers {
            self.installers = i;
        }
        if let Some(b) = t.bundled_plugins {
            self.bundled_plugins = b;
        }
        if let Some(r) = t.retry_limit {
            self.retry_limit = r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn device_type_overrides_defaults_key_by_key() {
        let t = table(
            r#"
download-enter = ["battery"]
check = ["health"]
[acme-v1]
check = ["health", "modem"]
"#,
        );
        let v2 = Chain::from_table(&t, "acme-v2").unwrap();
        assert_eq!(v2.checks, ["health"]);
        assert_eq!(v2.hooks(Stage::DownloadEnter), ["battery"]);
        let v1 = Chain::from_table(&t, "acme-v1").unwrap();
        assert_eq!(v1.checks, ["health", "modem"]);
        assert_eq!(
            v1.hooks(Stage::DownloadEnter),
            ["battery"],
            "not overridden: inherited"
        );
        assert!(v1.hooks(Stage::CommitEnter).is_empty());
    }

    #[test]
    fn unknown_keys_are_refused_in_any_device_types_table() {
        let e = Chain::from_table(&table("pre-instal = [\"x\"]"), "t").unwrap_err();
        assert!(e.contains("pre-instal") && e.contains("[chain]"), "{e}");
        let e = Chain::from_table(&table("[other]\nchecks = [\"x\"]"), "t").unwrap_err();
        assert!(
            e.contains("[chain.\"other\"]") && e.contains("checks"),
            "{e}"
        );
    }
}
