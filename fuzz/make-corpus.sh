#!/usr/bin/env bash
# Regenerates the seed corpus in fuzz/corpus/ (committed; run this only to refresh it).
# Needs: the `airlock` CLI (AIRLOCK=path, default target/debug/airlock), grub-editenv (grub2-common),
# fw_setenv (libubootenv-tool) and python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
airlock=${AIRLOCK:-$here/../target/debug/airlock}
corpus=$here/corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$corpus"/{bundle_reader,chunk_index,manifest,config,grub_env,uboot_env}
cd "$work"

# Bundles: two payloads and a plugin; one byte; three chunks of one payload.
"$airlock" key generate --out release >/dev/null
python3 - <<'PY'
import random
random.seed(1)
open('rootfs.img', 'w').write(''.join(f'line {i}: airlock fuzz seed rootfs\n' for i in range(120)))
open('app.bin', 'wb').write(bytes(random.randrange(256) for _ in range(700)))
open('tiny.img', 'wb').write(b'x')
open('multi.img', 'w').write(''.join(f'{i % 97:02d} airlock {i % 13}\n' for i in range(40000)))
open('health.wasm', 'wb').write(b'\0asm\x01\0\0\0')
PY
cat > full.toml <<'TOML'
name = "acme-os"
version = "1.2.0"
description = "fuzz seed"
compatible = ["acme-gateway-v2"]
expires = "2030-01-01T00:00:00Z"
[[payload]]
name = "rootfs"
file = "rootfs.img"
slot = "rootfs"
[[payload]]
name = "app"
file = "app.bin"
installer = "archive-installer"
compression = "none"
[[plugin]]
name = "health"
file = "health.wasm"
world = "check"
TOML
cat > min.toml <<'TOML'
name = "min"
version = "0.0.1"
compatible = ["dev"]
[[payload]]
name = "p"
file = "tiny.img"
slot = "rootfs"
TOML
cat > multi.toml <<'TOML'
name = "multi"
version = "2.0.0-rc.1"
compatible = ["dev", "dev2"]
[[payload]]
name = "rootfs"
file = "multi.img"
slot = "rootfs"
TOML
for b in full min multi; do
    "$airlock" bundle create --key release.key --level 19 -o "$b.airlock" "$b.toml" >/dev/null 2>&1
done
cp full.airlock min.airlock multi.airlock "$corpus/bundle_reader/"

# Environments made by the real tools.
grub-editenv grubenv create
grub-editenv grubenv set airlock_primary=a airlock_trial=b 'bootcmd=a\b
c'
cp grubenv "$corpus/grub_env/grub-editenv"
grub-editenv empty create
cp empty "$corpus/grub_env/empty"
printf '/x/env.img 0x0 0x1000\n' > fw_env.config
printf '/x/env.img 0x0 0x1000\n/x/env.img 0x1000 0x1000\n' > fw_env_redundant.config
printf 'bootcmd=run distro_bootcmd\nbaudrate=115200\n' > defaults.txt
for kind in single redundant; do
    cfg=fw_env.config; [ $kind = redundant ] && cfg=fw_env_redundant.config
    sed "s|/x/env.img|$work/$kind.img|g" "$cfg" > "$kind.config"
    head -c 8192 /dev/zero > "$kind.img"
    fw_setenv -c "$kind.config" -f defaults.txt >/dev/null
    fw_setenv -c "$kind.config" airlock_primary b >/dev/null
    fw_setenv -c "$kind.config" airlock_trial a >/dev/null
done
# Cut, slice and break them into the per-target seeds.
python3 "$here/make-corpus.py" "$work" "$corpus"
du -sh "$corpus"
