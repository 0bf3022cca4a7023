#!/usr/bin/env bash
# Delta installs against the usual binary-delta tools, on three realistic image pairs:
#   package   an ext4 image (mkfs.ext4 -d, files from this machine) where one package-sized
#             directory changed (every file in it rewritten, as a new version of a package)
#   files-1%  the same image with 1% of its files changed (a few bytes each, spread out)
#   insert    the first image with 10 MiB inserted 1 MiB from the start
# For each pair, in one run: the full bundle's size, the bytes `airlock install` really fetched
# over loopback HTTP on a simulated device running v1 (and what `airlock bundle diff` predicted),
# and the sizes of `xdelta3 -e`, `bsdiff` and `zstd --patch-from` deltas of the same two images.
#
#   bench/delta.sh [OUT_DIR]      (bench/run.sh delta calls it; needs the release binaries)
#   DELTA_PAIRS="files insert"    runs only those pairs (bsdiff takes minutes per pair)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-$root/bench/out}/delta
mkdir -p "$out"
airlock=$root/target/release/airlock
serve=$root/target/release/airlock-serve

need=()
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v xdelta3 >/dev/null || need+=(xdelta3)
command -v bsdiff >/dev/null || need+=(bsdiff)
command -v zstd >/dev/null || need+=(zstd)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "the delta benchmark needs: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

# The image content: Python packages, locale sources and Perl modules from this machine.
tree=$out/tree-v1
if [ ! -d "$tree" ]; then
  mkdir -p "$tree/usr/lib" "$tree/usr/share"
  cp -a /usr/lib/python3/dist-packages "$tree/usr/lib/" 2>/dev/null || true
  cp -a /usr/share/i18n /usr/share/perl5 "$tree/usr/share/" 2>/dev/null || true
fi
size_mib=$(( ($(du -sm "$tree" | cut -f1) * 3 / 2 + 15) / 16 * 16 ))

# A reproducible ext4 image of a tree: fixed UUID, hash seed and timestamps, as a build system
# that makes reproducible images would.
mkimage() { # mkimage TREE FILE
  rm -f "$2"
  E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -d "$1" -U 6f7c2b4e-1d0a-4c53-9e2a-0b8f3f2d1a11 \
    -E hash_seed=0b8f3f2d-1a11-4c53-9e2a-6f7c2b4e1d0a,root_owner=0:0 -T default "$2" "${size_mib}M" >/dev/null
}

# Variants of the tree, changed deterministically.
vary() { # vary MODE FROM TO
  rm -rf "$3"; cp -a "$2" "$3"
  python3 - "$1" "$3" <<'PY'
import os, random, sys
mode, top = sys.argv[1], sys.argv[2]
rng = random.Random(7)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs
               if os.path.isfile(os.path.join(d, f)) and not os.path.islink(os.path.join(d, f)))
