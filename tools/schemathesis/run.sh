#!/usr/bin/env bash
# Property-based tests of the legacy REST API against its own `/openapi.json` (schemathesis):
# starts a fresh Agora (SQLite in a temporary folder, a free port), signs a user up so that the
# endpoints behind a token are reached, runs a bounded number of examples per operation (fixed
# seed), and stops the server. Used by `.ci/run`; needs python3 (venv) and PyPI.
#   AGORA_PROFILE=release   test the release build (default: debug)
#   SCHEMATHESIS_EXAMPLES=N examples per operation and phase (default 20)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}
profile="${AGORA_PROFILE:-debug}"

# The pinned tools, in a virtualenv kept between runs while the requirements do not change.
venv="${SCHEMATHESIS_VENV:-$HOME/.cache/agora-schemathesis}"
if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi

if [ "$profile" = release ]; then
  (cd "$root" && cargo build --quiet --release --bin agora)
else
  (cd "$root" && cargo build --quiet --bin agora)
fi
dir="$(mktemp -d)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
env -u DATABASE_URL -u REDIS_URL AGORA_DATA_DIR="$dir" AGORA_BIND="127.0.0.1:$port" AGORA_LOG=warn \
  AGORA_ACCESS_TOKEN_LIFETIME=3600 \
  "$CARGO_TARGET_DIR/$profile/agora" serve >"$dir/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do
  curl -sf "$base/healthz" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$dir/server.log"; exit 1; }
  sleep 0.2
done

# A user to call the endpoints that need a token (and a second one to open a room with).
for name in schemathesis recipient; do
  curl -sf -H 'Content-Type: application/json' -d "{\"username\":\"$name\",\"email\":\"$name@example.com\",\"password\":\"a long passphrase 1\"}" \
    "$base/accounts/api/users/" >/dev/null
done
access=$(curl -sf -H 'Content-Type: application/json' -d '{"username":"schemathesis","password":"a long passphrase 1"}' \
  "$base/accounts/api/token/" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access"])')
# Their room, `recipient_schemathesis` (schemathesis.toml names it for the room paths).
curl -sf -H "Authorization: Bearer $access" -H 'Content-Type: application/json' -d '{"recipient":"recipient"}' \
  "$base/messenger/api/chatrooms/" >/dev/null

status=0
# One worker: hypothesis's lambda descriptions (ast.parse) are not thread-safe on CPython 3.11
# ("AST constructor recursion depth mismatch").
(cd "$here" && "$venv/bin/st" run "$base/openapi.json" \
  --header "Authorization: Bearer $access" \
  --checks all \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-20}" \
  --seed 9 \
  --phases examples,coverage,fuzzing \
  --workers 1 \
  --request-timeout 10) \
  || status=$?
if grep -E ' ERROR |panicked' "$dir/server.log"; then
  echo "the server logged errors"; status=1
fi
exit "$status"
