//! `systemd-unit`: a check that passes iff every configured systemd unit is `active`.
//!
//! Config (`[plugins.NAME.config]`):
//!
//! | key     | default | meaning                                                          |
//! |---------|---------|------------------------------------------------------------------|
//! | `units` | —       | comma-separated units, e.g. `"app.service,db.service"`; the operator must also allow each (`units`) |
//!
//! Units are asked in order; the check fails on the first that is not `active`, naming it
//! and its state (`failed`, `activating`, …) or the host's refusal.

use airlock_sdk::{Check, CheckResult, Context, config, log, probes};

struct SystemdUnit;

impl Check for SystemdUnit {
    fn check(ctx: Context) -> CheckResult {
        match all_active(&ctx) {
            Ok(count) => {
                log::info!("pass: all {count} units are active");
                CheckResult::Pass
            }
            Err(reason) => {
                log::warn!("fail: {reason}");
                CheckResult::Fail(reason)
            }
        }
    }
}

airlock_sdk::export_check!(SystemdUnit);

fn all_active(ctx: &Context) -> Result<usize, String> {
    let units = config::list("units");
    if units.is_empty() {
        return Err("config key `units` lists no unit (e.g. units = \"app.service\")".into());
    }
    log::info!("{}: checking {}", ctx.bundle, units.join(", "));
    for unit in &units {
        let state = probes::unit_state(unit).map_err(|e| format!("unit {unit}: {e}"))?;
        log::debug!("{unit} is {state}");
        if state != "active" {
            return Err(format!("unit {unit} is {state}, expected active"));
        }
    }
    Ok(units.len())
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

    #[test]
    fn passes_when_all_active_and_names_the_first_that_is_not() {
        testing::reset();
        testing::on_unit_state(|unit| {
            Ok(match unit {
                "a.service" => "active",
                "b.service" => "failed",
                _ => "activating",
            }
            .into())
        });
        testing::set_config(&[("units", "a.service")]);
        assert_eq!(SystemdUnit::check(context()), CheckResult::Pass);

        testing::set_config(&[("units", "a.service, b.service, c.service")]);
        assert_eq!(
            SystemdUnit::check(context()),
            CheckResult::Fail("unit b.service is failed, expected active".into())
        );
    }

    #[test]
    fn refusals_and_missing_config_fail() {
        testing::reset();
        assert!(
            matches!(SystemdUnit::check(context()), CheckResult::Fail(r) if r.contains("`units`"))
        );
        testing::set_config(&[("units", "x.service")]);
        testing::on_unit_state(|unit| Err(format!("{unit} is not in this plugin's units")));
        assert_eq!(
            SystemdUnit::check(context()),
            CheckResult::Fail("unit x.service: x.service is not in this plugin's units".into())
        );
    }
}
