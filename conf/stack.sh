#!/usr/bin/env bash
# The local stack: Redis, PostgreSQL, the backend worker pool and nginx with
# our module, all on 127.0.0.1, all data under .run/<stack>/ (git-ignored).
#
#   conf/stack.sh start | stop | run | status | env
#
# STACK=dev (make run/start) or STACK=test (make test) picks the directory and
# the default ports, so tests never touch the demo data (any other name is a
# side stack that needs its ports given):
#   dev:  PORT=8080   REDIS_PORT=6390   PG_PORT=5440
#   test: PORT=18080  REDIS_PORT=16390  PG_PORT=15440
# Any of PORT, REDIS_PORT, PG_PORT, WORKERS, COMMAND_TIMEOUT, CLAIM_IDLE_MS,
# WS_MAX_MESSAGE, WS_PING_INTERVAL, WS_PONG_TIMEOUT, NGINX_WORKERS,
# NGINX_CONNECTIONS, LOGIN_RATE, LOGIN_BURST, REGISTER_RATE, REGISTER_BURST,
# CHECKOUT_RATE, CHECKOUT_BURST may be set, and LANES (the backend's
# CHAT_LANES, e.g. "auth:procs=1;orders:concurrency=64").
# Presence and notifications: PRESENCE_TTL_MS (45000), PRESENCE_GRACE_MS
# (5000), TYPING_INTERVAL_MS (2000), RECEIPT_WINDOW_MS (1000), NOTIFY_WEBHOOK
# (a URL; none: no notifier), NOTIFY_QUIET_MS (1000), NOTIFY_BACKOFF_MS (500).
# Orders: the payment provider stand-in (payments/) listens on PAYMENT_PORT
# (PORT + 10 unless set: dev 8090, test 18090) and answers in
# PAYMENT_LATENCY_MS give or take PAYMENT_JITTER_MS (dev 300 and 100, like a
# real processor; other stacks 0 and 0), with a PAYMENT_TAIL_FRACTION (0) of
# answers taking PAYMENT_TAIL_MS (2000) instead; PAYMENT_SLOW_MS (its slow
# test cards), PAYMENT_TIMEOUT_MS, RESERVATION_TTL_MS and
# RECONCILE_INTERVAL_MS (the backend's) may be set.  PAYMENT_PUBLIC_URL is
# where browsers reach the provider to tokenize cards (default
# http://127.0.0.1:PAYMENT_PORT), served to the web app as
# GET /api/v1/payments/config.
# CHAT_CACHE (on|off, the catalog read
# cache) and CATALOG_BOOKS (demo books of STACK=dev, default 2000).
# PG_OPTIONS adds server settings for a profile, e.g.
# PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements".
# Sign-in sessions: TOKEN_TTL (1800 s, a token's life; clients refresh),
# SESSION_TTL (86400 s, a sign-in's), WS_TICKET_TTL (30s).
# APP2_PORT (none unless set; tests/run.sh: PORT + 2): a second application
# on the same nginx (conf/nginx-app2.conf.in), for two_apps.test.mjs, with
# its own Redis on APP2_REDIS_PORT (REDIS_PORT + 1; data in .run/<stack>/
# redis-app2, the same ACL users and passwords), its own database
# (chat_app2 in the same PostgreSQL), its own token secret
# (.run/<stack>/app2/token_secret) and its own backend (one backend per
# Redis; .run/<stack>/backend-app2, one worker per lane).
# Uploads: MEDIA_MAX_BODY (25m, the uploads' client_max_body_size) and
# DEMO_COVERS (200, the demo books of STACK=dev given drawn covers); the
# store is .run/<stack>/media (chat_media_root, the backend's --media-root).
# PostgreSQL refuses to run as root; as root it runs as the postgres user.
# STACK_PG says what stands around it (words, comma-separated; default
# none): "replica" adds a streaming replica (pg_basebackup over the local
# socket, its own data in .run/<stack>/pg-replica, on PG_REPLICA_PORT,
# default PG_PORT + 1) and gives it to the backend for reads
# (CHAT_PG_REPLICA); "pgbouncer" puts pgbouncer in transaction mode in
# front of the primary (a socket in .run/<stack>/pgbouncer, no TCP port)
# and points the backend at it (CHAT_PG_POOLER=transaction).  Migrations,
# the demo data and the tests' own SQL still go to the primary directly.
#
# STACK_REDIS says which Redis (default: one server on REDIS_PORT):
# "cluster" starts a Redis Cluster of 3 masters and 3 replicas on
# loopback, REDIS_PORT .. REDIS_PORT + 5 (their cluster bus ports
# REDIS_PORT + 6 .. + 11, not Redis' usual + 10000, which falls in
# Linux's range of outgoing ports, where any connection can hold it and
# a node then cannot start), each in .run/<stack>/redis/node-<i>, with the same ACL users
# and passwords as the single server, and a node timeout of 2 s so a
# killed master's replica takes over within seconds.  The backend and
# nginx (chat_redis) get REDIS_PORT as their seed and route by slot from
# there (backend/engine/redis_route.c, ngx_chat_module/
# ngx_chat_redis_cluster.c).  The second application's Redis stays a
# single server beside the cluster, on REDIS_PORT + 12 (APP2_REDIS_PORT;
# + 1 is a cluster node).
#
# Everything the stack writes (data, logs, configs, the secrets) is its
# owner's alone: files 0600, directories 0700 (umask 077, and a start
# tightens what an older stack left), except .run/<stack> itself, 0711
# when PostgreSQL runs as the postgres user, which must pass through it.
set -euo pipefail
umask 077

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK=${STACK:-dev}
case "$STACK" in
    dev)  dport=8080;  dredis=6390;  dpg=5440 ;;
    test) dport=18080; dredis=16390; dpg=15440 ;;
    *[!a-z0-9_-]*|"") echo "stack: STACK must be a plain name" >&2; exit 2 ;;
    *)    # any other name: a side stack, ports must be given
          if [ -z "${PORT:-}" ] || [ -z "${REDIS_PORT:-}" ] || [ -z "${PG_PORT:-}" ]; then
              echo "stack: STACK=$STACK needs PORT, REDIS_PORT and PG_PORT" >&2; exit 2
          fi ;;
