//! Hostile check for the engine's sandbox tests: allocates (and touches) memory in 1 MiB
//! blocks until an allocation fails, which aborts the instance. The engine's memory cap
//! decides when.

use airlock_sdk::{Check, CheckResult, Context, log};

struct Oom;

impl Check for Oom {
    fn check(_ctx: Context) -> CheckResult {
        log::info!("allocating until memory runs out");
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // vec![1; n] writes every byte, so the pages are really used.
            hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            if hoard.len().is_multiple_of(64) {
                log::debug!("holding {} MiB", hoard.len());
            }
        }
    }
}

airlock_sdk::export_check!(Oom);
