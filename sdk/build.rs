//! Embeds the WIT contract (`wit/v0.1/plugin.wit`) in a macro as a string literal.
//!
//! The export macros (`export_hook!`, …) run `wit_bindgen::generate!` in the *plugin's* crate
//! for the plugin's one world, so the component type that world describes (its exports) is
//! linked into that plugin only. `generate!` reads files relative to the crate that invokes it,
//! which would be the plugin's crate, so the SDK hands it the WIT text inline instead.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let wit = manifest_dir.join("../wit/v0.1/plugin.wit");
    println!("cargo::rerun-if-changed={}", wit.display());
    let text = fs::read_to_string(&wit)
        .unwrap_or_else(|e| panic!("reading the plugin interface {}: {e}", wit.display()));

    // A raw string literal with enough `#`s that the text cannot end it.
    let mut hashes = String::from("#");
    while text.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("plugin_wit.rs");
    let code = format!(
        "/// Calls `__export_world!` with the text of `wit/v0.1/plugin.wit` as its first token.\n\
         #[doc(hidden)]\n\
         #[macro_export]\n\
         macro_rules! __with_plugin_wit {{\n    \
             ($($args:tt)*) => {{ $crate::__export_world! {{ r{hashes}\"{text}\"{hashes} $($args)* }} }};\n\
         }}\n"
    );
    fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
