#!/usr/bin/env bash
# The fleet server's device API under load, with its SQLite database (bench/run.sh fleet):
#  - polls per second: a loopback load generator (airlock-ddi-load, in tests/testkit) keeps
#    CONNECTIONS keep-alive connections polling `controller/v1/{id}` as 10,000 registered devices
#    in turn, for SECONDS; the baseline is the same server answering its database-free `/healthz`
#    over the same connections;
#  - memory: the server's resident set when it starts empty, and with 10,000 registered devices
#    that have all polled (VmRSS, and VmHWM: the peak).
#
#   bench/fleet.sh                      # 10,000 devices, 32 connections, 10 s
#   DEVICES=1000 SECONDS_EACH=5 bench/fleet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${BENCH_DIR:-$root/bench/out}/fleet
devices=${DEVICES:-10000}
connections=${CONNECTIONS:-32}
seconds=${SECONDS_EACH:-10}
rm -rf "$out" && mkdir -p "$out"

echo "building airlock-server and the load generator (release)…" >&2
cargo build --release -q -p airlock-server -p airlock-testkit
bin=$root/target/release
# The server only needs the public key uploads are checked against: an ed25519 SPKI PEM.
openssl genpkey -algorithm ed25519 -out "$out/release.key" 2>/dev/null
openssl pkey -in "$out/release.key" -pubout -out "$out/release.pub"

"$bin/airlock-server" serve --data "$out/data" --listen 127.0.0.1:0 --trust-key "$out/release.pub" \
  > "$out/server.out" 2> "$out/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$out/server.out" && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$out/server.out" | head -1)
[ -n "$url" ] || { echo "airlock-server did not start:" >&2; cat "$out/server.log" >&2; exit 1; }

rss() { awk -v k="$1:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$server/status"; }
echo "== fleet server: SQLite, $devices devices, $connections connections, ${seconds} s each, $(nproc) cores =="
printf "  %-52s %8s MiB\n" "server RSS, empty" "$(rss VmRSS)"
"$bin/airlock-ddi-load" "$url" --devices "$devices" --register "$(cat "$out/data/admin-token")" | sed 's/^/  /'
# One pass over every device first, so each has been seen (last_seen written) before measuring.
"$bin/airlock-ddi-load" "$url" --devices "$devices" --connections "$connections" --seconds 3 >/dev/null
printf "  %-52s %s\n" "DDI poll (TargetToken, device lookup, last seen):" \
  "$("$bin/airlock-ddi-load" "$url" --devices "$devices" --connections "$connections" --seconds "$seconds")"
printf "  %-52s %s\n" "baseline: GET /healthz (no database):" \
  "$("$bin/airlock-ddi-load" "$url" --path /healthz --connections "$connections" --seconds "$seconds")"
printf "  %-52s %8s MiB (peak %s MiB)\n" "server RSS with $devices registered devices" "$(rss VmRSS)" "$(rss VmHWM)"
printf "  %-52s %8s MiB\n" "SQLite database on disk" "$(du -sk "$out/data" | awk '{printf "%.1f", $1/1024}')"
