#!/usr/bin/env bash
# Builds the C plugins into components: plugins/target/c/<name>.wasm.
#
#   1. tool/ (airlock-c-tool, built once with cargo into plugins/target/host) writes the C
#      bindings of each world from wit/v0.1;
#   2. clang compiles the plugin and its bindings for wasm32-wasi against wasi-libc, as a
#      reactor (a library the engine calls into, no main);
#   3. airlock-c-tool wraps that core module into a component, with the WASI preview1 reactor
#      adapter.
#
# Needs clang and wasm-ld (lld), wasi-libc and clang's wasm32 builtins (Debian: clang lld
# wasi-libc libclang-rt-N-dev-wasm32), and cargo. WASI_SYSROOT overrides where wasi-libc is
# (default: clang's own search path, which finds Debian's). CC overrides the compiler.
# Exit status 2: the toolchain is missing; the message says what to install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$here/../../wit/v0.1"
out="$here/../target/c"
mkdir -p "$out"

missing() {
    echo "the C plugins need $1; install it with:" >&2
    echo "  $2" >&2
    exit 2
}

cc="${CC:-}"
if [ -z "$cc" ]; then
    for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
        if command -v "$c" >/dev/null; then cc=$c; break; fi
    done
fi
[ -n "$cc" ] || missing "clang" "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"
major="$("$cc" -dumpversion | cut -d. -f1)"
pkgs="clang lld wasi-libc libclang-rt-$major-dev-wasm32"
command -v cargo >/dev/null || missing "cargo (Rust)" "rustup (https://rustup.rs)"

cflags=(--target=wasm32-wasi -O2 -Wall -Wextra)
[ -n "${WASI_SYSROOT:-}" ] && cflags+=("--sysroot=$WASI_SYSROOT")

# A clang that lacks a piece fails here, with a message naming the Debian package.
probe="$out/.probe"
mkdir -p "$probe"
printf '#include <stdio.h>\nint plugin_probe(void) { return puts("") ; }\n' > "$probe/probe.c"
if ! "$cc" "${cflags[@]}" -mexec-model=reactor "$probe/probe.c" -o "$probe/probe.wasm" 2> "$probe/err"; then
    if grep -q "stdio.h" "$probe/err"; then
        missing "wasi-libc (the C library for wasm32-wasi)" "apt-get install $pkgs"
    elif grep -q "libclang_rt.builtins" "$probe/err"; then
        missing "clang's wasm32 builtins" "apt-get install libclang-rt-$major-dev-wasm32"
    elif grep -qi "wasm-ld" "$probe/err"; then
        missing "wasm-ld (lld)" "apt-get install lld"
    else
        cat "$probe/err" >&2
        missing "a clang that targets wasm32-wasi" "apt-get install $pkgs"
    fi
fi

cargo build --quiet --release --manifest-path "$here/tool/Cargo.toml" --target-dir "$here/../target/host"
tool="$here/../target/host/release/airlock-c-tool"

# build NAME WORLD: plugins/c/NAME/NAME.c -> plugins/target/c/NAME.wasm
build() {
    local name=$1 world=$2 src="$here/$1/$1.c" wasm="$out/$1.wasm" gen="$out/gen/$2"
    "$tool" bindings "$wit" "$world" "$gen"
    "$cc" "${cflags[@]}" -I"$gen" "$src" -o "$out/$name.o" -c
    # The generated code is not ours to lint.
    "$cc" "${cflags[@]}" -Wno-unused-parameter -I"$gen" "$gen/$world.c" -o "$out/$world.o" -c
    "$cc" "${cflags[@]}" -mexec-model=reactor -Wl,--strip-debug "$out/$name.o" "$out/$world.o" \
        "$gen/${world}_component_type.o" -o "$out/$name.core.wasm"
    "$tool" component "$out/$name.core.wasm" "$wasm"
}

build http-status check
build battery hook
