"""Second half of make-corpus.sh: derives per-target seeds from the files it made in WORK."""

import json
import sys
import tarfile
from pathlib import Path

work, corpus = Path(sys.argv[1]), Path(sys.argv[2])


def put(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    (corpus / target / name).write_bytes(data)


def members(bundle):
    with tarfile.open(work / bundle) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def header(name, size):
    """A ustar header with a right checksum, for a size no real entry has."""
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.USTAR_FORMAT)


full = (work / "full.airlock").read_bytes()
full_parts = members("full.airlock")
multi_parts = members("multi.airlock")

# bundle_reader: cut short, a flipped chunk byte, an entry claiming 1 GiB, a wrong first entry.
put("bundle_reader", "truncated-head", full[:1700])
put("bundle_reader", "truncated-payload", full[: len(full) - 1500])
flipped = bytearray(full)
at = full.index(b"payloads/rootfs\0")  # the header of the payload entry: its data follows
flipped[at + 512 + 20] ^= 0xFF
put("bundle_reader", "bad-chunk", bytes(flipped))
manifest = json.loads(full_parts["manifest.json"])
manifest["plugins"][0]["size"] = 128 * 1024 * 1024
mbytes = json.dumps(manifest).encode()
sig = full_parts["manifest.sig"]
pad = lambda b: b + b"\0" * (-len(b) % 512)
put("bundle_reader", "huge-plugin",
    header("manifest.json", len(mbytes)) + pad(mbytes)
    + header("manifest.sig", len(sig)) + pad(sig)
    + header("plugins/health.wasm", 128 * 1024 * 1024) + b"\0asm")
put("bundle_reader", "wrong-first-entry", header("manifest.sig", 2) + pad(b"{}") + b"\0" * 1024)
put("bundle_reader", "empty", b"")

# manifest: the real ones, and a few that must be refused.
put("manifest", "full.json", full_parts["manifest.json"])
put("manifest", "multi.json", multi_parts["manifest.json"])
m = dict(manifest, format=2)
put("manifest", "future-format.json", json.dumps(m))
m = json.loads(full_parts["manifest.json"])
m["payloads"][0]["chunks"] = 1 << 40
put("manifest", "absurd-chunks.json", json.dumps(m))
m = json.loads(full_parts["manifest.json"])
m["payloads"][1]["name"] = "../etc"
m["requires"] = ["encrypted-payloads"]
put("manifest", "bad-name-requires.json", json.dumps(m))
put("manifest", "not-json", b'{"format": 1, "name": ')

# chunk_index: the real indexes followed by their stored chunks.
for name, parts in (("full", full_parts), ("multi", multi_parts)):
    put("chunk_index", name + "-rootfs", parts["payloads/rootfs.idx"] + parts["payloads/rootfs"])
put("chunk_index", "full-app", full_parts["payloads/app.idx"] + full_parts["payloads/app"])

# grub_env: grub-editenv's blocks (copied by the shell script), and broken ones.
block = (corpus / "grub_env" / "grub-editenv").read_bytes()
put("grub_env", "truncated", block[:600])
put("grub_env", "no-signature", b"#" * 1024)
put("grub_env", "unterminated-var", block[:-8] + b"x=yyyyyy")
put("grub_env", "junk-in-padding", block[:-4] + b"\x00abc")

# uboot_env: mode byte (see the target), then the image. fw_setenv wrote both at offset 0.
single = (work / "single.img").read_bytes()[:0x1000]
redundant = (work / "redundant.img").read_bytes()[:0x2000]
put("uboot_env", "single", b"\x00" + single)
put("uboot_env", "redundant", b"\x02" + redundant)
put("uboot_env", "single-fix-crc", b"\x04" + single)
put("uboot_env", "redundant-bad-crc", b"\x02" + bytes([redundant[0] ^ 1]) + redundant[1:])
small = bytearray(single[:64])
small[60:] = b"abc="  # no terminator, no closing empty entry
put("uboot_env", "unterminated-fix-crc", b"\x04" + bytes(small))
put("uboot_env", "fw_env.config", b"\x01" + (work / "fw_env.config").read_bytes())
put("uboot_env", "fw_env-redundant.config",
    b"\x01# device offset size\n" + (work / "fw_env_redundant.config").read_bytes())
put("uboot_env", "fw_env-bad.config", b"\x01/dev/mtd0 -0x2000 0x10000 0x1000 2\n/x 010 zz\n")
