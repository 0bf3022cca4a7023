#!/usr/bin/env bash
# Builds {{name}}.wasm from {{name}}.c:
#   1. tools/airlock-c-tool (built once with cargo) writes the C bindings of wit/plugin.wit;
#   2. clang compiles the plugin and its bindings for wasm32-wasi against wasi-libc, as a
#      reactor (a library the engine calls into, no main);
#   3. airlock-c-tool wraps that module into a component, with the WASI preview1 adapter.
# Needs clang, lld, wasi-libc and clang's wasm32 builtins (Debian: apt-get install clang lld
# wasi-libc libclang-rt-14-dev-wasm32), and cargo. WASI_SYSROOT overrides where wasi-libc is.
set -euo pipefail
cd "$(dirname "$0")"
cc="${CC:-}"
for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
    [ -n "$cc" ] && break
    command -v "$c" >/dev/null && cc=$c
done
[ -n "$cc" ] || { echo "this plugin needs clang; install it with: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2; exit 2; }
command -v cargo >/dev/null || { echo "this plugin needs cargo to build tools/airlock-c-tool; install Rust with rustup" >&2; exit 2; }
major="$("$cc" -dumpversion | cut -d. -f1)"
cflags=(--target=wasm32-wasi -O2 -Wall -Wextra)
[ -n "${WASI_SYSROOT:-}" ] && cflags+=("--sysroot=$WASI_SYSROOT")

cargo build --quiet --release --manifest-path tools/airlock-c-tool/Cargo.toml
tool="${CARGO_TARGET_DIR:-tools/airlock-c-tool/target}/release/airlock-c-tool"
mkdir -p build
"$tool" bindings wit {{world}} build
"$cc" "${cflags[@]}" -Ibuild -c {{name}}.c -o build/{{name}}.o
"$cc" "${cflags[@]}" -Wno-unused-parameter -Ibuild -c build/{{world}}.c -o build/{{world}}.o
if ! "$cc" "${cflags[@]}" -mexec-model=reactor -Wl,--strip-debug build/{{name}}.o \
    build/{{world}}.o build/{{world}}_component_type.o -o build/{{name}}.core.wasm; then
    echo "linking for wasm32-wasi failed; it needs wasm-ld, wasi-libc and clang's wasm32 builtins:" >&2
    echo "  apt-get install lld wasi-libc libclang-rt-$major-dev-wasm32" >&2
    exit 2
fi
"$tool" component build/{{name}}.core.wasm {{name}}.wasm
echo "built {{name}}.wasm ($(stat -c %s {{name}}.wasm) bytes)"
