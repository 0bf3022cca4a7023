//! Cost of a plugin call: a trivial check plugin's first call (compile), a cold process's load
//! from the compile cache, a warm call, and the same check as a `/bin/sh` script started by
//! fork/exec — medians, measured in one run.
//!
//! `bench/run.sh plugin` builds the plugins and runs this; by hand:
//! `plugins/build.sh && cargo bench -p airlock --bench plugin_call`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use airlock::plugin::{CheckVerdict, PluginConfig, PluginContext, PluginHost, Release, Stage};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:9.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let wasm = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release/always_pass.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: run plugins/build.sh first",
        wasm.display()
    );
    let config = PluginConfig::new(&wasm);
    let ctx = PluginContext {
        bundle: Release {
            name: "bench-os".into(),
            version: "1.0.0".into(),
        },
        current: None,
        device_type: "bench".into(),
        stage: Stage::Check,
        payload: None,
        slot: Some("b".into()),
    };

    // First call: an empty cache, so the load compiles.
    let mut first = Vec::new();
    for _ in 0..5 {
        let cache = tempfile::tempdir().expect("a temp dir");
        let t = Instant::now();
        let host = PluginHost::new(cache.path()).expect("host");
        let plugin = host.load("always-pass", &config).expect("load");
        assert_eq!(
            host.run_check(&plugin, &ctx).expect("call"),
            CheckVerdict::Pass
        );
        first.push(t.elapsed());
    }

    // A new process with a warm cache: start the host, load (deserialize), call.
    let cache = tempfile::tempdir().expect("a temp dir");
    PluginHost::new(cache.path())
        .and_then(|h| h.load("always-pass", &config))
        .expect("warm the cache");
    let mut cached = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let host = PluginHost::new(cache.path()).expect("host");
        let plugin = host.load("always-pass", &config).expect("load");
        host.run_check(&plugin, &ctx).expect("call");
        assert_eq!(host.compilations(), 0, "a warm load must not compile");
        cached.push(t.elapsed());
    }

    // Warm calls: loaded once, a fresh instance per call.
    let host = PluginHost::new(cache.path()).expect("host");
    let plugin = host.load("always-pass", &config).expect("load");
    let mut warm = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        host.run_check(&plugin, &ctx).expect("call");
        warm.push(t.elapsed());
    }

    // The same check as a shell script, as peers run hooks.
    let script = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(script.path(), "#!/bin/sh\n# the trivial check\nexit 0\n").expect("write");
    let mut shell = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let status = Command::new("/bin/sh")
            .arg(script.path())
            .status()
            .expect("sh");
        assert!(status.success());
        shell.push(t.elapsed());
    }

    println!(
        "== plugin call: trivial check (always-pass, {} bytes), medians ==",
        std::fs::metadata(&wasm).map_or(0, |m| m.len())
    );
    println!(
        "  first call, compiling (5 runs)            {}",
        ms(median(first))
    );
    println!(
        "  new process, cached: load + call (20)     {}",
        ms(median(cached))
    );
    println!(
        "  warm call, fresh instance (500)           {}",
        ms(median(warm))
    );
    println!(
        "  baseline: /bin/sh script, fork/exec (200) {}",
        ms(median(shell))
    );
}
