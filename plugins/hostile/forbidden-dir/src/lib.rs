//! Hostile check for the engine's sandbox tests: reaches for files it was not given.
//!
//! It tries, in order: reading `/etc/passwd`, listing `/`, reading `../etc/passwd`
//! relative to the current directory, and creating `/tmp/airlock-forbidden-dir`. Config
//! `paths` (comma-separated) replaces the files to read.
//!
//! The verdict is always fail, so a test can read it: `refused: <what happened to each>`
//! when every attempt failed (the sandbox held), or `breach: <what succeeded>` otherwise.

use std::fs;

use airlock_sdk::{Check, CheckResult, Context, config, log};

struct ForbiddenDir;

impl Check for ForbiddenDir {
    fn check(_ctx: Context) -> CheckResult {
        let mut reads = config::list("paths");
        if reads.is_empty() {
            reads = vec!["/etc/passwd".into(), "../etc/passwd".into()];
        }
        let mut breaches = Vec::new();
        let mut refusals = Vec::new();
        for path in &reads {
            match fs::read(path) {
                Ok(bytes) => breaches.push(format!("read {} bytes of {path}", bytes.len())),
                Err(e) => refusals.push(format!("read {path}: {e}")),
            }
        }
        match fs::read_dir("/") {
            Ok(entries) => breaches.push(format!("listed / ({} entries)", entries.count())),
            Err(e) => refusals.push(format!("list /: {e}")),
        }
        let created = "/tmp/airlock-forbidden-dir";
        match fs::write(created, b"hostile") {
            Ok(()) => breaches.push(format!("created {created}")),
            Err(e) => refusals.push(format!("create {created}: {e}")),
        }
        let verdict = if breaches.is_empty() {
            format!("refused: {}", refusals.join("; "))
        } else {
            format!("breach: {}", breaches.join("; "))
        };
        log::info!("{verdict}");
        CheckResult::Fail(verdict)
    }
}

airlock_sdk::export_check!(ForbiddenDir);
