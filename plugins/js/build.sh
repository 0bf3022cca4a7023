#!/usr/bin/env bash
# Builds the JavaScript plugins into components with componentize-js (pinned in package.json,
# installed into plugins/js/node_modules by `npm ci`): plugins/target/js/<name>.wasm. A plugin
# is rebuilt only when its source, the WIT file, this script or the componentize-js version
# changed (a build takes about 20 s).
# Exit status 2: the toolchain is missing; the message says what to install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$here/../../wit/v0.1"
out="$here/../target/js"
cjs="$here/node_modules/.bin/componentize-js"
want="$(node -p 'require(process.argv[1]).devDependencies["@bytecodealliance/componentize-js"]' "$here/package.json" 2>/dev/null || true)"

if ! command -v node >/dev/null; then
    echo "the JavaScript plugins need Node.js 18 or newer and npm; install them with:" >&2
    echo "  apt-get install nodejs npm" >&2
    exit 2
fi
have="$(node -p 'require(process.argv[1]).version' "$here/node_modules/@bytecodealliance/componentize-js/package.json" 2>/dev/null || true)"
if [ ! -x "$cjs" ] || [ "$have" != "$want" ]; then
    echo "the JavaScript plugins need componentize-js $want in plugins/js/node_modules (found: ${have:-none}); install it with:" >&2
    echo "  npm ci --prefix $here" >&2
    exit 2
fi

mkdir -p "$out"
# build NAME WORLD: plugins/js/NAME/NAME.js -> plugins/target/js/NAME.wasm
build() {
    local name=$1 world=$2 src="$here/$1/$1.js" wasm="$out/$1.wasm" stamp="$out/$1.stamp"
    local key
    key="componentize-js $want $world $(cat "$src" "$wit/plugin.wit" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
    if [ -f "$wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
        return
    fi
    echo "componentize-js: $name ($world)" >&2
    # No wasi:http: a plugin reaches the network only through the engine's allow-listed probe.
    node "$cjs" "$src" --wit "$wit" --world-name "$world" --disable http fetch-event \
        --out "$wasm.tmp" >/dev/null
    mv "$wasm.tmp" "$wasm"
    echo "$key" > "$stamp"
}

build http-body check
build go-no-go hook
