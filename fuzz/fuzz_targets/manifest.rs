//! `manifest.json` from untrusted bytes: `Manifest::parse` must refuse or accept, never panic; an
//! accepted manifest must survive its own serialisation.
#![no_main]

use airlock::bundle::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::parse(data) {
        let again = Manifest::parse(&manifest.to_bytes()).expect("a parsed manifest re-parses");
        assert_eq!(again, manifest);
    }
});