esac
PORT=${PORT:-$dport}
REDIS_PORT=${REDIS_PORT:-$dredis}
PG_PORT=${PG_PORT:-$dpg}
# orders: the payment provider and the backend's payment settings
PAYMENT_PORT=${PAYMENT_PORT:-$((PORT + 10))}
PAYMENT_PUBLIC_URL=${PAYMENT_PUBLIC_URL:-http://127.0.0.1:$PAYMENT_PORT}
PAYMENT_SLOW_MS=${PAYMENT_SLOW_MS:-5000}
if [ "$STACK" = dev ]; then
    PAYMENT_LATENCY_MS=${PAYMENT_LATENCY_MS:-300} PAYMENT_JITTER_MS=${PAYMENT_JITTER_MS:-100}
else
    PAYMENT_LATENCY_MS=${PAYMENT_LATENCY_MS:-0} PAYMENT_JITTER_MS=${PAYMENT_JITTER_MS:-0}
fi
PAYMENT_TAIL_FRACTION=${PAYMENT_TAIL_FRACTION:-0}
PAYMENT_TAIL_MS=${PAYMENT_TAIL_MS:-2000}
PAYMENT_TIMEOUT_MS=${PAYMENT_TIMEOUT_MS:-3000}
RESERVATION_TTL_MS=${RESERVATION_TTL_MS:-900000}
RECONCILE_INTERVAL_MS=${RECONCILE_INTERVAL_MS:-10000}
WORKERS=${WORKERS:-2}
COMMAND_TIMEOUT=${COMMAND_TIMEOUT:-10s}
WS_MAX_MESSAGE=${WS_MAX_MESSAGE:-1m}
WS_PING_INTERVAL=${WS_PING_INTERVAL:-30s}
WS_PONG_TIMEOUT=${WS_PONG_TIMEOUT:-10s}
WS_TICKET_TTL=${WS_TICKET_TTL:-30s}
NGINX_WORKERS=${NGINX_WORKERS:-2}
NGINX_CONNECTIONS=${NGINX_CONNECTIONS:-4096}
# nginx limit_req: logins per client address, checkouts per user
LOGIN_RATE=${LOGIN_RATE:-5r/s}
LOGIN_BURST=${LOGIN_BURST:-10}
REGISTER_RATE=${REGISTER_RATE:-2r/s}
REGISTER_BURST=${REGISTER_BURST:-10}
CHECKOUT_RATE=${CHECKOUT_RATE:-2r/s}
CHECKOUT_BURST=${CHECKOUT_BURST:-5}
# each worker holds its connections plus a few files; 20000 is this
# machine's hard limit per process
NGINX_NOFILE=$(( NGINX_CONNECTIONS + 100 < 20000 ? NGINX_CONNECTIONS + 100 : 20000 ))
# presence, typing, receipts, notifications
PRESENCE_TTL_MS=${PRESENCE_TTL_MS:-45000}
PRESENCE_GRACE_MS=${PRESENCE_GRACE_MS:-5000}
TYPING_INTERVAL_MS=${TYPING_INTERVAL_MS:-2000}
export CHAT_PRESENCE_TTL_MS=$PRESENCE_TTL_MS
export CHAT_RECEIPT_WINDOW_MS=${RECEIPT_WINDOW_MS:-1000}
export CHAT_NOTIFY_WEBHOOK=${NOTIFY_WEBHOOK:-}
export CHAT_NOTIFY_QUIET_MS=${NOTIFY_QUIET_MS:-1000}
export CHAT_NOTIFY_BACKOFF_MS=${NOTIFY_BACKOFF_MS:-500}
RUN=$ROOT/.run/$STACK
# STACK_REDIS=cluster1: the one Redis runs as a Redis Cluster of one node
# holding every slot (its bus port REDIS_PORT + 2, since + 1 is the second
# application's Redis: Redis' own choice,
# + 10000, may fall in the kernel's ephemeral range, where a client's
# connection can hold it when Redis restarts), which refuses a
# script or command over keys of two slots (CROSSSLOT) like a real
# cluster; a single node needs no routing, so this checks the key names
# alone.  It runs one command stream per lane (STREAM_SHARDS=1), as it
# did when the clients read several streams in one command; both now
# split such reads per slot (protocol/README.md), so more would do.
STACK_PG=${STACK_PG:-}
PG_REPLICA_PORT=${PG_REPLICA_PORT:-$((PG_PORT + 1))}
# pgbouncer listens on a socket only; the port number only names it
PGBOUNCER_PORT=$((PG_PORT + 2))
STACK_REDIS=${STACK_REDIS:-single}
case "$STACK_REDIS" in
    single|cluster) STREAM_SHARDS=${STREAM_SHARDS:-4} ;;
    cluster1)       STREAM_SHARDS=${STREAM_SHARDS:-1} ;;
    *) echo "stack: STACK_REDIS: unknown \"$STACK_REDIS\" (single, cluster, cluster1)" >&2; exit 2 ;;
