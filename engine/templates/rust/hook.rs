//! {{name}}: a hook that vetoes an update, before anything is downloaded, when the bundle's
//! version is one of those in its config (`block`, comma-separated).

wit_bindgen::generate!({ world: "hook", path: "wit" });

use airlock::plugin::types::Stage;
use airlock::plugin::{config, log};

struct Plugin;

impl Guest for Plugin {
    fn run(ctx: Context) -> HookResult {
        if ctx.stage != Stage::DownloadEnter {
            return HookResult::Proceed;
        }
        let block = config::get("block").unwrap_or_default();
        if is_blocked(&ctx.bundle.version, &block) {
            let reason = format!("version {} is blocked (block = {block})", ctx.bundle.version);
            log::log(log::Level::Warn, &reason);
            return HookResult::Abort(reason);
        }
        HookResult::Proceed
    }
}

/// Is `version` in the comma-separated `list`?
fn is_blocked(version: &str, list: &str) -> bool {
    list.split(',').any(|v| v.trim() == version)
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::is_blocked;

    #[test]
    fn blocks_listed_versions_only() {
        assert!(is_blocked("1.1.0", "0.9.0, 1.1.0"));
        assert!(!is_blocked("1.1.0", "1.1.00,1.1"));
        assert!(!is_blocked("1.1.0", ""));
    }
}
