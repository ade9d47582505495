#!/usr/bin/env bash
# Opens the service's /docs in headless Chromium, with no network beyond the service itself,
# and saves a screenshot plus the list of operations the page rendered.
#
#   scripts/docs-screenshot.sh [OUT_DIR]        (default: target/docs-check)
#
# Needs Debian's `chromium` package. Builds and starts the release binary on a free port with a
# temporary DATA_DIR, and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/docs-check}
mkdir -p "$out"
command -v chromium >/dev/null || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 1; }
cargo build --release --quiet
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
data=$(mktemp -d)
LISTEN_ADDR=127.0.0.1:$port DATA_DIR=$data target/release/referral-api >"$out/service.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.2; done

# Every other host resolves nowhere: the page must render from what the binary serves.
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars
       --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
       --virtual-time-budget=10000 --window-size=1280,4000)
chromium "${flags[@]}" --screenshot="$out/docs.png" "http://127.0.0.1:$port/docs/" 2>/dev/null
chromium "${flags[@]}" --dump-dom "http://127.0.0.1:$port/docs/" 2>/dev/null >"$out/docs.html"

expected=$(curl -s "http://127.0.0.1:$port/openapi.json" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
print(sum(1 for item in doc["paths"].values() for m in item if m in ("get","post","put","patch","delete")))')
rendered=$(grep -o 'class="opblock opblock-' "$out/docs.html" | wc -l)
echo "operations in /openapi.json: $expected; rendered by /docs: $rendered; screenshot: $out/docs.png"
[ "$rendered" -eq "$expected" ]
