//! Hostile check for the engine's sandbox tests: writes far more output than any log cap.
//!
//! Config `bytes` (default `"8MiB"`): how much to write to each of stdout, stderr and the
//! log interface. Lines are 1 KiB and end in a newline. Passes if the engine lets it finish,
//! so a test sees both that the call survived and how much of the flood was kept.

use std::io::Write;

use airlock_sdk::{Check, CheckResult, Context, config, log};

struct FloodOutput;

impl Check for FloodOutput {
    fn check(_ctx: Context) -> CheckResult {
        let bytes = match config::bytes_or("bytes", 8 << 20) {
            Ok(bytes) => bytes,
            Err(reason) => return CheckResult::Fail(reason),
        };
        log::info!("flooding {bytes} bytes to stdout, stderr and the log");
        let mut line = "x".repeat(1023);
        line.push('\n');
        let lines = bytes.div_ceil(1024);
        let mut stdout = std::io::stdout().lock();
        let mut stderr = std::io::stderr().lock();
        for i in 0..lines {
            // Ignore write errors: an engine may close the streams once the cap is reached.
            let _ = stdout.write_all(line.as_bytes());
            let _ = stderr.write_all(line.as_bytes());
            log::info!("flood line {i}: {}", &line[..1000]);
        }
        let _ = stdout.flush();
        let _ = stderr.flush();
        CheckResult::Pass
    }
}

airlock_sdk::export_check!(FloodOutput);
