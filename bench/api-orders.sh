#!/usr/bin/env bash
# Throughput and latency of `GET /api/v1/orders?limit=100` under wrk (Debian package `wrk`).
# Starts a release build of the demo on a throw-away data directory, adds 1,000 orders through the
# CSV import, then runs wrk and prints its latency distribution. Not a test: it prints figures for
# BENCHMARKS.md.
#
# Usage: bench/api-orders.sh [DURATION_SECONDS] [CONNECTIONS]
# MICROFACTORY_BIN=path runs that binary instead of building this checkout (to compare builds).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
connections=${2:-64}
port=18181
token=bench-token-0123456789abcdef
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

binary=${MICROFACTORY_BIN:-target/release/microfactory}
[ -n "${MICROFACTORY_BIN:-}" ] || cargo build --release -q -p cli
data=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
MICROFACTORY_BOOTSTRAP_TOKEN=$token RUST_LOG=warn \
  "$binary" demo --no-sim --listen 127.0.0.1:$port --mqtt-listen 127.0.0.1:$((port + 1)) --data-dir "$data" >/dev/null &
server=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done

csv=$data/orders.csv
{
  echo "number,customer,variant,quantity,due,priority"
  for i in $(seq -w 1 1000); do
    echo "BENCH-$i,Bench Customer $((10#$i % 17)),phone-stand-black,$((10#$i % 90 + 10)),2026-12-$((10#$i % 20 + 10))T18:00:00+08:00,$((10#$i % 5 + 1))"
  done
} >"$csv"
curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: text/csv' --data-binary @"$csv" \
  http://127.0.0.1:$port/api/v1/orders/import >/dev/null
bytes=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/orders?limit=100" | wc -c)
echo "response body: $bytes bytes (100 orders)"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
wrk -t2 -c"$connections" -d"${duration}s" --latency -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/api/v1/orders?limit=100"
