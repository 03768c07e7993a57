#!/usr/bin/env bash
# Usage: tools/bench/compare.sh [http|chat] [agora-bench options]
#   tools/bench/compare.sh http --seconds 10 --clients 32 --only posts,profile
#   tools/bench/compare.sh chat --rates 400,2000,4000 --seconds 15 --idle 1000
#
# Runs agora-bench's scenarios (REST/GraphQL by default, or the chat ones) against the Django
# reference (2 uvicorn workers, Redis channel layer, fresh SQLite) and then against Agora
# (release build, one process, fresh SQLite), one after the other on this machine, and prints
# one table with the ratios. BENCH_SERVERS="agora" (or "django") runs one only; BENCH_OUT=DIR
# keeps the JSON runs there. Needs Redis on 127.0.0.1:6379 for the reference. Nothing is left
# running. Agora runs without the limits meant for abuse (sign-in throttle, messages per user
# per second, sockets and connections per address): the load comes from one address.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# `--idle 20000` needs that many descriptors in the server and in agora-bench (both inherit this).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
repo=$PWD
source tools/bench/common.sh
kind=http
case ${1:-} in http | chat) kind=$1; shift ;; esac
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
servers=${BENCH_SERVERS:-django agora}
out=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/agora-bench.XXXXXX")}
mkdir -p "$out"
django_ref=${DJANGO_REFERENCE:-$repo/../../shared/reference/django}
[ -d "$django_ref" ] || django_ref=/work/shared/reference/django

cargo build --quiet --release -p agora -p agora-bench
bench=$CARGO_TARGET_DIR/release/agora-bench

server=""
tmp=""
stop() {
    if [ -n "$server" ]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=""
    fi
    [ -z "$tmp" ] || rm -rf "$tmp"
    tmp=""
}
trap stop EXIT

runs=()
for which in $servers; do
    port=$(free_port)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/agora-bench-$which.XXXXXX")
    case $which in
    django)
        "$django_ref/setup.sh"
        JWT_ACCESS_SECONDS=3600 REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0} \
            "$django_ref/serve.sh" "$port" 2 >"$tmp/server.log" 2>&1 &
        server=$!
        label=Django
        ;;
    agora)
        env "${bench_agora_env[@]}" DATABASE_URL="sqlite://$tmp/agora.sqlite3?mode=rwc" \
            AGORA_DATA_DIR="$tmp" AGORA_MEDIA_DIR="$tmp/media" AGORA_BIND="127.0.0.1:$port" \
            "$CARGO_TARGET_DIR/release/agora" serve >"$tmp/server.log" 2>&1 &
        server=$!
        label=Agora
        ;;
    *) echo "compare.sh: unknown server $which" >&2; exit 2 ;;
    esac
    wait_http "http://127.0.0.1:$port/accounts/api/users/" "$server" || { cat "$tmp/server.log" >&2; exit 1; }
    "$bench" "$kind" --base "http://127.0.0.1:$port" --pid "$server" --label "$label" --out "$out/$which.json" "$@" >/dev/null
    runs+=("$out/$which.json")
    stop
done

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores: tools/bench/compare.sh $kind $*"
echo
"$bench" table "${runs[@]}"
