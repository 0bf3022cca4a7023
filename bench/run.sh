#!/usr/bin/env bash
# Airlock benchmarks, each printed side by side with a baseline measured in the same run.
#
#   bench/run.sh            all sections
#   bench/run.sh bundle     build and verify a bundle of a 256 MiB image
#   bench/run.sh install    install 256 MiB from a file and from loopback HTTP; peak RSS at 256 MiB and 1 GiB
#   bench/run.sh delta      delta installs of three ext4 image pairs vs xdelta3, bsdiff and
#                           zstd --patch-from (bench/delta.sh)
#   bench/run.sh plugin     a trivial check plugin: first call, cached load, warm call, vs /bin/sh
#   bench/run.sh device     the device build's stripped size, what each size setting saves, the
#                           full build's size and the peer updaters' (bench/device-size.sh); an
#                           install with 0, 1 and 11 hooks, device and full build (bench/hooks.sh)
#   bench/run.sh targets    a plugin on each device target, precompiled: x86_64 native and under
#                           qemu-x86_64, aarch64 native code and armv7 Pulley bytecode under
#                           qemu-user (bench/targets.sh)
#   bench/run.sh fleet      the fleet server: device polls per second with SQLite, memory at 10,000
#                           devices (bench/fleet.sh)
#   bench/run.sh plugin-langs  a check and a hook in Rust, Python, JavaScript and C: size, first
#                           call (compile included), cached load, warm call, smallest memory cap
#
# Images come from ../shared/bench/make-image.sh (half random, a quarter zeros, a quarter text),
# copied here as bench/make-image.sh so the figures compare across issues.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${BENCH_DIR:-$root/bench/out}
mkdir -p "$out"
sections=${*:-bundle install delta plugin plugin-langs device targets fleet}

echo "building airlock (release)…" >&2
cargo build --release -q -p airlock -p airlock-testkit
airlock=$root/target/release/airlock

# seconds and peak RSS (KiB) of a command: "secs rss"
measure() { /usr/bin/time -f "%e %M" -o "$out/.time" "$@" >/dev/null 2>"$out/.stderr" || { cat "$out/.stderr" >&2; return 1; }; cat "$out/.time"; }
row() { printf "  %-44s %8s s  %8s MiB/s  %8s MiB peak RSS\n" "$1" "$2" "$(awk -v s="$2" -v m="$4" 'BEGIN{ if (s > 0) printf "%.0f", m / s; else print "-" }')" "$(awk -v k="$3" 'BEGIN{printf "%.1f", k/1024}')"; }

image() { # image FILE MIB
  [ -f "$1" ] && [ "$(stat -c %s "$1")" = $(( $2 * 1048576 )) ] || bash "$root/bench/make-image.sh" "$1" "$2" 1
}

keys() {
  [ -f "$out/release.key" ] || "$airlock" key generate --out "$out/release" >/dev/null
}

bundle_for() { # bundle_for IMAGE BUNDLE
  cat > "$out/bundle.toml" <<TOML
name = "bench-os"
version = "1.0.0"
compatible = ["bench-device"]
[[payload]]
name = "rootfs"
file = "$1"
slot = "rootfs"
TOML
  "$airlock" bundle create "$out/bundle.toml" --key "$out/release.key" -o "$2" >/dev/null
}

if [[ " $sections " == *" bundle "* ]]; then
  image "$out/img256" 256; keys
  echo "== bundle: 256 MiB image, $(nproc) cores =="
  bundle_for "$out/img256" "$out/b256.airlock"
  read -r s m < <(measure "$airlock" bundle create "$out/bundle.toml" --key "$out/release.key" -o "$out/b256.airlock")
  row "airlock bundle create (zstd -3, chunked)" "$s" "$m" 256
  read -r s m < <(measure "$airlock" bundle verify "$out/b256.airlock" --key "$out/release.pub")
  row "airlock bundle verify (sig+index+chunks)" "$s" "$m" 256
  read -r s m < <(measure sha256sum "$out/img256")
  row "baseline: sha256sum image" "$s" "$m" 256
  read -r s m < <(measure zstd -3 -T1 -q -f "$out/img256" -o "$out/img256.zst")
  row "baseline: zstd -3 (1 thread)" "$s" "$m" 256
  read -r s m < <(measure zstd -3 -T0 -q -f "$out/img256" -o "$out/img256.zst")
  row "baseline: zstd -3 (all cores)" "$s" "$m" 256
  echo "  bundle size $(( $(stat -c %s "$out/b256.airlock") / 1048576 )) MiB; zstd -3 file $(( $(stat -c %s "$out/img256.zst") / 1048576 )) MiB"
