#!/usr/bin/env bash
# The benchmark: make bench (full) and make bench-quick (quick).
#
#   tests/bench/bench.sh [full|quick|checkout]
#
# checkout runs figure 4 alone (checkouts/s, p99 and the oversell count;
# tests/bench/checkout.sh); full and quick run it too, first.
#
# Installs what it needs, builds chatload, brings up its own side stack
# (STACK=bench, ports 18484/16494/15494, 4 nginx workers of 19,000
# connections) and an nchan nginx beside it (18485), seeds users and 1:1
# conversations straight into PostgreSQL, runs the three figures, prints
# them, and tears everything down.  Figures are printed, never asserted;
# each one is printed beside a reference measured in the same run.  See
# tests/bench/README.md for what each line means.
#
# BENCH_CLIENTS, BENCH_RATES (comma-separated, at most 8), BENCH_IDLE1,
# BENCH_IDLE2, WORKERS (backend processes) and BENCH_KEEP=1 (keep .run/bench)
# change a run; BENCH_CATALOG=0, BENCH_FILES=0 and BENCH_MSGSEARCH=0 leave
# out figures 5, 8 and 9, BENCH_CLUSTER=0 figure 3's Redis Cluster line,
# BENCH_MESSAGES sets figure 9's messages; the ports can be moved with
# BENCH_PORT, BENCH_REDIS_PORT, BENCH_PG_PORT, BENCH_NCHAN_PORT and, for
# the cluster's stack, BENCH_CLUSTER_PORT, BENCH_CLUSTER_REDIS_PORT and
# BENCH_CLUSTER_PG_PORT.  Figures 8 (files) and 9 (message search) run after 5,
# on the same stack; their summaries come after 5's.
#
# The run order is 3, 2, 1 (the commit burst wants a quiet bus, and the
# overloaded steps of figure 1 leave a backlog behind them); the summary at
# the end is in the order 1, 2, 3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/bench
MODE=${1:-full}
cd "$ROOT"

export STACK=bench
export PORT=${BENCH_PORT:-18484} REDIS_PORT=${BENCH_REDIS_PORT:-16494}
export PG_PORT=${BENCH_PG_PORT:-15494}
export PAYMENT_PORT=${BENCH_PAYMENT_PORT:-$((PORT + 10))}
export NGINX_WORKERS=${NGINX_WORKERS:-4} NGINX_CONNECTIONS=${NGINX_CONNECTIONS:-19000}
export WS_PING_INTERVAL=${WS_PING_INTERVAL:-300s} WORKERS=${WORKERS:-2}
NCHAN_PORT=${BENCH_NCHAN_PORT:-18485}
# figure 3's cluster line: a stack of its own (Redis on 12 ports from
# CLUSTER_REDIS_PORT: six nodes and their bus ports)
CLUSTER_PORT=${BENCH_CLUSTER_PORT:-18684} CLUSTER_REDIS_PORT=${BENCH_CLUSTER_REDIS_PORT:-16694}
CLUSTER_PG_PORT=${BENCH_CLUSTER_PG_PORT:-15694}
RUN=$ROOT/.run/bench
RES=$RUN/results
LOAD=$HERE/bin/chatload
PER_PROC=12500          # clients per chatload process (20,000 fds at most)

case "$MODE" in
    full)
        CLIENTS=10000 RATES=100,1000 E2E_PROCS=2
        WARMUP=2 MEASURE=10 DRAIN=3 MAX_DRAIN=15
        CEIL_START=1000 CEIL_PROBES=10 CEIL_WARMUP=2 CEIL_MEASURE=5
        CPU_RATE=1000 CPU_MEASURE=10 SETTLE_S=5
        IDLE1=10000 IDLE2=50000 COMMIT_N=10000 PGBENCH_S=10 FSYNC_N=1000 ;;
    quick)
        CLIENTS=1000 RATES=100,500,1000 E2E_PROCS=2
        WARMUP=1 MEASURE=3 DRAIN=1 MAX_DRAIN=5
        CEIL_START=1000 CEIL_PROBES=6 CEIL_WARMUP=1 CEIL_MEASURE=3
        CPU_RATE=1000 CPU_MEASURE=4 SETTLE_S=2
        IDLE1=1000 IDLE2=4000 COMMIT_N=1000 PGBENCH_S=3 FSYNC_N=200 ;;
    checkout)
        CLIENTS=2 RATES=100 E2E_PROCS=1 WARMUP=1 MEASURE=1 DRAIN=1 MAX_DRAIN=1
        IDLE1=1 IDLE2=1 COMMIT_N=1 PGBENCH_S=1 FSYNC_N=1 ;;
    *)  echo "usage: $0 [full|quick|checkout]" >&2; exit 2 ;;
