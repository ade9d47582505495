#!/usr/bin/env bash
# The request benchmark: builds the release binary, installs wrk (Debian's package) if missing,
# starts the service on loopback and drives each route at 64 and 256 connections (see
# scripts/bench.py). Prints a Markdown table and writes it to target/bench/latest.md, to be
# pasted into BENCHMARKS.md.
#
#   scripts/bench.sh                                  embedded store
#   BENCH_MONGODB_URL=mongodb://host:port scripts/bench.sh   and MongoDB (a database per run)
#   BENCH_SECONDS=10 scripts/bench.sh                 longer rows (default 5 s)
#   scripts/bench.sh --only register                  the floor and the matching routes
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  echo "== installing wrk"
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else sudo apt-get install -y wrk >/dev/null; fi
fi
echo "== building the release binary"
cargo build --release --quiet
mkdir -p target/bench
args=(--binary target/release/referral-api --seconds "${BENCH_SECONDS:-5}" --output target/bench/latest.md)
if [ -n "${BENCH_MONGODB_URL:-}" ]; then
  args+=(--mongodb-url "$BENCH_MONGODB_URL")
fi
python3 scripts/bench.py "${args[@]}" "$@"
