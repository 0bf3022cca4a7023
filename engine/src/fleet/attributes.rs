//! The device's attributes, reported through `configData`, from its own state journal:
//!
//! | key                   | value                                                          |
//! |-----------------------|----------------------------------------------------------------|
//! | `airlock.device_type` | `[device] type`                                                |
//! | `airlock.version`     | the committed release's version, `1.3.0` (or `none`)          |
//! | `airlock.booted`      | the slot running, `a` or `b`                                   |
//! | `airlock.slot.a`/`.b` | what the slot holds, `acme-os 1.3.0`, or `unknown`             |
//! | `airlock.last_result` | `committed acme-os 1.3.0`, `rolled-back acme-os 1.3.0: <why>`, … |
//! | `airlock.health`      | the last trial boot: `ok`, `failed: <why>`, or `unknown`       |
//! | `airlock.update`      | the update in flight, `installed acme-os 1.3.0`, or `none`     |
//!
//! Besides those, every key of `[fleet.attributes]` (a hardware revision, a customer, a serial
//! number read from a file): what a server's users target devices by. Every report carries the
//! whole set, so a server that replaces the attributes on each update still has them all.
//!
//! Values are cut to 128 characters, the longest hawkBit stores.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::boot::Side;
use crate::config::{AttributeValue, MAX_ATTRIBUTE_LEN};
use crate::install::describe;
use crate::install::record::{DeviceState, Ending, Outcome, Phase};

/// The longest attribute value hawkBit accepts.
pub const MAX_VALUE: usize = MAX_ATTRIBUTE_LEN;

pub type Attributes = BTreeMap<String, String>;

/// What the daemon remembers between runs about what it told the server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// The attributes last accepted by the server.
    #[serde(default)]
    pub sent: Option<Attributes>,
    /// The health of the last trial boot, once the daemon has seen one end.
    #[serde(default)]
    pub health: Option<String>,
    /// The `installedBase` link last looked at.
    #[serde(default)]
    pub installed_base: Option<String>,
}

pub fn attributes(
    device_type: &str,
    state: &DeviceState,
    booted: Side,
    health: Option<&str>,
) -> Attributes {
    let slot = |s: Side| {
        state
            .slot(s)
            .map_or("unknown".to_string(), |c| describe(&c.release))
    };
    let health = health
        .map(str::to_string)
        .or_else(|| state.last_result.as_ref().and_then(health_of))
        .unwrap_or_else(|| "unknown".into());
    let pairs = [
        ("airlock.device_type", device_type.to_string()),
        (
            "airlock.version",
            state
                .committed
                .as_ref()
                .map_or("none".into(), |r| r.version.to_string()),
        ),
        ("airlock.booted", booted.to_string()),
        ("airlock.slot.a", slot(Side::A)),
        ("airlock.slot.b", slot(Side::B)),
        (
            "airlock.last_result",
            state
                .last_result
                .as_ref()
                .map_or("none".into(), last_result),
        ),
        ("airlock.health", health),
        (
            "airlock.update",
            state.update.as_ref().map_or("none".into(), |u| {
                format!("{} {}", phase(u.phase), describe(&u.release))
            }),
        ),
    ];
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), cut(v)))
        .collect()
}

/// The attributes of `[fleet.attributes]` as they are now: a file's content is read each time
/// (trimmed of whitespace and of the NUL a device-tree string ends with). A file that cannot be
/// read is reported as such, not left out: a missing attribute would silently drop the device
/// from the server's filters.
pub fn configured(attributes: &BTreeMap<String, AttributeValue>) -> Attributes {
    attributes
        .iter()
        .map(|(key, value)| {
            let value = match value {
                AttributeValue::Fixed(text) => text.clone(),
                AttributeValue::File(path) => match std::fs::read(path) {
                    Ok(bytes) => String::from_utf8_lossy(&bytes)
                        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                        .to_string(),
                    Err(e) => {
                        tracing::warn!(attribute = %key, "cannot read {}: {e}", path.display());
                        format!("unknown (cannot read {}: {e})", path.display())
                    }
                },
            };
            (key.clone(), cut(value))
        })
        .collect()
}

/// `committed acme-os 1.3.0`, `rolled-back acme-os 1.3.0: check health failed: …`.
pub fn last_result(o: &Outcome) -> String {
    let what = match o.result {
        Ending::Committed => "committed",
        Ending::RolledBack => "rolled-back",
        Ending::Failed => "failed",
        Ending::Cancelled => "cancelled",
    };
    match &o.reason {
        Some(r) => format!("{what} {}: {r}", describe(&o.release)),
        None => format!("{what} {}", describe(&o.release)),
    }
}

