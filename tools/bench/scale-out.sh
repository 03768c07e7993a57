#!/usr/bin/env bash
# Usage: tools/bench/scale-out.sh [agora-bench chat options]
#   tools/bench/scale-out.sh --rates 2000 --seconds 15 --idle 0 --via legacy,graphql
#
# Runs agora-bench's chat scenarios against two Agora processes (release build) that share a
# fresh PostgreSQL database and one Redis bus: the two members of every room hold their sockets
# on different processes and each send goes to its sender's process, so every message reaches
# the other member through Redis. Prints the run as a table. PostgreSQL on
# PGHOST:PGPORT (default 127.0.0.1:5432, user PGUSER=postgres, trust auth): a database
# agora_bench_<pid> is created and dropped at the end. Redis on REDIS_URL (default
# redis://127.0.0.1:6379), with a channel prefix of its own. BENCH_OUT=DIR keeps the JSON run
# there. Nothing is left running. As in compare.sh, the abuse limits are off (one address).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$PWD
source tools/bench/common.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
out=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/agora-bench.XXXXXX")}
mkdir -p "$out"
database=agora_bench_$$

cargo build --quiet --release -p agora -p agora-bench
bench=$CARGO_TARGET_DIR/release/agora-bench

servers=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/agora-scale-out.XXXXXX")
created=""
stop() {
    for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
    servers=()
    [ -z "$created" ] || dropdb --if-exists "$database" || true
    created=""
    rm -rf "$tmp"
}
trap stop EXIT

createdb "$database"
created=1
bases=()
for n in 1 2; do
    port=$(free_port)
    # The first process migrates the fresh database; the second starts once it answers.
    no_migrate=false
    [ "$n" = 1 ] || no_migrate=true
    env "${bench_agora_env[@]}" DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$database" \
        REDIS_URL="$redis" AGORA_REDIS_CHANNEL="bench$$" AGORA_NO_MIGRATE=$no_migrate \
        AGORA_DATA_DIR="$tmp/$n" AGORA_MEDIA_DIR="$tmp/media" AGORA_BIND="127.0.0.1:$port" \
        "$CARGO_TARGET_DIR/release/agora" serve >"$tmp/server$n.log" 2>&1 &
    servers+=($!)
    wait_http "http://127.0.0.1:$port/accounts/api/users/" "$!" || { cat "$tmp/server$n.log" >&2; exit 1; }
    bases+=("http://127.0.0.1:$port")
done

pids=()
for pid in "${servers[@]}"; do pids+=(--pid "$pid"); done
"$bench" chat --base "$(IFS=,; echo "${bases[*]}")" "${pids[@]}" --label "Agora x2 (PostgreSQL + Redis)" \
    --out "$out/scale-out.json" "$@" >/dev/null
for n in 1 2; do
    if grep -E "ERROR|panicked" "$tmp/server$n.log" >/dev/null; then
        echo "scale-out.sh: errors in the log of process $n:" >&2
        grep -E "ERROR|panicked" "$tmp/server$n.log" | head -5 >&2
    fi
done

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores: tools/bench/scale-out.sh $*"
echo
"$bench" table "$out/scale-out.json"
