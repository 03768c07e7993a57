#!/usr/bin/env bash
# Side by side in CI: a fresh Django reference (shared/reference/django, its serve.sh) and a fresh
# Agora (SQLite in a temporary folder, the reference's signing key, no throttles: the reference
# has none), each on a free port, then `compare.py` between them; exits with compare.py's status
# (0: nothing differs). Used by `.ci/run` (about 20 s). REFERENCE overrides where the reference is.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
reference="${REFERENCE:-$root/../../shared/reference/django}"
[ -d "$reference" ] || reference=/work/shared/reference/django
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}
secret=peer-django-insecure-fixed-secret-key-for-side-by-side-runs
(cd "$root" && cargo build --quiet --bin agora)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dir="$(mktemp -d)"
django_port=$(free_port)
agora_port=$(free_port)
django="" agora=""
stop() {
  for pid in $agora $django; do kill "$pid" 2>/dev/null || true; done
  for pid in $agora $django; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap stop EXIT

env -u DATABASE_URL -u REDIS_URL "$reference/serve.sh" "$django_port" >"$dir/django.log" 2>&1 &
django=$!
env -u DATABASE_URL -u REDIS_URL AGORA_DATA_DIR="$dir/agora" AGORA_BIND="127.0.0.1:$agora_port" AGORA_LOG=warn \
  AGORA_SECRET_KEY="$secret" AGORA_AUTH_RATE_PER_MINUTE=0 AGORA_MESSAGES_PER_SECOND=0 AGORA_SIGNIN_FREE_FAILURES=0 \
  "$CARGO_TARGET_DIR/debug/agora" serve >"$dir/agora.log" 2>&1 &
agora=$!

for _ in $(seq 1 300); do
  grep -q '^READY' "$dir/django.log" && curl -sf "http://127.0.0.1:$agora_port/healthz" >/dev/null && break
  kill -0 "$django" 2>/dev/null || { cat "$dir/django.log"; exit 1; }
  kill -0 "$agora" 2>/dev/null || { cat "$dir/agora.log"; exit 1; }
  sleep 0.2
done

status=0
"$reference/.venv/bin/python" "$here/compare.py" --secret "$secret" \
  --a "http://127.0.0.1:$django_port" --b "http://127.0.0.1:$agora_port" --ws-quiet 0.5 >"$dir/compare.log" || status=$?
# The tally; on a failure, everything but the checks that are the same.
if [ "$status" -eq 0 ]; then tail -n 1 "$dir/compare.log"; else grep -v '^SAME ' "$dir/compare.log" || true; fi
exit "$status"
