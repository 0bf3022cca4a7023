//! Building, reading and refusing bundles, including every kind of bad input.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use super::*;
use crate::trust::{TrustPolicy, TrustedKey};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn policy(keys: &[&SigningKey], threshold: usize) -> TrustPolicy {
    let keys = keys
        .iter()
        .map(|k| TrustedKey {
            id: crate::keys::key_id(&k.verifying_key()),
            key: k.verifying_key(),
            source: PathBuf::new(),
        })
        .collect();
    TrustPolicy::new(keys, threshold).unwrap()
}

use airlock_testkit::image_bytes as image;

struct Fixture {
    dir: tempfile::TempDir,
    payloads: Vec<(String, Vec<u8>)>,
}

impl Fixture {
    fn new(payloads: &[(&str, usize)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let payloads = payloads
            .iter()
            .enumerate()
            .map(|(i, (name, len))| (name.to_string(), image(*len, i as u64 + 7)))
            .collect();
        Self { dir, payloads }
    }

    fn spec(&self) -> BundleSpec {
        let mut toml = String::from(
            "name = \"acme-os\"\nversion = \"1.2.0\"\ncompatible = [\"acme-gateway-v2\"]\n",
        );
        for (name, data) in &self.payloads {
            std::fs::write(self.dir.path().join(name), data).unwrap();
            toml +=
                &format!("[[payload]]\nname = \"{name}\"\nfile = \"{name}\"\nslot = \"{name}\"\n");
        }
        let path = self.dir.path().join("bundle.toml");
        std::fs::write(&path, toml).unwrap();
        BundleSpec::load(&path).unwrap()
    }

    fn build(&self, keys: &[SigningKey], options: &CreateOptions) -> (PathBuf, Manifest) {
        self.build_spec(&self.spec(), keys, options)
    }

    fn build_spec(
        &self,
        spec: &BundleSpec,
        keys: &[SigningKey],
        options: &CreateOptions,
    ) -> (PathBuf, Manifest) {
        let out = self.dir.path().join("update.airlock");
        let manifest = create_bundle(spec, keys, &out, options, &mut |_| {}).unwrap();
        (out, manifest)
    }
}

fn payload_bytes(
    bundle: &[u8],
    trust: &TrustPolicy,
) -> Result<Vec<(String, Vec<u8>)>, BundleError> {
    let mut reader = BundleReader::open(Cursor::new(bundle), trust)?;
    let mut out = Vec::new();
    while let Some(n) = reader.next_payload()? {
        let mut data = Vec::new();
        while let Some(c) = reader.next_chunk()? {
            assert_eq!(c.offset, data.len() as u64);
            data.extend_from_slice(c.data);
        }
        out.push((reader.manifest().payloads[n].name.clone(), data));
    }
    reader.finish()?;
    Ok(out)
}

#[test]
fn builds_reads_back_and_lists_with_tar() {
    let fx = Fixture::new(&[("rootfs", 3_000_000), ("app", 200_000)]);
    let (path, manifest) = fx.build(&[key(1)], &CreateOptions::default());
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        payload_bytes(&bytes, &policy(&[&key(1)], 1)).unwrap(),
        fx.payloads
    );
    for (info, (_, data)) in manifest.payloads.iter().zip(&fx.payloads) {
        assert_eq!(info.sha256.0, <[u8; 32]>::from(Sha256::digest(data)));
        assert!(info.stored_size < info.size, "mixed content must compress");
        assert!(info.chunks > 1);
    }
    let names: Vec<String> = tar::Archive::new(Cursor::new(&bytes))
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "manifest.json",
            "manifest.sig",
            "payloads/rootfs.idx",
            "payloads/app.idx",
            "payloads/rootfs",
            "payloads/app"
        ]
    );
}

#[test]
fn stored_bundles_and_empty_payloads_work() {
    let fx = Fixture::new(&[("rootfs", 500_000), ("empty", 0)]);
    let options = CreateOptions {
        no_compress: true,
        ..Default::default()
    };
    let (path, manifest) = fx.build(&[key(1)], &options);
    assert_eq!(manifest.payloads[0].stored_size, manifest.payloads[0].size);
    assert_eq!(manifest.payloads[0].compression, Compression::None);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        payload_bytes(&bytes, &policy(&[&key(1)], 1)).unwrap(),
        fx.payloads
    );
}

