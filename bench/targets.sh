#!/usr/bin/env bash
# What a plugin costs on each device target: three first-party plugins, precompiled by the full
# build for each target as an image build would, loaded and called by the device build of that
# target through a digest list. x86_64 runs natively and under qemu-x86_64 (what emulation alone
# costs), aarch64 (native code) under qemu-aarch64, armv7 (Pulley bytecode, wasmtime's
# interpreter) under qemu-arm, all in the same run. Emulation skews absolute times, so the figures
# that carry over to a board are ratios: armv7 Pulley against aarch64 native, both emulated.
# Run by `bench/run.sh targets`.
#
#   bench/targets.sh FULL_AIRLOCK OUT_DIR
#
# Per plugin and runtime: load (check the digest, map, link), first call, warm call (median of
# further calls in the same process, a fresh instance each), peak RSS of the process (under
# qemu-user it includes the emulator's own).
set -euo pipefail
full=$1 out=$(realpath -m "$2")
root=$(cd "$(dirname "$0")/.." && pwd)
host=$(rustc -vV | sed -n 's/^host: //p')
[ "$host" = x86_64-unknown-linux-gnu ] || { echo "targets: compares against x86_64; this machine is $host" >&2; exit 2; }
w=$out/targets
rm -rf "$w" && mkdir -p "$w/BAT0"
echo 80 > "$w/BAT0/capacity"; echo Discharging > "$w/BAT0/status"

"$root/plugins/build.sh" rust python c >/dev/null 2>&1
triples=("$host" aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
p=$root/plugins/target
# name|component|calls|arguments of `airlock plugin run` that make it approve
cases=(
  "Rust check (always-pass)|$p/wasm32-wasip2/release/always_pass.wasm|201|"
  "C hook (battery)|$p/c/battery.wasm|201|--dir $w/BAT0:/battery"
  "Python hook (version-policy)|$p/python/version-policy.wasm|21|"
)
# label|the command that runs that device build
runtimes=()
for triple in "${triples[@]}"; do
  runner=$("$root/scripts/device-runner" "$triple")
  case "$triple" in
    "$host")
      runtimes+=("x86_64 native|$runner" "x86_64 under qemu-x86_64|qemu-x86_64 $runner") ;;
    armv7-*) runtimes+=("armv7 Pulley, under qemu-arm|$runner") ;;
    *) runtimes+=("aarch64 native, under qemu-aarch64|$runner") ;;
  esac
done
command -v qemu-x86_64 >/dev/null || { echo "targets: needs qemu-x86_64 (apt-get install qemu-user)" >&2; exit 1; }

for c in "${cases[@]}"; do
  IFS='|' read -r _ wasm _ _ <<<"$c"
  cp "$wasm" "$w/"
  for triple in "${triples[@]}"; do
    "$full" plugin compile "$w/$(basename "$wasm")" --target "$triple" | tail -1 >> "$w/precompiled.sha256"
  done
done

# JSON field of `airlock plugin run --json`
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.1f×", a / b; else print "-" }'; }
echo "== targets: a plugin on each device build, precompiled; times in ms, $(nproc) cores =="
printf "  %-30s %-34s %8s %10s %10s %9s\n" "plugin" "device build" "load" "first call" "warm call" "RSS MiB"
for c in "${cases[@]}"; do
  IFS='|' read -r label wasm calls args <<<"$c"
  component=$w/$(basename "$wasm")
  declare -A warm=()
  for r in "${runtimes[@]}"; do
    IFS='|' read -r how cmd <<<"$r"
    # shellcheck disable=SC2086 # $cmd and $args are lists of words
    json=$(/usr/bin/time -f %M -o "$w/.rss" $cmd plugin run "$component" --digest-list "$w/precompiled.sha256" \
      --json --repeat "$calls" $args)
    [ "$(field approved <<<"$json")" = True ] || { echo "$label did not approve on $how: $json" >&2; exit 1; }
    [ "$(field compiled <<<"$json")" = False ] || { echo "$label: $how compiled instead of loading the precompiled form" >&2; exit 1; }
    warm[$how]=$(field warm_median_ms <<<"$json")
    printf "  %-30s %-34s %8s %10s %10s %9s\n" "$label" "$how" "$(field load_ms <<<"$json")" \
      "$(field first_call_ms <<<"$json")" "${warm[$how]}" "$(awk -v k="$(cat "$w/.rss")" 'BEGIN{printf "%.0f", k/1024}')"
  done
  native=${warm[x86_64 native]}
  emulated=${warm[x86_64 under qemu-x86_64]}
  arm64=${warm[aarch64 native, under qemu-aarch64]}
  pulley=${warm[armv7 Pulley, under qemu-arm]}
  echo "    warm call: qemu-x86_64 / native $(ratio "$emulated" "$native"); aarch64 / x86_64, both emulated $(ratio "$arm64" "$emulated"); armv7 Pulley / aarch64 native, both emulated $(ratio "$pulley" "$arm64")"
  unset warm
done
echo "  load: check the artifact's sha256 against the digest list, map it, link it. warm call: median of"
echo "  the calls after the first, in the same process. Under qemu-user every runtime is slowed by the"
echo "  emulator; the Pulley / native ratio between the two emulated ARM builds is the closest to a board."
