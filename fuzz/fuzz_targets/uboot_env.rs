//! The U-Boot environment from untrusted bytes, and its `fw_env.config`. The first byte chooses:
//! bit 0 set: the rest is fw_env.config text; else the rest is an environment image, two copies
//! back to back if bit 1 is set, with the CRCs made right if bit 2 is set (so that mutated
//! entries reach the entry parser instead of stopping at the CRC check).
#![no_main]

use airlock::boot::fuzz::{parse_fw_env_config, parse_uboot_env};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 != 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = parse_fw_env_config(text);
        }
        return;
    }
    let redundant = mode & 2 != 0;
    let mut image = rest.to_vec();
    if mode & 4 != 0 {
        let (copies, header) = if redundant { (2, 5) } else { (1, 4) };
        let len = image.len() / copies;
        for copy in image.chunks_exact_mut(len.max(header)).take(copies) {
            let crc = crc32fast::hash(&copy[header..]);
            copy[..4].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let _ = parse_uboot_env(&image, redundant);
});
