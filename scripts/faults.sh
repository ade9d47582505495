#!/usr/bin/env bash
# Fault drills against the release binary (see scripts/faults.py): the service SIGKILLed under a
# write load on the embedded store (three times), the MongoDB-compatible server SIGKILLed under
# a write load and started again, the embedded store's disk (a small tmpfs, where one can be
# mounted) filled under a write load and freed, and a steady mixed load with a local billing
# receiver on each backend. Each prints sent / acknowledged / found / lost; the script fails if anything
# acknowledged is lost.
#
#   scripts/faults.sh            the full drills (a 60-second steady load per backend)
#   scripts/faults.sh --short    the short version .ci/run runs (10 seconds)
#
# The database server is SecantusDB from PyPI, installed into .venv-test/ as scripts/test.sh does;
# its storage is a directory on disk, so a kill loses only what was not acknowledged.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=3 steady=60
if [ "${1:-}" = "--short" ]; then
  seconds=2 steady=10
fi

venv=.venv-test
if [ ! -x "$venv/bin/secantusd-py" ]; then
  echo "== installing SecantusDB into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check secantusdb
fi

echo "== building the release binary"
cargo build --release --quiet
python3 scripts/faults.py --binary target/release/referral-api \
  --database-server "$venv/bin/secantusd-py" --seconds "$seconds" \
  --steady-seconds "$steady" --rate 5
