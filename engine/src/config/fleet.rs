//! `[fleet]` of `airlock.toml`: the server `airlock daemon` polls over hawkBit's DDI protocol.
//!
//! ```toml
//! [fleet]
//! server = "https://fleet.example.com"        # required: the server's base URL
//! tenant = "DEFAULT"                          # default "DEFAULT"
//! controller_id = "gw-0042"                   # default: the hostname
//! token_file = "/etc/airlock/target-token"    # Authorization: TargetToken <contents>
//! # gateway_token_file = "…"                  # or: Authorization: GatewayToken <contents>
//! ca_file = "/etc/airlock/fleet-ca.pem"       # extra trusted CA for the server
//! client_certificate = "/etc/airlock/device.crt"   # mutual TLS: both or neither (PEM)
//! client_key = "/etc/airlock/device.key"
//! poll_interval = "5m"                        # until the server says otherwise, and the
//!                                             # longest wait after errors
//! maintenance_window = "02:00-04:00"          # UTC: when an `attempt` update may install
//!
//! [fleet.attributes]                          # sent with airlock's own, for servers to target
//! hw_revision = "3"                           # a fixed value
//! serial = { file = "/sys/firmware/devicetree/base/serial-number" }   # read at each report
//! ```
//!
//! How the daemon reboots is `[device] reboot_command`, shared with `airlock reboot`.
//!
//! Exactly one of `token_file` and `gateway_token_file` is required. Relative paths are relative
//! to the configuration file; the token files are read when the daemon starts, not here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// How the device authenticates to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetAuth {
    /// `Authorization: TargetToken <file contents>`: the device's own token.
    TargetToken(PathBuf),
    /// `Authorization: GatewayToken <file contents>`: a token shared by a gateway's devices.
    GatewayToken(PathBuf),
}

/// Where the value of an attribute from `[fleet.attributes]` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// The same on every report.
    Fixed(String),
    /// The file's content (trimmed), read at each report: a serial number, a MAC address.
    File(PathBuf),
}

/// A daily window in UTC, `"02:00-04:00"`, or across midnight `"22:00-02:00"`: when the device
/// installs an update the server offers with `update: attempt` (one it may postpone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindow {
    /// Minutes after midnight UTC: the window is `[start, end)`.
    start: u32,
    end: u32,
}

impl DailyWindow {
    pub fn parse(text: &str) -> Result<Self, String> {
        let minutes = |hm: &str| -> Option<u32> {
            let (h, m) = hm.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 && hm.trim().len() == 5).then_some(h * 60 + m)
        };
        let window = text
            .split_once('-')
            .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)));
        match window {
            Some((start, end)) if start != end => Ok(Self { start, end }),
            _ => Err(format!(
                "[fleet] maintenance_window = {text:?} is not a daily window; give \"HH:MM-HH:MM\" in UTC, e.g. \"02:00-04:00\" (\"22:00-02:00\" spans midnight)"
            )),
        }
    }

    /// Whether the Unix time `secs` falls in the window.
    pub fn contains(&self, secs: u64) -> bool {
        let minute = (secs / 60 % (24 * 60)) as u32;
        if self.start < self.end {
            self.start <= minute && minute < self.end
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

impl std::fmt::Display for DailyWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (s, e) = (self.start, self.end);
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02} UTC",
            s / 60,
            s % 60,
            e / 60,
            e % 60
        )
    }
}

/// The longest attribute key and value hawkBit stores.
pub const MAX_ATTRIBUTE_LEN: usize = 128;

