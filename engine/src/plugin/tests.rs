//! Tests of the plugin host against small components built here from WAT and the real WIT:
//! a core module written against the canonical ABI, wrapped into a component by
//! wit-component, exactly as `cargo component` / `wasm-tools component new` would.
//!
//! Canonical-ABI cheat sheet for `context` (passed by pointer, 21 flat values > 16): bundle
//! name at +0/+4, version at +8/+12, current at +16, device-type at +36/+40, stage (u8) at
//! +44, payload at +48, slot at +80. Results wider than one value are returned by pointer:
//! discriminant (u8) at +0, payload at +4.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

const WIT: &str = include_str!("../../../wit/v0.1/plugin.wit");

/// A component implementing `world` of `airlock:plugin@version`, from a core module body.
/// `{V}` in `body` is replaced by the version. The scaffold provides `memory`, a bump
/// allocator `cabi_realloc` with its `$heap` pointer (starting at 4096; 0–4095 is scratch).
fn component_v(world: &str, version: &str, body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
            {}
            (memory (export "memory") 1)
            (global $heap (mut i32) (i32.const 4096))
            (func $realloc (export "cabi_realloc")
                (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
                (result i32)
                (local $ptr i32)
                (local.set $ptr
                    (i32.and
                        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                        (i32.sub (i32.const 0) (local.get $align))))
                (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
                (block $ok
                    (loop $grow
                        (br_if $ok
                            (i32.le_u (global.get $heap)
                                (i32.mul (memory.size) (i32.const 65536))))
                        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
                            (then unreachable))
                        (br $grow)))
                (local.get $ptr))
        )"#,
        body.replace("{V}", version)
    );
    let mut module = wat::parse_str(&wat).expect("test WAT");
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve
        .push_str(
            "plugin.wit",
            &WIT.replace("airlock:plugin@0.1.0", &format!("airlock:plugin@{version}")),
        )
        .unwrap();
    let world = resolve.select_world(&[pkg], Some(world)).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}

fn component(world: &str, body: &str) -> Vec<u8> {
    component_v(world, "0.1.0", body)
}

/// Returns `abort` (1) with the string at (ptr, len) from the given expressions.
const ABORT_WITH: &str = r#"
    (func $abort (param $ptr i32) (param $len i32) (result i32)
        (i32.store8 (i32.const 1024) (i32.const 1))
        (i32.store (i32.const 1028) (local.get $ptr))
        (i32.store (i32.const 1032) (local.get $len))
        (i32.const 1024))
    (func $proceed (result i32)
        (i32.store8 (i32.const 1024) (i32.const 0))
        (i32.const 1024))
    (func $retry (param $secs i32) (result i32)
        (i32.store8 (i32.const 1024) (i32.const 2))
        (i32.store (i32.const 1028) (local.get $secs))
        (i32.const 1024))
"#;

fn hook(run_body: &str) -> Vec<u8> {
    hook_with("", run_body)
}

fn hook_with(imports: &str, run_body: &str) -> Vec<u8> {
    component(
        "hook",
        &format!(
            "{imports}\n{ABORT_WITH}\n(func (export \"run\") (param $ctx i32) (result i32)\n{run_body})"
        ),
    )
}

fn ctx(stage: Stage) -> PluginContext {
    PluginContext {
        bundle: Release {
            name: "os".into(),
            version: "2.0.0".into(),
        },
        current: Some(Release {
            name: "os".into(),
            version: "1.0.0".into(),
        }),
        device_type: "acme-gateway-v2".into(),
        stage,
        payload: None,
        slot: Some("b".into()),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    cache: std::path::PathBuf,
    host: PluginHost,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let host = PluginHost::new(&cache).unwrap();
    Fixture {
        _dir: dir,
        cache,
        host,
    }
}

fn config() -> PluginConfig {
    PluginConfig::new("/nonexistent.wasm")
}

#[test]
fn the_host_and_plugins_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PluginHost>();
    send_sync::<Plugin>();
    send_sync::<PluginError>();
}

#[test]
fn a_hook_runs_and_sees_its_context() {
    let f = fixture();
    let proceed = f
        .host
        .load_bytes("p", &hook("(call $proceed)"), &config())
        .unwrap();
    assert_eq!(proceed.world, World::Hook);
    assert_eq!(proceed.wit_version, "0.1.0");
    assert_eq!(proceed.sha256.len(), 64);
    assert_eq!(
        f.host
            .run_hook(&proceed, &ctx(Stage::InstallEnter))
            .unwrap(),
        HookVerdict::Proceed
    );

    // abort(device-type), then retry-later(stage index).
    let device = hook(
        "(call $abort (i32.load offset=36 (local.get $ctx)) (i32.load offset=40 (local.get $ctx)))",
    );
    let device = f.host.load_bytes("device", &device, &config()).unwrap();
    assert_eq!(
        f.host.run_hook(&device, &ctx(Stage::InstallEnter)).unwrap(),
        HookVerdict::Abort("acme-gateway-v2".into())
    );
    let stage = hook("(call $retry (i32.load8_u offset=44 (local.get $ctx)))");
    let stage = f.host.load_bytes("stage", &stage, &config()).unwrap();
    assert_eq!(
        f.host.run_hook(&stage, &ctx(Stage::RebootEnter)).unwrap(),
        HookVerdict::RetryLater(4)
    );
}

