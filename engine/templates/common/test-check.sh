#!/usr/bin/env bash
# Builds the plugin, then runs it through Airlock's sandbox (`airlock plugin run`, the engine a
# device uses) and checks its verdicts. AIRLOCK names the airlock binary (default: on PATH).
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

expect "without a url it fails" "check: fail: config: set url"
expect "a url the operator did not allow fails" "check: fail: GET http://127.0.0.1:9/health:" \
    --config url=http://127.0.0.1:9/health

# A healthy device: serve /health on loopback and allow the plugin that one URL.
command -v python3 >/dev/null || { echo "test.sh needs python3 to serve a health URL" >&2; exit 1; }
www="$(mktemp -d)"
echo ok > "$www/health"
python3 -u -m http.server --bind 127.0.0.1 --directory "$www" 0 > "$www/log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$www"' EXIT
port=
for _ in $(seq 100); do
    port="$(grep -oE 'port [0-9]+' "$www/log" | awk '{print $2}' || true)"
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "the test HTTP server did not start:"; cat "$www/log"; exit 1; }
url="http://127.0.0.1:$port/health"
expect "an allowed url that answers 200 passes" "check: pass" --config "url=$url" --allow-url "$url"
expect "an allowed url that answers 404 fails" "answered status 404" \
    --config "url=$url.missing" --allow-url "$url.missing"

echo "test.sh: $passed passed, $failed failed"
[ "$failed" = 0 ]