esac
REDIS_NODES=6   # STACK_REDIS=cluster: 3 masters, each with a replica
stack_pg_has() { case ",$STACK_PG," in *",$1,"*) return 0 ;; esac; return 1; }
for word in ${STACK_PG//,/ }; do
    case "$word" in
        replica|pgbouncer) ;;
        *) echo "stack: STACK_PG: unknown \"$word\" (replica, pgbouncer)" >&2; exit 2 ;;
    esac
done
PG_BIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
# other builds (make test-asan) point these elsewhere
MODULE_SO=${MODULE_SO:-$ROOT/build/nginx/objs/ngx_chat_module.so}
BACKEND=${BACKEND_BIN:-$ROOT/backend/chat-backend}

log() { printf 'stack[%s]: %s\n' "$STACK" "$*"; }
die() { printf 'stack[%s]: error: %s\n' "$STACK" "$*" >&2; exit 1; }

# as_pg <command...>: run as the postgres user when we are root
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_conninfo() {
    echo "host=127.0.0.1 port=$PG_PORT dbname=chat user=chat password=$(cat "$RUN/pg/password")"
}

pg_replica_conninfo() {
    echo "host=127.0.0.1 port=$PG_REPLICA_PORT dbname=chat user=chat password=$(cat "$RUN/pg/password")"
}

# the replica's conninfo when STACK_PG has one, else nothing
replica_conninfo_if_any() {
    if stack_pg_has replica; then pg_replica_conninfo; fi
}

# what the backend's workers use for the primary: pgbouncer's socket or
# the server itself
backend_pg_conninfo() {
    if stack_pg_has pgbouncer; then
        echo "host=$RUN/pgbouncer port=$PGBOUNCER_PORT dbname=chat user=chat password=$(cat "$RUN/pg/password")"
    else
        pg_conninfo
    fi
}

# wait_for <seconds> <what> <command...>
wait_for() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$what did not come up within ${secs}s"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# beside a cluster (REDIS_PORT .. + 11), the second application's single
# Redis moves past its nodes and their bus ports
if [ "$STACK_REDIS" = cluster ]; then
    APP2_REDIS_PORT=${APP2_REDIS_PORT:-$((REDIS_PORT + 2 * REDIS_NODES))}
else
    APP2_REDIS_PORT=${APP2_REDIS_PORT:-$((REDIS_PORT + 1))}
fi

# Redis ACL users (conf/redis.conf.in): a password file each, made once,
# 0600, read by nginx (chat_redis_password_file) and the backend
# (CHAT_REDIS_PASSWORD_FILE); redis.conf gets only their SHA-256.  The
# admin (Redis' default user) is this script's and the tests' redis-cli,
# through REDISCLI_AUTH (never an argument, where ps would show it).
redis_passwords() {
    local who
    for who in admin edge worker; do
        [ -s "$RUN/redis/$who.pass" ] && continue
        (umask 077; openssl rand -hex 24 > "$RUN/redis/$who.pass")
    done
    export REDISCLI_AUTH
    REDISCLI_AUTH=$(cat "$RUN/redis/admin.pass")
}
redis_hash() { printf %s "$(cat "$RUN/redis/$1.pass")" | sha256sum | cut -d' ' -f1; }
if [ -s "$RUN/redis/admin.pass" ]; then
    export REDISCLI_AUTH
    REDISCLI_AUTH=$(cat "$RUN/redis/admin.pass")
fi

# start_redis [dir port]: the stack's Redis ($RUN/redis on REDIS_PORT), or
# another one in $RUN/<dir> (the second application's)
start_redis() {
    local dir=$RUN/${1:-redis} port=${2:-$REDIS_PORT}
    mkdir -p "$RUN/redis" "$dir"
    redis_passwords
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
        pid_alive "$dir/redis.pid" || die "port $port is taken by another Redis"
        return
    fi
    sed -e "s|@RUN@/redis|$dir|g" -e "s|@REDIS_PORT@|$port|g" \
        -e "s|@ADMIN_HASH@|$(redis_hash admin)|g" -e "s|@EDGE_HASH@|$(redis_hash edge)|g" \
        -e "s|@WORKER_HASH@|$(redis_hash worker)|g" \
        "$ROOT/conf/redis.conf.in" > "$dir/redis.conf"
    chmod 600 "$dir/redis.conf"
    # the stack's own Redis (not the second application's) may be a
    # one-node cluster
    [ -z "${1:-}" ] && [ "$STACK_REDIS" = cluster1 ] && redis_cluster1_conf
    redis-server "$dir/redis.conf" || die "redis-server failed, see $dir/redis.log"
    wait_for 10 "Redis" redis-cli -p "$port" ping
    [ -z "${1:-}" ] && [ "$STACK_REDIS" = cluster1 ] && redis_cluster1_slots
    log "redis on 127.0.0.1:$port (AOF on, ACL users chat-edge and chat-worker)"
}