#[test]
fn a_check_passes_or_fails_with_a_reason() {
    let f = fixture();
    let pass = component(
        "check",
        r#"(func (export "check") (param i32) (result i32)
            (i32.store8 (i32.const 1024) (i32.const 0)) (i32.const 1024))"#,
    );
    let fail = component(
        "check",
        r#"(data (i32.const 100) "disk full\n\1b[2J")
        (func (export "check") (param i32) (result i32)
            (i32.store8 (i32.const 1024) (i32.const 1))
            (i32.store (i32.const 1028) (i32.const 100))
            (i32.store (i32.const 1032) (i32.const 14))
            (i32.const 1024))"#,
    );
    let pass = f.host.load_bytes("pass", &pass, &config()).unwrap();
    let fail = f.host.load_bytes("fail", &fail, &config()).unwrap();
    assert_eq!(pass.world, World::Check);
    assert_eq!(
        f.host.run_check(&pass, &ctx(Stage::Check)).unwrap(),
        CheckVerdict::Pass
    );
    assert_eq!(
        f.host.run_check(&fail, &ctx(Stage::Check)).unwrap(),
        CheckVerdict::Fail("disk full / \u{FFFD}[2J".into())
    );
}

const INSTALLER: &str = r#"
    (import "airlock:plugin/payload@{V}" "read" (func $read (param i32 i32)))
    (import "airlock:plugin/progress@{V}" "report" (func $report (param i64 i64)))
    (data (i32.const 100) "cannot roll back")
    (global $count (mut i64) (i64.const 0))
    (global $sum (mut i64) (i64.const 0))
    (func $ok (result i32) (i32.store8 (i32.const 1024) (i32.const 0)) (i32.const 1024))
    (func $err (param $ptr i32) (param $len i32) (result i32)
        (i32.store8 (i32.const 1024) (i32.const 1))
        (i32.store (i32.const 1028) (local.get $ptr))
        (i32.store (i32.const 1032) (local.get $len))
        (i32.const 1024))
    ;; Reads the payload to its end; reports (bytes read, sum of all bytes) as progress.
    (func (export "install") (param $ctx i32) (result i32)
        (local $mark i32) (local $ptr i32) (local $len i32) (local $i i32)
        (block $done
            (loop $next
                (local.set $mark (global.get $heap))
                (call $read (i32.const 65536) (i32.const 512))
                (if (i32.load8_u (i32.const 512))
                    (then (return (call $err (i32.load (i32.const 516)) (i32.load (i32.const 520))))))
                (local.set $ptr (i32.load (i32.const 516)))
                (local.set $len (i32.load (i32.const 520)))
                (br_if $done (i32.eqz (local.get $len)))
                (global.set $count (i64.add (global.get $count) (i64.extend_i32_u (local.get $len))))
                (local.set $i (i32.const 0))
                (block $b
                    (loop $l
                        (br_if $b (i32.ge_u (local.get $i) (local.get $len)))
                        (global.set $sum (i64.add (global.get $sum)
                            (i64.load8_u (i32.add (local.get $ptr) (local.get $i)))))
                        (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br $l)))
                (global.set $heap (local.get $mark))
                (br $next)))
        (call $report (global.get $count) (global.get $sum))
        (call $ok))
    (func (export "commit") (param i32) (result i32) (call $ok))
    (func (export "rollback") (param i32) (result i32) (call $err (i32.const 100) (i32.const 16)))
"#;

