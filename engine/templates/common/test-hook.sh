#!/usr/bin/env bash
# Builds the plugin, then runs it through Airlock's sandbox (`airlock plugin run`, the engine a
# device uses) and checks its verdicts. AIRLOCK names the airlock binary (default: on PATH).
# `airlock plugin run` makes up an update of example-os 1.0.0 to 1.1.0.
set -euo pipefail
cd "$(dirname "$0")"
airlock="${AIRLOCK:-airlock}"
wasm=./{{name}}.wasm
passed=0 failed=0
./build.sh

# expect WHAT TEXT [ARGS…]: `airlock plugin run` with ARGS must print TEXT.
expect() {
    local what=$1 text=$2 out
    shift 2
    out="$("$airlock" plugin run "$wasm" "$@" 2>&1)" || true
    if grep -qF -- "$text" <<<"$out"; then
        echo "ok: $what"
        passed=$((passed + 1))
    else
        printf 'FAILED: %s: expected %q in:\n%s\n' "$what" "$text" "$out"
        failed=$((failed + 1))
    fi
}

expect "an update nobody blocked proceeds" "download-enter: proceed"
expect "a blocked version is vetoed" "download-enter: abort: version 1.1.0 is blocked" \
    --config block=0.9.0,1.1.0
expect "only download-enter vetoes" "commit-enter: proceed" --stage commit-enter \
    --config block=1.1.0

echo "test.sh: $passed passed, $failed failed"
[ "$failed" = 0 ]
