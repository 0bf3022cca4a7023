//! What a component is, read from its import and export sections without compiling it.
//!
//! The world is decided by the component's exports (`run` → hook, `check` → check, `install` →
//! installer), the interface version by what it imports from `airlock:plugin` (every world uses
//! the `types` interface, so every plugin imports at least `airlock:plugin/types@VERSION`).

use wasmtime::wasmparser::{Encoding, Parser, Payload};

use super::{PluginError, World};

/// The package every plugin imports from.
pub const PACKAGE: &str = "airlock:plugin";

/// A component's shape, as `airlock plugin inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The world its exports implement, if any.
    pub world: Option<World>,
    /// The `airlock:plugin` version it imports, if it imports one.
    pub wit_version: Option<String>,
    /// Top-level import names (`airlock:plugin/log@0.1.0`, `wasi:cli/stdout@0.2.3`, …).
    pub imports: Vec<String>,
    /// Top-level export names (`run`, `check`, `install`, …).
    pub exports: Vec<String>,
    /// The component's size in bytes.
    pub size: u64,
}

/// Reads a component's imports and exports. Fails on anything that is not a well-formed
/// component (a core module, a truncated file, two `airlock:plugin` versions at once).
pub fn inspect(bytes: &[u8]) -> Result<PluginInfo, PluginError> {
    inspect_named("(unnamed)", bytes)
}

pub(super) fn inspect_named(name: &str, bytes: &[u8]) -> Result<PluginInfo, PluginError> {
    let invalid = |reason: String| PluginError::Invalid {
        name: name.to_string(),
        reason,
    };
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    // Nested modules and components are parsed inline; only the outermost sections count.
    let mut depth = 0usize;
    let mut seen_header = false;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| invalid(format!("malformed WebAssembly: {e}")))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    return Err(invalid(
                        "it is a core WebAssembly module, not a component; build it for \
                         wasm32-wasip2 or wrap it with `wasm-tools component new`"
                            .into(),
                    ));
                }
                depth += 1;
                seen_header = true;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| invalid(format!("malformed import: {e}")))?;
                    imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| invalid(format!("malformed export: {e}")))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    if !seen_header || depth != 0 {
        return Err(invalid("the component is truncated".into()));
    }

    shape(name, imports, exports, bytes.len() as u64)
}

/// The world and interface version that a component's top-level import and export names say
/// it has: the same decision for a component read from its bytes and for a precompiled one.
pub(super) fn shape(
    name: &str,
    imports: Vec<String>,
    exports: Vec<String>,
    size: u64,
) -> Result<PluginInfo, PluginError> {
    let world = if exports.iter().any(|e| e == "install") {
        Some(World::Installer)
    } else if exports.iter().any(|e| e == "check") {
        Some(World::Check)
    } else if exports.iter().any(|e| e == "run") {
        Some(World::Hook)
    } else {
        None
    };

    let mut versions: Vec<&str> = imports.iter().filter_map(|i| package_version(i)).collect();
    versions.sort_unstable();
    versions.dedup();
    let wit_version = match versions.as_slice() {
        [] => None,
        [one] => Some(one.to_string()),
        many => {
            return Err(PluginError::Invalid {
                name: name.to_string(),
                reason: format!(
                    "it imports several versions of {PACKAGE} at once ({}); rebuild it against \
                     one",
                    many.join(", ")
                ),
            });
        }
    };

    Ok(PluginInfo {
        world,
        wit_version,
        imports,
        exports,
        size,
    })
}

/// `airlock:plugin/log@0.1.0` → `0.1.0`; `None` for other packages. An unversioned import of
/// our package reports as version `unversioned`, which no engine serves.
fn package_version(import: &str) -> Option<&str> {
    let rest = import.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(rest.split_once('@').map_or("unversioned", |(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_versions() {
        assert_eq!(package_version("airlock:plugin/log@0.1.0"), Some("0.1.0"));
        assert_eq!(package_version("airlock:plugin/types"), Some("unversioned"));
        assert_eq!(package_version("airlock:plugins/log@0.1.0"), None);
        assert_eq!(package_version("wasi:cli/stdout@0.2.0"), None);
    }

    #[test]
    fn refuses_core_modules_and_garbage() {
        let module = wat::parse_str("(module)").unwrap();
        let e = inspect(&module).unwrap_err().to_string();
        assert!(e.contains("core WebAssembly module"), "{e}");
        let e = inspect(b"not wasm at all").unwrap_err().to_string();
        assert!(e.contains("malformed"), "{e}");
        let e = inspect(&[]).unwrap_err().to_string();
        assert!(e.contains("truncated") || e.contains("malformed"), "{e}");
    }

    #[test]
    fn an_empty_component_has_no_world() {
        let c = wat::parse_str("(component)").unwrap();
        let info = inspect(&c).unwrap();
        assert_eq!(info.world, None);
        assert_eq!(info.wit_version, None);
        assert_eq!(info.size, c.len() as u64);
    }
}
