//! A mutation corpus of bundles at the end-to-end level: one small two-payload bundle (a rootfs
//! image and an `app` archive for a directory slot), then a flipped byte in every region of it
//! (each tar header's fields, the manifest, the signature file, each chunk index, chunk data at
//! several places, the tar padding and end-of-archive blocks) and truncation at many offsets.
//! Each mutant is installed on a fresh copy of one device.
//!
//! - A mutation of the head (everything before the first payload's data) is refused before
//!   anything is written: exit 1, slot b and both app sides byte-identical, no update, nothing
//!   recorded.
//! - A mutation of the payload data is refused at the bad chunk: exit 1, the active slot and
//!   app side byte-identical, no trial armed, and `status` says failed (or, for a cut file,
//!   that the install is interrupted and resumable). Chunks before the bad one may be in slot
//!   b; nothing unverified is.
//! - Bytes that no signature covers (tar padding, the end-of-archive blocks) must be zero and
//!   are checked: every mutant is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::support::*;

const BLOCK: usize = 512;

/// One tar entry of the bundle: where its header and data are.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    header: usize,
    data: usize,
    size: usize,
}

/// Walks the tar's entries (plain ustar/gnu headers, as `bundle create` writes them); returns
/// them and where the end-of-archive blocks start.
fn entries(bytes: &[u8]) -> (Vec<Entry>, usize) {
    let mut out = Vec::new();
    let mut off = 0;
    while off + BLOCK <= bytes.len() && bytes[off..off + BLOCK].iter().any(|&b| b != 0) {
        let h = &bytes[off..off + BLOCK];
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8(h[..name_end].to_vec()).unwrap();
        let size_text = std::str::from_utf8(&h[124..136]).unwrap();
        let size = usize::from_str_radix(size_text.trim_matches(|c| c == '\0' || c == ' '), 8)
            .unwrap_or_else(|_| panic!("size field {size_text:?} of {name}"));
        out.push(Entry {
            name,
            header: off,
            data: off + BLOCK,
            size,
        });
        off += BLOCK + size.div_ceil(BLOCK) * BLOCK;
    }
    (out, off)
}

/// Evenly spread positions in `start..start + len` (the first and last included).
fn spread(start: usize, len: usize, n: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let n = n.min(len);
    let mut v: Vec<usize> = (0..n)
        .map(|i| start + if n == 1 { 0 } else { i * (len - 1) / (n - 1) })
        .collect();
    v.dedup();
    v
}

/// A named mutant of the bundle.
struct Mutant {
    region: String,
    bytes: Vec<u8>,
    /// The mutation is inside the head: nothing may be written.
    in_head: bool,
}

struct Fixture {
    ws: Workspace,
    template: Device,
    factory: Vec<u8>,
    image: Vec<u8>,
    bundle: Vec<u8>,
}

fn fixture() -> Fixture {
    let ws = Workspace::new();
    let template = ws.device("template", "1MiB");
    // Something on the active app side, to see that it stays.
    std::fs::write(template.dir.join("app.a/factory.txt"), b"factory app\n").unwrap();
    let factory = template.slot("a");
    let image = image_bytes(384 << 10, 11);
    ws.file("v1.img", &image);
    let app = [("bin/app", "app v1\n"), ("etc/app.conf", "mode = 1\n")];
    ws.file("app.tar", &tar_archive(&app));
    let path = ws.bundle(
        "v1.airlock",
        "1.0.0",
        "test-device",
        &[("rootfs", "v1.img", "rootfs"), ("app", "app.tar", "app")],
        "",
    );
    let bundle = std::fs::read(path).unwrap();
    Fixture {
        ws,
        template,
        factory,
        image,
        bundle,
    }
}

/// Every mutant: flipped bytes in every region, then truncations.
fn corpus(bundle: &[u8]) -> (Vec<Mutant>, usize) {
    let (entries, trailer) = entries(bundle);
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "manifest.json",
            "manifest.sig",
            "payloads/rootfs.idx",
            "payloads/app.idx",
            "payloads/rootfs",
            "payloads/app"
        ],
        "the bundle layout changed; update this corpus"
    );
    // The head ends where the first payload's chunks start.
    let head_end = entries[4].data;
    let mut out = Vec::new();
    // The flag marks bytes no signature covers (padding, end marker); they are refused all the same.
    let mut flip = |region: String, at: usize, _unsigned: bool| {
        let mut bytes = bundle.to_vec();
        bytes[at] ^= 0x5a;
        out.push(Mutant {
            region,
            bytes,
            in_head: at < head_end,
        });
    };
    for e in &entries {
        // name, mode, size, mtime, checksum, type flag, magic, owner name
        for (field, at) in [
            ("name", 0),
            ("mode", 103),
            ("size", 130),
            ("mtime", 140),
            ("checksum", 150),
            ("typeflag", 156),
            ("magic", 258),
            ("uname", 265),
        ] {
            flip(format!("{} header ({field})", e.name), e.header + at, false);
        }
        let places = match e.name.as_str() {
            "payloads/rootfs" => 10,
            "payloads/app" => 4,
            _ => 6,
        };
        let what = if e.name.starts_with("payloads/") && !e.name.ends_with(".idx") {
            "chunk data"
        } else {
            "data"
        };
        for at in spread(e.data, e.size, places) {
            flip(format!("{} {what}", e.name), at, false);
        }
        let padding = e.size.div_ceil(BLOCK) * BLOCK - e.size;
        for at in spread(e.data + e.size, padding, 2) {
            flip(format!("{} padding", e.name), at, true);
        }
    }
    for at in spread(trailer, bundle.len() - trailer, 3) {
        flip("end-of-archive blocks".into(), at, true);
    }
    let flips = out.len();

    // Truncations: every entry boundary and its neighbours, and evenly spread cuts.
    let mut cuts: Vec<usize> = vec![0, 1, BLOCK - 1, head_end];
    for e in &entries {
        cuts.extend([
            e.header,
            e.header + 1,
            e.data,
            e.data + e.size / 2,
            e.data + e.size,
        ]);
    }
    cuts.extend(spread(0, bundle.len(), 24));
    cuts.extend([trailer, bundle.len() - BLOCK, bundle.len() - 1]);
    cuts.sort_unstable();
    cuts.dedup();
    cuts.retain(|&c| c < bundle.len());
    for cut in cuts {
        let region = if cut < head_end {
            "cut in the head"
        } else if cut < trailer {
            "cut in the payload data"
        } else {
            "cut in the end-of-archive blocks"
        };
        out.push(Mutant {
            region: region.into(),
            bytes: bundle[..cut].to_vec(),
            in_head: cut < head_end,
        });
    }
    (out, flips)
}

