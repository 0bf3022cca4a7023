#!/usr/bin/env bash
# The toolchains of the Python, JavaScript and C plugins, from the package registries:
#
#   Python      componentize-py, the version in python/requirements.txt     (PyPI)
#   JavaScript  componentize-js, the version in js/package.json, in js/node_modules (npm)
#   C           clang, lld, wasi-libc and clang's wasm32 builtins            (Debian)
#
#   plugins/toolchains.sh            as root: installs what is missing; otherwise prints the
#                                    commands that would and exits 1
#   plugins/toolchains.sh --check    only says what is missing (exit 1 if anything is)
#
# The Rust plugins need only rustup's wasm32-wasip2 target (plugins/build.sh adds it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
check_only=false
[ "${1:-}" = "--check" ] && check_only=true

py_want="$(sed -n 's/^componentize-py==//p' "$here/python/requirements.txt")"
js_want="$(sed -n 's/.*"@bytecodealliance\/componentize-js": *"\([^"]*\)".*/\1/p' "$here/js/package.json")"

steps=() # commands to run, in order
apt=()   # Debian packages to install first

py_have="$(componentize-py --version 2>/dev/null | awk '{print $2}' || true)"
[ "$py_have" = "$py_want" ] || steps+=("python3 -m pip install --quiet -r $here/python/requirements.txt")

command -v npm >/dev/null || apt+=(nodejs npm)
js_have="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
    "$here/js/node_modules/@bytecodealliance/componentize-js/package.json" 2>/dev/null | head -1 || true)"
[ "$js_have" = "$js_want" ] || steps+=("npm ci --prefix $here/js --no-audit --no-fund --loglevel=error")

# clang and wasm-ld, wasi-libc's headers, clang's wasm32 builtins (named after clang's version).
command -v clang >/dev/null || apt+=(clang)
command -v wasm-ld >/dev/null || apt+=(lld)
[ -f /usr/include/wasm32-wasi/stdio.h ] || [ -n "${WASI_SYSROOT:-}" ] || apt+=(wasi-libc)
builtins_missing=true
compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null && builtins_missing=false
if $builtins_missing; then
    if command -v clang >/dev/null; then
        apt+=("libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev-wasm32")
    else
        # Installed after clang, once its version is known.
        steps+=('apt-get install -y -qq "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev-wasm32"')
    fi
fi
[ ${#apt[@]} -eq 0 ] || steps=("apt-get update -qq" "apt-get install -y -qq ${apt[*]}" "${steps[@]}")

if [ ${#steps[@]} -eq 0 ]; then
    echo "plugin toolchains: componentize-py $py_want, componentize-js $js_want, clang $(clang -dumpversion) with wasi-libc"
    exit 0
fi
if $check_only || [ "$(id -u)" != 0 ]; then
    echo "the Python, JavaScript and C plugins need toolchains that are missing; install them with:" >&2
    for step in "${steps[@]}"; do
        case "$step" in apt-get*) echo "  sudo $step" >&2 ;; *) echo "  $step" >&2 ;; esac
    done
    exit 1
fi
for step in "${steps[@]}"; do
    echo "installing plugin toolchains: $step"
    DEBIAN_FRONTEND=noninteractive bash -c "$step" >/dev/null
done
