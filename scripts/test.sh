#!/usr/bin/env bash
# Runs the whole test suite on both storage backends (see scripts/with-test-mongodb.sh for the
# MongoDB server it starts unless TEST_MONGODB_URL is set). Extra arguments go to `cargo test`
# (for example a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/with-test-mongodb.sh cargo test --all-targets "$@"
