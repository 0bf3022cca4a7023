//! A whole bundle from untrusted bytes, read the way `airlock bundle verify` reads it (without
//! signatures, which the fuzzer cannot forge): manifest, signature file, every plugin, every index,
//! every chunk of every payload, the end of the archive. It must return an error, never panic,
//! and allocate in proportion to the input, whatever sizes the headers claim (smoke.sh runs it
//! with -malloc_limit_mb).
#![no_main]

use std::io::Cursor;

use airlock::bundle::{BundleError, BundleReader};
use libfuzzer_sys::fuzz_target;

fn read_all(data: &[u8]) -> Result<(), BundleError> {
    let mut reader = BundleReader::open_unverified(Cursor::new(data))?;
    // Where a delta install expects every entry, from the manifest alone: wherever the reader
    // gets without an error must be exactly there.
    let layout = reader.layout();
    while reader.next_plugin()?.is_some() {}
    reader.read_indexes()?;
    assert_eq!(reader.position(), layout.head_end);
    while let Some(n) = reader.next_payload()? {
        assert_eq!(reader.position(), layout.payloads[n].data);
        while let Some(chunk) = reader.next_chunk()? {
            assert!(!chunk.data.is_empty());
        }
    }
    reader.finish()?;
    assert_eq!(reader.position(), layout.end);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = read_all(data);
});
