//! The plugins built from `plugins/` are components of the right world: they export exactly
//! their world's functions and import no `airlock:plugin` interface their world lacks.
//!
//! This guards the SDK's export macros (each world's component type must be linked into its
//! plugin alone). It reads what `plugins/build.sh` produced and says so when there is nothing
//! to read; set `AIRLOCK_PLUGINS_DIR` to read another directory.

use std::collections::BTreeSet;
use std::path::PathBuf;

use wasmparser::{Encoding, Parser, Payload};

/// A world's shape: its exports, and the `airlock:plugin` interfaces it imports.
type Shape = (&'static [&'static str], &'static [&'static str]);

const HOOK: Shape = (&["run"], &["types", "log", "config", "progress", "probes"]);
const CHECK: Shape = (&["check"], &["types", "log", "config", "probes"]);
const INSTALLER: Shape = (
    &["install", "commit", "rollback"],
    &["types", "log", "config", "progress", "probes", "payload"],
);

const PLUGINS: &[(&str, Shape)] = &[
    ("always_pass", CHECK),
    ("http_health", CHECK),
    ("systemd_unit", CHECK),
    ("disk_space", HOOK),
    ("maintenance_window", HOOK),
    ("archive_installer", INSTALLER),
    ("hostile_trap", CHECK),
    ("hostile_loop_forever", HOOK),
    ("hostile_oom", CHECK),
    ("hostile_stack_overflow", CHECK),
    ("hostile_flood_output", CHECK),
    ("hostile_forbidden_url", CHECK),
    ("hostile_forbidden_dir", CHECK),
];

/// The top-level imports and exports of a component.
fn externs(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("a valid WebAssembly binary") {
            Payload::Version { encoding, .. } => {
                if depth == 0 {
                    assert_eq!(
                        encoding,
                        Encoding::Component,
                        "a component, not a core module"
                    );
                }
                depth += 1;
            }
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    imports.push(import.unwrap().name.name.to_string());
                }
            }
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    exports.push(export.unwrap().name.name.to_string());
                }
            }
            _ => {}
        }
    }
    (imports, exports)
}

#[test]
fn built_plugins_are_components_of_their_world() {
    let dir = std::env::var_os("AIRLOCK_PLUGINS_DIR").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../plugins/target/wasm32-wasip2/release")
        },
        PathBuf::from,
    );
    if !dir.is_dir() {
        eprintln!(
            "no plugins built in {}: run plugins/build.sh to check them",
            dir.display()
        );
        return;
    }
    for (name, (world_exports, world_imports)) in PLUGINS {
        let path = dir.join(format!("{name}.wasm"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (imports, exports) = externs(&bytes);

        let exports: BTreeSet<&str> = exports.iter().map(String::as_str).collect();
        let expected: BTreeSet<&str> = world_exports.iter().copied().collect();
        assert_eq!(exports, expected, "{name} exports");

        for import in &imports {
            if let Some(rest) = import.strip_prefix("airlock:plugin/") {
                let (interface, version) = rest.split_once('@').expect("a versioned import");
                assert_eq!(version, "0.1.0", "{name} imports {import}");
                assert!(
                    world_imports.contains(&interface),
                    "{name} imports {import}, which its world does not"
                );
            }
        }
        assert!(
            imports.iter().any(|i| i == "airlock:plugin/types@0.1.0"),
            "{name} uses the shared types: {imports:?}"
        );
    }
}
