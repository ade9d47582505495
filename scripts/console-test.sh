#!/usr/bin/env bash
# The admin console in a real browser (tests/console/main.rs): installs Debian's chromium and
# chromium-driver if they are missing, builds the release binary, and runs the test against it
# on both storage backends. Screenshots go to target/console-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  echo "== installing chromium and chromium-driver"
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
cargo build --release --quiet
exec scripts/with-test-mongodb.sh cargo test --test console -- --nocapture