/// A validated `[fleet]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// Base URL, without a trailing slash.
    pub server: String,
    pub tenant: String,
    pub controller_id: String,
    pub auth: FleetAuth,
    /// An extra CA (PEM) to trust for the server, besides the built-in roots and
    /// `[download] ca_file`.
    pub ca_file: Option<PathBuf>,
    /// Mutual TLS: (certificate chain, private key), both PEM.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    pub poll_interval: Duration,
    /// `[fleet.attributes]`: reported besides airlock's own `airlock.*` attributes.
    pub attributes: BTreeMap<String, AttributeValue>,
    /// When an update the server lets the device postpone (`attempt`) is installed.
    pub maintenance_window: Option<DailyWindow>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    server: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    controller_id: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    gateway_token_file: Option<PathBuf>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    client_certificate: Option<PathBuf>,
    #[serde(default)]
    client_key: Option<PathBuf>,
    #[serde(default, with = "super::humantime_serde_compat::option")]
    poll_interval: Option<Duration>,
    #[serde(default)]
    attributes: BTreeMap<String, toml::Value>,
    #[serde(default)]
    maintenance_window: Option<String>,
    /// Was here before it moved to `[device]`; kept only to say so.
    #[serde(default)]
    reboot_command: Option<toml::Value>,
}

pub const DEFAULT_TENANT: &str = "DEFAULT";
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(300);

impl RawFleet {
    /// Validates the table; `resolve` anchors relative paths at the configuration file.
    pub(super) fn validate(
        self,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<FleetConfig, String> {
        let server = self.server.trim().trim_end_matches('/').to_string();
        let lower = server.to_ascii_lowercase();
        let host = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty()) {
            return Err(format!(
                "[fleet] server = {:?} is not an http:// or https:// URL; give the server's base URL, e.g. \"https://fleet.example.com\"",
                self.server
            ));
        }
        let tenant = self.tenant.unwrap_or_else(|| DEFAULT_TENANT.into());
        check_path_segment("tenant", &tenant)?;
        let controller_id = match self.controller_id {
            Some(id) => id,
            None => hostname().ok_or(
                "[fleet] controller_id is not set and the hostname is unknown; set controller_id to the device's id on the server",
            )?,
        };
        check_path_segment("controller_id", &controller_id)?;
        let auth = match (self.token_file, self.gateway_token_file) {
            (Some(t), None) => FleetAuth::TargetToken(resolve(&t)),
            (None, Some(g)) => FleetAuth::GatewayToken(resolve(&g)),
            (Some(_), Some(_)) => {
                return Err("[fleet] sets both token_file and gateway_token_file; keep the one the server issued".into());
            }
            (None, None) => {
                return Err("[fleet] needs token_file (the device's TargetToken) or gateway_token_file (a GatewayToken); add one".into());
            }
        };
        let client_identity = match (self.client_certificate, self.client_key) {
            (Some(c), Some(k)) => Some((resolve(&c), resolve(&k))),
            (None, None) => None,
            (Some(_), None) => {
                return Err("[fleet] client_certificate is set without client_key; mutual TLS needs both (PEM files)".into());
            }
            (None, Some(_)) => {
                return Err("[fleet] client_key is set without client_certificate; mutual TLS needs both (PEM files)".into());
            }
        };
        let poll_interval = self.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL);
        if poll_interval.is_zero() {
            return Err("[fleet] poll_interval is zero; give a duration such as \"5m\"".into());
        }
        if self.reboot_command.is_some() {
            return Err("[fleet] reboot_command has moved to [device] reboot_command (airlock reboot and boot --reboot use it too); move the line there".into());
        }
        let attributes = self
            .attributes
            .into_iter()
            .map(|(key, value)| {
                check_attribute_key(&key)?;
                let value = attribute(&key, value, resolve)?;
                Ok((key, value))
            })
            .collect::<Result<_, String>>()?;
        let maintenance_window = self
            .maintenance_window
            .as_deref()
            .map(DailyWindow::parse)
            .transpose()?;
        Ok(FleetConfig {
            server,
            tenant,
            controller_id,
            auth,
            ca_file: self.ca_file.map(|p| resolve(&p)),
            client_identity,
            poll_interval,
            attributes,
            maintenance_window,
        })
    }
}

