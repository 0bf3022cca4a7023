//! Hostile check for the engine's sandbox tests: traps.
//!
//! Config `how`: `"panic"` (default) panics with a message, which the engine should log
//! from stderr; `"unreachable"` executes a bare `unreachable` instruction.

use airlock_sdk::{Check, CheckResult, Context, config, log};

struct Trap;

impl Check for Trap {
    fn check(_ctx: Context) -> CheckResult {
        let how = config::get_or("how", "panic");
        log::info!("trapping by {how}");
        match how.as_str() {
            "unreachable" => unreachable_instruction(),
            _ => panic!("hostile-trap panics on purpose"),
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

airlock_sdk::export_check!(Trap);
