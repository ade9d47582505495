#!/usr/bin/env bash
# Runs a command with TEST_MONGODB_URL pointing at a MongoDB-compatible server.
#
# Without TEST_MONGODB_URL, installs SecantusDB (a MongoDB wire-protocol server) into
# .venv-test/ if missing, starts it on a free port with in-memory storage, runs the command, and
# stops it whatever the outcome. With TEST_MONGODB_URL set, uses that server instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${TEST_MONGODB_URL:-}" ]; then
  venv=.venv-test
  if [ ! -x "$venv/bin/secantusd-py" ]; then
    echo "== installing SecantusDB into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check secantusdb
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  log=$(mktemp -t secantusdb.XXXXXX.log)
  "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path :memory: >"$log" 2>&1 &
  db_pid=$!
  trap 'kill "$db_pid" 2>/dev/null || true; wait "$db_pid" 2>/dev/null || true; rm -f "$log"' EXIT
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$db_pid" 2>/dev/null; then
      echo "SecantusDB did not start:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  export TEST_MONGODB_URL="mongodb://127.0.0.1:$port"
  echo "== SecantusDB on $TEST_MONGODB_URL"
fi

"$@"