#[test]
fn same_content_gives_same_chunks_so_versions_share_them() {
    let fx = Fixture::new(&[("rootfs", 2_000_000)]);
    let (path, _) = fx.build(&[key(1)], &CreateOptions::default());
    let mut old = BundleReader::open(open_file(&path).unwrap(), &policy(&[&key(1)], 1)).unwrap();
    let old_chunks: Vec<_> = old.read_indexes().unwrap()[0]
        .entries
        .iter()
        .map(|e| e.sha256)
        .collect();
    // Insert bytes near the start: content-defined chunking re-synchronises after the edit.
    let mut changed = fx.payloads[0].1.clone();
    changed.splice(1000..1000, b"inserted bytes".iter().copied());
    std::fs::write(fx.dir.path().join("rootfs"), &changed).unwrap();
    let spec = BundleSpec {
        ..fx.spec_without_writing()
    };
    let out = fx.dir.path().join("v2.airlock");
    create_bundle(
        &spec,
        &[key(1)],
        &out,
        &CreateOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let mut new = BundleReader::open(open_file(&out).unwrap(), &policy(&[&key(1)], 1)).unwrap();
    let new_chunks = &new.read_indexes().unwrap()[0].entries;
    let shared = new_chunks
        .iter()
        .filter(|e| old_chunks.contains(&e.sha256))
        .count();
    assert!(
        shared + 2 >= new_chunks.len(),
        "only {shared} of {} chunks shared",
        new_chunks.len()
    );
}

impl Fixture {
    fn spec_without_writing(&self) -> BundleSpec {
        BundleSpec::load(&self.dir.path().join("bundle.toml")).unwrap()
    }
}

#[test]
fn signatures_threshold_and_adding_a_signature_later() {
    let fx = Fixture::new(&[("rootfs", 300_000)]);
    let (path, _) = fx.build(&[key(1)], &CreateOptions::default());
    let before = std::fs::read(&path).unwrap();

    // Unknown key.
    let e = verify(Cursor::new(&before), &policy(&[&key(2)], 1), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("not a trusted key"), "{e}");
    // Threshold 2 with one signature.
    let e = verify(
        Cursor::new(&before),
        &policy(&[&key(1), &key(2)], 2),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("1 valid signature(s) from trusted keys but 2 are required"),
        "{e}"
    );

    sign_bundle(&path, &key(2)).unwrap();
    let after = std::fs::read(&path).unwrap();
    let report = verify(
        Cursor::new(&after),
        &policy(&[&key(1), &key(2)], 2),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.signers.len(), 2);
    // Only manifest.sig changed: everything from the first plugin/index entry on is identical.
    let tail = |b: &[u8]| {
        let r = BundleReader::open_unverified(Cursor::new(b)).unwrap();
        b[r.position() as usize..].to_vec()
    };
    assert_eq!(tail(&before), tail(&after));
    // Signing twice with the same key keeps one signature per key.
    sign_bundle(&path, &key(2)).unwrap();
    let again = std::fs::read(&path).unwrap();
    assert_eq!(
        BundleReader::open_unverified(Cursor::new(&again))
            .unwrap()
            .signatures()
            .signatures
            .len(),
        2
    );
}

#[test]
fn extract_writes_the_verified_payload() {
    let fx = Fixture::new(&[("rootfs", 700_000), ("app", 90_000)]);
    let (path, _) = fx.build(&[key(1)], &CreateOptions::default());
    let out = fx.dir.path().join("app.out");
    extract(
        open_file(&path).unwrap(),
        Some(&policy(&[&key(1)], 1)),
        "app",
        &out,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), fx.payloads[1].1);
    let e = extract(
        open_file(&path).unwrap(),
        Some(&policy(&[&key(1)], 1)),
        "nope",
        &out,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("rootfs, app"), "{e}");
}

// ---- bad input ---------------------------------------------------------------------------------

