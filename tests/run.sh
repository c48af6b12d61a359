#!/usr/bin/env bash
# make test: the unit tests, then the integration suite against a fresh test
# stack (STACK=test: its own ports and data directory, wiped each run).
#
#   tests/run.sh [all|unit|integration|replica|cluster|faults|browser|soak|package|lint]
#
# STACK_PG (conf/stack.sh: replica, pgbouncer, or both) runs any suite on
# a stack with a streaming replica and/or pgbouncer; "replica" is the short
# pass on both that make test runs.  STACK_REDIS=cluster (conf/stack.sh)
# starts a 3-master Redis Cluster instead of one server; "cluster" is the
# short pass on it, with a PostgreSQL replica too, that make test runs
# (integration files through nginx, a master killed under load, the
# backend through the bus: tests/cluster/).
#
# Every suite prints its own summary ("N passed, N failed" for the C unit
# tests, node's "# pass / # fail" for the integration suite); the last line
# is the total.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
failed_suites=()
cd "$ROOT" || exit 1

# unit_test <name> <sources...>: build tests/unit/test_<name>.c with the
# sources under ASan/UBSan, run it
unit_test() {
    local name=$1 bin=tests/unit/bin
    shift
    mkdir -p "$bin"
    gcc -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined \
        -fno-omit-frame-pointer -Iprotocol -Ingx_chat_module -Itests/unit \
        "tests/unit/test_$name.c" "$@" -lcjson -lcrypto -o "$bin/test_$name" \
        || { failed_suites+=("build test_$name"); return; }
    echo "== unit: $name"
    "$bin/test_$name" || failed_suites+=("unit $name")
}

run_unit() {
    # p: the wire contract both sides share; m: the edge's own plain C
    local p=protocol m=ngx_chat_module
    unit_test token $p/chat_token.c $p/chat_base64.c
    unit_test seal $p/chat_seal.c $p/chat_base64.c
    unit_test envelope $p/chat_envelope.c
    unit_test lanes $p/chat_lanes.c $p/chat_token.c $p/chat_base64.c
    unit_test utf8 $p/chat_utf8.c
    unit_test ws $m/chat_ws.c $p/chat_utf8.c
    unit_test poll $m/chat_poll.c
    unit_test json $p/chat_json.c $p/chat_query.c $p/chat_utf8.c
    unit_test redact $p/chat_redact.c
    unit_test secret $p/chat_secret.c
    unit_test media $p/chat_media.c $p/chat_utf8.c
    # the key builders, the fan-out rule in C and Lua, the shared scripts,
    # the cluster rules: each on a redis-server of its own (redis_server.c)
    local r=tests/unit/redis_server.c
    unit_test online $p/chat_online.c $p/chat_scripts.c $r -lhiredis
    unit_test cluster $p/chat_cluster.c $r -lhiredis
    echo "== unit: backend"
    make -s -C backend test-unit || failed_suites+=("unit backend")
    echo "== client package: manifest, declarations, tsc"
    run_client_package || failed_suites+=("client package")
    echo "== backend: SIGHUP reopens the log file"
    tests/backend/log_reopen.sh || failed_suites+=("backend log reopen")
    # every libFuzzer harness briefly, ~60 s (make fuzz: longer)
    echo "== fuzz: ws, utf8, token, envelope, poll, json, seal, redact, cluster harnesses (smoke)"
    make -s -C tests/fuzz smoke || failed_suites+=("fuzz smoke")
}

