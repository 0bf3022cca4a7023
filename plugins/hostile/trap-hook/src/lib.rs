//! Hostile hook for the engine's fault-injection tests: traps at whatever stage it is wired
//! to, so that every hook stage meets a trapping plugin (plugins/hostile/trap is a check).
//!
//! Config `how`: `"panic"` (default) panics with a message, which the engine should log
//! from stderr; `"unreachable"` executes a bare `unreachable` instruction.

use airlock_sdk::{Context, Hook, HookResult, config, log};

struct TrapHook;

impl Hook for TrapHook {
    fn run(_ctx: Context) -> HookResult {
        let how = config::get_or("how", "panic");
        log::info!("trapping by {how}");
        match how.as_str() {
            "unreachable" => unreachable_instruction(),
            _ => panic!("hostile-trap-hook panics on purpose"),
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn unreachable_instruction() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn unreachable_instruction() -> ! {
    std::process::abort()
}

airlock_sdk::export_hook!(TrapHook);