/// The byte ranges of each entry's header and data in a bundle.
fn regions(bundle: &[u8]) -> Vec<(String, std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(Cursor::new(bundle));
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let start = e.raw_header_position() as usize;
        let data = e.raw_file_position() as usize;
        let name = e.path().unwrap().display().to_string();
        out.push((name, start..start + 512, data..data + e.size() as usize));
    }
    out
}

fn assert_refused(bundle: &[u8], trust: &TrustPolicy, what: &str) -> String {
    match payload_bytes(bundle, trust) {
        Ok(_) => panic!("{what}: a damaged bundle was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let fx = Fixture::new(&[("rootfs", 400_000), ("app", 50_000)]);
    let (path, _) = fx.build(&[key(1)], &CreateOptions::default());
    let good = std::fs::read(&path).unwrap();
    let trust = policy(&[&key(1)], 1);
    for (name, header, data) in regions(&good) {
        // A few places in each header (name, size, checksum) and in each data region.
        let spots = [
            header.start,
            header.start + 100,
            header.start + 124,
            header.start + 150,
            data.start,
            data.start + data.len() / 2,
            data.end - 1,
            // the zero padding after the data, when there is any
            data.end.div_ceil(512) * 512 - 1,
        ];
        for spot in spots {
            let mut bad = good.clone();
            bad[spot] ^= 0x20;
            let e = assert_refused(&bad, &trust, &format!("{name} byte {spot}"));
            assert!(!e.is_empty());
        }
    }
    // The end-of-archive marker is checked too.
    for spot in [good.len() - 1024, good.len() - 1] {
        let mut bad = good.clone();
        bad[spot] ^= 0x20;
        assert_refused(&bad, &trust, &format!("end marker byte {spot}"));
    }
}

#[test]
fn every_truncation_is_refused_with_a_precise_reason() {
    let fx = Fixture::new(&[("rootfs", 200_000)]);
    let (path, _) = fx.build(&[key(1)], &CreateOptions::default());
    let good = std::fs::read(&path).unwrap();
    let trust = policy(&[&key(1)], 1);
    // The end-of-archive blocks are required too: a bundle cut just before them is incomplete.
    let step = good.len() / 97;
    for cut in (0..good.len() - 1024).step_by(step).chain([
        good.len() - 1025,
        good.len() - 512,
        good.len() - 1,
        511,
        512,
        513,
    ]) {
        let e = assert_refused(&good[..cut], &trust, &format!("cut at {cut}"));
        if cut == 0 {
            assert!(e.contains("empty"), "{e}");
        } else {
            assert!(
                e.contains("ends early") || e.contains("end of the archive"),
                "cut at {cut}: {e}"
            );
        }
    }
}

/// Re-assembles a bundle from entries, for crafting structurally bad ones.
fn assemble(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        // set_path refuses `..` and absolute paths; a hostile bundle would not.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, &data[..]).unwrap();
    }
    tar.into_inner().unwrap()
}

fn entries_of(bundle: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(Cursor::new(bundle));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

fn resigned(manifest: &[u8], signer: &SigningKey) -> Vec<u8> {
    let mut sigs = SignatureFile::default();
    sigs.add(manifest, signer);
    sigs.to_bytes()
}

#[test]
fn missing_duplicated_reordered_and_escaping_entries_are_refused() {
    let fx = Fixture::new(&[("rootfs", 100_000)]);
    let (path, _) = fx.build(&[key(1)], &CreateOptions::default());
    let good = entries_of(&std::fs::read(&path).unwrap());
    let trust = policy(&[&key(1)], 1);
    let named = |v: &[(String, Vec<u8>)]| {
        v.iter()
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect::<Vec<_>>()
    };
    let build = |v: Vec<(String, Vec<u8>)>| {
        let refs: Vec<(&str, Vec<u8>)> = v.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
        assemble(&refs)
    };
    assert!(
        payload_bytes(&build(named(&good)), &trust).is_ok(),
        "the reassembled original must pass"
    );

    for missing in 0..good.len() {
        let mut v = named(&good);
        v.remove(missing);
        let e = assert_refused(&build(v), &trust, &format!("without {}", good[missing].0));
        assert!(
            e.contains("expected") || e.contains("empty") || e.contains("not valid"),
            "{e}"
        );
    }
    for dup in 0..good.len() {
        let mut v = named(&good);
        v.insert(dup, good[dup].clone());
        assert_refused(&build(v), &trust, &format!("duplicated {}", good[dup].0));
    }
    let mut v = named(&good);
    v.swap(2, 3);
    let e = assert_refused(&build(v), &trust, "index after payload");
    assert!(
        e.contains("expected \"payloads/rootfs.idx\"")
            || e.contains("expected payloads/rootfs.idx"),
        "{e}"
    );

    for hostile in [
        "../payloads/rootfs",
        "/payloads/rootfs",
        "payloads/../rootfs",
    ] {
        let mut v = named(&good);
        v[3].0 = hostile.into();
        let e = assert_refused(&build(v), &trust, hostile);
        assert!(e.contains(hostile), "{e}");
    }
}

#[test]
fn absurd_sizes_and_counts_are_refused_before_allocation() {
    let fx = Fixture::new(&[("rootfs", 100_000)]);
    let (path, manifest) = fx.build(&[key(1)], &CreateOptions::default());
    let good = entries_of(&std::fs::read(&path).unwrap());
    let trust = policy(&[&key(1)], 1);
    let with = |manifest: &Manifest, idx: Vec<u8>| {
        let m = manifest.to_bytes();
        let sig = resigned(&m, &key(1));
        assemble(&[
            ("manifest.json", m),
            ("manifest.sig", sig),
            ("payloads/rootfs.idx", idx),
            ("payloads/rootfs", good[3].1.clone()),
        ])
    };

    // An index claiming 2^40 chunks, signed and consistent with the manifest's index hash.
    let mut idx = good[2].1.clone();
    idx[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let mut m = manifest.clone();
    m.payloads[0].index_sha256 = Sha256Hex(Sha256::digest(&idx).into());
    let e = assert_refused(&with(&m, idx), &trust, "2^40 chunks");
    assert!(e.contains("chunks"), "{e}");

    // The manifest itself claiming 2^40 chunks.
    let mut m = manifest.clone();
    m.payloads[0].chunks = 1 << 40;
    let e = assert_refused(&with(&m, good[2].1.clone()), &trust, "manifest 2^40 chunks");
    assert!(e.contains("claims"), "{e}");

    // A chunk claiming 4 GiB.
    let mut idx = good[2].1.clone();
    idx[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut m = manifest.clone();
    m.payloads[0].index_sha256 = Sha256Hex(Sha256::digest(&idx).into());
    let e = assert_refused(&with(&m, idx), &trust, "4 GiB chunk");
    assert!(e.contains("4294967295 bytes"), "{e}");

    // A tar header claiming a huge manifest.
    let mut bundle = std::fs::read(&path).unwrap();
    let mut h = tar::Header::from_byte_slice(&bundle[..512]).clone();
    h.set_size(1 << 40);
    h.set_cksum();
    bundle[..512].copy_from_slice(h.as_bytes());
    let e = assert_refused(&bundle, &trust, "huge manifest entry");
    assert!(e.contains("more than the limit"), "{e}");
}

#[test]
fn bad_manifests_are_refused_even_when_signed() {
    let fx = Fixture::new(&[("rootfs", 50_000)]);
    let (path, manifest) = fx.build(&[key(1)], &CreateOptions::default());
    let good = entries_of(&std::fs::read(&path).unwrap());
    let trust = policy(&[&key(1)], 1);
    let with_manifest = |m: Vec<u8>| {
        let sig = resigned(&m, &key(1));
        assemble(&[
            ("manifest.json", m),
            ("manifest.sig", sig),
            ("payloads/rootfs.idx", good[2].1.clone()),
            ("payloads/rootfs", good[3].1.clone()),
        ])
    };
    let e = assert_refused(
        &with_manifest(b"{\"format\": 1, \"name\": ".to_vec()),
        &trust,
        "bad json",
    );
    assert!(e.contains("manifest.json is not valid"), "{e}");
    let mut v: serde_json::Value = serde_json::from_slice(&manifest.to_bytes()).unwrap();
    v.as_object_mut().unwrap().remove("version");
    let e = assert_refused(
        &with_manifest(serde_json::to_vec(&v).unwrap()),
        &trust,
        "no version",
    );
    assert!(e.contains("version"), "{e}");
    v["version"] = "1.0.0".into();
    v["format"] = 9.into();
    let e = assert_refused(
        &with_manifest(serde_json::to_vec(&v).unwrap()),
        &trust,
        "future format",
    );
    assert!(e.contains("format version 9"), "{e}");
    let e = assert_refused(&[], &trust, "empty");
    assert!(e.contains("empty"), "{e}");
    let e = assert_refused(
        &assemble(&[
            ("manifest.json", manifest.to_bytes()),
            ("manifest.sig", b"[]".to_vec()),
        ]),
        &trust,
        "bad sig file",
    );
    assert!(e.contains("manifest.sig is not valid"), "{e}");
}

#[test]
fn spec_errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.toml");
    std::fs::write(
        &path,
        "name = \"x\"\nversion = \"1.0.0\"\ncompatible = [\"t\"]\nversoin = 2\n",
    )
    .unwrap();
    let e = BundleSpec::load(&path).unwrap_err().to_string();
    assert!(e.contains("bundle.toml") && e.contains("versoin"), "{e}");
    std::fs::write(
        &path,
        "name = \"x\"\nversion = \"1.0\"\ncompatible = [\"t\"]\n",
    )
    .unwrap();
    let e = BundleSpec::load(&path).unwrap_err().to_string();
    assert!(e.contains("version"), "{e}");
    std::fs::write(&path, "name = \"x\"\nversion = \"1.0.0\"\ncompatible = [\"t\"]\n[[payload]]\nname = \"p\"\nfile = \"p\"\n").unwrap();
    let e = BundleSpec::load(&path).unwrap_err().to_string();
    assert!(e.contains("exactly one of `slot`"), "{e}");
    let _ = Path::new("");
}

#[test]
fn layout_from_the_manifest_matches_where_the_reader_finds_each_entry() {
    let fx = Fixture::new(&[("rootfs", 1_500_000), ("app", 70_000)]);
    let mut spec = fx.spec();
    // Bundled plugins and a precompiled form of odd sizes, so that their padding counts.
    spec.plugins.push(plugin_spec(
        &fx,
        "health",
        1001,
        &[("x86_64-unknown-linux-gnu", 3001)],
    ));
    spec.plugins.push(plugin_spec(&fx, "other", 513, &[]));
    let out = fx.dir.path().join("layout.airlock");
    create_bundle(
        &spec,
        &[key(1)],
        &out,
        &CreateOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();

    let mut reader = BundleReader::open(Cursor::new(&bytes[..]), &policy(&[&key(1)], 1)).unwrap();
    let layout = reader.layout();
    reader.read_indexes().unwrap();
    assert_eq!(reader.position(), layout.head_end);
    while let Some(n) = reader.next_payload().unwrap() {
        let span = layout.payloads[n];
        assert_eq!(reader.position(), span.data, "payload {n}");
        reader.skip_chunks(u64::MAX).unwrap();
        assert_eq!(reader.position(), span.padded_end, "payload {n}");
    }
    reader.finish().unwrap();
    assert_eq!(layout.end, bytes.len() as u64);
}

/// A bundled plugin of `size` bytes with precompiled forms `(target, size)`, as files.
fn plugin_spec(fx: &Fixture, name: &str, size: usize, forms: &[(&str, usize)]) -> PluginSpec {
    let file = fx.dir.path().join(format!("{name}.wasm"));
    std::fs::write(&file, vec![7u8; size]).unwrap();
    let precompiled = forms
        .iter()
        .enumerate()
        .map(|(i, (target, size))| {
            let file = fx.dir.path().join(format!("{name}.{target}.cwasm"));
            std::fs::write(&file, vec![i as u8 + 1; *size]).unwrap();
            PrecompiledFile {
                target: target.to_string(),
                file,
            }
        })
        .collect();
    PluginSpec {
        name: name.into(),
        file,
        world: "check".into(),
        precompile: forms.iter().map(|(t, _)| t.to_string()).collect(),
        precompiled,
    }
}

#[test]
fn precompiled_forms_travel_with_their_plugin_and_are_checked() {
    let fx = Fixture::new(&[("rootfs", 100_000)]);
    let mut spec = fx.spec();
    let targets = [("x86_64-unknown-linux-gnu", 70_000), ("pulley32", 1234)];
    spec.plugins.push(plugin_spec(&fx, "health", 999, &targets));
    spec.plugins.push(plugin_spec(&fx, "plain", 10, &[]));
    let (out, manifest) = fx.build_spec(&spec, &[key(1)], &CreateOptions::default());
    assert_eq!(manifest.requires, vec![PRECOMPILED_PLUGINS.to_string()]);
    let forms = &manifest.plugins[0].precompiled;
    assert_eq!(forms.len(), 2);
    assert_eq!(forms[1].target, "pulley32");
    assert_eq!(forms[1].size, 1234);
    let bytes = std::fs::read(&out).unwrap();
    let names: Vec<String> = entries_of(&bytes).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names[2..6],
        [
            "plugins/health.wasm",
            "plugins/health.x86_64-unknown-linux-gnu.cwasm",
            "plugins/health.pulley32.cwasm",
            "plugins/plain.wasm"
        ]
    );

    // The device keeps the form for its CPU and gets the others checked and dropped.
    let trust = policy(&[&key(1)], 1);
    let mut reader = BundleReader::open(Cursor::new(&bytes[..]), &trust).unwrap();
    let (info, wasm) = reader.next_plugin().unwrap().unwrap();
    assert_eq!((info.name.as_str(), wasm.len()), ("health", 999));
    let mut kept = Vec::new();
    let form = reader
        .read_precompiled("pulley32", &mut kept)
        .unwrap()
        .unwrap();
    assert_eq!(form.target, "pulley32");
    assert_eq!(kept, vec![2u8; 1234]);
    let (info, _) = reader.next_plugin().unwrap().unwrap();
    assert_eq!(info.name, "plain");
    assert!(
        reader
            .read_precompiled("pulley32", &mut Vec::new())
            .unwrap()
            .is_none()
    );
    assert!(reader.next_plugin().unwrap().is_none());
    check::verify(Cursor::new(&bytes[..]), &trust, &mut |_| {}).unwrap();

    // A changed byte in a form no device here keeps is still found.
    let (name, _, range) = regions(&bytes)
        .into_iter()
        .find(|(n, ..)| n.ends_with("x86_64-unknown-linux-gnu.cwasm"))
        .unwrap();
    let mut bad = bytes.clone();
    bad[range.start + 5000] ^= 1;
    let e = check::verify(Cursor::new(&bad[..]), &trust, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name), "{e}");
    let mut reader = BundleReader::open(Cursor::new(&bad[..]), &trust).unwrap();
    reader.next_plugin().unwrap();
    let e = reader
        .read_precompiled("pulley32", &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name), "{e}");
}

#[test]
fn precompiled_forms_must_be_announced_and_unique() {
    let fx = Fixture::new(&[("rootfs", 10_000)]);
    let mut spec = fx.spec();
    spec.plugins
        .push(plugin_spec(&fx, "health", 99, &[("pulley32", 10)]));
    let (_, manifest) = fx.build_spec(&spec, &[key(1)], &CreateOptions::default());

    let mut unannounced = manifest.clone();
    unannounced.requires.clear();
    let e = Manifest::parse(&unannounced.to_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("precompiled-plugins"), "{e}");

    let mut twice = manifest.clone();
    let form = twice.plugins[0].precompiled[0].clone();
    twice.plugins[0].precompiled.push(form);
    let e = Manifest::parse(&twice.to_bytes()).unwrap_err().to_string();
    assert!(e.contains("two precompiled forms for pulley32"), "{e}");

    let mut escaping = manifest;
    escaping.plugins[0].precompiled[0].target = "../../etc".into();
    let e = Manifest::parse(&escaping.to_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not allowed"), "{e}");

    // Forms asked for but never made: the writer says who makes them.
    let mut spec = fx.spec();
    let mut plugin = plugin_spec(&fx, "health", 99, &[("pulley32", 10)]);
    plugin.precompiled.clear();
    spec.plugins.push(plugin);
    let e = create_bundle(
        &spec,
        &[key(1)],
        &fx.dir.path().join("x.airlock"),
        &CreateOptions::default(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("asks for precompiled forms (pulley32)"), "{e}");
}
