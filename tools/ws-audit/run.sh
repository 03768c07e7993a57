#!/usr/bin/env bash
# Starts a fresh Agora (SQLite in a temporary folder, a free port), runs the protocol audits of
# this folder against it, and stops it. Used by `.ci/run`; needs Node 20 and npm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}
(cd "$here" && npm ci --silent --no-audit --no-fund)
(cd "$root" && cargo build --quiet --bin agora)
dir="$(mktemp -d)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -u DATABASE_URL -u REDIS_URL AGORA_DATA_DIR="$dir" AGORA_BIND="127.0.0.1:$port" AGORA_LOG=warn \
  "$CARGO_TARGET_DIR/debug/agora" serve >"$dir/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$dir/server.log"; exit 1; }
  sleep 0.2
done
AGORA_URL="http://127.0.0.1:$port" node "$here/audit.mjs"