fi

if [[ " $sections " == *" install "* ]]; then
  image "$out/img256" 256; image "$out/img1024" 1024; keys
  [ -f "$out/b256.airlock" ] || bundle_for "$out/img256" "$out/b256.airlock"
  bundle_for "$out/img1024" "$out/b1024.airlock"
  [ -f "$out/img256.zst" ] || zstd -3 -q -f "$out/img256" -o "$out/img256.zst"
  echo "== install: into a file-backed slot =="
  fresh() { rm -rf "$out/dev"; "$airlock" sim init "$out/dev" --key "$out/release.pub" --device-type bench-device --slot-size 1100MiB >/dev/null; }
  fresh
  read -r s m < <(measure "$airlock" --config "$out/dev/airlock.toml" install "$out/b256.airlock")
  row "airlock install 256 MiB from file" "$s" "$m" 256
  rss256=$m
  fresh
  ( cd "$out" && exec python3 -m http.server --bind 127.0.0.1 0 ) > "$out/.http.log" 2>&1 &
  http=$!
  trap 'kill $http 2>/dev/null || true' EXIT
  for _ in $(seq 50); do port=$(grep -oE 'port [0-9]+' "$out/.http.log" | awk '{print $2}' || true); [ -n "$port" ] && break; sleep 0.1; done
  read -r s m < <(measure "$airlock" --config "$out/dev/airlock.toml" install "http://127.0.0.1:$port/b256.airlock")
  row "airlock install 256 MiB from loopback HTTP" "$s" "$m" 256
  kill $http 2>/dev/null || true
  fresh
  read -r s m < <(measure "$airlock" --config "$out/dev/airlock.toml" install "$out/b1024.airlock")
  row "airlock install 1 GiB from file" "$s" "$m" 1024
  rss1024=$m
  read -r s m < <(measure sh -c "cat '$out/img256' > '$out/dev/slots/rootfs.a' && sync '$out/dev/slots/rootfs.a'")
  row "baseline: cat image > slot (+ sync)" "$s" "$m" 256
  read -r s m < <(measure sha256sum "$out/img256")
  row "baseline: sha256sum image" "$s" "$m" 256
  read -r s m < <(measure zstd -dc "$out/img256.zst")
  row "baseline: zstd -dc image.zst" "$s" "$m" 256
  echo "  peak RSS of the install: $(( rss256 / 1024 )) MiB at 256 MiB, $(( rss1024 / 1024 )) MiB at 1 GiB (must stay flat)"
fi

if [[ " $sections " == *" delta "* ]]; then
  bash "$root/bench/delta.sh" "$out"
fi

if [[ " $sections " == *" fleet "* ]]; then
  bash "$root/bench/fleet.sh"
fi

if [[ " $sections " == *" plugin "* ]]; then
  "$root/plugins/build.sh" >/dev/null
  cargo bench -q -p airlock --bench plugin_call 2>/dev/null
fi

if [[ " $sections " == *" device "* ]]; then
  bash "$root/bench/device-size.sh"
  host=$(rustc -vV | sed -n 's/^host: //p')
  bash "$root/bench/hooks.sh" "$airlock" "${CARGO_TARGET_DIR:-$root/target}/device/$host/airlock" "$out"
fi

if [[ " $sections " == *" targets "* ]]; then
  bash "$root/bench/targets.sh" "$airlock" "$out"
fi

