//! A GRUB environment block from untrusted bytes (the file lives on a partition anything at boot
//! may write). Parsing must never panic, and a block that parses renders back byte for byte:
//! the backend rewrites it after every edit, and must not disturb what it does not edit.
#![no_main]

use airlock::boot::fuzz::parse_grub_env;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rendered) = parse_grub_env(data) {
        assert_eq!(rendered, data, "a parsed block renders to the same bytes");
    }
});
