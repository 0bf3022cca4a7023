#!/usr/bin/env bash
# Builds every plugin in this workspace to a WebAssembly component (wasm32-wasip2, release)
# and prints where the .wasm files are. Idempotent: cargo rebuilds only what changed, so a
# second run takes about a second. Extra arguments go to cargo (e.g. `-p http-health`).
set -euo pipefail
shopt -s nullglob

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target=wasm32-wasip2

if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

cargo build --manifest-path "$here/Cargo.toml" --target "$target" --release --quiet "$@"

out="$here/target/$target/release"
echo "plugins in $out:"
for wasm in "$out"/*.wasm; do
    printf '  %-28s %8d bytes\n' "$(basename "$wasm")" "$(stat -c %s "$wasm")"
done
