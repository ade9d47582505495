#!/usr/bin/env bash
# Checks the running service against its own API description, as a third-party client built
# from /openapi.json would: starts the release binary on a fresh embedded store and runs
# schemathesis (installed into .venv-contract/ if missing) with an admin token. Fails on any
# server error, any response outside its documented status codes, schema or content type, and
# on any operation whose generated requests the service mostly rejects (a request schema looser
# than the validation).
#
#   scripts/api-contract.sh            build if needed, run
#   REFERRAL_API_BIN=path scripts/api-contract.sh   use that binary
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-contract
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "== installing schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5'
fi

bin=${REFERRAL_API_BIN:-target/release/referral-api}
if [ -z "${REFERRAL_API_BIN:-}" ]; then
  cargo build --release --quiet
fi

work=$(mktemp -d -t api-contract.XXXXXX)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export DATA_DIR="$work/data" LISTEN_ADDR="127.0.0.1:$port" RATE_LIMIT_ACCOUNT=0 RATE_LIMIT_IP=0 \
       JWT_SECRET="contract-$(python3 -c 'import secrets; print(secrets.token_hex(24))')" \
       LOG_FORMAT=json RUST_LOG=warn
unset DATABASE_URL
# The codes of the API description's examples exist, so that its examples reach the redemption
# itself (imported before the service starts: one process owns the embedded file at a time).
printf 'email,firstName,lastName,referralCode\nalbert@example.com,Albert,,ALBE-MQ-X\nland@example.com,Land,,REFERLAND09283\n' \
  >"$work/referrers.csv"
"$bin" import-referrers "$work/referrers.csv" >/dev/null
"$bin" >"$work/service.log" 2>&1 &
pid=$!
# The service's log is kept in target/ for a failed run to be read.
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; mkdir -p target; cp "$work/service.log" target/api-contract-service.log 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/service.log" >&2; exit 1; }
  sleep 0.1
done
token=$("$bin" token --sub contract --role admin --email contract-admin@example.com --ttl 2h)

# Data for the generated requests to find (the configuration below offers these values half the
# time): a program, users (cy indicated by ana, its credit acquired; dy and ed in a reviewed
# program, in review), a referrer and its code.
api() { curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
base="http://127.0.0.1:$port"
CONTRACT_PROGRAM=$(api "$base/program/" -d '{"name": "Contract", "credit_value": 10, "target_value": 100}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
api "$base/users/" -d '{"user_hashes": ["ana", "bo"]}' >/dev/null
api "$base/register/" -d '{"user_indicator": "ana", "user_indicated": "cy"}' >/dev/null
REVIEWED=$(api "$base/program/" -d '{"name": "Reviewed", "target_value": 100, "review": "all", "clawback_days": 14}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for hash in dy ed; do
  api "$base/register/" -d "{\"user_indicator\": \"ana\", \"user_indicated\": \"$hash\", \"referral_program_id\": \"$REVIEWED\"}" >/dev/null
done
for hash in cy dy ed; do
  api -X PUT "$base/invoice/user/$hash/" -d '{"total_amount_paid": 100}' >/dev/null
done
email=contract@example.com
CONTRACT_CODE=$(api "$base/api/referrer/external/register" -d "{\"email\": \"$email\", \"firstName\": \"Con\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["referralCode"])')
CONTRACT_EMAIL64=$(printf %s "$email" | base64)

cat >"$work/schemathesis.toml" <<TOML
# Every request carries the admin token minted above.
headers = { Authorization = "Bearer $token" }

# An operation whose generated requests the service mostly refuses as invalid fails the run: its
# documented request schema would be looser than the validation.
[warnings]
fail-on = ["validation_mismatch"]

# Half the time, a field that names stored data gets data stored above, so that requests also
# reach the paths behind the look-ups.
[dictionaries.hashes]
values = ["ana", "bo", "cy"]

[dictionaries.indicated]
values = ["cy", "dy", "ed"]

[dictionaries.programs]
values = ["$CONTRACT_PROGRAM"]

[dictionaries.codes]
values = ["$CONTRACT_CODE"]

[dictionaries.emails64]
values = ["$CONTRACT_EMAIL64"]

# On apply, a code of the right form that names no referrer is 422 (the seed's answer, kept by
# the contract), which reads as a refused request: the coverage phase, whose boundary values
# never name a stored code, cannot tell it from a schema that is too loose. The examples and
# the fuzzing phase (with stored codes) exercise apply.
[[operations]]
include-name = "POST /api/referee/apply"
phases.coverage.enabled = false

[parameters]
"path.user_hash" = { dictionary = "indicated", probability = 0.5 }
"path.id" = { dictionary = "programs", probability = 0.5 }
"path.referralCode" = { dictionary = "codes", probability = 0.5 }
"path.encodeEmail" = { dictionary = "emails64", probability = 0.5 }
"query.referrerCode" = { dictionary = "codes", probability = 0.5 }
"query.user_hash" = { dictionary = "hashes", probability = 0.5 }
"body.referralCode" = { dictionary = "codes", probability = 0.5 }
"body.promoCode" = { dictionary = "codes", probability = 0.5 }
"body.user_indicator" = { dictionary = "hashes", probability = 0.5 }
"body.referral_program_id" = { dictionary = "programs", probability = 0.5 }
TOML

# One worker: CPython 3.11's AST constructor keeps its recursion depth in state shared between
# threads (python/cpython#106905), and hypothesis parses lambdas' source while it generates, so two
# workers fail now and then with "AST constructor recursion depth mismatch".
echo "== schemathesis against http://127.0.0.1:$port/openapi.json"
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "http://127.0.0.1:$port/openapi.json" \
  --url "http://127.0.0.1:$port" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples "${CONTRACT_MAX_EXAMPLES:-100}" \
  --seed "${CONTRACT_SEED:-1}" \
  --workers 1 \
  "$@"
