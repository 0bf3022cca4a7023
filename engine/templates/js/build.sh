#!/usr/bin/env bash
# Builds {{name}}.wasm from {{name}}.js with componentize-js (from package.json, installed into
# node_modules on the first build): a JavaScript engine and the plugin, in one component.
# Takes about 20 s.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "this plugin needs Node.js 18 or newer and npm; install them with: apt-get install nodejs npm" >&2; exit 2; }
[ -x node_modules/.bin/componentize-js ] || npm install --no-audit --no-fund --loglevel=error
# No wasi:http: a plugin reaches the network only through the engine's allow-listed probe.
node node_modules/.bin/componentize-js {{name}}.js --wit wit --world-name {{world}} \
    --disable http fetch-event --out {{name}}.wasm >/dev/null
echo "built {{name}}.wasm ($(stat -c %s {{name}}.wasm) bytes)"