# STACK_REDIS=cluster: node i of REDIS_NODES on REDIS_PORT + i, its
# config the single server's (conf/redis.conf.in, in its own directory)
# plus the cluster's settings; replicas authenticate to their master as
# the admin
start_redis_cluster() {
    local i port dir hosts=()
    mkdir -p "$RUN/redis"
    redis_passwords
    for ((i = 0; i < REDIS_NODES; i++)); do
        port=$((REDIS_PORT + i)) dir=$RUN/redis/node-$i
        hosts+=("127.0.0.1:$port")
        if redis-cli -p "$port" ping >/dev/null 2>&1; then
            pid_alive "$dir/redis.pid" || die "port $port is taken by another Redis"
            continue
        fi
        mkdir -p "$dir"
        {
            sed -e "s|@RUN@/redis|$dir|g" -e "s|@REDIS_PORT@|$port|g" \
                -e "s|@ADMIN_HASH@|$(redis_hash admin)|g" -e "s|@EDGE_HASH@|$(redis_hash edge)|g" \
                -e "s|@WORKER_HASH@|$(redis_hash worker)|g" "$ROOT/conf/redis.conf.in"
            printf '%s\n' "cluster-enabled yes" "cluster-config-file nodes.conf" \
                "cluster-port $((REDIS_PORT + REDIS_NODES + i))" \
                "cluster-node-timeout 2000" "masteruser default" \
                "masterauth $REDISCLI_AUTH"
        } > "$dir/redis.conf"
        chmod 600 "$dir/redis.conf"
        redis-server "$dir/redis.conf" || die "redis-server failed, see $dir/redis.log"
        wait_for 10 "Redis node $i" redis-cli -p "$port" ping
    done
    # the slots are given out once; a restarted node finds its place in
    # its nodes.conf
    if ! redis-cli -p "$REDIS_PORT" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
        if [ "$(redis-cli -p "$REDIS_PORT" cluster info | sed -n 's/^cluster_slots_assigned:\([0-9]*\).*/\1/p')" = 0 ]; then
            redis-cli --cluster create "${hosts[@]}" --cluster-replicas 1 \
                --cluster-yes >"$RUN/redis/cluster-create.log" 2>&1 \
                || die "redis-cli --cluster create failed, see $RUN/redis/cluster-create.log"
        fi
    fi
    wait_for 30 "the Redis cluster" redis_cluster_ok
    log "redis cluster on 127.0.0.1:$REDIS_PORT-$((REDIS_PORT + REDIS_NODES - 1)) (3 masters, 3 replicas, AOF on)"
}

redis_cluster_ok() {
    local i
    for ((i = 0; i < REDIS_NODES; i++)); do
        redis-cli -p "$((REDIS_PORT + i))" cluster info | grep -q '^cluster_state:ok' || return 1
    done
}

# STACK_REDIS=cluster: a worker's heartbeat is in (stack status)
workers_heartbeating() {
    [ "$(redis-cli -c -p "$REDIS_PORT" hlen chat:workers)" -gt 0 ]
}

# STACK_REDIS=cluster1 (above): cluster mode in the config ...
redis_cluster1_conf() {
    printf '%s\n' "cluster-enabled yes" "cluster-port $((REDIS_PORT + 2))" \
        "cluster-config-file $RUN/redis/nodes.conf" >> "$RUN/redis/redis.conf"
}

# ... and, once it is up, every slot to the one node
redis_cluster1_slots() {
    redis-cli -p "$REDIS_PORT" cluster info | grep -q '^cluster_slots_assigned:16384' \
        || redis-cli -p "$REDIS_PORT" cluster addslotsrange 0 16383 >/dev/null \
        || die "Redis: CLUSTER ADDSLOTSRANGE failed"
    wait_for 10 "the one-node Redis Cluster" \
        sh -c "redis-cli -p $REDIS_PORT cluster info | grep -q '^cluster_state:ok'"
    log "redis: a one-node cluster (STACK_REDIS=cluster1), every slot on it"
}

start_postgres() {
    local pg=$RUN/pg
    mkdir -p "$pg"
    [ -n "$PG_BIN" ] || die "PostgreSQL binaries not found under /usr/lib/postgresql"

    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$pg"
        runuser -u postgres -- test -w "$pg" \
            || die "the postgres user cannot write $pg: a parent directory is closed to it (chmod o+x the parents or clone elsewhere)"
    fi

    if [ ! -f "$pg/data/PG_VERSION" ]; then
        [ -f "$pg/password" ] || openssl rand -hex 16 > "$pg/password"
        chmod 600 "$pg/password"
        cp "$pg/password" "$pg/pwfile.tmp"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$pg/pwfile.tmp"
        as_pg "$PG_BIN/initdb" -D "$pg/data" -U chat --pwfile="$pg/pwfile.tmp" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
            > "$pg/initdb.log" 2>&1 || die "initdb failed, see $pg/initdb.log"
        rm -f "$pg/pwfile.tmp" "$pg/pwfile"
    fi

    if ! as_pg "$PG_BIN/pg_ctl" -D "$pg/data" status >/dev/null 2>&1; then
        mkdir -p "$pg/socket"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$pg/socket"
        as_pg "$PG_BIN/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -w -t 30 \
            -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $pg/socket ${PG_OPTIONS:-}" start >/dev/null \
            || die "PostgreSQL failed to start, see $pg/postgres.log"
    fi

    wait_for 30 "PostgreSQL" as_pg "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"

    if ! as_pg psql -h "$pg/socket" -p "$PG_PORT" -U chat -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = 'chat'" | grep -q 1; then
        as_pg psql -h "$pg/socket" -p "$PG_PORT" -U chat -d postgres -qc "CREATE DATABASE chat" \
            || die "could not create database chat"
    fi
    log "postgres on 127.0.0.1:$PG_PORT"
}