esac
# for exploring: other client counts and rates (figures 1 and 2)
CLIENTS=${BENCH_CLIENTS:-$CLIENTS} RATES=${BENCH_RATES:-$RATES}
CEIL_START=${BENCH_CEIL_START:-${CEIL_START:-1000}} CEIL_PROBES=${BENCH_CEIL_PROBES:-${CEIL_PROBES:-6}}
CPU_RATE=${BENCH_CPU_RATE:-${CPU_RATE:-1000}}
IDLE1=${BENCH_IDLE1:-$IDLE1} IDLE2=${BENCH_IDLE2:-$IDLE2}
(( CLIENTS > E2E_PROCS * PER_PROC )) && E2E_PROCS=$(( (CLIENTS + PER_PROC - 1) / PER_PROC ))

T0=$(date +%s)
SRC_NEXT=2              # next source address 127.0.0.<n>
GEN_PIDS=()
FAILED=1

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
# out <figure> <line>: keep a result line for the summary, show it now on stderr
out() { printf '%s\n' "$2" >> "$RES/summary.$1"; printf '%s\n' "$2" >&2; }

# ----------------------------------------------------------------- set-up

install_deps() {
    local p missing=() sudo=""
    for p in libnginx-mod-nchan postgresql-contrib redis-tools libhiredis-dev \
             libcjson-dev libssl-dev build-essential curl procps; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq || log "apt-get update failed, trying the cached lists"
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # the package may have started Debian's own nginx; ours run on their own
    $sudo systemctl stop nginx 2>/dev/null || $sudo service nginx stop 2>/dev/null || true
}

stop_clients() {
    local p
    for p in "${GEN_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${GEN_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    GEN_PIDS=()
}

