#!/usr/bin/env bash
# Starts Agora (debug build, fresh SQLite in a temporary folder) on a free port, runs the
# graphql-http audit against it (audit.mjs), the schema check (schema.mjs: introspection equals
# schema.graphql) and the graphql-sse client check (sse.mjs), stops it. Used by .ci/run; exits
# non-zero when a MUST or SHOULD fails, the schemas differ or an SSE check fails.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --quiet --bin agora)
[ -d node_modules ] || npm ci --silent --no-audit --no-fund
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
env -u DATABASE_URL -u REDIS_URL AGORA_DATA_DIR="$data" AGORA_BIND="127.0.0.1:$port" AGORA_LOG=warn \
  "$target/debug/agora" >"$data/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$data/server.log"; exit 1; }
  sleep 0.1
done
status=0
node audit.mjs "http://127.0.0.1:$port/graphql" || status=1
node schema.mjs "http://127.0.0.1:$port/graphql" "$root/schema.graphql" || status=1
node sse.mjs "http://127.0.0.1:$port/graphql" || status=1
exit $status
