//! The device configuration (`airlock.toml`) from arbitrary UTF-8: `Config::parse` must refuse or
//! accept, never panic.
#![no_main]

use std::path::Path;

use airlock::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, Path::new("/fuzz/airlock.toml"));
    }
});