#[test]
fn an_installer_streams_its_payload_and_commits() {
    let mut f = fixture();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    f.host
        .set_progress_sink(Arc::new(move |name: &str, done, total| {
            s.lock().unwrap().push((name.to_string(), done, total));
        }));
    let plugin = f
        .host
        .load_bytes("fw", &component("installer", INSTALLER), &config())
        .unwrap();
    assert_eq!(plugin.world, World::Installer);

    // 3 MiB + a bit: many chunks through the bounded queue.
    let payload: Vec<u8> = (0..(3 << 20) + 12345u32).map(|i| (i % 251) as u8).collect();
    let sum: u64 = payload.iter().map(|&b| u64::from(b)).sum();
    let mut c = ctx(Stage::Install);
    c.payload = Some(PayloadInfo {
        name: "firmware".into(),
        size: payload.len() as u64,
        sha256: "00".repeat(32),
    });
    f.host
        .run_install(&plugin, &c, &mut payload.as_slice())
        .unwrap();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[("fw".to_string(), payload.len() as u64, sum)]
    );

    f.host
        .run_commit(&plugin, &ctx(Stage::CommitEnter))
        .unwrap();
    let e = f
        .host
        .run_rollback(&plugin, &ctx(Stage::RollbackEnter))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin fw failed to roll back: cannot roll back"
    );

    // A failing payload stream is reported as such, whatever the plugin made of it.
    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("chunk 7 does not match its hash"));
            }
            let n = buf.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
    }
    let e = f
        .host
        .run_install(&plugin, &c, &mut Broken(200_000))
        .unwrap_err();
    assert!(matches!(e, PluginError::Payload { .. }), "{e}");
    assert!(e.to_string().contains("chunk 7 does not match"), "{e}");
}

#[test]
fn an_installer_must_read_its_whole_payload() {
    let f = fixture();
    let lazy = component(
        "installer",
        r#"(func $ok (result i32) (i32.store8 (i32.const 1024) (i32.const 0)) (i32.const 1024))
        (func (export "install") (param i32) (result i32) (call $ok))
        (func (export "commit") (param i32) (result i32) (call $ok))
        (func (export "rollback") (param i32) (result i32) (call $ok))"#,
    );
    let lazy = f.host.load_bytes("lazy", &lazy, &config()).unwrap();
    let payload = vec![7u8; 1 << 20];
    let e = f
        .host
        .run_install(&lazy, &ctx(Stage::Install), &mut payload.as_slice())
        .unwrap_err();
    assert!(
        e.to_string().contains("returned after reading 0 bytes"),
        "{e}"
    );
    // An empty payload is fine.
    f.host
        .run_install(&lazy, &ctx(Stage::Install), &mut std::io::empty())
        .unwrap();
}

#[test]
fn config_entries_are_delivered() {
    let f = fixture();
    // abort(get("greeting")) if set, otherwise retry-later(number of entries).
    let plugin = hook_with(
        r#"(import "airlock:plugin/config@{V}" "get" (func $get (param i32 i32 i32)))
        (import "airlock:plugin/config@{V}" "entries" (func $entries (param i32)))
        (data (i32.const 100) "greeting")"#,
        r#"(call $get (i32.const 100) (i32.const 8) (i32.const 200))
        (if (result i32) (i32.load8_u (i32.const 200))
            (then (call $abort (i32.load (i32.const 204)) (i32.load (i32.const 208))))
            (else (call $entries (i32.const 300)) (call $retry (i32.load (i32.const 304)))))"#,
    );
    let mut cfg = config();
    cfg.config = toml::from_str("greeting = \"hello\"\nretries = 3").unwrap();
    let p = f.host.load_bytes("cfg", &plugin, &cfg).unwrap();
    assert_eq!(
        f.host.run_hook(&p, &ctx(Stage::DownloadEnter)).unwrap(),
        HookVerdict::Abort("hello".into())
    );
    cfg.config = toml::from_str("a = 1\nb = true\nc = [1, 2]").unwrap();
    let p = f.host.load_bytes("cfg", &plugin, &cfg).unwrap();
    assert_eq!(
        f.host.run_hook(&p, &ctx(Stage::DownloadEnter)).unwrap(),
        HookVerdict::RetryLater(3)
    );
}

#[test]
fn a_forbidden_url_is_refused() {
    let f = fixture();
    let plugin = hook_with(
        r#"(import "airlock:plugin/probes@{V}" "http-get" (func $get (param i32 i32 i32 i32)))
        (data (i32.const 100) "http://169.254.169.254/latest/meta-data")"#,
        r#"(call $get (i32.const 100) (i32.const 39) (i32.const 1000) (i32.const 200))
        (if (result i32) (i32.load8_u (i32.const 200))
            (then (call $abort (i32.load (i32.const 204)) (i32.load (i32.const 208))))
            (else (call $proceed)))"#,
    );
    let mut cfg = config();
    cfg.http = vec!["http://127.0.0.1:8080/health".into()];
    let p = f.host.load_bytes("probe", &plugin, &cfg).unwrap();
    let HookVerdict::Abort(reason) = f.host.run_hook(&p, &ctx(Stage::DownloadEnter)).unwrap()
    else {
        panic!("the probe must be refused");
    };
    assert!(
        reason.contains("is not in [plugins.probe] http")
            && reason.contains("allowed: http://127.0.0.1:8080/health"),
        "{reason}"
    );
}

