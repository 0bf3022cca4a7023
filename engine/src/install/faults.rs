//! Named persistence points where the fault-injection tests kill the process.
//!
//! `AIRLOCK_FAULT_LOG=FILE` appends the name of every point passed to FILE, one per line;
//! `AIRLOCK_KILL_AT=NAME` makes the process SIGKILL itself at the first point called NAME, and
//! `AIRLOCK_KILL_AT=NAME#N` at the N-th (from 1). They exist for the tests that prove an
//! interrupted update leaves a consistent device; unset, a point costs an environment lookup.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

static SEEN: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

pub fn point(name: &str) {
    if let Some(log) = std::env::var_os("AIRLOCK_FAULT_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        let _ = writeln!(f, "{name}");
    }
    let Ok(at) = std::env::var("AIRLOCK_KILL_AT") else {
        return;
    };
    let (wanted, nth) = match at.split_once('#') {
        Some((n, k)) => (n.to_string(), k.parse().unwrap_or(1)),
        None => (at, 1),
    };
    if wanted != name {
        return;
    }
    let count = {
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        let c = seen
            .get_or_insert_with(HashMap::new)
            .entry(name.to_string())
            .or_insert(0);
        *c += 1;
        *c
    };
    if count == nth {
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