fn check_attribute_key(key: &str) -> Result<(), String> {
    if key.starts_with("airlock.") {
        return Err(format!(
            "[fleet.attributes] {key:?}: keys starting with \"airlock.\" are the ones airlock reports itself; choose another name"
        ));
    }
    if key.is_empty() || key.chars().count() > MAX_ATTRIBUTE_LEN {
        return Err(format!(
            "[fleet.attributes] {key:?}: a key must have 1 to {MAX_ATTRIBUTE_LEN} characters"
        ));
    }
    Ok(())
}

/// `"value"` or `{ file = "PATH" }`.
fn attribute(
    key: &str,
    value: toml::Value,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<AttributeValue, String> {
    let file = match &value {
        toml::Value::String(text) if text.chars().count() <= MAX_ATTRIBUTE_LEN => {
            return Ok(AttributeValue::Fixed(text.clone()));
        }
        toml::Value::String(_) => {
            return Err(format!(
                "[fleet.attributes] {key}: the value is longer than the {MAX_ATTRIBUTE_LEN} characters a server stores; shorten it"
            ));
        }
        toml::Value::Table(t) if t.len() == 1 => t.get("file").and_then(toml::Value::as_str),
        _ => None,
    };
    match file {
        Some(path) => Ok(AttributeValue::File(resolve(Path::new(path)))),
        None => Err(format!(
            "[fleet.attributes] {key} = {value}: give a string, or {{ file = \"PATH\" }} to report a file's content"
        )),
    }
}

/// Tenant and controller id go into URL paths as they are.
fn check_path_segment(key: &str, value: &str) -> Result<(), String> {
    let bad = value
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '%'));
    if value.is_empty() || bad.is_some() {
        return Err(format!(
            "[fleet] {key} = {value:?} cannot be part of a URL path; use letters, digits, '-', '_', '.' or ':'"
        ));
    }
    Ok(())
}