# The streaming replica: a base backup of the primary over its local
# socket (the local replication line of initdb's pg_hba.conf trusts it),
# with -R so that it starts as a standby that follows the primary.  Once
# made, it is only started again (a fault run kills it).
start_pg_replica() {
    local r=$RUN/pg-replica pg=$RUN/pg
    mkdir -p "$r"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$r"
    if [ ! -f "$r/data/PG_VERSION" ]; then
        rm -rf "$r/data"
        as_pg "$PG_BIN/pg_basebackup" -h "$pg/socket" -p "$PG_PORT" -U chat \
            -D "$r/data" -R -X stream -c fast > "$r/basebackup.log" 2>&1 \
            || die "pg_basebackup failed, see $r/basebackup.log"
    fi
    if ! as_pg "$PG_BIN/pg_ctl" -D "$r/data" status >/dev/null 2>&1; then
        mkdir -p "$r/socket"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$r/socket"
        as_pg "$PG_BIN/pg_ctl" -D "$r/data" -l "$r/postgres.log" -w -t 30 \
            -o "-p $PG_REPLICA_PORT -c listen_addresses=127.0.0.1 -k $r/socket -c hot_standby=on ${PG_OPTIONS:-}" \
            start >/dev/null || die "the PostgreSQL replica failed to start, see $r/postgres.log"
    fi
    wait_for 30 "the PostgreSQL replica" as_pg "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_REPLICA_PORT"
    log "postgres replica on 127.0.0.1:$PG_REPLICA_PORT (streaming from :$PG_PORT)"
}

# pgbouncer in transaction mode in front of the primary, on a socket only.
# The backend keeps no session state behind it (backend/engine/db.c): the
# settings a session would SET come with every server connection
# (connect_query).  It refuses to run as root: as root it runs as postgres.
start_pgbouncer() {
    local b=$RUN/pgbouncer password
    mkdir -p "$b"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$b"
    pid_alive "$b/pgbouncer.pid" && return
    password=$(cat "$RUN/pg/password")
    printf '"chat" "%s"\n' "$password" > "$b/userlist.txt"
    cat > "$b/pgbouncer.ini" <<INI
[databases]
chat = host=127.0.0.1 port=$PG_PORT dbname=chat connect_query='SET statement_timeout = 30000'

[pgbouncer]
pool_mode = transaction
listen_addr =
listen_port = $PGBOUNCER_PORT
unix_socket_dir = $b
auth_type = scram-sha-256
auth_file = $b/userlist.txt
default_pool_size = 20
max_client_conn = 500
server_reset_query =
logfile = $b/pgbouncer.log
pidfile = $b/pgbouncer.pid
INI
    chmod 600 "$b/userlist.txt" "$b/pgbouncer.ini"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$b/userlist.txt" "$b/pgbouncer.ini"
    as_pg pgbouncer -d -q "$b/pgbouncer.ini" || die "pgbouncer failed to start, see $b/pgbouncer.log"
    wait_for 10 "pgbouncer" as_pg "$PG_BIN/pg_isready" -h "$b" -p "$PGBOUNCER_PORT"
    log "pgbouncer (transaction mode) on $b/.s.PGSQL.$PGBOUNCER_PORT"
}

# start_backend [dir redis_port secret db workers]: the stack's backend, or
# another application's (one backend per Redis) in $RUN/<dir>
start_backend() {
    local dir=$RUN/${1:-backend} redis_port=${2:-$REDIS_PORT} \
          secret=${3:-$RUN/token_secret} db=${4:-chat} workers=${5:-$WORKERS} \
          pg pooler=none replica=""
    mkdir -p "$dir"
    pid_alive "$dir/backend.pid" && return
    [ -x "$BACKEND" ] || die "$BACKEND is not built: run make"
    # STACK_PG's replica and pgbouncer serve the stack's own database only
    if [ "$db" = chat ]; then
        pg=$(backend_pg_conninfo) replica=$(replica_conninfo_if_any)
        if stack_pg_has pgbouncer; then pooler=transaction; fi
    else
        pg=$(pg_conninfo | sed "s/dbname=chat /dbname=$db /")
    fi
    # the backend appends to its --log-file itself; the redirect to the same
    # file only catches what it says before it has opened it
    # shellcheck disable=SC2094
    CHAT_PG=$pg CHAT_LANES=${LANES:-} \
    CHAT_PG_REPLICA=$replica CHAT_PG_POOLER=$pooler \
    CHAT_TOKEN_TTL=${TOKEN_TTL:-1800} CHAT_SESSION_TTL=${SESSION_TTL:-86400} \
    CHAT_SHARDS=$STREAM_SHARDS \
    CHAT_REDIS_USER=chat-worker CHAT_REDIS_PASSWORD_FILE=$RUN/redis/worker.pass \
    setsid "$BACKEND" \
        --workers "$workers" \
        --redis "127.0.0.1:$redis_port" \
        --token-secret-file "$secret" \
        --claim-idle-ms "${CLAIM_IDLE_MS:-5000}" \
        --payment-url "http://127.0.0.1:$PAYMENT_PORT" \
        --payment-timeout-ms "$PAYMENT_TIMEOUT_MS" \
        --reservation-ttl-ms "$RESERVATION_TTL_MS" \
        --reconcile-interval-ms "$RECONCILE_INTERVAL_MS" \
        --media-root "$RUN/media" \
        --pidfile "$dir/backend.pid" \
        --log-file "$dir/backend.log" \
        >> "$dir/backend.log" 2>&1 < /dev/null &
    wait_for 10 "the backend" test -s "$dir/backend.pid"
    log "backend: $workers workers each on the chat and read lanes${LANES:+, lanes $LANES}, redis $redis_port, database $db (log: $dir/backend.log)"
}

