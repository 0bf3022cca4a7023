#!/usr/bin/env bash
# Builds {{name}}.wasm from app.py with componentize-py (the version in requirements.txt):
# CPython and the plugin, in one component. Takes about 20 s.
set -euo pipefail
cd "$(dirname "$0")"
want="$(sed -n 's/^componentize-py==//p' requirements.txt)"
have="$(componentize-py --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$have" != "$want" ]; then
    echo "this plugin needs componentize-py $want (found: ${have:-none}); install it with:" >&2
    echo "  pip install -r requirements.txt" >&2
    exit 2
fi
componentize-py --wit-path wit --world {{world}} componentize app --output {{name}}.wasm >/dev/null
echo "built {{name}}.wasm ($(stat -c %s {{name}}.wasm) bytes)"