/// The host's name: `/etc/hostname`, else the kernel's.
fn hostname() -> Option<String> {
    let from_file = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    from_file.or_else(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
        // truncates, and we stop at the first NUL or the end.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return None;
        }
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        (!name.is_empty()).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FleetConfig, String> {
        let raw: RawFleet = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.validate(&|p: &Path| Path::new("/etc/airlock").join(p))
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse("server = \"https://fleet.example.com/\"\ncontroller_id = \"gw-1\"\ntoken_file = \"token\"\n").unwrap();
        assert_eq!(c.server, "https://fleet.example.com");
        assert_eq!(c.tenant, "DEFAULT");
        assert_eq!(c.auth, FleetAuth::TargetToken("/etc/airlock/token".into()));
        assert_eq!(c.poll_interval, Duration::from_secs(300));
        assert_eq!(c.client_identity, None);
        let c = parse("server = \"http://h:8080\"\ngateway_token_file = \"/g\"\npoll_interval = \"30s\"\nclient_certificate = \"c.pem\"\nclient_key = \"k.pem\"\n").unwrap();
        assert_eq!(c.auth, FleetAuth::GatewayToken("/g".into()));
        assert_eq!(c.poll_interval, Duration::from_secs(30));
        assert_eq!(
            c.client_identity,
            Some(("/etc/airlock/c.pem".into(), "/etc/airlock/k.pem".into()))
        );
        assert!(!c.controller_id.is_empty(), "defaults to the hostname");
    }

    #[test]
    fn validation_names_the_key_and_what_to_do() {
        let cases = [
            (
                "server = \"fleet.example.com\"\ntoken_file = \"t\"",
                "[fleet] server",
            ),
            ("server = \"https://h\"", "token_file"),
            (
                "server = \"https://h\"\ntoken_file = \"t\"\ngateway_token_file = \"g\"",
                "both",
            ),
            (
                "server = \"https://h\"\ntoken_file = \"t\"\nclient_key = \"k\"",
                "client_certificate",
            ),
            (
                "server = \"https://h\"\ntoken_file = \"t\"\nclient_certificate = \"c\"",
                "client_key",
            ),
            (
                "server = \"https://h\"\ntoken_file = \"t\"\ncontroller_id = \"a/b\"",
                "controller_id",
            ),
            (
                "server = \"https://h\"\ntoken_file = \"t\"\ntenant = \"\"",
                "tenant",
            ),
            (
                "server = \"https://h\"\ntoken_file = \"t\"\npoll_interval = \"often\"",
                "often",
            ),
            (
                "server = \"https://h\"\ntoken_file = \"t\"\npoll_interval = \"0s\"",
                "poll_interval",
            ),
            (
                "server = \"https://h\"\ntoken_file = \"t\"\nreboot_command = [\"reboot\"]",
                "moved to [device] reboot_command",
            ),
            (
                "server = \"https://h\"\ntoken_file = \"t\"\npolling = \"5m\"",
                "polling",
            ),
        ];
        for (text, expect) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(expect), "{text}: {e}");
        }
    }

    #[test]
    fn attributes_are_fixed_values_or_files() {
        let base = "server = \"https://f\"\ncontroller_id = \"gw-1\"\ntoken_file = \"t\"\n";
        let c = parse(&format!(
            "{base}[attributes]\nhw_revision = \"3\"\nserial = {{ file = \"serial\" }}\nmac = {{ file = \"/sys/class/net/eth0/address\" }}\n"
        ))
        .unwrap();
        assert_eq!(
            c.attributes.into_iter().collect::<Vec<_>>(),
            [
                ("hw_revision".to_string(), AttributeValue::Fixed("3".into())),
                (
                    "mac".to_string(),
                    AttributeValue::File("/sys/class/net/eth0/address".into())
                ),
                (
                    "serial".to_string(),
                    AttributeValue::File("/etc/airlock/serial".into())
                ),
            ]
        );
        for (table, says) in [
            ("\"airlock.version\" = \"9\"", "airlock reports itself"),
            ("hw = 3", "give a string, or { file = \"PATH\" }"),
            ("hw = { path = \"x\" }", "give a string"),
            ("hw = { file = \"x\", other = 1 }", "give a string"),
            ("\"\" = \"x\"", "1 to 128 characters"),
        ] {
            let e = parse(&format!("{base}[attributes]\n{table}\n")).unwrap_err();
            assert!(e.contains(says), "{table}: {e}");
        }
        let long = "x".repeat(129);
        let e = parse(&format!("{base}[attributes]\nhw = \"{long}\"\n")).unwrap_err();
        assert!(e.contains("longer than the 128 characters"), "{e}");
    }

    #[test]
    fn a_maintenance_window_is_daily_in_utc_and_may_span_midnight() {
        let at = |h: u64, m: u64| 19_000 * 86_400 + h * 3600 + m * 60;
        let night = DailyWindow::parse("02:00-04:00").unwrap();
        assert_eq!(night.to_string(), "02:00-04:00 UTC");
        assert!(night.contains(at(2, 0)) && night.contains(at(3, 59)));
        assert!(!night.contains(at(4, 0)) && !night.contains(at(1, 59)));
        let late = DailyWindow::parse("22:30-01:15").unwrap();
        assert!(late.contains(at(23, 0)) && late.contains(at(0, 30)));
        assert!(!late.contains(at(12, 0)) && !late.contains(at(1, 15)));
        for bad in [
            "2-4",
            "02:00",
            "02:00-02:00",
            "25:00-03:00",
            "02:60-03:00",
            "a-b",
        ] {
            let e = DailyWindow::parse(bad).unwrap_err();
            assert!(e.contains("HH:MM-HH:MM"), "{bad}: {e}");
        }
        let c = parse("server = \"https://f\"\ncontroller_id = \"gw-1\"\ntoken_file = \"t\"\nmaintenance_window = \"02:00-04:00\"\n").unwrap();
        assert_eq!(c.maintenance_window, Some(night));
    }
}
