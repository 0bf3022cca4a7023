//! `airlock-c-tool`: what a C plugin needs besides clang and wasi-libc.
//!
//! ```text
//! airlock-c-tool bindings WIT_DIR WORLD OUT_DIR   C bindings of WORLD: WORLD.h, WORLD.c and
//!                                                 WORLD_component_type.o (link it in)
//! airlock-c-tool component CORE.wasm OUT.wasm      a wasm32-wasi reactor module, linked with
//!                                                 those bindings, as a component
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::wit_parser::Resolve;

const USAGE: &str = "usage: airlock-c-tool bindings WIT_DIR WORLD OUT_DIR\n       \
                     airlock-c-tool component CORE.wasm OUT.wasm";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bindings", wit, world, out] => bindings(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out)),
        _ => Err(anyhow::anyhow!("{USAGE}")),
    };
    if let Err(e) = result {
        eprintln!("airlock-c-tool: {e:#}");
        std::process::exit(1);
    }
}

/// Writes the C bindings of `world` (from the WIT package in `wit`) into `out`.
fn bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("cannot read the WIT package in {}", wit.display()))?;
    let world_id = resolve
        .select_world(&[package], Some(world))
        .with_context(|| format!("{} has no world {world:?}", wit.display()))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world_id, &mut files)
        .context("generating the C bindings")?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Wraps the core module `core` into a component: its imports of `wasi_snapshot_preview1` are
/// served by the reactor adapter (which speaks WASI 0.2), its world comes from the
/// `component-type` section the bindings' object file put in.
fn component(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("cannot read {}", core.display()))?;
    if module.get(..8) != Some(b"\0asm\x01\0\0\0".as_slice()) {
        bail!(
            "{} is not a core WebAssembly module; compile it with clang --target=wasm32-wasi \
             -mexec-model=reactor",
            core.display()
        );
    }
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .context(
            "reading the module's component-type section (did you link WORLD_component_type.o?)",
        )?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .context("loading the WASI preview1 adapter")?
        .validate(true)
        .encode()
        .context("encoding the component")?;
    std::fs::write(out, component).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
