//! Hostile hook for the engine's fault-injection tests: allocates (and touches) memory in
//! 1 MiB blocks until an allocation fails, which aborts the instance; the engine's memory cap
//! decides when. plugins/hostile/oom is the same as a check.

use airlock_sdk::{Context, Hook, HookResult, log};

struct OomHook;

impl Hook for OomHook {
    fn run(_ctx: Context) -> HookResult {
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

airlock_sdk::export_hook!(OomHook);
