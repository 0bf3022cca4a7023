#!/usr/bin/env bash
# Builds {{name}}.wasm: cargo for wasm32-wasip2, whose output is already a component.
set -euo pipefail
cd "$(dirname "$0")"
target=wasm32-wasip2
if ! rustup target list --installed | grep -qx "$target"; then
    echo "this plugin needs Rust's $target target; install it with: rustup target add $target" >&2
    exit 2
fi
cargo build --release --target "$target" --quiet
cp "${CARGO_TARGET_DIR:-target}/$target/release/{{crate}}.wasm" {{name}}.wasm
echo "built {{name}}.wasm ($(stat -c %s {{name}}.wasm) bytes)"