#[test]
fn a_loop_times_out() {
    let f = fixture();
    let mut cfg = config();
    cfg.timeout = Duration::from_millis(200);
    let p = f
        .host
        .load_bytes("spin", &hook("(loop $l (br $l)) (unreachable)"), &cfg)
        .unwrap();
    let started = Instant::now();
    let e = f.host.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, PluginError::Timeout { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "plugin spin timed out after 200ms (it may loop); raise [plugins.spin] timeout or fix \
         the plugin"
    );
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // The host survives, and the next call of the same plugin gets a fresh instance.
    assert!(f.host.run_hook(&p, &ctx(Stage::InstallEnter)).is_err());
}

#[test]
fn memory_growth_beyond_the_cap_fails() {
    let f = fixture();
    let mut cfg = config();
    cfg.memory = ByteSize(4 << 20);
    let grow = hook(
        r#"(loop $l
            (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))
            (br $l))
        (unreachable)"#,
    );
    let p = f.host.load_bytes("hog", &grow, &cfg).unwrap();
    let e = f.host.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap_err();
    assert!(matches!(e, PluginError::MemoryCap { .. }), "{e}");
    assert!(
        e.to_string().contains("exceeded its memory cap of 4 MiB"),
        "{e}"
    );

    // Growth within the cap is fine.
    let ok = hook("(drop (memory.grow (i32.const 16))) (call $proceed)");
    let p = f.host.load_bytes("ok", &ok, &cfg).unwrap();
    assert_eq!(
        f.host.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap(),
        HookVerdict::Proceed
    );
}

#[test]
fn traps_and_stack_overflows_fail_cleanly() {
    let f = fixture();
    let p = f
        .host
        .load_bytes("crash", &hook("(unreachable)"), &config())
        .unwrap();
    let e = f.host.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap_err();
    assert!(matches!(e, PluginError::Trap { .. }), "{e}");
    assert!(e.to_string().starts_with("plugin crash trapped: "), "{e}");
    assert!(e.to_string().contains("unreachable"), "{e}");

    let deep = component(
        "hook",
        r#"(func $f (param i32) (result i32) (call $f (i32.add (local.get 0) (i32.const 1))))
        (func (export "run") (param i32) (result i32) (call $f (i32.const 0)))"#,
    );
    let p = f.host.load_bytes("deep", &deep, &config()).unwrap();
    let e = f.host.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap_err();
    assert!(matches!(e, PluginError::StackOverflow { .. }), "{e}");
}

#[test]
fn a_log_flood_fails_the_call() {
    let f = fixture();
    let chatty = hook_with(
        r#"(import "airlock:plugin/log@{V}" "log" (func $log (param i32 i32 i32)))
        (data (i32.const 100) "hello \1b[31mworld")"#,
        r#"(local $i i32)
        (call $log (i32.const 2) (i32.const 100) (i32.const 16))
        (loop $l
            (call $log (i32.const 0) (i32.const 2048) (i32.const 1000))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (local.get $ctx))))
        (call $proceed)"#,
    );
    // The context pointer is large, so the loop runs far past the 64 KiB log cap.
    let p = f.host.load_bytes("chatty", &chatty, &config()).unwrap();
    let e = f.host.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap_err();
    assert!(
        matches!(e, PluginError::OutputFlood { what: "log", .. }),
        "{e}"
    );
}

#[test]
fn wrong_worlds_are_refused() {
    let f = fixture();
    let check = component(
        "check",
        r#"(func (export "check") (param i32) (result i32)
            (i32.store8 (i32.const 1024) (i32.const 0)) (i32.const 1024))"#,
    );
    let p = f.host.load_bytes("x", &check, &config()).unwrap();
    let e = f.host.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin x implements the check world but is configured as a hook"
    );
    assert!(p.expect_world(World::Check).is_ok());
    assert!(p.expect_world(World::Installer).is_err());
    let e = f
        .host
        .run_install(&p, &ctx(Stage::Install), &mut std::io::empty())
        .unwrap_err();
    assert!(matches!(e, PluginError::WrongWorld { .. }), "{e}");
}

