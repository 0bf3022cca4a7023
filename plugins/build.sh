#!/usr/bin/env bash
# Builds plugins to WebAssembly components and prints where the .wasm files are.
#
#   plugins/build.sh                 the Rust plugins (cargo, wasm32-wasip2, release)
#   plugins/build.sh all             Rust, Python, JavaScript and C
#   plugins/build.sh python js c     those languages only (any of rust python js c)
#
# Other arguments go to cargo (e.g. `plugins/build.sh -p http-health`). Idempotent: only what
# changed is rebuilt, so a second run takes a second or two. Each language's own script
# (python/build.sh, js/build.sh, c/build.sh) says what to install when its toolchain is
# missing, and exits 2.
set -euo pipefail
shopt -s nullglob

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target=wasm32-wasip2

langs=()
while [ $# -gt 0 ]; do
    case "$1" in
        rust | python | js | c) langs+=("$1") ;;
        all) langs+=(rust python js c) ;;
        *) break ;;
    esac
    shift
done
[ ${#langs[@]} -gt 0 ] || langs=(rust)

list() { # list DIR: the components in DIR with their sizes
    echo "plugins in $1:"
    for wasm in "$1"/*.wasm; do
        case "$wasm" in *.core.wasm) continue ;; esac
        printf '  %-28s %8d bytes\n' "$(basename "$wasm")" "$(stat -c %s "$wasm")"
    done
}

for lang in "${langs[@]}"; do
    case "$lang" in
        rust)
            if ! rustup target list --installed | grep -qx "$target"; then
                rustup target add "$target"
            fi
            # Its own target dir whatever CARGO_TARGET_DIR says: the tests and docs look here.
            cargo build --manifest-path "$here/Cargo.toml" --target-dir "$here/target" --target "$target" --release --quiet "$@"
            list "$here/target/$target/release"
            ;;
        *)
            "$here/$lang/build.sh"
            list "$here/target/$lang"
            ;;
    esac
done
