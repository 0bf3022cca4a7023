//! `http-health`: a check that GETs a URL on the trial boot and passes when the answer is
//! the expected one.
//!
//! Config (`[plugins.NAME.config]`):
//!
//! | key       | default | meaning                                                  |
//! |-----------|---------|----------------------------------------------------------|
//! | `url`     | —       | the URL to GET; the operator must also allow it (`http`) |
//! | `status`  | `200`   | the status the answer must have                          |
//! | `body`    | unset   | text the body must contain (the host cuts bodies at 64 KiB) |
//! | `timeout` | `5s`    | how long the GET may take                                |

use std::time::Duration;

use airlock_sdk::{Check, CheckResult, Context, config, log, probes};

struct HttpHealth;

impl Check for HttpHealth {
    fn check(ctx: Context) -> CheckResult {
        match health(&ctx) {
            Ok(summary) => {
                log::info!("pass: {summary}");
                CheckResult::Pass
            }
            Err(reason) => {
                log::warn!("fail: {reason}");
                CheckResult::Fail(reason)
            }
        }
    }
}

airlock_sdk::export_check!(HttpHealth);

/// What the check expects, from the config.
#[derive(Debug)]
struct Expect {
    url: String,
    status: u16,
    body: Option<String>,
    timeout: Duration,
}

fn health(ctx: &Context) -> Result<String, String> {
    let expect = Expect {
        url: config::require("url")?,
        status: config::parse_or("status", 200)?,
        body: config::get("body"),
        timeout: config::duration_or("timeout", Duration::from_secs(5))?,
    };
    log::info!(
        "{} on slot {}: GET {} expecting {} within {:?}",
        ctx.bundle,
        ctx.slot.as_deref().unwrap_or("-"),
        expect.url,
        expect.status,
        expect.timeout
    );
    let response = probes::http_get(&expect.url, expect.timeout)
        .map_err(|e| format!("GET {}: {e}", expect.url))?;
    judge(&expect, &response)
}

/// Whether `response` is what `expect` asks for: a summary if so, the precise reason if not.
fn judge(expect: &Expect, response: &probes::HttpResponse) -> Result<String, String> {
    if response.status != expect.status {
        return Err(format!(
            "GET {} answered status {}, expected {}",
            expect.url, response.status, expect.status
        ));
    }
    if let Some(needle) = &expect.body {
        let text = response.text();
        if !text.contains(needle.as_str()) {
            return Err(format!(
                "GET {} answered status {} but its body ({} bytes, starting {:?}) does not contain {needle:?}",
                expect.url,
                response.status,
                response.body.len(),
                text.chars().take(80).collect::<String>(),
            ));
        }
    }
    Ok(format!(
        "GET {} answered status {}",
        expect.url, response.status
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_sdk::testing;

    fn context() -> Context {
        Context {
            bundle: airlock_sdk::Release {
                name: "rootfs".into(),
                version: "1.2.0".into(),
            },
            current: None,
            device_type: "sim".into(),
            stage: airlock_sdk::Stage::Check,
            payload: None,
            slot: Some("b".into()),
        }
    }

    fn answer(status: u16, body: &'static str) {
        testing::on_http_get(move |_, _| {
            Ok(probes::HttpResponse {
                status,
                body: body.into(),
            })
        });
    }

    #[test]
    fn passes_on_expected_status_and_body() {
        testing::reset();
        testing::set_config(&[("url", "http://127.0.0.1/health"), ("body", "ok")]);
        answer(200, "{\"status\":\"ok\"}");
        assert_eq!(HttpHealth::check(context()), CheckResult::Pass);
    }

    #[test]
    fn fails_naming_status_body_and_host_errors() {
        testing::reset();
        testing::set_config(&[("url", "http://127.0.0.1/health"), ("status", "204")]);
        answer(503, "");
        let CheckResult::Fail(reason) = HttpHealth::check(context()) else {
            panic!("passed")
        };
        assert_eq!(
            reason,
            "GET http://127.0.0.1/health answered status 503, expected 204"
        );

        testing::set_config(&[("url", "http://x/"), ("body", "ready")]);
        answer(200, "starting");
        let CheckResult::Fail(reason) = HttpHealth::check(context()) else {
            panic!("passed")
        };
        assert!(reason.contains("does not contain \"ready\""), "{reason}");

        testing::on_http_get(|_, timeout| Err(format!("timed out after {timeout:?}")));
        testing::set_config(&[("url", "http://x/"), ("timeout", "250ms")]);
        let CheckResult::Fail(reason) = HttpHealth::check(context()) else {
            panic!("passed")
        };
        assert_eq!(reason, "GET http://x/: timed out after 250ms");
    }

    #[test]
    fn config_errors_fail_the_check() {
        testing::reset();
        let CheckResult::Fail(reason) = HttpHealth::check(context()) else {
            panic!("passed")
        };
        assert_eq!(reason, "config key `url` is required but not set");
        testing::set_config(&[("url", "http://x/"), ("status", "ok")]);
        let CheckResult::Fail(reason) = HttpHealth::check(context()) else {
            panic!("passed")
        };
        assert!(
            reason.starts_with("config key `status` = \"ok\""),
            "{reason}"
        );
    }
}
