#!/usr/bin/env bash
# Measures callback delivery: events delivered per second to a local receiver that answers 200
# at once (examples/bench_callbacks.rs), and prints one Markdown table row per run.
#
#   scripts/bench-callbacks.sh [EVENTS] [CONCURRENCY]         embedded store
#   BENCH_MONGODB_URL=mongodb://host:27017 scripts/bench-callbacks.sh [EVENTS] [CONCURRENCY]
#                                                             also MongoDB (a fresh database)
#   BENCH_WEBHOOKS=3 scripts/bench-callbacks.sh [EVENTS]     webhook deliveries to 3 endpoints
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-3000}
concurrency=${2:-8}
cargo build --release --quiet --example bench_callbacks
bin=target/release/examples/bench_callbacks
echo "| backend | to | events | CALLBACK_CONCURRENCY | delivered in | deliveries/s | |"
echo "|---|---|---|---|---|---|---|"
"$bin" "$events" "$concurrency"
if [ -n "${BENCH_MONGODB_URL:-}" ]; then
  "$bin" "${BENCH_MONGODB_EVENTS:-500}" "$concurrency" "$BENCH_MONGODB_URL"
fi