# The second application (APP2_PORT): its own Redis, database, token
# secret and backend; nginx serves it from the same process
# (conf/nginx-app2.conf.in).
start_app2() {
    [ -n "${APP2_PORT:-}" ] || return 0
    mkdir -p "$RUN/app2"
    [ -s "$RUN/app2/token_secret" ] || { openssl rand -hex 32 > "$RUN/app2/token_secret"; chmod 600 "$RUN/app2/token_secret"; }
    start_redis redis-app2 "$APP2_REDIS_PORT"
    if ! as_pg psql -h "$RUN/pg/socket" -p "$PG_PORT" -U chat -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = 'chat_app2'" | grep -q 1; then
        as_pg psql -h "$RUN/pg/socket" -p "$PG_PORT" -U chat -d postgres -qc "CREATE DATABASE chat_app2" \
            || die "could not create database chat_app2"
    fi
    "$ROOT/sql/migrate.sh" "$(pg_conninfo | sed 's/dbname=chat /dbname=chat_app2 /')" \
        | sed "s/^/stack[$STACK] app2: /"
    # its own notifications are not the notify tests' business
    CHAT_NOTIFY_WEBHOOK="" \
        start_backend backend-app2 "$APP2_REDIS_PORT" "$RUN/app2/token_secret" chat_app2 1
}

start_nginx() {
    local n=$RUN/nginx user_line=""
    mkdir -p "$n/tmp"
    pid_alive "$n/nginx.pid" && return
    [ -f "$MODULE_SO" ] || die "$MODULE_SO is not built: run make"
    # workers must read web/ wherever the clone lives; this is a dev stack
    [ "$(id -u)" -eq 0 ] && user_line="user root;"
    sed -e "s|@RUN@|$RUN|g" -e "s|@ROOT@|$ROOT|g" -e "s|@PORT@|$PORT|g" \
        -e "s|@REDIS_PORT@|$REDIS_PORT|g" -e "s|@MODULE_SO@|$MODULE_SO|g" \
        -e "s|@COMMAND_TIMEOUT@|$COMMAND_TIMEOUT|g" -e "s|@USER_LINE@|$user_line|g" \
        -e "s|@WS_MAX_MESSAGE@|$WS_MAX_MESSAGE|g" -e "s|@WS_PING_INTERVAL@|$WS_PING_INTERVAL|g" \
        -e "s|@WS_PONG_TIMEOUT@|$WS_PONG_TIMEOUT|g" -e "s|@NGINX_WORKERS@|$NGINX_WORKERS|g" \
        -e "s|@NGINX_CONNECTIONS@|$NGINX_CONNECTIONS|g" -e "s|@NGINX_NOFILE@|$NGINX_NOFILE|g" \
        -e "s|@LOGIN_RATE@|$LOGIN_RATE|g" -e "s|@LOGIN_BURST@|$LOGIN_BURST|g" \
        -e "s|@REGISTER_RATE@|$REGISTER_RATE|g" -e "s|@REGISTER_BURST@|$REGISTER_BURST|g" \
        -e "s|@CHECKOUT_RATE@|$CHECKOUT_RATE|g" -e "s|@CHECKOUT_BURST@|$CHECKOUT_BURST|g" \
        -e "s|@PRESENCE_TTL_MS@|$PRESENCE_TTL_MS|g" -e "s|@PRESENCE_GRACE_MS@|$PRESENCE_GRACE_MS|g" \
        -e "s|@TYPING_INTERVAL_MS@|$TYPING_INTERVAL_MS|g" \
        -e "s|@STREAM_SHARDS@|$STREAM_SHARDS|g" \
        -e "s|@WS_TICKET_TTL@|$WS_TICKET_TTL|g" \
        -e "s|@CHAT_CACHE@|${CHAT_CACHE:-on}|g" \
        -e "s|@PAYMENT_PUBLIC_URL@|$PAYMENT_PUBLIC_URL|g" \
        -e "s|@MEDIA_MAX_BODY@|${MEDIA_MAX_BODY:-25m}|g" \
        "$ROOT/conf/nginx.conf.in" > "$n/nginx.conf"
    # a second application on the same edge (tests/run.sh sets APP2_PORT)
    mkdir -p "$n/apps"
    rm -f "$n/apps/app2.conf"
    if [ -n "${APP2_PORT:-}" ]; then
        sed -e "s|@APP2_PORT@|$APP2_PORT|g" -e "s|@RUN@|$RUN|g" \
            -e "s|@APP2_REDIS_PORT@|$APP2_REDIS_PORT|g" \
            "$ROOT/conf/nginx-app2.conf.in" > "$n/apps/app2.conf"
    fi
    nginx -t -q -p "$n" -c "$n/nginx.conf" -g "error_log stderr;" \
        || die "nginx rejected $n/nginx.conf"
    nginx -p "$n" -c "$n/nginx.conf" || die "nginx failed to start, see $n/error.log"
    log "nginx on 127.0.0.1:$PORT (log: $n/error.log)"
}