#[test]
fn unsupported_versions_and_non_plugins_are_refused() {
    let f = fixture();
    let future = component_v(
        "hook",
        "0.9.0",
        r#"(func (export "run") (param i32) (result i32)
            (i32.store8 (i32.const 1024) (i32.const 0)) (i32.const 1024))"#,
    );
    let info = inspect(&future).unwrap();
    assert_eq!(info.world, Some(World::Hook));
    assert_eq!(info.wit_version.as_deref(), Some("0.9.0"));
    let e = f.host.load_bytes("x", &future, &config()).unwrap_err();
    assert!(matches!(e, PluginError::UnsupportedVersion { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("plugin x was built for airlock:plugin@0.9.0; this engine serves 0.1.0"),
        "{e}"
    );
    assert_eq!(f.host.compilations(), 0, "refused before compiling");

    let e = f
        .host
        .load_bytes("x", &wat::parse_str("(module)").unwrap(), &config())
        .unwrap_err();
    assert!(e.to_string().contains("core WebAssembly module"), "{e}");
    let e = f
        .host
        .load_bytes("x", &wat::parse_str("(component)").unwrap(), &config())
        .unwrap_err();
    assert!(e.to_string().contains("exports none of"), "{e}");
    let e = f
        .host
        .load("x", &PluginConfig::new(f.cache.join("missing.wasm")))
        .unwrap_err();
    assert!(
        e.to_string().starts_with("cannot read plugin x from "),
        "{e}"
    );
}

#[test]
fn a_component_importing_what_we_do_not_offer_is_refused_at_load() {
    let f = fixture();
    let c = wat::parse_str(
        r#"(component
            (import "wasi:http/outgoing-handler@0.2.0" (instance (export "handle" (func))))
            (import "airlock:plugin/types@0.1.0" (instance))
            (core module $m (func (export "run") (result i32) (i32.const 0)))
            (core instance $i (instantiate $m))
            (func (export "run") (result u32) (canon lift (core func $i "run")))
        )"#,
    )
    .unwrap();
    let e = f.host.load_bytes("x", &c, &config()).unwrap_err();
    assert!(matches!(e, PluginError::Link { .. }), "{e}");
    assert!(e.to_string().contains("wasi:http/outgoing-handler"), "{e}");
}

#[test]
fn compiled_components_are_cached() {
    let f = fixture();
    let bytes = hook("(call $proceed)");
    f.host.load_bytes("p", &bytes, &config()).unwrap();
    assert_eq!(f.host.compilations(), 1);
    f.host.load_bytes("p", &bytes, &config()).unwrap();
    assert_eq!(f.host.compilations(), 1, "a warm load must not compile");

    // Another process (host) with the same cache dir.
    let second = PluginHost::new(&f.cache).unwrap();
    let p = second.load_bytes("p", &bytes, &config()).unwrap();
    assert_eq!(second.compilations(), 0);
    assert_eq!(
        second.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap(),
        HookVerdict::Proceed
    );

    // A damaged file is compiled again, not loaded.
    let files: Vec<_> = std::fs::read_dir(&f.cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().ends_with(".cwasm"));
    let mut data = std::fs::read(&files[0]).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&files[0], &data).unwrap();
    let third = PluginHost::new(&f.cache).unwrap();
    let p = third.load_bytes("p", &bytes, &config()).unwrap();
    assert_eq!(third.compilations(), 1);
    assert_eq!(
        third.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap(),
        HookVerdict::Proceed
    );
}

#[test]
fn the_cache_dir_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = PluginHost::new(dir.path()).err().expect("refused");
    assert!(e.to_string().contains("writable by other users"), "{e}");
}

#[test]
fn precompiles_for_aarch64() {
    let f = fixture();
    let bytes = hook("(call $proceed)");
    let artifact = f
        .host
        .precompile(&bytes, Some("aarch64-unknown-linux-gnu"))
        .unwrap();
    assert!(artifact.starts_with(b"\x7fELF"));
    let e = f
        .host
        .precompile(&bytes, Some("mips-unknown-linux-gnu"))
        .unwrap_err();
    assert!(e.to_string().contains("mips"), "{e}");
    // For this machine it also warms the cache.
    f.host.precompile(&bytes, None).unwrap();
    let n = f.host.compilations();
    f.host.load_bytes("p", &bytes, &config()).unwrap();
    assert_eq!(f.host.compilations(), n);
}

#[test]
fn bad_grants_are_refused_at_load() {
    let f = fixture();
    let bytes = hook("(call $proceed)");
    let mut cfg = config();
    cfg.http = vec!["ftp://x/".into()];
    let e = f.host.load_bytes("x", &bytes, &cfg).unwrap_err();
    assert!(e.to_string().starts_with("[plugins.x]: http: "), "{e}");
    let mut cfg = config();
    cfg.dirs = vec![DirGrant {
        host: "/nonexistent/dir".into(),
        guest: "/data".into(),
        writable: false,
    }];
    let e = f.host.load_bytes("x", &bytes, &cfg).unwrap_err();
    assert!(e.to_string().contains("is not a directory"), "{e}");
}

