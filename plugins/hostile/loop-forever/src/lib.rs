//! Hostile hook for the engine's sandbox tests: never returns. Only the engine's wall-clock
//! timeout (epoch interruption) can end the call.

use airlock_sdk::{Context, Hook, HookResult, log};

struct LoopForever;

impl Hook for LoopForever {
    fn run(_ctx: Context) -> HookResult {
        log::info!("looping forever");
        let mut spins: u64 = 0;
        loop {
            // Keep the loop opaque to the optimiser; a loop it could prove empty is still
            // an endless loop, but this one also burns CPU like a real runaway plugin.
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

airlock_sdk::export_hook!(LoopForever);
