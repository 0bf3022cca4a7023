#!/usr/bin/env bash
# Builds the Python plugins into components with componentize-py (pinned in requirements.txt):
# plugins/target/python/<name>.wasm. A plugin is rebuilt only when its sources, the WIT file,
# this script or the componentize-py version changed (a build takes about 20 s).
# Exit status 2: the toolchain is missing; the message says what to install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$here/../../wit/v0.1"
out="$here/../target/python"
want="$(sed -n 's/^componentize-py==//p' "$here/requirements.txt")"

have="$(componentize-py --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$have" != "$want" ]; then
    echo "the Python plugins need componentize-py $want (found: ${have:-none}); install it with:" >&2
    echo "  pip install -r $here/requirements.txt" >&2
    exit 2
fi

mkdir -p "$out"
# build NAME WORLD: plugins/python/NAME/app.py -> plugins/target/python/NAME.wasm
build() {
    local name=$1 world=$2 src="$here/$1" wasm="$out/$1.wasm" stamp="$out/$1.stamp"
    local key
    key="componentize-py $want $world $(cat "$src"/*.py "$wit/plugin.wit" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
    if [ -f "$wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
        return
    fi
    echo "componentize-py: $name ($world)" >&2
    componentize-py --wit-path "$wit" --world "$world" componentize app \
        --python-path "$src" --output "$wasm.tmp" >/dev/null
    mv "$wasm.tmp" "$wasm"
    echo "$key" > "$stamp"
}

build health-json check
build version-policy hook
