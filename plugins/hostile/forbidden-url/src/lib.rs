//! Hostile check for the engine's sandbox tests: asks for a URL it was not allowed.
//!
//! Config `url` (default `"http://169.254.169.254/latest/meta-data/"`, a cloud metadata
//! address no plugin should reach). The verdict is always fail, so a test can read it:
//! `refused: <host error>` when the engine refused (the sandbox held), or
//! `breach: GET <url> answered <status>` when it did not.

use std::time::Duration;

use airlock_sdk::{Check, CheckResult, Context, config, log, probes};

struct ForbiddenUrl;

impl Check for ForbiddenUrl {
    fn check(_ctx: Context) -> CheckResult {
        let url = config::get_or("url", "http://169.254.169.254/latest/meta-data/");
        log::info!("asking for {url}, which this plugin was not given");
        let verdict = match probes::http_get(&url, Duration::from_secs(2)) {
            Ok(response) => format!("breach: GET {url} answered {}", response.status),
            Err(e) => format!("refused: {e}"),
        };
        log::info!("{verdict}");
        CheckResult::Fail(verdict)
    }
}

airlock_sdk::export_check!(ForbiddenUrl);