/// Prints cold load, warm load and warm call times, for a WAT hook and (when built) a Rust one
/// (`cargo test -p airlock --lib plugin::tests::timings -- --nocapture`).
#[test]
fn timings() {
    let mut subjects = vec![("wat", hook("(call $proceed)"))];
    if let Some(path) = real_plugin("maintenance_window") {
        subjects.push(("rust", std::fs::read(path).unwrap()));
    }
    for (what, bytes) in subjects {
        let f = fixture();
        let t = Instant::now();
        f.host.load_bytes("p", &bytes, &config()).unwrap();
        let cold = t.elapsed();
        let second = PluginHost::new(&f.cache).unwrap();
        let t = Instant::now();
        let p = second.load_bytes("p", &bytes, &config()).unwrap();
        let warm = t.elapsed();
        second.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap();
        let n = 100;
        let t = Instant::now();
        for _ in 0..n {
            second.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap();
        }
        let call = t.elapsed() / n;
        println!(
            "{what} hook ({} bytes): cold load {cold:?}, warm load {warm:?}, warm call {call:?}",
            bytes.len()
        );
    }
}

/// The first-party and hostile plugins of `plugins/`, when they have been built
/// (`cargo build --manifest-path plugins/Cargo.toml --target wasm32-wasip2 --release`).
fn real_plugin(name: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: {} is not built", path.display());
        None
    }
}

#[test]
fn hostile_rust_plugins_fail_cleanly() {
    let f = fixture();
    let load = |name: &str| -> Option<Plugin> {
        let mut cfg = PluginConfig::new(real_plugin(name)?);
        cfg.timeout = Duration::from_millis(300);
        cfg.memory = ByteSize(16 << 20);
        Some(f.host.load(name, &cfg).unwrap())
    };
    let check = |p: &Plugin| f.host.run_check(p, &ctx(Stage::Check));

    if let Some(p) = load("hostile_loop_forever") {
        let e = f.host.run_hook(&p, &ctx(Stage::InstallEnter)).unwrap_err();
        assert!(matches!(e, PluginError::Timeout { .. }), "{e}");
    }
    if let Some(p) = load("hostile_oom") {
        let e = check(&p).unwrap_err();
        assert!(matches!(e, PluginError::MemoryCap { .. }), "{e}");
    }
    if let Some(p) = load("hostile_trap") {
        let e = check(&p).unwrap_err();
        assert!(matches!(e, PluginError::Trap { .. }), "{e}");
        assert!(
            e.to_string().contains("panics on purpose"),
            "the panic message: {e}"
        );
    }
    if let Some(p) = load("hostile_stack_overflow") {
        // Rust's shadow stack lives in linear memory and runs out before the native one.
        let e = check(&p).unwrap_err();
        assert!(
            matches!(
                e,
                PluginError::Trap { .. } | PluginError::StackOverflow { .. }
            ),
            "{e}"
        );
    }
    if let Some(p) = load("hostile_flood_output") {
        let e = check(&p).unwrap_err();
        assert!(matches!(e, PluginError::OutputFlood { .. }), "{e}");
    }
    if let Some(p) = load("hostile_forbidden_url") {
        let CheckVerdict::Fail(verdict) = check(&p).unwrap() else {
            panic!("always fails")
        };
        assert!(verdict.starts_with("refused: "), "{verdict}");
    }
    if let Some(p) = load("hostile_forbidden_dir") {
        let CheckVerdict::Fail(verdict) = check(&p).unwrap() else {
            panic!("always fails")
        };
        assert!(verdict.starts_with("refused: "), "{verdict}");
    }
    // The host is still fine, and a warm load from the cache compiles nothing.
    if let Some(path) = real_plugin("hostile_trap") {
        let second = PluginHost::new(&f.cache).unwrap();
        second.load("t", &PluginConfig::new(path)).unwrap();
        assert_eq!(second.compilations(), 0);
    }
}

#[test]
fn the_archive_installer_writes_only_where_it_may() {
    let Some(path) = real_plugin("archive_installer") else {
        return;
    };
    let f = fixture();
    let target = tempfile::tempdir().unwrap();
    let mut cfg = PluginConfig::new(path);
    cfg.dirs = vec![DirGrant {
        host: target.path().to_path_buf(),
        guest: "/target".into(),
        writable: true,
    }];
    let plugin = f.host.load("app", &cfg).unwrap();

    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let body = b"hello from the bundle\n";
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "etc/motd", &body[..]).unwrap();
    let archive = tar.into_inner().unwrap();
    let mut c = ctx(Stage::Install);
    c.payload = Some(PayloadInfo {
        name: "app".into(),
        size: archive.len() as u64,
        sha256: engine::sha256_hex(&archive),
    });
    f.host
        .run_install(&plugin, &c, &mut archive.as_slice())
        .unwrap();
    f.host
        .run_commit(&plugin, &ctx(Stage::CommitEnter))
        .unwrap();
    assert_eq!(
        std::fs::read(target.path().join("current/etc/motd")).unwrap(),
        body
    );

    // Read-only, the same grant refuses the write.
    cfg.dirs[0].writable = false;
    let plugin = f.host.load("app", &cfg).unwrap();
    let e = f
        .host
        .run_install(&plugin, &c, &mut archive.as_slice())
        .unwrap_err();
    assert!(matches!(e, PluginError::Failed { .. }), "{e}");
}