# orders: the payment provider stand-in; its ledger survives restarts
start_payments() {
    local p=$RUN/payments
    mkdir -p "$p"
    pid_alive "$p/provider.pid" && return
    curl -fsS "http://127.0.0.1:$PAYMENT_PORT/health" >/dev/null 2>&1 \
        && die "port $PAYMENT_PORT is taken by another payment provider"
    setsid node "$ROOT/payments/provider.mjs" --port "$PAYMENT_PORT" \
        --log "$p/ledger.jsonl" --slow-ms "$PAYMENT_SLOW_MS" \
        --latency-ms "$PAYMENT_LATENCY_MS" --jitter-ms "$PAYMENT_JITTER_MS" \
        --tail-fraction "$PAYMENT_TAIL_FRACTION" --tail-ms "$PAYMENT_TAIL_MS" \
        --pidfile "$p/provider.pid" >> "$p/provider.log" 2>&1 < /dev/null &
    wait_for 15 "the payment provider" curl -fsS "http://127.0.0.1:$PAYMENT_PORT/health"
    log "payment provider on 127.0.0.1:$PAYMENT_PORT, answers in ${PAYMENT_LATENCY_MS}±${PAYMENT_JITTER_MS} ms (log: $p/provider.log)"
}

healthy() { curl -fsS "http://127.0.0.1:$PORT/api/v1/health" >/dev/null; }

add_demo_users() {
    local conn
    conn=$(pg_conninfo)
    # the password on stdin: an argument would show in ps
    CHAT_PG=$conn "$BACKEND" user-add --email admin@example.com \
        --name "Demo Admin" --admin <<<admin-demo-pass >/dev/null
    CHAT_PG=$conn "$BACKEND" user-add --email alice@example.com \
        --name "Alice" <<<alice-demo-pass >/dev/null
    CHAT_PG=$conn "$BACKEND" user-add --email bob@example.com \
        --name "Bob" <<<bob-demo-pass >/dev/null
}

# the demo's conversations, made through the API like anyone's
# (conf/demo-chat.mjs; a re-run adds nothing)
add_demo_chat() {
    node "$ROOT/conf/demo-chat.mjs" "http://127.0.0.1:$PORT" | sed "s/^/stack[$STACK]: /" \
        || log "the demo conversations could not be made (see above); the stack runs without them"
}

# the catalog: demo books for make run, CATALOG_BOOKS of them
# (default 2000); a re-run adds nothing (tests/bench/catalog_gen.sh); the
# hand-picked words only, so the titles read as titles (GEN_WORDS=0)
add_demo_catalog() {
    GEN_WORDS=0 "$ROOT/tests/bench/catalog_gen.sh" "$(pg_conninfo)" "${CATALOG_BOOKS:-2000}" \
        | sed "s/^/stack[$STACK]: /"
    # drawn covers for the books the store's first pages show (DEMO_COVERS,
    # 200: ~3 s); a re-run draws only what is missing
    CHAT_PG=$(pg_conninfo) "$BACKEND" --media-root "$RUN/media" \
        demo-covers "${DEMO_COVERS:-200}" | sed "s/^/stack[$STACK]: /"
}

# data and logs are the owner's only; the postgres user (when we are
# root) only passes through .run/<stack> to its own 0700 directory
lock_down() {
    chmod -R go-rwx "$RUN"
    if [ "$(id -u)" -eq 0 ]; then
        chmod 711 "$RUN"
        chmod go-rw,go+x "$ROOT/.run"
    fi
}

cmd_start() {
    mkdir -p "$RUN" "$RUN/media"
    lock_down
    [ -s "$RUN/token_secret" ] || { openssl rand -hex 32 > "$RUN/token_secret"; chmod 600 "$RUN/token_secret"; }
    if [ "$STACK_REDIS" = cluster ]; then start_redis_cluster; else start_redis; fi
    start_postgres
    "$ROOT/sql/migrate.sh" "$(pg_conninfo)" | sed "s/^/stack[$STACK]: /"
    if stack_pg_has replica; then start_pg_replica; fi
    if stack_pg_has pgbouncer; then start_pgbouncer; fi
    start_payments
    start_backend
    start_app2
    start_nginx
    wait_for 30 "the health check" healthy
    [ "$STACK" = dev ] && add_demo_users
    [ "$STACK" = dev ] && add_demo_chat
    [ "$STACK" = dev ] && add_demo_catalog
    log "up: http://127.0.0.1:$PORT"
}

