# shellcheck shell=bash
# tests/bench/e2e_step.sh: sourced by bench.sh and commit_cluster.sh: one
# paced chat step outside figure 1's session, so the single Redis and the
# Redis Cluster are timed the same way (figure 3's cluster lines).

# e2e_step <port> <run dir> <first uid> <first conversation> <clients>
#          <rate> <source address> <results dir>: <clients> WebSocket
# clients of the stack on <port> (tokens signed with <run dir>'s secret),
# 3 s of warm-up then 10 s measured at <rate> messages/s, one chatload
# process; prints its merged line (chatload merge)
e2e_step() {
    local port=$1 run=$2 ub=$3 cb=$4 n=$5 rate=$6 src=$7 res=$8 pid i
    "$LOAD" e2e --system chat --port "$port" --clients "$n" --first 0 \
        --secret "$run/token_secret" --uid-base "$ub" --conv-base "$cb" \
        --rates "$rate" --procs 1 --proc 0 --src "$src" --warmup 3 --measure 10 \
        --drain 3 --max-drain 15 --final-drain 15 --out "$res/e2e-step.res" \
        > "$res/e2e-step.out" 2> "$res/e2e-step.err" &
    pid=$!
    for ((i = 0; i < 600; i++)); do
        grep -q '^ready' "$res/e2e-step.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^ready' "$res/e2e-step.out" 2>/dev/null; then
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        cat "$res/e2e-step.err" >&2
        echo "e2e_step: the clients did not connect" >&2
        return 1
    fi
    sleep 2                             # the presence announcements settle
    kill -USR1 "$pid"
    wait "$pid" || true
    "$LOAD" merge "$(printf 'chat  clients=%s' "$n")" "$res/e2e-step.res" | tail -1
}
