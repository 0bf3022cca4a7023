//! `airlock plugin …`: run, inspect and precompile plugins on a workstation, in the same sandbox
//! a device uses.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlock::plugin::{
    self, CheckVerdict, DirGrant, HookVerdict, PayloadInfo, PluginConfig, PluginContext,
    PluginHost, Release, Stage, World,
};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::scaffold::{self, Kind, Lang};

// Parsed once per process: the size of its largest variant (`run`'s options) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Run a plugin against a made-up update, with the sandbox of a device.
    Run {
        plugin: PathBuf,
        /// The stage to run a hook at (default download-enter).
        #[arg(long)]
        stage: Option<Stage>,
        /// A config value handed to the plugin (repeatable): --config url=http://…
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// A URL the plugin may GET (repeatable).
        #[arg(long = "allow-url", value_name = "URL")]
        allow_url: Vec<String>,
        /// A systemd unit the plugin may query (repeatable).
        #[arg(long = "allow-unit", value_name = "UNIT")]
        allow_unit: Vec<String>,
        /// A command the plugin may run, its argv separated by spaces (repeatable).
        #[arg(long = "allow-command", value_name = "ARGV")]
        allow_command: Vec<String>,
        /// A host directory pre-opened at a guest path, read-only unless :rw (repeatable).
        #[arg(long = "dir", value_name = "HOST:GUEST[:rw]")]
        dirs: Vec<String>,
        /// For an installer: the file streamed to it as its payload.
        #[arg(long)]
        payload: Option<PathBuf>,
        /// Wall-clock budget of the call.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Memory cap, e.g. 32MiB.
        #[arg(long, default_value = "64MiB")]
        memory: String,
        /// Device type in the made-up update.
        #[arg(long, default_value = "workstation")]
        device_type: String,
        /// Where compiled plugins are cached.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// The digest list (sha256sum format) that vouches for precompiled forms: a
        /// PLUGIN.<target>.cwasm beside PLUGIN is run only when its sha256 is listed.
        #[arg(long, value_name = "FILE")]
        digest_list: Option<PathBuf>,
        /// A folder of precompiled forms, looked in when none lies beside PLUGIN (as the
        /// device's [device] precompiled_dir).
        #[arg(long, value_name = "DIR")]
        precompiled_dir: Option<PathBuf>,
        /// Run it this many times and report the timing of the first and of the warm calls.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Print the verdict and the timings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a plugin project (WIT, source, build.sh, test.sh) that builds and runs as it is.
    New {
        /// The plugin's name: lowercase letters, digits and dashes.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// Which world it implements.
        #[arg(long, value_enum, default_value_t = Kind::Check)]
        world: Kind,
        /// The folder to create (default: ./NAME). It must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Show a plugin's world, WIT version, imports, exports and size, without running it.
    Inspect {
        plugin: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Compile a plugin ahead of time: into the cache (no --target), or for a device's
    /// architecture into a file, which a device build of airlock loads instead of PLUGIN.
    Compile {
        plugin: PathBuf,
        /// The device's target: x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu, or
        /// armv7-unknown-linux-gnueabihf (= pulley32: bytecode for wasmtime's interpreter); a
        /// musl triple gets the form of its CPU, named by the glibc triple.
        #[arg(long)]
        target: Option<String>,
        /// Where to write the artifact (default: PLUGIN.TARGET.cwasm beside PLUGIN, where the
        /// device looks for it; PLUGIN with .cwasm without --target).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long)]
        cache: Option<PathBuf>,
    },
}

pub fn run(cmd: PluginCommand) -> Result<()> {
    match cmd {
        PluginCommand::Run {
            plugin,
            stage,
            config,
            allow_url,
            allow_unit,
            allow_command,
            dirs,
            payload,
            timeout,
            memory,
            device_type,
            cache,
            digest_list,
            precompiled_dir,
            repeat,
            json,
        } => {
            let mut cfg = PluginConfig::new(absolute(&plugin)?);
            cfg.timeout = timeout;
            cfg.memory = memory
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--memory {memory:?}: {e}"))?;
            cfg.http = allow_url;
            cfg.units = allow_unit;
            cfg.commands = allow_command
                .iter()
                .map(|c| c.split_whitespace().map(String::from).collect())
                .collect();
            for d in &dirs {
                cfg.dirs.push(parse_dir(d)?);
            }
            for kv in &config {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--config {kv:?}: write KEY=VALUE"))?;
                cfg.config
                    .insert(k.to_string(), toml::Value::String(v.to_string()));
            }
            let run = Run {
                stage,
                payload: payload.as_deref(),
                device_type: &device_type,
                cache: &cache_dir(cache)?,
                digest_list: digest_list.as_deref(),
                precompiled_dir: precompiled_dir.as_deref().map(absolute).transpose()?,
                repeat: repeat.max(1),
                json,
            };
            run_plugin(&plugin, &cfg, &run)
        }
        PluginCommand::New {
            name,
            lang,
            world,
            dir,
        } => new_project(&name, lang, world, dir),
        PluginCommand::Inspect { plugin, json } => inspect(&plugin, json),
        PluginCommand::Compile {
            plugin,
            target,
            output,
            cache,
        } => compile(&plugin, target.as_deref(), output, &cache_dir(cache)?),
    }
}

/// How `airlock plugin run` runs a plugin.
struct Run<'a> {
    stage: Option<Stage>,
    payload: Option<&'a Path>,
    device_type: &'a str,
    cache: &'a Path,
    digest_list: Option<&'a Path>,
    precompiled_dir: Option<PathBuf>,
    repeat: u32,
    json: bool,
}

fn run_plugin(path: &Path, cfg: &PluginConfig, run: &Run) -> Result<()> {
    let name = plugin_name(path);
    let started = Instant::now();
    let mut host = PluginHost::new(run.cache)?;
    if let Some(list) = run.digest_list {
        host.trust_digest_list(list)?;
    }
    host.set_precompiled_dir(run.precompiled_dir.clone());
    let loaded = host.load(&name, cfg)?;
    let load_time = started.elapsed();
    // A load either compiled the component or took it from the compile cache.
    let compiled = host.compilations() > 0;
    let stage = run.stage.unwrap_or(match loaded.world {
        World::Hook => Stage::DownloadEnter,
        World::Check => Stage::Check,
        World::Installer => Stage::Install,
    });
    let ctx = PluginContext {
        bundle: Release {
            name: "example-os".into(),
            version: "1.1.0".into(),
        },
        current: Some(Release {
            name: "example-os".into(),
            version: "1.0.0".into(),
        }),
        device_type: run.device_type.to_string(),
        stage,
        payload: None,
        slot: Some("b".into()),
    };
    if !run.json {
        println!(
            "plugin {name}: {} world, airlock:plugin@{}, loaded in {} ({})",
            loaded.world,
            loaded.wit_version,
            ms(load_time),
            if compiled {
                "compiled"
            } else {
                "from the compile cache"
            }
        );
    }
    let mut times = Vec::new();
    let mut verdict = (String::new(), false);
    for _ in 0..run.repeat {
        let t = Instant::now();
        verdict = call(&host, &loaded, &ctx, run.payload)?;
        times.push(t.elapsed());
    }
    let (line, approved) = verdict;
    let first = times[0];
    let mut warm: Vec<Duration> = times[1..].to_vec();
    warm.sort();
    let warm_median = warm.get(warm.len() / 2).copied();
    if run.json {
        let out = json!({
            "plugin": name,
            "world": loaded.world.to_string(),
            "wit_version": loaded.wit_version,
            "stage": stage.to_string(),
            "verdict": line,
            "approved": approved,
            "size": std::fs::metadata(&cfg.path).map(|m| m.len()).ok(),
            "compiled": compiled,
            "load_ms": ms_f64(load_time),
            "first_call_ms": ms_f64(first),
            "warm_calls": warm.len(),
            "warm_median_ms": warm_median.map(ms_f64),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let Some(median) = warm_median {
        println!(
            "{stage}: {line} (first call {}, {} with the load)",
            ms(first),
            ms(load_time + first)
        );
        println!(
            "warm calls: median {} over {} calls",
            ms(median),
            warm.len()
        );
    } else {
        println!("{stage}: {line}");
    }
    if !approved {
        bail!("the plugin did not approve");
    }
    Ok(())
}

/// One call of the plugin: the verdict as `airlock plugin run` prints it, and whether it
/// approves the update.
fn call(
    host: &PluginHost,
    loaded: &plugin::Plugin,
    ctx: &PluginContext,
    payload: Option<&Path>,
) -> Result<(String, bool)> {
    Ok(match loaded.world {
        World::Hook => match host.run_hook(loaded, ctx)? {
            HookVerdict::Proceed => ("proceed".to_string(), true),
            HookVerdict::Abort(r) => (format!("abort: {r}"), false),
            HookVerdict::RetryLater(s) => (format!("retry later, in {s} s"), false),
        },
        World::Check => match host.run_check(loaded, ctx)? {
            CheckVerdict::Pass => ("pass".to_string(), true),
            CheckVerdict::Fail(r) => (format!("fail: {r}"), false),
        },
        World::Installer => {
            let file = payload.context("an installer needs --payload FILE to install")?;
            let mut ctx = ctx.clone();
            let size = std::fs::metadata(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .len();
            ctx.payload = Some(PayloadInfo {
                name: plugin_name(file),
                size,
                sha256: String::new(),
            });
            let mut reader = std::fs::File::open(file)?;
            host.run_install(loaded, &ctx, &mut reader)?;
            ("installed".to_string(), true)
        }
    })
}

fn new_project(name: &str, lang: Lang, kind: Kind, dir: Option<PathBuf>) -> Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let written = scaffold::create(&dir, name, lang, kind)?;
    println!(
        "created {} ({lang} {kind} plugin {name}, airlock:plugin@0.1.0):",
        dir.display()
    );
    for path in written {
        println!("  {}", path.display());
    }
    println!("{}", scaffold::next_steps(&dir, name, lang));
    Ok(())
}

fn inspect(path: &Path, json: bool) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let info = plugin::inspect(&bytes)?;
    if json {
        let out = json!({
            "world": info.world.map(|w| w.to_string()),
            "wit_version": info.wit_version,
            "imports": info.imports,
            "exports": info.exports,
            "size": info.size,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("plugin   {}", path.display());
    println!(
        "world    {}",
        info.world
            .map_or("none (not an Airlock plugin)".to_string(), |w| w
                .to_string())
    );
    println!(
        "wit      {}",
        info.wit_version
            .map_or("-".to_string(), |v| format!("airlock:plugin@{v}"))
    );
    println!("size     {}", indicatif::HumanBytes(info.size));
    println!("exports  {}", info.exports.join(", "));
    println!("imports");
    for i in &info.imports {
        println!("  {i}");
    }
    Ok(())
}

fn compile(path: &Path, target: Option<&str>, output: Option<PathBuf>, cache: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let host = PluginHost::new(cache)?;
    let started = Instant::now();
    let artifact = host.precompile(&bytes, target)?;
    let out = output.unwrap_or_else(|| match target {
        Some(target) => {
            plugin::precompiled::artifact_path(path, plugin::precompiled::compile_target(target))
        }
        None => path.with_extension("cwasm"),
    });
    airlock::fsutil::atomic_write(&out, &artifact)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "compiled {} for {} in {} -> {} ({})",
        path.display(),
        target.unwrap_or("this machine (also cached)"),
        ms(started.elapsed()),
        out.display(),
        indicatif::HumanBytes(artifact.len() as u64)
    );
    // What the image build appends to the device's digest list (precompiled.sha256).
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&artifact));
    println!("{digest}  {}", out.display());
    Ok(())
}

fn parse_dir(spec: &str) -> Result<DirGrant> {
    let mut parts = spec.splitn(3, ':');
    let (Some(host), Some(guest)) = (parts.next(), parts.next()) else {
        bail!("--dir {spec:?}: write HOST:GUEST or HOST:GUEST:rw");
    };
    let writable = match parts.next() {
        None | Some("ro") => false,
        Some("rw") => true,
        Some(other) => bail!("--dir {spec:?}: the third part must be rw or ro, not {other:?}"),
    };
    Ok(DirGrant {
        host: absolute(Path::new(host))?,
        guest: guest.to_string(),
        writable,
    })
}

fn cache_dir(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(c) = explicit {
        return Ok(c);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("set --cache DIR (neither XDG_CACHE_HOME nor HOME is set)")?;
    Ok(base.join("airlock").join("plugins"))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()?.join(p)
    })
}

fn plugin_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || "plugin".into(),
        |s| s.to_string_lossy().replace('_', "-"),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Milliseconds with two decimals, for JSON.
fn ms_f64(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}