if [[ " $sections " == *" plugin-langs "* ]]; then
  # Needs the plugin toolchains (plugins/toolchains.sh says which are missing).
  "$root/plugins/toolchains.sh" --check >/dev/null
  "$root/plugins/build.sh" all >/dev/null 2>&1
  www="$out/plugin-langs"; rm -rf "$www"; mkdir -p "$www/BAT0"
  echo '{"status": "ok"}' > "$www/health"; echo go > "$www/go"
  echo 80 > "$www/BAT0/capacity"; echo Discharging > "$www/BAT0/status"
  ( exec python3 -u -m http.server --bind 127.0.0.1 --directory "$www" 0 ) > "$out/.http.log" 2>&1 &
  http=$!
  trap 'kill $http 2>/dev/null || true' EXIT
  for _ in $(seq 50); do port=$(grep -oE 'port [0-9]+' "$out/.http.log" | awk '{print $2}' || true); [ -n "$port" ] && break; sleep 0.1; done
  u="http://127.0.0.1:$port"
  p="$root/plugins/target"
  rs="$p/wasm32-wasip2/release"
  # name|component|arguments of `airlock plugin run` that make it approve
  cases=(
    "Rust check (http-health)|$rs/http_health.wasm|--config url=$u/health --allow-url $u/health"
    "Rust hook (maintenance-window)|$rs/maintenance_window.wasm|--config window=00:00-23:59"
    "Python check (health-json)|$p/python/health-json.wasm|--config url=$u/health --allow-url $u/health"
    "Python hook (version-policy)|$p/python/version-policy.wasm|"
    "JavaScript check (http-body)|$p/js/http-body.wasm|--config url=$u/health --allow-url $u/health"
    "JavaScript hook (go-no-go)|$p/js/go-no-go.wasm|--config url=$u/go --allow-url $u/go"
    "C check (http-status)|$p/c/http-status.wasm|--config url=$u/health --allow-url $u/health"
    "C hook (battery)|$p/c/battery.wasm|--dir $www/BAT0:/battery"
  )
  field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
  load_and_call() { python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.1f" % (r["load_ms"] + r["first_call_ms"]))'; }
  # The device build runs each from its precompiled form, made by the full build.
  host=$(rustc -vV | sed -n 's/^host: //p')
  device=$("$root/scripts/build-device" "$host" | sed -n 's/: .*//p')
  pre="$out/plugin-langs-precompiled"; rm -rf "$pre"; mkdir -p "$pre"
  echo "== plugin-langs: airlock plugin run --json (release build, $(nproc) cores); times in ms =="
  printf "  %-34s %10s %12s %12s %10s %10s %12s\n" "plugin" "size KiB" "first call" "cached load" "warm call" "min memory" "device build"
  for c in "${cases[@]}"; do
    IFS='|' read -r label wasm args <<<"$c"
    name=$(basename "$wasm" .wasm)
    cp "$wasm" "$pre/$name.wasm"
    "$airlock" plugin compile "$pre/$name.wasm" --target "$host" | tail -1 >> "$pre/precompiled.sha256"
    # shellcheck disable=SC2086
    on_device=$("$device" plugin run "$pre/$name.wasm" --digest-list "$pre/precompiled.sha256" --json $args)
    [ "$(field approved <<<"$on_device")" = True ] || { echo "$label did not approve on the device build: $on_device" >&2; exit 1; }
    cache="$out/plugin-langs-cache"; rm -rf "$cache"
    # shellcheck disable=SC2086 # $args is a list of arguments
    cold=$("$airlock" plugin run "$wasm" --json --repeat 201 --cache "$cache" $args)
    # shellcheck disable=SC2086
    warm=$("$airlock" plugin run "$wasm" --json --cache "$cache" $args)
    [ "$(field approved <<<"$cold")" = True ] || { echo "$label did not approve: $cold" >&2; exit 1; }
    [ "$(field compiled <<<"$warm")" = False ] || { echo "$label: the second run compiled again" >&2; exit 1; }
    first=$(load_and_call <<<"$cold")
    cached=$(load_and_call <<<"$warm")
    min=-
    for mib in 2 4 8 12 16 24 32 48 64; do
      # shellcheck disable=SC2086
      if "$airlock" plugin run "$wasm" --cache "$cache" --memory "${mib}MiB" $args >/dev/null 2>&1; then min="$mib MiB"; break; fi
    done
    printf "  %-34s %10d %12s %12s %10s %10s %12s\n" "$label" $(( $(stat -c %s "$wasm") / 1024 )) "$first" "$cached" "$(field warm_median_ms <<<"$cold")" "$min" "$(load_and_call <<<"$on_device")"
  done
  kill $http 2>/dev/null || true
  echo "  first call: a new process, empty cache: load + compile + one call. cached load: a new process"
  echo "  finding the component in the compile cache, + one call. warm call: median of 200 further calls"
  echo "  in the first process (a fresh instance each). min memory: the smallest --memory that passes."
  echo "  device build: a new process of the device build (scripts/build-device) loading the precompiled"
  echo "  form the full build made (airlock plugin compile --target), vouched for by a digest list, + one call."
fi