#[test]
fn an_allowed_url_is_fetched_from_inside_the_plugin() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/health",
        listener.local_addr().unwrap().port()
    );
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(conn.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhealthy")
            .unwrap();
        line
    });
    // abort(body) on ok, abort("E" + error) on err.
    let plugin = hook_with(
        &format!(
            r#"(import "airlock:plugin/probes@{{V}}" "http-get" (func $get (param i32 i32 i32 i32)))
            (data (i32.const 100) "{url}")"#
        ),
        &format!(
            r#"(call $get (i32.const 100) (i32.const {}) (i32.const 0) (i32.const 200))
            (if (result i32) (i32.load8_u (i32.const 200))
                (then (call $abort (i32.load (i32.const 204)) (i32.load (i32.const 208))))
                (else (call $abort (i32.load (i32.const 208)) (i32.load (i32.const 212)))))"#,
            url.len()
        ),
    );
    let mut cfg = config();
    cfg.http = vec![url];
    let f = fixture();
    let p = f.host.load_bytes("probe", &plugin, &cfg).unwrap();
    assert_eq!(
        f.host.run_hook(&p, &ctx(Stage::DownloadEnter)).unwrap(),
        HookVerdict::Abort("healthy".into())
    );
    assert!(server.join().unwrap().starts_with("GET /health "));
}

/// A plugin directory as an image build leaves it: `p.wasm`, its precompiled form for `target`
/// beside it, and (unless `list` is false) a digest list vouching for that form.
struct Precompiled {
    dir: tempfile::TempDir,
    wasm: std::path::PathBuf,
    artifact: std::path::PathBuf,
    list: std::path::PathBuf,
}

fn precompiled_plugin(bytes: &[u8], artifact: &[u8], list: bool) -> Precompiled {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("p.wasm");
    std::fs::write(&wasm, bytes).unwrap();
    let artifact_path = precompiled::artifact_path(&wasm, precompiled::native_target());
    std::fs::write(&artifact_path, artifact).unwrap();
    let list_path = dir.path().join(DIGEST_LIST);
    if list {
        let digest = engine::sha256_hex(artifact);
        std::fs::write(
            &list_path,
            format!("{digest}  p.{}.cwasm\n", precompiled::native_target()),
        )
        .unwrap();
    }
    Precompiled {
        dir,
        wasm,
        artifact: artifact_path,
        list: list_path,
    }
}

fn load_precompiled(p: &Precompiled) -> Result<Plugin, PluginError> {
    let dir = tempfile::tempdir().unwrap();
    let mut host = PluginHost::new(&dir.path().join("cache")).unwrap();
    host.trust_digest_list(&p.list)?;
    let plugin = host.load("p", &PluginConfig::new(&p.wasm))?;
    assert_eq!(
        host.compilations(),
        0,
        "a precompiled plugin is never compiled"
    );
    let verdict = host.run_hook(&plugin, &ctx(Stage::InstallEnter))?;
    assert_eq!(verdict, HookVerdict::Proceed);
    Ok(plugin)
}

fn native_artifact(f: &Fixture, bytes: &[u8]) -> Vec<u8> {
    f.host
        .precompile(bytes, Some(precompiled::native_target()))
        .unwrap()
}

#[test]
fn a_listed_precompiled_form_is_loaded_without_compiling_even_without_its_wasm() {
    let f = fixture();
    let bytes = hook("(call $proceed)");
    let p = precompiled_plugin(&bytes, &native_artifact(&f, &bytes), true);
    let plugin = load_precompiled(&p).unwrap();
    assert_eq!(plugin.world, World::Hook);
    assert_eq!(plugin.wit_version, "0.1.0");
    assert_eq!(
        plugin.sha256,
        engine::sha256_hex(&std::fs::read(&p.artifact).unwrap())
    );
    // The device needs only the precompiled form; the .wasm names it.
    std::fs::remove_file(&p.wasm).unwrap();
    assert_eq!(load_precompiled(&p).unwrap().world, World::Hook);
}

