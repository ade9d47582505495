#!/usr/bin/env bash
# The growth benchmark (scripts/growth.py): reads and start-up with a little data and with a
# lot, side by side. Builds the release binary first.
#
#   scripts/growth.sh                         embedded: 1,000,000 users, 77,000 indicated
#   scripts/growth.sh --users 20000 --indicated 2000 --mongodb-url mongodb://host:port/growth
#                                             MongoDB, at a size the test server holds
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
python3 scripts/growth.py --binary target/release/referral-api "$@"