stop_pidfile() {  # stop_pidfile <file> <name> <signal>
    local f=$1 name=$2 sig=$3 pid i
    pid_alive "$f" || return 0
    pid=$(cat "$f")
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || { log "$name stopped"; return 0; }
        sleep 0.1
    done
    log "$name did not stop in 15s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
    local i f
    stop_pidfile "$RUN/nginx/nginx.pid" nginx QUIT
    stop_pidfile "$RUN/backend/backend.pid" backend TERM
    stop_pidfile "$RUN/backend-app2/backend.pid" "app2 backend" TERM
    stop_pidfile "$RUN/payments/provider.pid" "payment provider" TERM
    if pid_alive "$RUN/redis/redis.pid"; then
        redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
        stop_pidfile "$RUN/redis/redis.pid" redis TERM
    fi
    # whatever STACK_REDIS says now: a cluster's nodes stop too
    for ((i = 0; i < REDIS_NODES; i++)); do
        f=$RUN/redis/node-$i/redis.pid
        pid_alive "$f" || continue
        redis-cli -p "$((REDIS_PORT + i))" shutdown >/dev/null 2>&1 || true
        stop_pidfile "$f" "redis node $i" TERM
    done
    if pid_alive "$RUN/redis-app2/redis.pid"; then
        redis-cli -p "$APP2_REDIS_PORT" shutdown >/dev/null 2>&1 || true
        stop_pidfile "$RUN/redis-app2/redis.pid" "app2 redis" TERM
    fi
    # whatever STACK_PG says now: a stack started with more stops whole
    stop_pidfile "$RUN/pgbouncer/pgbouncer.pid" pgbouncer INT
    if [ -f "$RUN/pg-replica/data/postmaster.pid" ] && [ -n "$PG_BIN" ]; then
        if as_pg "$PG_BIN/pg_ctl" -D "$RUN/pg-replica/data" -m fast -w stop >/dev/null 2>&1; then
            log "postgres replica stopped"
        fi
    fi
    if [ -f "$RUN/pg/data/postmaster.pid" ] && [ -n "$PG_BIN" ]; then
        if as_pg "$PG_BIN/pg_ctl" -D "$RUN/pg/data" -m fast -w stop >/dev/null 2>&1; then
            log "postgres stopped"
        fi
    fi
}

cmd_status() {
    local i p
    for p in nginx/nginx.pid backend/backend.pid redis/redis.pid payments/provider.pid; do
        pid_alive "$RUN/$p" && echo "$p: running ($(cat "$RUN/$p"))" || echo "$p: stopped"
    done
    if [ "$STACK_REDIS" = cluster ]; then
        for ((i = 0; i < REDIS_NODES; i++)); do
            p=redis/node-$i/redis.pid
            pid_alive "$RUN/$p" && echo "$p: running ($(cat "$RUN/$p"), port $((REDIS_PORT + i)))" || echo "$p: stopped"
        done
        redis_cluster_ok 2>/dev/null && echo "redis cluster: ok" || echo "redis cluster: not ok"
        workers_heartbeating 2>/dev/null && echo "workers: heartbeating" || echo "workers: none"
    fi
    healthy && echo "health: ok" || echo "health: not ok"
}

# what the tests need to find the stack
cmd_env() {
    printf 'CHAT_BASE_URL=%q\n' "http://127.0.0.1:$PORT"
    [ -n "${APP2_PORT:-}" ] && printf 'CHAT_APP2_URL=%q\nCHAT_APP2_REDIS_PORT=%q\n' \
        "http://127.0.0.1:$APP2_PORT" "$APP2_REDIS_PORT"
    printf 'CHAT_RUN_DIR=%q\n' "$RUN"
    printf 'CHAT_REDIS_PORT=%q\n' "$REDIS_PORT"
    # cluster: nodes on CHAT_REDIS_PORT .. + 5 (redis-cli -c follows MOVED)
    printf 'CHAT_STACK_REDIS=%q\n' "$STACK_REDIS"
    printf 'CHAT_PG_CONNINFO=%q\n' "$(pg_conninfo)"
    # STACK_PG=replica: the replica's, for the fault run's looks at it
    printf 'CHAT_PG_REPLICA_CONNINFO=%q\n' "$(replica_conninfo_if_any)"
    printf 'CHAT_STACK_PG=%q\n' "$STACK_PG"
    # the command streams per lane (STACK_REDIS=cluster1 runs one)
    printf 'CHAT_STREAM_SHARDS=%q\n' "$STREAM_SHARDS"
    printf 'CHAT_NOTIFY_WEBHOOK=%q\n' "$CHAT_NOTIFY_WEBHOOK"
    printf 'CHAT_PRESENCE_TTL_MS=%q\n' "$CHAT_PRESENCE_TTL_MS"
    printf 'CHAT_PAYMENT_URL=%q\n' "http://127.0.0.1:$PAYMENT_PORT"
    # the tests' own Redis access (redis-cli, tests/faults/resp.mjs) is the admin's
    printf 'REDISCLI_AUTH=%q\n' "${REDISCLI_AUTH:-}"
}

cmd_run() {
    # Ctrl-C may also have killed whatever reads our output (make run | tee):
    # stopping must not die of SIGPIPE or of a failed echo halfway through
    trap 'trap "" PIPE INT TERM; set +e; echo; cmd_stop; exit 0' INT TERM
    cmd_start
    cat <<MSG

  Open http://127.0.0.1:$PORT

  Demo accounts (email / password):
    admin@example.com / admin-demo-pass   (admin)
    alice@example.com / alice-demo-pass
    bob@example.com   / bob-demo-pass

  Payment provider (test cards: payments/README.md): http://127.0.0.1:$PAYMENT_PORT
  Logs: $RUN/{nginx/error.log,backend/backend.log,payments/provider.log}
  Press Ctrl-C to stop everything.
MSG
    while :; do sleep 1; done
}

case "${1:-}" in
    start)  cmd_start ;;
    stop)   cmd_stop ;;
    run)    cmd_run ;;
    status) cmd_status ;;
    env)    cmd_env ;;
    *)      echo "usage: $0 start|stop|run|status|env" >&2; exit 2 ;;
esac
