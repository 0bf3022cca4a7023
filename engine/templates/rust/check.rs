//! {{name}}: a check that GETs the URL in its config (`url`) on the trial boot of a new
//! release, and passes when it answers 200. The operator must also allow the URL (`http`).

wit_bindgen::generate!({ world: "check", path: "wit" });

use airlock::plugin::{config, log, probes};

struct Plugin;

impl Guest for Plugin {
    fn check(ctx: Context) -> CheckResult {
        match healthy(&ctx) {
            Ok(()) => CheckResult::Pass,
            Err(reason) => {
                log::log(log::Level::Warn, &reason);
                CheckResult::Fail(reason)
            }
        }
    }
}

fn healthy(ctx: &Context) -> Result<(), String> {
    let url = config::get("url").ok_or("config: set url (the URL to GET)")?;
    let response = probes::http_get(&url, 2000).map_err(|e| format!("GET {url}: {e}"))?;
    if response.status != 200 {
        return Err(format!(
            "GET {url} answered status {}, expected 200",
            response.status
        ));
    }
    log::log(
        log::Level::Info,
        &format!("{} {} is healthy", ctx.bundle.name, ctx.bundle.version),
    );
    Ok(())
}

export!(Plugin);