# stop_nginx <pidfile>: fast shutdown (TERM), so open WebSockets never hold it up
stop_nginx() {
    local pid i
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

teardown() {
    set +e
    stop_clients
    stop_nginx "$RUN/nchan/nginx.pid"
    stop_nginx "$RUN/nginx/nginx.pid"
    conf/stack.sh stop >/dev/null 2>&1
    if [ "$FAILED" = 0 ] && [ -z "${BENCH_KEEP:-}" ]; then
        rm -rf "$RUN"
    else
        log "kept $RUN for a look (logs under nginx/, backend/, results/)"
    fi
}

restart_chat_nginx() {
    stop_nginx "$RUN/nginx/nginx.pid"
    conf/stack.sh start > "$RES/stack-restart.log" 2>&1 \
        || { cat "$RES/stack-restart.log" >&2; die "the chat stack did not come back"; }
}

start_nchan() {
    local d=$RUN/nchan user_line=""
    stop_nginx "$d/nginx.pid"
    mkdir -p "$d/tmp"
    [ "$(id -u)" -eq 0 ] && user_line="user root;"
    sed -e "s|@DIR@|$d|g" -e "s|@PORT@|$NCHAN_PORT|g" -e "s|@WORKERS@|$NGINX_WORKERS|g" \
        -e "s|@CONNECTIONS@|$NGINX_CONNECTIONS|g" -e "s|@USER_LINE@|$user_line|g" \
        -e "s|@NOFILE@|$(( NGINX_CONNECTIONS + 100 < 20000 ? NGINX_CONNECTIONS + 100 : 20000 ))|g" \
        "$HERE/nchan.conf.in" > "$d/nginx.conf"
    nginx -q -p "$d" -c "$d/nginx.conf" 2>"$d/start.log" \
        || { cat "$d/start.log" >&2; die "nchan's nginx did not start"; }
    sleep 0.3
}

# seed: one user registered through the API (its scrypt hash is copied to
# every bench user: a bench-only shortcut, see README), then seed_rows
seed() {
    local hash
    curl -fsS -XPOST -H 'content-type: application/json' \
        -d '{"email":"bench-seed@bench.invalid","password":"bench-password-1","display_name":"Bench seed"}' \
        "http://127.0.0.1:$PORT/api/v1/auth/register" >/dev/null || die "could not register the seed user"
    hash=$(psql "$PG" -XtAc "SELECT password_hash FROM users WHERE email = 'bench-seed@bench.invalid'")
    read -r UB CB < <(seed_rows "$PG" "$hash" "$1" "$2")
    [ -n "${CB:-}" ] || die "seeded ids are not contiguous (ran twice on one stack?)"
    log "seeded $1 users from id $UB and $2 conversations from id $CB"
    pg_production_state "$PG"
}

# ---------------------------------------------------------------- clients

# launch <tag> <first> <n> <procs> <mode> <args...>: n clients over procs
# chatload processes, each on its own source address (stdin: /dev/null, or
# $LAUNCH_IN.<process> when set)
launch() {
    local tag=$1 first=$2 n=$3 procs=$4 mode=$5 per cnt p in
    shift 5
    per=$(( n / procs / 2 * 2 ))
    for ((p = 0; p < procs; p++)); do
        cnt=$per
        [ "$p" -eq $((procs - 1)) ] && cnt=$(( n - per * (procs - 1) ))
        in=/dev/null
        [ -n "${LAUNCH_IN:-}" ] && in=$LAUNCH_IN.$p
        "$LOAD" "$mode" --first $((first + p * per)) --clients "$cnt" --proc "$p" \
            --procs "$procs" --src "127.0.0.$SRC_NEXT" --out "$RES/$tag.$p.res" "$@" \
            > "$RES/$tag.$p.out" 2> "$RES/$tag.$p.err" \
            < "$in" &
        GEN_PIDS+=($!)
        # a fresh source address each time, so the ports that earlier
        # clients left in TIME_WAIT never run out
        SRC_NEXT=$(( SRC_NEXT >= 250 ? 2 : SRC_NEXT + 1 ))
    done
}

# wait_ready <tag> <procs> <seconds>: sets OPEN (and prints any failures)
wait_ready() {
    local tag=$1 procs=$2 secs=$3 p i n f
    for ((i = 0; i < secs * 10; i++)); do
        n=$(cat "$RES/$tag".*.out 2>/dev/null | grep -c '^ready' || true)
        [ "$n" -ge "$procs" ] && break
        sleep 0.1
    done
    OPEN=0
    for ((p = 0; p < procs; p++)); do
        f=$RES/$tag.$p.out
        grep -q '^ready' "$f" 2>/dev/null || { cat "$RES/$tag.$p.err" >&2; die "$tag: client process $p never got ready"; }
        OPEN=$(( OPEN + $(sed -n 's/^ready.* open=\([0-9]*\).*/\1/p' "$f") ))
        grep -q 'failed=0 ' "$f" || log "$tag: $(cat "$f")"
    done
}

procs_for() { echo $(( ($1 + PER_PROC - 1) / PER_PROC )); }

# ------------------------------------------------------------- measuring

# "<rss kB> <pss kB>" summed over an nginx master's workers
nginx_mem() {
    local rss=0 pss=0 w
    for w in $(pgrep -P "$(cat "$1")"); do
        rss=$(( rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$w/status") ))
        pss=$(( pss + $(awk '/^Pss:/ {print $2}' "/proc/$w/smaps_rollup") ))
    done
    echo "$rss $pss"
}

# idle_memory <system> <port> <pidfile> <label>
idle_memory() {
    local sys=$1 port=$2 pidfile=$3 label=$4 base m n first procs args open_total=0
    args=(--system "$sys" --port "$port" --hold 300)
    [ "$sys" = chat ] && args+=(--secret "$RUN/token_secret" --uid-base "$UB")
    sleep 1
    read -r -a base < <(nginx_mem "$pidfile")
    first=0
    for n in "$IDLE1" "$IDLE2"; do
        procs=$(procs_for $((n - first)))
        launch "idle-$sys-$n" "$first" $((n - first)) "$procs" idle "${args[@]}"
        wait_ready "idle-$sys-$n" "$procs" 300
        first=$n
        open_total=$((open_total + OPEN))
        sleep 2
        read -r -a m < <(nginx_mem "$pidfile")
        out 2 "$(printf '%-5s idle=%-6s open=%-6s workers_rss=%dMiB (+%dMiB) per_conn_rss=%dB per_conn_pss=%dB' \
            "$label" "$n" "$open_total" $((m[0] / 1024)) $(((m[0] - base[0]) / 1024)) \
            $(((m[0] - base[0]) * 1024 / open_total)) $(((m[1] - base[1]) * 1024 / open_total)))"
    done
    stop_clients
}

# bus_settle <lane> [seconds] (bus.sh)
# shellcheck source=tests/bench/bus.sh
. "$HERE/bus.sh"

# cpu_ticks <component>... and component_pids (cpu.sh)
# shellcheck source=tests/bench/cpu.sh
. "$HERE/cpu.sh"
# shellcheck source=tests/bench/pg_state.sh
. "$HERE/pg_state.sh"
# shellcheck source=tests/bench/e2e_step.sh
. "$HERE/e2e_step.sh"

# redis_calls: "<command> <calls>" per command since the last CONFIG RESETSTAT
redis_calls() {
    redis-cli -p "$REDIS_PORT" INFO commandstats 2>/dev/null \
        | sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\),.*/\1 \2/p'
}

# A session: CLIENTS clients of one system, connected once, that run the
# steps they are told one at a time (chatload e2e --control): figure 1's
# paced rates, figure 6's CPU step and the ceiling search all use the same
# connections, so no step pays for the connects and disconnects of another
# (on chat, each one is a presence change that the presence process, Redis
# and PostgreSQL work off for seconds).
#
# session_start <system> <port> [args]: connects, then lets the connects
# settle for SETTLE_S
session_start() {
    local p fd
    trap '' PIPE        # a client that died fails the write, not the script
    SESSION_SYS=$1 SESSION_TAG=session-$1 SESSION_K=0 SESSION_FDS=()
    rm -f "$RES/$SESSION_TAG".*
    for ((p = 0; p < E2E_PROCS; p++)); do mkfifo "$RES/$SESSION_TAG.ctl.$p"; done
    LAUNCH_IN=$RES/$SESSION_TAG.ctl launch "$SESSION_TAG" 0 "$CLIENTS" "$E2E_PROCS" e2e \
        --control --system "$1" --port "$2" --warmup "$WARMUP" --measure "$MEASURE" \
        --drain "$DRAIN" --max-drain "$MAX_DRAIN" --final-drain "$MAX_DRAIN" --hold 600 "${@:3}"
    # each process opens its end when it starts; ours opens with it
    for ((p = 0; p < E2E_PROCS; p++)); do
        exec {fd}>"$RES/$SESSION_TAG.ctl.$p"
        SESSION_FDS+=("$fd")
    done
    wait_ready "$SESSION_TAG" "$E2E_PROCS" 180
    [ "$OPEN" -lt "$CLIENTS" ] && log "$1: only $OPEN of $CLIENTS clients connected"
    SESSION_OPEN=$OPEN
    kill -USR1 "${GEN_PIDS[@]}"
    sleep "$SETTLE_S"
}

# session_step <rate> <warmup> <measure>: one step; its line (chatload
# merge) in $RES/$SESSION_TAG.line.  With CPU_COMPONENTS set, the CPU those
# components used in the measured window is kept in CPU_USED[<component>]
# (clock ticks) over CPU_SECONDS, and on chat the Redis commands and
# PostgreSQL commits in it in $RES/$SESSION_TAG.redis and PG_XACTS.
declare -A CPU_USED
session_step() {
    local rate=$1 warm=$2 meas=$3 fd c n t i p start k=$SESSION_K
    local -A t0 t1
    [ "$SESSION_SYS" = chat ] && bus_settle chat 90
    start=$(date +%s.%N)
    for fd in "${SESSION_FDS[@]}"; do echo "$rate $warm $meas" >&"$fd"; done
    if [ -n "${CPU_COMPONENTS:-}" ]; then
        # the CPU window lies inside the measured one (which the
        # generators time themselves from about when they read the rate),
        # ending half a second short of it: CPU_SECONDS is its length
        sleep "$warm"
        [ "$SESSION_SYS" = chat ] && { PG_XACTS=$(pg_xacts)
                                       redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null; }
        # shellcheck disable=SC2086  # a list of names, split on purpose
        while read -r c n; do t0[$c]=$n; done < <(cpu_ticks $CPU_COMPONENTS)
        t=$(awk -v s="$start" -v w="$warm" -v m="$meas" -v now="$(date +%s.%N)" \
                'BEGIN { d = s + w + m - 0.5 - now; print (d > 0 ? d : 0) }')
        sleep "$t"
        # shellcheck disable=SC2086  # a list of names, split on purpose
        while read -r c n; do t1[$c]=$n; done < <(cpu_ticks $CPU_COMPONENTS)
        for c in $CPU_COMPONENTS; do CPU_USED[$c]=$(( t1[$c] - t0[$c] )); done
        CPU_SECONDS=$(awk -v a="${t0[time]}" -v b="${t1[time]}" 'BEGIN { print b - a }')
        [ "$SESSION_SYS" = chat ] && { redis_calls > "$RES/$SESSION_TAG.redis"
                                       PG_XACTS=$(( $(pg_xacts) - PG_XACTS )); }
    fi
    # every process says "done <k>" once its results file holds the step
    for ((i = 0; i < (warm + meas + MAX_DRAIN + 60) * 10; i++)); do
        n=$(cat "$RES/$SESSION_TAG".*.out 2>/dev/null | grep -c "^done $k\$" || true)
        [ "$n" -ge "$E2E_PROCS" ] && break
        for p in "${GEN_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || die "a $SESSION_SYS client process died"; done
        sleep 0.1
    done
    [ "$n" -ge "$E2E_PROCS" ] || die "$SESSION_SYS: step $k did not finish"
    "$LOAD" merge "$(printf '%-5s clients=%s' "$SESSION_SYS" "$SESSION_OPEN")" \
        "$RES/$SESSION_TAG".*.res | tail -1 > "$RES/$SESSION_TAG.line"
    SESSION_K=$((k + 1))
}

# session_end: the clients see their input end, write and leave
session_end() {
    local fd p
    for fd in "${SESSION_FDS[@]}"; do exec {fd}>&-; done
    for p in "${GEN_PIDS[@]}"; do wait "$p" || true; done
    GEN_PIDS=()
    cat "$RES/$SESSION_TAG".*.err >&2
}

pg_xacts() {
    psql "$PG" -XtAc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
}

# step_fields <lines file>: "<achieved/s> <p99 ms>" of its (one) line
step_fields() {
    sed -n 's/.* achieved=\([0-9]*\)\/s .* p99=\([0-9.]*\)\(m\{0,1\}\)s.*/\1 \2 \3/p' "$1" \
        | awk '{ printf "%s %s\n", $1, ($3 == "m" ? $2 : $2 * 1000) }' | head -1
}

# ceiling: in the session, the highest offered rate that is carried
# (achieved within 2% of offered) with p99 under 100 ms.  Doubles from
# CEIL_START until a step fails, then halves the gap until it is under 5%
# of the rate or CEIL_PROBES steps were run.  Sets CEIL; every step's line
# is kept in $RES/ceiling-<system>.lines.
ceiling() {
    local sys=$SESSION_SYS lo=0 hi=0 r=$CEIL_START probes=0 ach p99 pass
    : > "$RES/ceiling-$sys.lines"
    while (( probes < CEIL_PROBES )); do
        session_step "$r" "$CEIL_WARMUP" "$CEIL_MEASURE"
        probes=$((probes + 1))
        read -r ach p99 < <(step_fields "$RES/$SESSION_TAG.line") || true
        pass=$(awk -v a="${ach:-0}" -v p="${p99:-1e9}" -v r="$r" \
                   'BEGIN { print (a >= 0.98 * r && p < 100) ? "yes" : "no" }')
        printf '%s carried=%s\n' "$(cat "$RES/$SESSION_TAG.line")" "$pass" >> "$RES/ceiling-$sys.lines"
        log "ceiling $sys: $r/s -> achieved ${ach:-?}/s p99 ${p99:-?} ms: $pass"
        if [ "$pass" = yes ]; then lo=$r; else hi=$r; fi
        if (( hi == 0 )); then
            r=$(( r * 2 ))
        else
            (( hi - lo <= hi / 20 || hi - lo <= 50 )) && break
            r=$(( (lo + hi) / 2 / 50 * 50 ))
            (( r <= lo )) && break
        fi
    done
    CEIL=$lo
}

# cpu_line <system> "<components>" <lines file>: figure 6's line, the CPU
# each component used in the measured window per message delivered in it
cpu_line() {
    local sys=$1 comps=$2 f=$3 ach p99 c name parts="" total=0 hz
    hz=$(getconf CLK_TCK)
    read -r ach p99 < <(step_fields "$f") || true
    for c in $comps; do
        name=$c; [ "$c" = nchan ] && name=nginx
        parts+=" $name=$(awk -v t="${CPU_USED[$c]:-0}" -v hz="$hz" -v n="${ach:-0}" -v s="$CPU_SECONDS" \
            'BEGIN { printf "%.0fus", (n > 0 ? t * 1e6 / hz / (n * s) : 0) }')"
        total=$((total + ${CPU_USED[$c]:-0}))
    done
    out 6 "$(awk -v sys="$sys" -v r="$CPU_RATE" -v a="${ach:-0}" -v p="${p99:-0}" -v s="$CPU_SECONDS" \
        -v parts="$parts" -v t="$total" -v hz="$hz" -v cores="$(nproc)" 'BEGIN {
        printf "%-5s at %d/s offered (achieved %d/s, p99 %.1f ms; CPU over %.1f s): CPU per delivered message%s total=%.0fus (%.0f%% of %d cores)",
            sys, r, a, p, s, parts, (a > 0 ? t * 1e6 / hz / (a * s) : 0), 100 * t / hz / s / cores, cores }')"
}

# round_trips <lines file> <redis calls file>: Redis commands (all clients:
# edge and workers) and PostgreSQL transactions per delivered message
round_trips() {
    local ach p99 n
    read -r ach p99 < <(step_fields "$1") || true
    n=$(awk -v a="${ach:-0}" -v s="$CPU_SECONDS" 'BEGIN { printf "%d", a * s }')
    [ "$n" -gt 0 ] || { echo "chat  per message: no deliveries"; return; }
    sort -k2 -n -r "$2" | awk -v n="$n" -v x="$PG_XACTS" '
        { tot += $2; if ($2 / n >= 0.01) parts = parts sprintf(" %s=%.2f", $1, $2 / n) }
        END { printf "chat  per delivered message: Redis commands %.2f (%s), PostgreSQL transactions %.3f", tot / n, substr(parts, 2), x / n }'
}

# pgbench_rate <rows per transaction>: rows/s with WORKERS clients
pgbench_rate() {
    local rows=$1 f=$RES/pgbench-$1.sql tps
    {
        echo '\set c random(1, 5000)'
        echo "INSERT INTO bench_scratch (conversation_id, sender_id, text)"
        echo "SELECT :c, :c, 'lat:0:1:1000000000:1:' || repeat('x', 42) FROM generate_series(1, $rows);"
    } > "$f"
    tps=$(PGPASSWORD=$(cat "$RUN/pg/password") pgbench -h 127.0.0.1 -p "$PG_PORT" -U chat \
              -n -f "$f" -c "$WORKERS" -j "$WORKERS" -T "$PGBENCH_S" chat 2>&1 \
          | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    awk -v t="${tps:-0}" -v r="$rows" 'BEGIN { printf "%.0f", t * r }'
}

# figure 4's lines, under their heading
checkout_summary() {
    [ -f "$RES/summary.4" ] || return 0
    cat <<EOF

4. Checkouts: concurrent shoppers, each PUT one book in the cart then POST /api/v1/orders
   (reserve, pay at the provider stand-in, settle); rate = paid checkouts/s, latencies of the POST
EOF
    sed 's/^/   /' "$RES/summary.4"
}

# ------------------------------------------------------------------ run

trap teardown EXIT
trap 'exit 130' INT TERM

install_deps
make -s -C "$HERE"
if [ ! -x "$ROOT/backend/chat-backend" ] || [ ! -f "$ROOT/build/nginx/objs/ngx_chat_module.so" ]; then
    die "build the stack first (make)"
fi

log "mode $MODE: fresh stack in $RUN"
stop_nginx "$RUN/nchan/nginx.pid"
conf/stack.sh stop >/dev/null 2>&1 || true
rm -rf "$RUN"
conf/stack.sh start >&2
mkdir -p "$RES"
eval "$(conf/stack.sh env)"
export REDISCLI_AUTH        # redis-cli and chatload authenticate as the admin
PG=$CHAT_PG_CONNINFO

# --- figure 4: checkouts per second, p99, oversell (checkout.sh) ---
if [ -z "${BENCH_CHAT_ONLY:-}" ]; then
CHECKOUT_S=20
[ "$MODE" = quick ] && CHECKOUT_S=5
[ "$MODE" = checkout ] && CHECKOUT_S=${BENCH_CHECKOUT_SECONDS:-20}
log "figure 4: checkouts, ${CHECKOUT_S}s per run"
CHAT_PG_CONNINFO=$CHAT_PG_CONNINFO CHAT_BASE_URL=$CHAT_BASE_URL CHAT_RUN_DIR=$CHAT_RUN_DIR \
    "$HERE/checkout.sh" "$CHECKOUT_S" "$RES/summary.4"
fi

if [ "$MODE" = checkout ]; then
    cat <<EOF

== checkout benchmark, $(nproc) cores, $(( $(date +%s) - T0 ))s; figures, not assertions (tests/bench/README.md)
EOF
    checkout_summary
    FAILED=0
    exit 0
fi

seed $(( IDLE2 > CLIENTS ? IDLE2 : CLIENTS )) $(( CLIENTS / 2 ))

# BENCH_CATALOG_ONLY=1: only figure 5 (the catalog); BENCH_CATALOG=0: without it
if [ -z "${BENCH_CATALOG_ONLY:-}" ]; then

# --- figure 3: commits per second on the worker pool, beside pgbench ---
log "figure 3: $COMMIT_N msg.send straight onto the bus; pgbench"
line=$("$LOAD" commit --redis-port "$REDIS_PORT" --count "$COMMIT_N" \
        --pairs $((CLIENTS / 2)) --uid-base "$UB" --conv-base "$CB") || log "commit: $line"
out 3 "$(printf 'worker pool (%s workers) %s' "$WORKERS" "$line")"
pg_production_state "$PG"   # as autovacuum would: command_log and messages grew by $COMMIT_N
if [ "${BENCH_CLUSTER:-1}" != 0 ]; then
    # one paced chat step on each, through nginx, the same clients
    step_n=$(( CLIENTS < 2000 ? CLIENTS : 2000 )) step_rate=$(( CLIENTS < 2000 ? 200 : 1000 ))
    log "figure 3: chat at $step_rate/s over $step_n clients, one Redis"
    sline=$(e2e_step "$PORT" "$RUN" "$UB" "$CB" "$step_n" "$step_rate" 127.0.0.250 "$RES") \
        || log "the paced step on one Redis did not run"
    log "figure 3: the burst and the paced step on a 3-master Redis Cluster (a stack of its own)"
    cline=$(CLUSTER_PORT=$CLUSTER_PORT CLUSTER_REDIS_PORT=$CLUSTER_REDIS_PORT \
            CLUSTER_PG_PORT=$CLUSTER_PG_PORT RES=$RES LOAD=$LOAD "$HERE/commit_cluster.sh" \
            "$(psql "$PG" -XtAc "SELECT password_hash FROM users WHERE email = 'bench-seed@bench.invalid'")" \
            "$CLIENTS" "$COMMIT_N" "$step_n" "$step_rate") || log "on the cluster: $cline"
    out 3 "$(printf 'worker pool (%s workers) on a Redis Cluster of 3 masters: %s' "$WORKERS" "$(sed -n 1p <<< "$cline")")"
    out 3 "$(awk -v c="$(sed -n '1s/.* rate=\([0-9]*\)\/s.*/\1/p' <<< "$cline")" \
                 -v s="$(sed -n 's/.* rate=\([0-9]*\)\/s.*/\1/p' <<< "$line")" \
        'BEGIN { printf "Redis Cluster / one Redis = %s / %s = %.2fx (same box: the cost of routing by slot)", c, s, (s > 0 ? c / s : 0) }')"
    out 3 "one Redis:     ${sline:-not measured}"
    out 3 "Redis Cluster: $(sed -n 2p <<< "$cline")"
fi
psql "$PG" -Xqc "CREATE TABLE bench_scratch (id bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL, sender_id bigint NOT NULL, text text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp())"
sync_commit=$(psql "$PG" -XtAc "SHOW synchronous_commit")
pg1=$(pgbench_rate 1)
out 3 "$(printf 'pgbench 1 row/transaction   (%s clients, synchronous_commit=%s) rate=%s rows/s' \
    "$WORKERS" "$sync_commit" "$pg1")"
out 3 "$(printf 'pgbench 16 rows/transaction (%s clients, synchronous_commit=%s) rate=%s rows/s' \
    "$WORKERS" "$sync_commit" "$(pgbench_rate 16)")"
psql "$PG" -Xqc "DROP TABLE bench_scratch"
out 3 "$(awk -v c="$(sed -n 's/.* rate=\([0-9]*\)\/s.*/\1/p' <<< "$line")" -v p="$pg1" \
    'BEGIN { printf "messages committed/s / pgbench 1-row tx/s = %s / %s = %.2fx", c, p, (p > 0 ? c / p : 0) }')"

if [ -z "${BENCH_CHAT_ONLY:-}" ]; then
# --- figure 2: memory per idle WebSocket, beside nchan ---
log "figure 2: idle connections ($IDLE1, then $IDLE2)"
restart_chat_nginx
idle_memory chat "$PORT" "$RUN/nginx/nginx.pid" chat
start_nchan
idle_memory nchan "$NCHAN_PORT" "$RUN/nchan/nginx.pid" nchan
fi

# --- figure 1: end-to-end latency at paced rates, then the ceiling ---
log "figure 1: Redis ping and stream hop"
# redis-benchmark reads no REDISCLI_AUTH: the admin password of this
# throw-away stack goes on its command line (never a real stack's)
ping=$(redis-benchmark -p "$REDIS_PORT" --user default -a "$REDISCLI_AUTH" \
       -t ping_mbulk -n 20000 -c 1 --csv 2>/dev/null \
       | awk -F'"' '/PING_MBULK/ { printf "p50=%.2fms p99=%.2fms max=%.2fms", $10, $14, $16 }')
# the disk's flush, beside PostgreSQL's data: a durable answer waits for
# one, and for the one in progress when it arrived (fsyncload.c)
disk_flush=$("$LOAD" fsync --out "$RUN/pg/fsync.probe" --count "$FSYNC_N")
"$LOAD" hop --redis-port "$REDIS_PORT" --rates "$RATES" --warmup "$WARMUP" \
    --measure "$MEASURE" --drain "$DRAIN" --out "$RES/hop.res"
"$LOAD" merge "redis XADD->XREAD" "$RES/hop.res" > "$RES/hop.lines"

CHAT_ARGS=(--secret "$RUN/token_secret" --uid-base "$UB" --conv-base "$CB")

# run_session <cpu components>: in the session, figure 1's rates, figure
# 6's CPU step, then the ceiling
run_session() {
    local r
    : > "$RES/e2e-$SESSION_SYS.lines"
    for r in ${RATES//,/ }; do
        session_step "$r" "$WARMUP" "$MEASURE"
        cat "$RES/$SESSION_TAG.line" >> "$RES/e2e-$SESSION_SYS.lines"
    done
    log "figure 6: CPU per message at $CPU_RATE/s, $SESSION_SYS"
    CPU_COMPONENTS=$1 session_step "$CPU_RATE" "$WARMUP" "$CPU_MEASURE"
    cpu_line "$SESSION_SYS" "$1" "$RES/$SESSION_TAG.line"
    if [ "$SESSION_SYS" = chat ]; then
        out 6 "$(round_trips "$RES/$SESSION_TAG.line" "$RES/$SESSION_TAG.redis")"
    fi
    log "figure 1: $SESSION_SYS ceiling (from $CEIL_START/s, at most $CEIL_PROBES steps)"
    ceiling
}

log "figure 1: nchan, $CLIENTS clients"
start_nchan
session_start nchan "$NCHAN_PORT"
run_session "nchan load"
CEIL_NCHAN=$CEIL
session_end
stop_nginx "$RUN/nchan/nginx.pid"

log "figure 1: chat, $CLIENTS clients"
restart_chat_nginx
session_start chat "$PORT" "${CHAT_ARGS[@]}"
run_session "nginx redis postgres workers load"
CEIL_CHAT=$CEIL
session_end

backlog=0
for ((s = 0; s < 4; s++)); do
    lag=$(redis-cli -p "$REDIS_PORT" --raw XINFO GROUPS "chat:cmd:chat:{$s}" 2>/dev/null \
          | awk 'prev == "lag" { print; exit } { prev = $0 }')
    [[ "$lag" =~ ^[0-9]+$ ]] && backlog=$((backlog + lag))
done
log "left on the bus after figure 1: $backlog commands no worker has read yet"

mapfile -t chat_l < "$RES/e2e-chat.lines"
mapfile -t nchan_l < "$RES/e2e-nchan.lines"
mapfile -t hop_l < "$RES/hop.lines"
for i in "${!chat_l[@]}"; do
    out 1 "${chat_l[$i]}"
    out 1 "${nchan_l[$i]:-nchan: no result}"
    out 1 "${hop_l[$i]:-redis: no result}"
done
out 1 "redis PING round trip (redis-benchmark, 1 client) $ping"
out 1 "disk flush (fdatasync of 8 KiB, the floor under a durable answer) ${disk_flush#fsync }"
out 1 "$(awk -v c="$CEIL_CHAT" -v n="$CEIL_NCHAN" 'BEGIN {
    printf "ceiling (highest offered rate carried within 2%% with p99 < 100 ms): chat %d/s, nchan %d/s, chat/nchan = %.2f", c, n, (n > 0 ? c / n : 0) }')"
sed 's/^/  /' "$RES/ceiling-chat.lines" "$RES/ceiling-nchan.lines" >> "$RES/summary.1"
fi

# --- figure 5: the bookstore catalog (tests/bench/catalog.sh) ---
if [ "${BENCH_CATALOG:-1}" = 1 ] && [ -z "${BENCH_CHAT_ONLY:-}" ]; then
    RES=$RES RUN=$RUN LOAD=$LOAD PG=$PG NCHAN_PORT=$NCHAN_PORT "$HERE/catalog.sh" "$MODE"
fi

# --- figures 8 and 9: files (tests/bench/files.sh), message search
# (tests/bench/msgsearch.sh); BENCH_FILES=0 / BENCH_MSGSEARCH=0 skip them ---
if [ -z "${BENCH_CATALOG_ONLY:-}" ] && [ -z "${BENCH_CHAT_ONLY:-}" ]; then
    if [ "${BENCH_FILES:-1}" = 1 ]; then
        RES=$RES RUN=$RUN LOAD=$LOAD NCHAN_PORT=$NCHAN_PORT "$HERE/files.sh" "$MODE" \
            || log "figure 8 did not finish"
    fi
    if [ "${BENCH_MSGSEARCH:-1}" = 1 ]; then
        RES=$RES LOAD=$LOAD PG=$PG "$HERE/msgsearch.sh" "$MODE" || log "figure 9 did not finish"
    fi
fi

# ---------------------------------------------------------------- summary

if [ -z "${BENCH_CATALOG_ONLY:-}" ]; then
cat <<EOF

== chat benchmark ($MODE), $(nproc) cores, $(( $(date +%s) - T0 ))s; figures, not assertions (tests/bench/README.md)

1. End-to-end latency sender -> recipient, $CLIENTS clients in $((CLIENTS / 2)) 1:1 conversations
   (each message reaches the 1 other member, plus the sender's own copy, on both systems).
   chat = durable path (msg.send committed, ack, message event fanned out);
   nchan = in-memory pubsub over WebSocket, same clients and frames;
   redis = one XADD -> XREAD hop at the same rate.
EOF
sed 's/^/   /' "$RES/summary.1"
if [ -f "$RES/summary.2" ]; then
cat <<EOF

2. Memory per idle WebSocket in the nginx workers (sum of the $NGINX_WORKERS workers' RSS from /proc;
   delta over the freshly started workers; PSS counts shared pages once)
EOF
sed 's/^/   /' "$RES/summary.2"
fi
cat <<EOF

3. Messages committed per second on the worker pool, beside pgbench inserts on the same PostgreSQL
EOF
sed 's/^/   /' "$RES/summary.3"
checkout_summary
cat <<EOF

6. Where the CPU goes: CPU time (user + system, from /proc/<pid>/stat, each component's processes
   and their children) used in the measured window at one paced rate, per message delivered in it;
   nchan beside it at the same rate with the same clients
EOF
sed 's/^/   /' "$RES/summary.6"
fi
if [ -f "$RES/summary.5" ]; then
cat <<EOF

5. The bookstore catalog (tests/bench/catalog.sh): search by kind in PostgreSQL alone and through the
   stack at 1 client; 200 concurrent keep-alive clients (chatload http) with the edge cache off (every
   query reaches PostgreSQL); the search mix open loop at 200, 500, 1,000/s and its ceiling; chat at
   500 msg/s alone and beside the mix at its ceiling (ratio = p99 / p99 alone, target <= 1.5); details
   from the edge's Redis cache beside a stock nginx serving a static file of the same size; details
   that miss the cache.  load= is the 1-minute load average when the line was printed
EOF
sed 's/^/   /' "$RES/summary.5"
fi
if [ -f "$RES/summary.8" ]; then
cat <<EOF

8. Files (tests/bench/files.sh): uploads of 1 MiB and 10 MiB through POST /api/v1/uploads, 4 at once,
   beside a stock nginx taking the same body to disk (WebDAV PUT); downloads of the attachment's url
   (a worker authorizes, nginx sends through the internal redirect) and a 1 MiB Range, 8 clients,
   beside the same nginx serving the same bytes as a static file; ratio = chat / nginx
EOF
sed 's/^/   /' "$RES/summary.8"
fi
if [ -f "$RES/summary.9" ]; then
cat <<EOF

9. Message search (tests/bench/msgsearch.sh): GET /api/v1/messages/search over messages seeded in
   PostgreSQL; p50/p99 through the API per kind of query at 1 client with PostgreSQL's own time for
   the op's query beside it (generic plan, median of 5), then the mix at 4 and 16 clients
EOF
sed 's/^/   /' "$RES/summary.9"
fi
if [ "$MODE" = full ] || [ "$MODE" = quick ]; then
cat <<EOF

7. Isolation between lanes (tests/bench/isolation.sh, on its own stack): chat p99 at a steady
   500 msg/s alone, during a burst of 50 sign-ups, during checkouts at 200/s against a processor
   answering in 300 ms (5 % slow cards); ratio = p99 / p99 alone in the same run (target <= 1.5)
EOF
"$HERE/isolation.sh" "$MODE" 2>/dev/null | sed 's/^/   /' || log "figure 7 did not finish"
fi
FAILED=0
