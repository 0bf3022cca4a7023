//! Hostile check for the engine's sandbox tests: recurses until the stack runs out (the
//! shadow stack in linear memory or the engine's native wasm stack, whichever first).

use airlock_sdk::{Check, CheckResult, Context, log};

struct StackOverflow;

impl Check for StackOverflow {
    fn check(_ctx: Context) -> CheckResult {
        log::info!("recursing without end");
        let depth = recurse(std::hint::black_box(0));
        CheckResult::Fail(format!(
            "recursion ended at depth {depth}, which it should not"
        ))
    }
}

/// Keeps a 1 KiB frame alive across the call so it can be neither inlined away nor turned
/// into a loop.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth as u8; 1024]);
    if std::hint::black_box(depth) == u64::MAX {
        return depth;
    }
    recurse(depth + 1) + u64::from(frame[depth as usize % 1024])
}

airlock_sdk::export_check!(StackOverflow);
