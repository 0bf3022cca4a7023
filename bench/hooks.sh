#!/usr/bin/env bash
# What hooks cost an install: a 1 MiB install on a simulated device with no hook, with one and
# with eleven hooks at one stage (download-enter: plugin names for one precompiled Rust hook,
# maintenance-window, that proceeds); wall time and peak RSS, medians of RUNS (default 11) fresh
# devices each. Two figures, because the first hook of a process pays for things the others share:
#   first hook    = t(1) - t(0): starting the plugin runtime (engine, epoch ticker), checking the
#                   artifact's digest, mapping and linking it, plus one call;
#   per hook      = (t(11) - t(1)) / 10: each further hook at the same stage, i.e. ten more.
# Run by `bench/run.sh device`.
#
#   bench/hooks.sh FULL_AIRLOCK DEVICE_AIRLOCK OUT_DIR
#
# FULL_AIRLOCK precompiles the hook (as an image build would); both binaries then load the same
# precompiled form, so the figures compare the builds, not a compile.
set -euo pipefail
full=$1 device=$2 out=$(realpath -m "$3")
runs=${RUNS:-11}
root=$(cd "$(dirname "$0")/.." && pwd)
host=$(rustc -vV | sed -n 's/^host: //p')
w=$out/hooks
rm -rf "$w" && mkdir -p "$w/plugins"

"$root/plugins/build.sh" >/dev/null
cp "$root/plugins/target/wasm32-wasip2/release/maintenance_window.wasm" "$w/plugins/window.wasm"
"$full" plugin compile "$w/plugins/window.wasm" --target "$host" | tail -1 > "$w/precompiled.sha256"
"$full" key generate --out "$w/release" >/dev/null
head -c 1048576 /dev/urandom > "$w/image"
cat > "$w/bundle.toml" <<TOML
name = "bench-os"
version = "1.0.0"
compatible = ["bench-device"]
[[payload]]
name = "rootfs"
file = "$w/image"
slot = "rootfs"
TOML
"$full" bundle create "$w/bundle.toml" --key "$w/release.key" -o "$w/b.airlock" >/dev/null 2>&1

# install_once BINARY HOOKS: a fresh device with HOOKS hooks at download-enter; prints "secs rss_kib"
install_once() {
  local bin=$1 hooks=$2 dev=$w/dev
  rm -rf "$dev"
  "$full" sim init "$dev" --key "$w/release.pub" --device-type bench-device --slot-size 2MiB >/dev/null
  cp "$w/precompiled.sha256" "$dev/precompiled.sha256"
  local names=()
  for i in $(seq 1 "$hooks"); do
    printf '[plugins.window%d]\npath = "%s"\n[plugins.window%d.config]\nwindow = "00:00-23:59"\n' \
      "$i" "$w/plugins/window.wasm" "$i" >> "$dev/airlock.toml"
    names+=("\"window$i\"")
  done
  if [ "$hooks" -gt 0 ]; then
    printf '[chain]\ndownload-enter = [%s]\n' "$(IFS=,; echo "${names[*]}")" >> "$dev/airlock.toml"
  fi
  local started=$EPOCHREALTIME
  /usr/bin/time -f "%M" -o "$w/.time" "$bin" --config "$dev/airlock.toml" install "$w/b.airlock" >/dev/null 2>"$w/.err" \
    || { cat "$w/.err" >&2; exit 1; }
  echo "$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }') $(cat "$w/.time")"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# measure BINARY HOOKS: "median_secs median_rss_kib"
measure() {
  local results=()
  for _ in $(seq "$runs"); do results+=("$(install_once "$1" "$2")"); done
  printf '%s\n' "${results[@]}" | awk '{ print $1 }' | median | tr '\n' ' '
  printf '%s\n' "${results[@]}" | awk '{ print $2 }' | median
}

echo "== hooks: an install (1 MiB payload) with 0, 1 and 11 precompiled hooks at download-enter, medians of $runs =="
printf "  %-14s %9s %9s %9s %12s %10s %12s\n" "binary" "no hook" "1 hook" "11 hooks" "first hook" "per hook" "11, average"
ms() { awk -v t="$1" 'BEGIN { printf "%.1f ms", t * 1000 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
for pair in "device build|$device" "full build|$full"; do
  IFS='|' read -r label bin <<<"$pair"
  read -r t0 m0 < <(measure "$bin" 0)
  read -r t1 m1 < <(measure "$bin" 1)
  read -r t11 m11 < <(measure "$bin" 11)
  printf "  %-14s %9s %9s %9s %12s %10s %12s   (wall)\n" "$label" "$(ms "$t0")" "$(ms "$t1")" "$(ms "$t11")" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f ms", (b - a) * 1000 }')" \
    "$(awk -v a="$t1" -v b="$t11" 'BEGIN { printf "%.2f ms", (b - a) * 100 }')" \
    "$(awk -v a="$t0" -v b="$t11" 'BEGIN { printf "%.2f ms", (b - a) * 1000 / 11 }')"
  printf "  %-14s %9s %9s %9s   (peak RSS)\n" "" "$(mib "$m0")" "$(mib "$m1")" "$(mib "$m11")"
done
echo "  wall: the whole install process (fork to exit); first hook: 1 hook - none;"
echo "  per hook: (11 hooks - 1 hook) / 10, what each further hook at a stage costs;"
echo "  11, average: (11 hooks - none) / 11, the first hook's share included"