/// The health an outcome says, when it ended a trial: commit means every check passed.
pub fn health_of(o: &Outcome) -> Option<String> {
    match o.result {
        Ending::Committed => Some("ok".into()),
        Ending::RolledBack => Some(format!(
            "failed: {}",
            o.reason.as_deref().unwrap_or("rolled back")
        )),
        Ending::Failed | Ending::Cancelled => None,
    }
}

fn phase(p: Phase) -> &'static str {
    match p {
        Phase::Fetching => "fetching",
        Phase::Switching => "switching",
        Phase::Installed => "installed",
        Phase::Trial => "trial",
    }
}

fn cut(mut v: String) -> String {
    if let Some((at, _)) = v.char_indices().nth(MAX_VALUE - 1) {
        v.truncate(at);
        v.push('…');
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::record::{Release, SlotContent};

    fn release(v: &str) -> Release {
        Release {
            bundle: "acme-os".into(),
            version: v.parse().unwrap(),
        }
    }

    #[test]
    fn a_fresh_device_reports_unknowns() {
        let a = attributes("acme-gw", &DeviceState::default(), Side::A, None);
        let expect = [
            ("airlock.booted", "a"),
            ("airlock.device_type", "acme-gw"),
            ("airlock.health", "unknown"),
            ("airlock.last_result", "none"),
            ("airlock.slot.a", "unknown"),
            ("airlock.slot.b", "unknown"),
            ("airlock.update", "none"),
            ("airlock.version", "none"),
        ];
        let expect: Attributes = expect
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(a, expect);
        assert!(
            a.keys().all(|k| k.len() <= 32),
            "hawkBit keys are at most 32 characters"
        );
    }

    #[test]
    fn slots_result_health_and_update_come_from_the_journal() {
        let mut state = DeviceState {
            slot_a: Some(SlotContent {
                release: release("1.2.0"),
                payloads: BTreeMap::new(),
                download: None,
            }),
            committed: Some(release("1.2.0")),
            last_result: Some(Outcome {
                release: release("1.3.0"),
                result: Ending::RolledBack,
                reason: Some("check health failed: HTTP 500 from /health".into()),
                at: "2026-01-01T00:00:00Z".into(),
            }),
            ..DeviceState::default()
        };
        let a = attributes("acme-gw", &state, Side::A, None);
        assert_eq!(a["airlock.version"], "1.2.0");
        assert_eq!(a["airlock.slot.a"], "acme-os 1.2.0");
        assert_eq!(
            a["airlock.last_result"],
            "rolled-back acme-os 1.3.0: check health failed: HTTP 500 from /health"
        );
        assert_eq!(
            a["airlock.health"],
            "failed: check health failed: HTTP 500 from /health"
        );

        // What the daemon remembers of the last trial wins over a later install failure.
        state.last_result.as_mut().unwrap().result = Ending::Failed;
        let a = attributes("acme-gw", &state, Side::A, Some("ok"));
        assert_eq!(a["airlock.health"], "ok");
        assert!(a["airlock.last_result"].starts_with("failed acme-os 1.3.0: "));

        state.last_result.as_mut().unwrap().reason = Some("x".repeat(500));
        let a = attributes("acme-gw", &state, Side::B, None);
        assert_eq!(a["airlock.last_result"].chars().count(), MAX_VALUE);
        assert_eq!(a["airlock.health"], "unknown");
        assert_eq!(a["airlock.booted"], "b");
    }

    #[test]
    fn configured_attributes_read_files_each_time_and_say_when_they_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let serial = dir.path().join("serial-number");
        std::fs::write(&serial, b"SN-0042\0").unwrap();
        let missing = dir.path().join("missing");
        let config = BTreeMap::from([
            ("hw_revision".to_string(), AttributeValue::Fixed("3".into())),
            ("serial".to_string(), AttributeValue::File(serial.clone())),
            ("mac".to_string(), AttributeValue::File(missing.clone())),
        ]);
        let attrs = configured(&config);
        assert_eq!(attrs["hw_revision"], "3");
        assert_eq!(attrs["serial"], "SN-0042");
        assert!(
            attrs["mac"].starts_with(&format!("unknown (cannot read {}", missing.display())),
            "{}",
            attrs["mac"]
        );
        std::fs::write(&serial, "  SN-0043\n").unwrap();
        assert_eq!(configured(&config)["serial"], "SN-0043");
        std::fs::write(&serial, "y".repeat(500)).unwrap();
        assert_eq!(configured(&config)["serial"].chars().count(), MAX_VALUE);
    }
}