#[test]
fn a_precompiled_form_nothing_vouches_for_is_refused() {
    let f = fixture();
    let bytes = hook("(call $proceed)");
    let artifact = native_artifact(&f, &bytes);
    // No list at all.
    let p = precompiled_plugin(&bytes, &artifact, false);
    let e = load_precompiled(&p).unwrap_err().to_string();
    assert!(e.contains("there is no digest list"), "{e}");
    // A list that does not hold its digest.
    std::fs::write(&p.list, format!("{}  other.cwasm\n", "0".repeat(64))).unwrap();
    let e = load_precompiled(&p).unwrap_err();
    assert!(matches!(e, PluginError::UntrustedArtifact { .. }), "{e}");
    assert!(e.to_string().contains("is not in"), "{e}");
}

#[test]
fn a_precompiled_form_changed_after_listing_is_refused() {
    let f = fixture();
    let bytes = hook("(call $proceed)");
    let mut artifact = native_artifact(&f, &bytes);
    let p = precompiled_plugin(&bytes, &artifact, true);
    let last = artifact.len() - 1;
    artifact[last] ^= 1;
    std::fs::write(&p.artifact, &artifact).unwrap();
    let e = load_precompiled(&p).unwrap_err().to_string();
    assert!(e.contains("changed after its digest was listed"), "{e}");
}

#[test]
fn a_precompiled_form_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let bytes = hook("(call $proceed)");
    let p = precompiled_plugin(&bytes, &native_artifact(&f, &bytes), true);
    std::fs::set_permissions(&p.artifact, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = load_precompiled(&p).unwrap_err().to_string();
    assert!(e.contains("writable by other users"), "{e}");
    std::fs::set_permissions(&p.artifact, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(p.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = load_precompiled(&p).unwrap_err().to_string();
    assert!(
        e.contains("its folder") && e.contains("writable by other users"),
        "{e}"
    );
    std::fs::set_permissions(p.dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn a_truncated_precompiled_form_is_refused_before_loading() {
    let f = fixture();
    let bytes = hook("(call $proceed)");
    let artifact = native_artifact(&f, &bytes);
    let p = precompiled_plugin(&bytes, &artifact[..artifact.len() / 2], true);
    let e = load_precompiled(&p).unwrap_err();
    assert!(matches!(e, PluginError::IncompatibleArtifact { .. }), "{e}");
}

#[test]
fn a_precompiled_form_for_another_cpu_is_refused_by_name() {
    let f = fixture();
    let bytes = hook("(call $proceed)");
    let other = if cfg!(target_arch = "x86_64") {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    };
    let artifact = f.host.precompile(&bytes, Some(other)).unwrap();
    let p = precompiled_plugin(&bytes, &artifact, true);
    let e = load_precompiled(&p).unwrap_err();
    assert!(matches!(e, PluginError::IncompatibleArtifact { .. }), "{e}");
    let arch = other.split('-').next().unwrap();
    assert!(
        e.to_string()
            .contains(&format!("compiled for architecture '{arch}'")),
        "{e}"
    );
}

#[test]
fn thirty_two_bit_arm_gets_pulley_bytecode_which_a_64_bit_host_refuses() {
    let f = fixture();
    let bytes = hook("(call $proceed)");
    let artifact = f
        .host
        .precompile(&bytes, Some("armv7-unknown-linux-gnueabihf"))
        .unwrap();
    let p = precompiled_plugin(&bytes, &artifact, true);
    let e = load_precompiled(&p).unwrap_err();
    assert!(matches!(e, PluginError::IncompatibleArtifact { .. }), "{e}");
    assert!(e.to_string().contains("'pulley32'"), "{e}");
}

#[test]
fn a_precompiled_form_for_other_engine_settings_is_refused() {
    let bytes = hook("(call $proceed)");
    // The same wasmtime and CPU, but without epoch interruption (so no timeouts).
    let mut other = wasmtime::Config::new();
    other.wasm_component_model(true).epoch_interruption(false);
    let artifact = wasmtime::Engine::new(&other)
        .unwrap()
        .precompile_component(&bytes)
        .unwrap();
    let p = precompiled_plugin(&bytes, &artifact, true);
    let e = load_precompiled(&p).unwrap_err();
    assert!(matches!(e, PluginError::IncompatibleArtifact { .. }), "{e}");
}

#[test]
fn plugin_names_that_use_one_file_share_its_component() {
    let f = fixture();
    let bytes = hook("(call $proceed)");
    let p = precompiled_plugin(&bytes, &native_artifact(&f, &bytes), true);
    let mut host = PluginHost::new(&f.cache).unwrap();
    host.trust_digest_list(&p.list).unwrap();
    host.load("one", &PluginConfig::new(&p.wasm)).unwrap();
    host.load("two", &PluginConfig::new(&p.wasm)).unwrap();
    assert_eq!(host.rt.loaded_components(), 1);
}