# web/package.json, web/chat-client.d.ts and a usage example under tsc
# (tests/client/README.md); typescript pinned by tests/client's lock
run_client_package() {
    local dir=tests/client
    if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock"; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error \
            && cp package-lock.json node_modules/.installed-lock) || return 1
    fi
    node --test "$dir"/*.test.mjs
}

# a fresh STACK=test (wiped), its environment exported for the tests
start_test_stack() {
    # TEST_STACK (with PORT, REDIS_PORT, PG_PORT) runs the suites on a side
    # stack, so two checkouts can test at once
    export STACK=${TEST_STACK:-test}
    # short reclaim and long command timeouts: a killed worker's commands are
    # reclaimed and answered well before the edge would give up on them
    export CLAIM_IDLE_MS=1500 COMMAND_TIMEOUT=30s WORKERS=2
    # a raised message cap (the 16 MiB message test) and fast pings (the
    # missing-pong test) without slowing anything else down
    export WS_MAX_MESSAGE=20m WS_PING_INTERVAL=2s WS_PONG_TIMEOUT=2s
    # tickets expire within a test (sessions.test.mjs waits it out)
    export WS_TICKET_TTL=${WS_TICKET_TTL:-4s}
    # the rate limits ratelimit.test.mjs expects; the checkout burst leaves
    # room for the concurrent retries of one key in the checkout tests
    export LOGIN_RATE=5r/s LOGIN_BURST=10 CHECKOUT_RATE=2r/s CHECKOUT_BURST=40
    # sign-ups: loose enough for the suites' own users (registerUser waits
    # out a 429), tight enough for ratelimit.test.mjs to see a burst refused
    export REGISTER_RATE=20r/s REGISTER_BURST=40
    # the auth lane waits as long as the rest of the test stack does (a
    # busy machine slows scrypt at nice 10; a slow machine must not fail)
    export LANES=${LANES:-auth:timeout=60000}
    # presence: a short TTL (the killed-nginx-worker test waits for it), a
    # short grace and receipt window; notifications go to the webhook that
    # tests/integration/notify.test.mjs serves on PORT + 3
    export PRESENCE_TTL_MS=6000 PRESENCE_GRACE_MS=1000 RECEIPT_WINDOW_MS=500
    export NOTIFY_WEBHOOK="http://127.0.0.1:$(( ${PORT:-18080} + 3 ))/notify"
    # a second application's server on the same nginx (two_apps.test.mjs)
    export APP2_PORT=$(( ${PORT:-18080} + 2 ))
    export NOTIFY_QUIET_MS=1500 NOTIFY_BACKOFF_MS=300
    # orders: a provider timeout, slow cards past it, a reservation TTL and
    # a reconciler interval short enough for the tests to watch them work
    export PAYMENT_TIMEOUT_MS=1000 PAYMENT_SLOW_MS=2500 \
           RESERVATION_TTL_MS=4000 RECONCILE_INTERVAL_MS=500
    conf/stack.sh stop >/dev/null 2>&1 || true
    rm -rf ".run/$STACK"
    trap 'conf/stack.sh stop >/dev/null 2>&1' EXIT
    if ! conf/stack.sh start; then
        failed_suites+=("stack start")
        tail -20 ".run/$STACK/backend/backend.log" ".run/$STACK/nginx/error.log" 2>/dev/null
        return 1
    fi
    set -a
    eval "$(conf/stack.sh env)"
    set +a
}

# ASAN=1: the stack runs the sanitizer builds (make asan).  The stock nginx
# loads an instrumented module only with the ASan runtime preloaded, so a
# wrapper named nginx goes first in PATH (the stack and the tests call
# nginx by name).  Sanitizer reports go to files; any file is a failure.
use_asan() {
    local bin=$ROOT/build/asan/bin runtime
    mkdir -p "$bin"
    runtime="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    printf '#!/bin/sh\nLD_PRELOAD="%s" exec /usr/sbin/nginx "$@"\n' "$runtime" > "$bin/nginx"
    chmod +x "$bin/nginx"
    export PATH=$bin:$PATH
    export MODULE_SO=$ROOT/build/asan/nginx/objs/ngx_chat_module.so
    export BACKEND_BIN=$ROOT/build/asan/backend/chat-backend
    ASAN_REPORTS=$ROOT/build/asan/reports
    rm -rf "$ASAN_REPORTS" && mkdir -p "$ASAN_REPORTS"
    # nginx keeps its cycle's memory until exit by design, and workers leave
    # with exit(): leak reports would be noise, so only memory errors count
    export ASAN_OPTIONS="detect_leaks=0:log_path=$ASAN_REPORTS/asan:abort_on_error=0"
    export UBSAN_OPTIONS="print_stacktrace=1:log_path=$ASAN_REPORTS/ubsan"
    echo "== sanitizer builds: reports go to $ASAN_REPORTS"
}

asan_verdict() {
    local reports
    reports=$(ls "$ASAN_REPORTS" 2>/dev/null)
    if [ -n "$reports" ]; then
        head -60 "$ASAN_REPORTS"/*
        failed_suites+=("sanitizer reports: ${reports//$'\n'/ }")
    else
        echo "== sanitizers: no reports"
    fi
}

run_integration() {
    [ "${ASAN:-0}" = 1 ] && use_asan
    start_test_stack || return
    # the backend's own tests that need a PostgreSQL (group commit)
    echo "== backend: against the test stack's PostgreSQL"
    make -s -C backend test-db || failed_suites+=("backend db")
    # the Redis client on a single server (run_cluster: on a cluster)
    make -s -C backend test-route || failed_suites+=("backend route")
    echo "== integration"
    node --test --test-concurrency=1 tests/integration/ \
        || failed_suites+=("integration")
    # live delivery in bursts with reconnects, nothing broken: every
    # connected device gets every message live (make test-soak: minutes)
    echo "== soak (short: ${SOAK_SHORT_SECONDS:-20} s; make test-soak runs the long one)"
    node tests/soak/soak.mjs --seconds "${SOAK_SHORT_SECONDS:-20}" \
        || failed_suites+=("soak")
    run_browser_suite
    # last: it kills and restarts the stack's servers
    echo "== faults (short: each fault once; make test-faults runs the long one)"
    node tests/faults/chaos.mjs --rounds 1 || failed_suites+=("faults")
    conf/stack.sh stop
    trap - EXIT
    [ "${ASAN:-0}" = 1 ] && asan_verdict
}

# the short pass on a fresh stack with a streaming replica and pgbouncer in
# transaction mode (STACK_PG=replica,pgbouncer): the replica's own file and
# the catalog's (its cache and a replica together), a couple of minutes
run_replica() {
    local saved=${STACK_PG-}
    export STACK_PG=replica,pgbouncer
    if start_test_stack; then
        echo "== replica pass (STACK_PG=$STACK_PG)"
        node --test --test-concurrency=1 tests/integration/replica.test.mjs \
            tests/integration/catalog.test.mjs || failed_suites+=("replica pass")
        conf/stack.sh stop
        trap - EXIT
    fi
    STACK_PG=$saved
}

# the short pass on a fresh stack on a Redis Cluster (STACK_REDIS=cluster:
# 3 masters, 3 replicas) with nginx routing by slot, and a PostgreSQL
# streaming replica (STACK_PG=replica): the backend's router, a handful of
# integration files through the edge (chat over WebSocket, long polls,
# presence, a checkout), the fault run with a Redis master killed and the
# PostgreSQL replica killed and lagging under load (its books must be 0),
# then the backend driven through the bus on every lane's shards with a
# slot moved and another master killed.  About six minutes.
run_cluster() {
    local saved=${STACK_REDIS-} saved_pg=${STACK_PG-}
    export STACK_REDIS=cluster STACK_PG=replica
    if start_test_stack; then
        echo "== cluster pass (STACK_REDIS=cluster)"
        make -s -C backend test-route || failed_suites+=("backend route (cluster)")
        node --test --test-concurrency=1 tests/integration/chat.test.mjs \
            tests/integration/poll.test.mjs tests/integration/presence.test.mjs \
            || failed_suites+=("cluster pass: integration")
        node --test --test-name-pattern='^checkout: paid' tests/integration/orders.test.mjs \
            || failed_suites+=("cluster pass: checkout")
        node tests/faults/chaos.mjs --rounds 1 \
            --faults worker,redis-master,replica,replica-lag,reload \
            || failed_suites+=("cluster pass: faults")
        node --test --test-concurrency=1 tests/cluster/ || failed_suites+=("cluster pass")
        conf/stack.sh stop
        trap - EXIT
    fi
    export STACK_REDIS=$saved STACK_PG=$saved_pg
}

# the long fault run on its own fresh stack: every fault FAULT_ROUNDS times
# (default 5) under heavier traffic, then the books
run_faults() {
    start_test_stack || return
    node tests/faults/chaos.mjs --rounds "${FAULT_ROUNDS:-5}" --users 16 \
        --settle-ms 6000 || failed_suites+=("faults")
    conf/stack.sh stop
    trap - EXIT
}

# the long soak on its own fresh stack: SOAK_SECONDS of bursts (default
# 300), SOAK_USERS users (default 10), then the live-gap count
run_soak() {
    start_test_stack || return
    node tests/soak/soak.mjs --seconds "${SOAK_SECONDS:-300}" \
        --users "${SOAK_USERS:-10}" || failed_suites+=("soak")
    conf/stack.sh stop
    trap - EXIT
}

# browser: the web app in headless Chromium (tests/browser/README.md), on
# the running test stack.  puppeteer-core comes pinned from
# tests/browser/package-lock.json (npm ci, only when the lock changed).
run_browser_suite() {
    local dir=tests/browser
    echo "== browser (headless Chromium)"
    if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
        echo "browser: no Chromium at ${CHROMIUM:-/usr/bin/chromium} (make deps installs it)"
        failed_suites+=("browser: no chromium")
        return
    fi
    if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock"; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error \
            && cp package-lock.json node_modules/.installed-lock) \
            || { failed_suites+=("browser: npm ci"); return; }
    fi
    node --test --test-concurrency=1 "$dir"/*.test.mjs || failed_suites+=("browser")
}

run_browser() {
    start_test_stack || return
    run_browser_suite
    conf/stack.sh stop
    trap - EXIT
}

# cppcheck and shellcheck, clean (conf/lint.sh)
run_lint() {
    echo "== lint (cppcheck, shellcheck)"
    conf/lint.sh || failed_suites+=("lint")
}

# the Debian packages built, installed, run on side ports and purged
# (tests/package/README.md); builds them first (make deb)
run_package() {
    echo "== package (make deb, install, run, purge)"
    make -s deb >/dev/null || { failed_suites+=("package: make deb"); return; }
    # make install in the test builds the dev tree's module and backend
    make -s all >/dev/null || { failed_suites+=("package: make all"); return; }
    tests/package/run.sh || failed_suites+=("package")
}

# timed <name> <function>: runs one suite and notes how long it took, so
# the end of a run says where make test's minutes go
timings=()
timed() {
    local start=$SECONDS
    "$2"
    timings+=("$1 $((SECONDS - start))s")
}

case "$what" in
    unit)        run_unit ;;
    integration) run_integration ;;
    replica)     run_replica ;;
    faults)      run_faults ;;
    browser)     run_browser ;;
    soak)        run_soak ;;
    package)     run_package ;;
    lint)        run_lint ;;
    cluster)     run_cluster ;;
    all)         timed lint run_lint; timed unit run_unit
                 timed integration run_integration; timed replica run_replica
                 timed cluster run_cluster; timed package run_package
                 echo "tests: time per suite: ${timings[*]} (all: ${SECONDS}s)" ;;
    *)           echo "usage: $0 [all|unit|integration|replica|cluster|faults|browser|soak|package|lint]" >&2; exit 2 ;;
esac

if [ ${#failed_suites[@]} -gt 0 ]; then
    echo "tests: FAILED: ${failed_suites[*]}"
    exit 1
fi
echo "tests: all suites passed"
