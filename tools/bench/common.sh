# Sourced by compare.sh and scale-out.sh: what starting Agora under the load tool takes.

# The settings Agora runs with under load: the abuse limits off (the load comes from one
# address: sign-in throttle, messages per user per second, sockets and connections per address),
# tokens that outlive a run, a fixed signing key, warnings only.
bench_agora_env=(
    AGORA_AUTH_RATE_PER_MINUTE=0 AGORA_ACCESS_TOKEN_LIFETIME=3600 AGORA_SIGNIN_FREE_FAILURES=0
    AGORA_MESSAGES_PER_SECOND=0 AGORA_WS_MAX_PER_CLIENT=0 AGORA_HTTP_MAX_CONNECTIONS_PER_CLIENT=0
    AGORA_LOG=warn AGORA_SECRET_KEY=bench-secret-key-bench-secret-key
)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # URL PID: until the server of PID answers URL (60 s at most)
    for _ in $(seq 1 600); do
        curl -s -o /dev/null "$1" && return 0
        kill -0 "$2" 2>/dev/null || { echo "$(basename "$0"): server exited" >&2; return 1; }
        sleep 0.1
    done
    echo "$(basename "$0"): $1 does not answer" >&2
    return 1
}