if mode == "package":
    # The largest directory of 2..8 MiB directly under dist-packages: one package, new version.
    base = os.path.join(top, "usr/lib/dist-packages")
    def size(p):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p) for f in fs
                   if not os.path.islink(os.path.join(d, f)))
    dirs = [os.path.join(base, d) for d in sorted(os.listdir(base)) if os.path.isdir(os.path.join(base, d))]
    sized = sorted((size(d), d) for d in dirs)
    pick = max((s, d) for s, d in sized if 2 << 20 <= s <= 8 << 20)[1]
    changed = [f for f in files if f.startswith(pick + "/")]
    for f in changed:
        n = os.path.getsize(f)
        with open(f, "wb") as out:
            out.write(rng.randbytes(n + n // 20))
    print(f"package: rewrote {len(changed)} files in {os.path.relpath(pick, top)}", file=sys.stderr)
elif mode == "files":
    changed = files[::100]
    for f in changed:
        data = bytearray(open(f, "rb").read())
        for _ in range(3):
            if data:
                data[rng.randrange(len(data))] ^= 0x5a
        data += b"# changed\n"
        open(f, "wb").write(data)
    print(f"files-1%: changed {len(changed)} of {len(files)} files", file=sys.stderr)
PY
}

bundle() { # bundle IMAGE VERSION OUT
  cat > "$out/bundle.toml" <<TOML
name = "bench-os"
version = "$2"
compatible = ["bench-device"]
[[payload]]
name = "rootfs"
file = "$1"
slot = "rootfs"
TOML
  "$airlock" bundle create "$out/bundle.toml" --key "$out/release.key" -o "$3" >/dev/null
}

[ -f "$out/release.key" ] || "$airlock" key generate --out "$out/release" >/dev/null
mkimage "$tree" "$out/v1.img"
vary package "$tree" "$out/tree-package"; mkimage "$out/tree-package" "$out/package.img"
vary files "$tree" "$out/tree-files"; mkimage "$out/tree-files" "$out/files.img"
{ head -c 1048576 "$out/v1.img"; python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(11).randbytes(10<<20))'; tail -c +1048577 "$out/v1.img"; } > "$out/insert.img"
bundle "$out/v1.img" 1.0.0 "$out/v1.airlock"

rm -f "$out/.serve.url"
"$serve" "$out" > "$out/.serve.url" 2>"$out/.serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q http "$out/.serve.url" 2>/dev/null && break; sleep 0.1; done
base_url=$(head -n1 "$out/.serve.url"); base_url=${base_url%/}

kib() { awk -v b="$1" 'BEGIN{printf "%.0f", b/1024}'; }
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

echo "== delta: ${size_mib} MiB ext4 images of $(du -sm "$tree" | cut -f1) MiB of files from this machine =="
printf "  %-9s %11s %15s %13s %11s %11s %13s %9s\n" pair "bundle KiB" "airlock fetched" "(predicted)" "reused KiB" "xdelta3 -e" "bsdiff" "zstd --patch-from"
for pair in ${DELTA_PAIRS:-package files insert}; do
  bundle "$out/$pair.img" 2.0.0 "$out/$pair.airlock"
  # A simulated device running v1, committed.
  rm -rf "$out/dev"
  "$airlock" sim init "$out/dev" --key "$out/release.pub" --device-type bench-device --slot-size "$(( size_mib + 16 ))MiB" >/dev/null
  "$airlock" --config "$out/dev/airlock.toml" install "$out/v1.airlock" >/dev/null 2>&1
  "$airlock" sim reboot "$out/dev" >/dev/null
  predicted=$("$airlock" bundle diff "$out/v1.airlock" "$out/$pair.airlock" --json | json_field download)
  report=$("$airlock" --config "$out/dev/airlock.toml" install --json "$base_url/$pair.airlock" 2>"$out/.install.log") \
    || { cat "$out/.install.log" >&2; exit 1; }
  fetched=$(json_field fetched_bytes <<<"$report")
  reused=$(json_field reused_bytes <<<"$report")
  cmp -n "$(stat -c %s "$out/$pair.img")" "$out/$pair.img" "$out/dev/slots/rootfs.a" >/dev/null \
    || { echo "slot a does not hold $pair.img after the install" >&2; exit 1; }
  xdelta3 -e -f -s "$out/v1.img" "$out/$pair.img" "$out/$pair.xd3"
  bsdiff "$out/v1.img" "$out/$pair.img" "$out/$pair.bsdiff"
  zstd -q -f --patch-from="$out/v1.img" "$out/$pair.img" -o "$out/$pair.zst-patch" 2>/dev/null
  printf "  %-9s %11s %15s %13s %11s %11s %13s %9s\n" "$pair" \
    "$(kib "$(stat -c %s "$out/$pair.airlock")")" "$(kib "$fetched")" "($(kib "$predicted"))" "$(kib "$reused")" \
    "$(kib "$(stat -c %s "$out/$pair.xd3")")" "$(kib "$(stat -c %s "$out/$pair.bsdiff")")" \
    "$(kib "$(stat -c %s "$out/$pair.zst-patch")")"
done
echo "  (all in KiB; airlock fetched = what the server sent: head, framing and the missing chunks;"
echo "   the peers' deltas are per version pair and need the exact old image, airlock's works from any)"
