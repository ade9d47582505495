#!/usr/bin/env bash
# Measures `referral-api import-users` on a generated users.txt and reports users per second.
#
#   scripts/bench-import.sh [USERS]            embedded store (a fresh temporary DATA_DIR)
#   BENCH_MONGODB_URL=mongodb://host:27017 scripts/bench-import.sh [USERS]
#                                              also MongoDB (a fresh database on that server)
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-10000}
cargo build --release --quiet
bin=target/release/referral-api
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$users" >"$work/users.txt" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"user-{i:07d}|Name {i}|user{i}@example.com")
PY

measure() { # label, then env assignments
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  env -i PATH="$PATH" "$@" "$bin" import-users "$work/users.txt" >"$work/out.txt"
  end=$(date +%s.%N)
  python3 - "$label" "$users" "$start" "$end" "$(cat "$work/out.txt")" <<'PY'
import sys
label, users, start, end, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
secs = end - start
print(f"{label:10} {users} users in {secs:.2f} s = {users / secs:,.0f} users/s   ({out})")
PY
}

measure embedded DATA_DIR="$work/data"
measure "embedded²" DATA_DIR="$work/data"   # the same file again: idempotent, nothing written
if [ -n "${BENCH_MONGODB_URL:-}" ]; then
  db="bench_$(date +%s)"
  url="${BENCH_MONGODB_URL%/}/$db"
  measure mongodb DATABASE_URL="$url" JWT_SECRET="bench-only-secret-bench-only-secret-0123"
fi