fn dir_snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(dir_snapshot(&p));
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

/// Installs one mutant on a fresh copy of the template; returns how it ended.
fn case(fx: &Fixture, i: usize, m: &Mutant) -> &'static str {
    let what = format!("mutant {i} ({})", m.region);
    let dev = fx.template.copy_to(&fx.ws.path(&format!("dev{i}")));
    let bundle = fx.ws.file(&format!("m{i}.airlock"), &m.bytes);
    let slot_b = dev.slot("b");
    let app_a = dir_snapshot(&dev.dir.join("app.a"));
    let app_b = dir_snapshot(&dev.dir.join("app.b"));
    let out = dev.output(&["install", bundle.to_str().unwrap()]);
    let text = assert_contained(&out, &what);
    let st = dev.truthful_status();
    let app_link = std::fs::read_link(dev.dir.join("app")).unwrap();
    let ended = if out.status.success() {
        panic!("{what}: a mutated bundle was installed:\n{text}\n{st}");
    } else {
        expect_clean_failure(&out, &what);
        let st = dev.assert_active_untouched("a", &fx.factory);
        assert_eq!(
            app_link,
            Path::new("app.a"),
            "{what}: the app side switched"
        );
        assert!(
            dir_snapshot(&dev.dir.join("app.a")) == app_a,
            "{what}: the active app side changed"
        );
        if m.in_head {
            assert!(dev.slot("b") == slot_b, "{what}: slot b was written");
            assert!(
                dir_snapshot(&dev.dir.join("app.b")) == app_b,
                "{what}: the inactive app side was written"
            );
            if st["update"]["phase"] == "fetching" {
                // A cut inside the chunk indexes reads as an interrupted download, after the
                // update was journaled: resumable, and still nothing written.
                assert!(text.contains("truncated"), "{what}: {text}");
                "interrupted before writing (resumable)"
            } else if st["update"].is_null() && st["last_result"].is_null() {
                "refused before writing"
            } else {
                // The chunk indexes are read once the update is journaled: the refusal is
                // then recorded as a failed update (still before any slot write).
                assert!(st["update"].is_null(), "{what}: {st}");
                assert_eq!(st["last_result"]["result"], "failed", "{what}: {st}");
                "refused before writing (recorded as failed)"
            }
        } else if st["update"]["phase"] == "fetching" {
            // A cut file reads as an interrupted download: resumable, not failed.
            assert!(text.contains("truncated"), "{what}: {text}");
            "interrupted (resumable)"
        } else {
            assert!(st["update"].is_null(), "{what}: {st}");
            assert_eq!(st["last_result"]["result"], "failed", "{what}: {st}");
            if text.contains("payload bytes ") && text.contains("rootfs") {
                let from = bad_chunk_start(&text);
                assert_nothing_unverified(&dev.slot("b"), &slot_b, &fx.image, from);
            }
            "failed at the bad chunk"
        }
    };
    // Each case's device is dropped right away: the corpus would fill the disk otherwise.
    let _ = std::fs::remove_dir_all(&dev.dir);
    let _ = std::fs::remove_file(&bundle);
    ended
}

#[test]
fn mutated_and_truncated_bundles_are_refused() {
    let fx = fixture();
    // The unmutated bundle installs: the corpus tests refusals, not a broken fixture.
    {
        let dev = fx.template.copy_to(&fx.ws.path("good"));
        let good = fx.ws.file("good.airlock", &fx.bundle);
        let report: Value = dev.install_json(good.to_str().unwrap());
        assert_eq!(report["version"], "1.0.0");
    }
    let (mutants, flips) = corpus(&fx.bundle);
    let ends = Mutex::new(BTreeMap::<(&str, &str), usize>::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Two workers: the machine running the suite has few cores and other tests besides.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(m) = mutants.get(i) else { break };
                    let ended = case(&fx, i, m);
                    let kind = if i < flips { "flip" } else { "cut" };
                    *ends.lock().unwrap().entry((kind, ended)).or_default() += 1;
                }
            });
        }
    });
    let ends = ends.into_inner().unwrap();
    let summary = |kind: &str| {
        ends.iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, e), n)| format!("{n} {e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    reliability_report(&format!(
        "bundle mutations: {flips} flipped bytes ({}); {} truncations ({}); active slot untouched in all",
        summary("flip"),
        mutants.len() - flips,
        summary("cut"),
    ));
}
