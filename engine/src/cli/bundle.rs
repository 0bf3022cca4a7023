//! `airlock bundle …`

use std::path::{Path, PathBuf};
use std::time::Instant;

use airlock::bundle::{
    self, BundleReader, BundleSpec, CreateOptions, Manifest, PrecompiledFile, Target,
};
use airlock::keys;
use airlock::plugin::{PluginHost, precompiled};
use airlock::trust::TrustPolicy;
use anyhow::{Context, Result};
use clap::Subcommand;
use indicatif::HumanBytes;
use serde_json::json;

use super::progress;

#[derive(Subcommand)]
pub enum BundleCommand {
    /// Build a signed bundle from a bundle description (bundle.toml).
    Create {
        /// The bundle description.
        spec: PathBuf,
        /// Private key to sign with (PKCS#8 PEM); repeat to add several signatures.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Where to write the bundle.
        #[arg(short, long)]
        output: PathBuf,
        /// zstd compression level (1-19).
        #[arg(long, default_value_t = 3)]
        level: i32,
        /// Store chunks uncompressed.
        #[arg(long)]
        no_compress: bool,
    },
    /// Add a signature to an existing bundle; payloads are not rebuilt.
    Sign {
        bundle: PathBuf,
        /// Private key to sign with (PKCS#8 PEM).
        #[arg(long = "key")]
        key: PathBuf,
    },
    /// Show what a bundle contains (signatures are listed, not checked: use `verify`).
    Inspect {
        bundle: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check signatures, every index and every chunk.
    Verify {
        bundle: PathBuf,
        /// Trusted public key (SPKI PEM); repeat for several.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// How many distinct trusted keys must have signed.
        #[arg(long, default_value_t = 1)]
        threshold: usize,
        #[arg(long)]
        json: bool,
    },
    /// Write one payload out, verified chunk by chunk.
    Extract {
        bundle: PathBuf,
        /// Name of the payload.
        #[arg(long)]
        payload: String,
        #[arg(short, long)]
        output: PathBuf,
        /// Trusted public key (SPKI PEM); repeat for several. Without it only the bundle's
        /// internal consistency is checked, not who signed it.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        #[arg(long, default_value_t = 1)]
        threshold: usize,
    },
    /// How much a device running OLD downloads to install NEW over HTTP (delta install).
    Diff {
        /// The bundle the device runs.
        old: PathBuf,
        /// The bundle it will install.
        new: PathBuf,
        /// A slot class the device keeps as a directory slot (its archive payloads are
        /// downloaded whole); repeatable.
        #[arg(long = "directory-slot", value_name = "CLASS")]
        directory_slots: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: BundleCommand) -> Result<()> {
    match cmd {
        BundleCommand::Create {
            spec,
            keys,
            output,
            level,
            no_compress,
        } => create(&spec, &keys, &output, level, no_compress),
        BundleCommand::Sign { bundle, key } => sign(&bundle, &key),
        BundleCommand::Inspect { bundle, json } => inspect(&bundle, json),
        BundleCommand::Verify {
            bundle,
            keys,
            threshold,
            json,
        } => verify(&bundle, &keys, threshold, json),
        BundleCommand::Extract {
            bundle,
            payload,
            output,
            keys,
            threshold,
        } => extract(&bundle, &payload, &output, &keys, threshold),
        BundleCommand::Diff {
            old,
            new,
            directory_slots,
            json,
        } => diff(&old, &new, &directory_slots, json),
    }
}

fn diff(old: &Path, new: &Path, directory_slots: &[String], json: bool) -> Result<()> {
    let report = bundle::diff(old, new, directory_slots)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "a device running {} downloads {} of {} to install {} ({:.1}%, {} requests after the first)",
        old.display(),
        HumanBytes(report.download),
        HumanBytes(report.bundle_size),
        new.display(),
        ratio(report.download, report.bundle_size) * 100.0,
        report.requests
    );
    for p in &report.payloads {
        let detail = p.note.clone().unwrap_or_else(|| {
            format!(
                "{} of {} chunks reused ({}), {} to download",
                p.reused_chunks,
                p.chunks,
                HumanBytes(p.reused_bytes),
                HumanBytes(p.download)
            )
        });
        println!(
            "  {:<16} {:>10}  {detail}",
            p.name,
            HumanBytes(p.size).to_string()
        );
    }
    Ok(())
}

fn create(
    spec_path: &Path,
    key_paths: &[PathBuf],
    output: &Path,
    level: i32,
    no_compress: bool,
) -> Result<()> {
    let mut spec = BundleSpec::load(spec_path)?;
    let forms = tempfile::tempdir_in(airlock::fsutil::parent_dir(output))
        .context("cannot create a temporary folder beside the output")?;
    precompile_plugins(&mut spec, forms.path())?;
    let signing_keys = key_paths
        .iter()
        .map(|p| keys::load_signing_key(p))
        .collect::<Result<Vec<_>, _>>()?;
    let total: u64 = spec
        .payloads
        .iter()
        .map(|p| {
            std::fs::metadata(&p.file)
                .map(|m| m.len())
                .with_context(|| format!("payload {:?}: cannot read {}", p.name, p.file.display()))
        })
        .sum::<Result<u64>>()?;
    let mut bar = progress::Progress::bytes("building", total);
    let options = CreateOptions {
        level,
        no_compress,
        ..Default::default()
    };
    let manifest = bundle::create_bundle(&spec, &signing_keys, output, &options, &mut |n| {
        bar.position(n)
    })?;
    bar.finish();
    let size = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    println!(
        "built {} ({}): {} {}",
        output.display(),
        HumanBytes(size),
        manifest.name,
        manifest.version
    );
    print_payloads(&manifest);
    Ok(())
}

/// Compiles each bundled plugin for the targets its `precompile` lists, into `dir`.
fn precompile_plugins(spec: &mut BundleSpec, dir: &Path) -> Result<()> {
    if spec.plugins.iter().all(|p| p.precompile.is_empty()) {
        return Ok(());
    }
    let host = PluginHost::new(&dir.join("cache"))?;
    for p in &mut spec.plugins {
        if p.precompile.is_empty() {
            continue;
        }
        let bytes = std::fs::read(&p.file)
            .with_context(|| format!("plugin {:?}: cannot read {}", p.name, p.file.display()))?;
        for requested in &p.precompile {
            let target = precompiled::compile_target(requested).to_string();
            if p.precompiled.iter().any(|f| f.target == target) {
                continue;
            }
            let started = Instant::now();
            let artifact = host
                .precompile(&bytes, Some(requested))
                .with_context(|| format!("plugin {:?}: precompiling for {requested}", p.name))?;
            let file = dir.join(format!("{}.{target}.cwasm", p.name));
            std::fs::write(&file, &artifact)
                .with_context(|| format!("cannot write {}", file.display()))?;
            println!(
                "precompiled {} for {target} in {:.1} s ({})",
                p.name,
                started.elapsed().as_secs_f64(),
                HumanBytes(artifact.len() as u64)
            );
            p.precompiled.push(PrecompiledFile { target, file });
        }
    }
    Ok(())
}

fn sign(path: &Path, key_path: &Path) -> Result<()> {
    let key = keys::load_signing_key(key_path)?;
    let signatures = bundle::sign_bundle(path, &key)?;
    println!(
        "signed {} with {}; it now carries signatures by: {}",
        path.display(),
        keys::key_id(&key.verifying_key()),
        signatures.key_ids().join(", ")
    );
    Ok(())
}

fn inspect(path: &Path, json: bool) -> Result<()> {
    let mut reader = BundleReader::open_unverified(bundle::open_file(path)?)?;
    reader.read_indexes()?;
    let manifest = reader.manifest().clone();
    let signers = reader.signatures().key_ids();
    if json {
        let payloads: Vec<_> = manifest
            .payloads
            .iter()
            .map(|p| json!({"name": p.name, "target": p.target, "size": p.size, "stored_size": p.stored_size, "chunks": p.chunks, "compression": p.compression, "sha256": p.sha256, "ratio": ratio(p.stored_size, p.size)}))
            .collect();
        let out = json!({"manifest": manifest, "signed_by": signers, "signatures_verified": false, "payloads": payloads, "bundle_size": std::fs::metadata(path).map(|m| m.len()).ok()});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "bundle     {} {} (format {})",
        manifest.name, manifest.version, manifest.format
    );
    if let Some(d) = &manifest.description {
        println!("about      {d}");
    }
    println!("devices    {}", manifest.compatible.join(", "));
    println!("created    {}", manifest.created);
    println!(
        "expires    {}",
        manifest.expires.as_deref().unwrap_or("never")
    );
    println!(
        "signed by  {} (not checked here; run `airlock bundle verify --key KEY.pub`)",
        if signers.is_empty() {
            "nobody".to_string()
        } else {
            signers.join(", ")
        }
    );
    print_payloads(&manifest);
    if !manifest.plugins.is_empty() {
        println!("plugins");
        for p in &manifest.plugins {
            println!(
                "  {:<16} world {:<10} {:>10}  sha256 {}",
                p.name,
                p.world,
                HumanBytes(p.size).to_string(),
                p.sha256
            );
            for form in &p.precompiled {
                println!(
                    "    precompiled for {:<26} {:>10}  sha256 {}",
                    form.target,
                    HumanBytes(form.size).to_string(),
                    form.sha256
                );
            }
        }
    }
    Ok(())
}

fn print_payloads(manifest: &Manifest) {
    println!("payloads");
    for p in &manifest.payloads {
        let target = match &p.target {
            Target::Slot(s) => format!("slot {s}"),
            Target::Installer(i) => format!("installer {i}"),
        };
        println!(
            "  {:<16} -> {:<20} {:>10}  {:>6} chunks  {:?} stored {} ({:.0}%)",
            p.name,
            target,
            HumanBytes(p.size).to_string(),
            p.chunks,
            p.compression,
            HumanBytes(p.stored_size),
            ratio(p.stored_size, p.size) * 100.0
        );
    }
}

fn ratio(stored: u64, size: u64) -> f64 {
    if size == 0 {
        1.0
    } else {
        stored as f64 / size as f64
    }
}

fn trust(keys: &[PathBuf], threshold: usize) -> Result<TrustPolicy> {
    Ok(TrustPolicy::load(keys, threshold)?)
}

fn verify(path: &Path, keys: &[PathBuf], threshold: usize, json: bool) -> Result<()> {
    let trust = trust(keys, threshold)?;
    // Progress counts verified payload bytes; a glance at the head says how many there are.
    // (A bundle whose head does not even parse fails here with the same error as below.)
    let total = BundleReader::open_unverified(bundle::open_file(path)?)
        .map(|r| r.manifest().payloads.iter().map(|p| p.size).sum())
        .unwrap_or(0);
    let mut bar = progress::Progress::bytes("verifying", total);
    let result = bundle::verify(bundle::open_file(path)?, &trust, &mut |n| bar.position(n));
    bar.finish();
    let report = result.with_context(|| format!("{} failed verification", path.display()))?;
    if json {
        let out = json!({"ok": true, "name": report.manifest.name, "version": report.manifest.version, "signed_by": report.signers, "chunks": report.chunks, "bytes": report.bytes});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "OK: {} {} signed by {} (threshold {}), {} chunks / {} verified",
            report.manifest.name,
            report.manifest.version,
            report.signers.join(", "),
            trust.threshold(),
            report.chunks,
            HumanBytes(report.bytes)
        );
    }
    Ok(())
}

fn extract(
    path: &Path,
    payload: &str,
    output: &Path,
    keys: &[PathBuf],
    threshold: usize,
) -> Result<()> {
    let trust = if keys.is_empty() {
        eprintln!("warning: no --key given: checking the bundle's integrity, not who signed it");
        None
    } else {
        Some(trust(keys, threshold)?)
    };
    let mut bar = progress::Progress::bytes("extracting", 0);
    let size = bundle::extract(
        bundle::open_file(path)?,
        trust.as_ref(),
        payload,
        output,
        &mut |n| bar.position(n),
    )?;
    bar.finish();
    println!(
        "wrote payload {payload} to {} ({})",
        output.display(),
        HumanBytes(size)
    );
    Ok(())
}
