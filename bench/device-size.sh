#!/usr/bin/env bash
# The device binary's stripped size, and what each setting of [profile.device] saves: the
# device build (scripts/build-device) beside variants that put one setting back to the release
# profile's value, the full build (with Cranelift) in the same profile, and the peer updaters'
# binaries as Debian ships them (when installed: apt-get install rauc swupdate mender-client).
# Every variant is a release build of its own (minutes each the first time); `bench/run.sh
# device` runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
[[ $target_dir = /* ]] || target_dir=$PWD/$target_dir

row() { printf "  %-66s %6.2f MB\n" "$1" "$(awk -v b="$(stat -L -c %s "$2")" 'BEGIN { print b / 1e6 }')"; }

# variant PROFILE DESCRIPTION FEATURES [SETTING…]: a profile that inherits [profile.device] with
# SETTINGs (key=value) changed, built with FEATURES.
variant() {
  local name=$1 description=$2 features=$3
  shift 3
  local args=(--config "profile.$name.inherits=\"device\"")
  for setting in "$@"; do args+=(--config "profile.$name.$setting"); done
  cargo build -q -p airlock --bin airlock --no-default-features --features "$features" \
    --profile "$name" --target "$host" "${args[@]}"
  row "$description" "$target_dir/$host/$name/airlock"
}

echo "== device binary: stripped sizes ($host) =="
device=$(scripts/build-device "$host" | sed -n 's/: .*//p')
row "device build: opt-level \"s\", fat LTO, 1 codegen unit, panic abort" "$device"
variant size-opt3 "  with opt-level = 3 instead of \"s\"" device 'opt-level=3'
variant size-optz "  with opt-level = \"z\" instead of \"s\"" device 'opt-level="z"'
variant size-thin "  with thin LTO and 4 codegen units instead of fat and 1" device \
  'lto="thin"' 'codegen-units=4'
variant size-unwind "  with panic = \"unwind\" instead of \"abort\"" device 'panic="unwind"'
variant size-full "full build (with the Cranelift compiler), same profile" compiler
echo "peer updaters, stripped, as Debian ships them:"
for peer in rauc swupdate mender; do
  if path=$(command -v "$peer"); then
    row "$peer ($(dpkg -S "$(readlink -f "$path")" 2>/dev/null | cut -d: -f1 | head -1))" "$path"
  fi
done
