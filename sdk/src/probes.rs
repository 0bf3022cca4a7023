//! Narrow, allow-listed views of the world outside the sandbox.
//!
//! Each probe is refused unless the operator allowed it for this plugin in `airlock.toml`
//! (the plugin's `http` URLs, `units` and `commands`); a refusal is an `Err` that names what
//! was asked and what is allowed. Timeouts are capped by the plugin's own call timeout.

use std::borrow::Cow;
use std::time::Duration;

pub use crate::bindings::airlock::plugin::probes::{CommandOutput, HttpResponse};

/// GETs `url`, which must be one of the plugin's allowed `http` URLs. The final URL after
/// redirects and the address it resolves to are what the engine checks.
pub fn http_get(url: &str, timeout: Duration) -> Result<HttpResponse, String> {
    crate::sys::http_get(url, millis(timeout))
}

/// The state of a systemd unit (`active`, `inactive`, `failed`, `activating`, …); the unit
/// must be one of the plugin's allowed `units`.
pub fn unit_state(unit: &str) -> Result<String, String> {
    crate::sys::unit_state(unit)
}

/// Runs a command whose argv is exactly one of the plugin's allowed `commands`, with an empty
/// environment and no standard input, killed after `timeout`.
pub fn run<S: AsRef<str>>(argv: &[S], timeout: Duration) -> Result<CommandOutput, String> {
    let argv: Vec<String> = argv.iter().map(|arg| arg.as_ref().to_owned()).collect();
    crate::sys::run(&argv, millis(timeout))
}

/// A timeout in whole milliseconds, saturating at `u32::MAX` (about 49 days).
fn millis(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)
}

impl HttpResponse {
    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

impl CommandOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}
