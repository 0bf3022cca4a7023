//! `always-pass`: the smallest check there is. It passes, and says so in the log. The
//! benchmark times it against the same check as a shell script, and it is the template to
//! copy for a new check.

use airlock_sdk::{Check, CheckResult, Context, log};

struct AlwaysPass;

impl Check for AlwaysPass {
    fn check(ctx: Context) -> CheckResult {
        log::debug!("{} on {}: pass", ctx.bundle, ctx.device_type);
        CheckResult::Pass
    }
}

airlock_sdk::export_check!(AlwaysPass);
