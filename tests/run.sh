#!/usr/bin/env bash
# make test: the unit tests, then the integration suite against a fresh test
# stack (STACK=test: its own ports and data directory, wiped each run).
#
#   tests/run.sh [all|unit|integration]
#
# Every suite prints its own summary ("N passed, N failed" for the C unit
# tests, node's "# pass / # fail" for the integration suite); the last line
# is the total.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-all}
failed_suites=()
cd "$ROOT"

# unit_test <name> <sources...>: build tests/unit/test_<name>.c with the
# sources under ASan/UBSan, run it
unit_test() {
    local name=$1 bin=tests/unit/bin
    shift
    mkdir -p "$bin"
    gcc -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined \
        -fno-omit-frame-pointer -Ingx_chat_module -Itests/unit \
        "tests/unit/test_$name.c" "$@" -lcjson -lcrypto -o "$bin/test_$name" \
        || { failed_suites+=("build test_$name"); return; }
    echo "== unit: $name"
    "$bin/test_$name" || failed_suites+=("unit $name")
}

run_unit() {
    local m=ngx_chat_module
    unit_test token $m/chat_token.c $m/chat_base64.c
    unit_test envelope $m/chat_envelope.c
    unit_test utf8 $m/chat_utf8.c
    unit_test ws $m/chat_ws.c $m/chat_utf8.c
    echo "== unit: backend"
    make -s -C backend test-unit || failed_suites+=("unit backend")
    # the WebSocket frame parser under libFuzzer, ~20 s (make fuzz: longer)
    echo "== fuzz: ws frame parser (smoke)"
    make -s -C tests/fuzz smoke || failed_suites+=("fuzz smoke")
}

run_integration() {
    export STACK=test
    # short reclaim and long command timeouts: a killed worker's commands are
    # reclaimed and answered well before the edge would give up on them
    export CLAIM_IDLE_MS=1500 COMMAND_TIMEOUT=30s WORKERS=2
    # a raised message cap (the 16 MiB message test) and fast pings (the
    # missing-pong test) without slowing anything else down
    export WS_MAX_MESSAGE=20m WS_PING_INTERVAL=2s WS_PONG_TIMEOUT=2s
    # orders: a provider timeout, slow cards past it, a reservation TTL and
    # a reconciler interval short enough for the tests to watch them work
    export PAYMENT_TIMEOUT_MS=1000 PAYMENT_SLOW_MS=2500 \
           RESERVATION_TTL_MS=4000 RECONCILE_INTERVAL_MS=500
    conf/stack.sh stop >/dev/null 2>&1 || true
    rm -rf .run/test
    trap 'conf/stack.sh stop >/dev/null 2>&1' EXIT
    if ! conf/stack.sh start; then
        failed_suites+=("stack start")
        tail -20 .run/test/backend/backend.log .run/test/nginx/error.log 2>/dev/null
        return
    fi
    set -a
    eval "$(conf/stack.sh env)"
    set +a
    echo "== integration"
    node --test --test-concurrency=1 tests/integration/ \
        || failed_suites+=("integration")
    conf/stack.sh stop
    trap - EXIT
}

case "$what" in
    unit)        run_unit ;;
    integration) run_integration ;;
    all)         run_unit; run_integration ;;
    *)           echo "usage: $0 [all|unit|integration]" >&2; exit 2 ;;
esac

if [ ${#failed_suites[@]} -gt 0 ]; then
    echo "tests: FAILED: ${failed_suites[*]}"
    exit 1
fi
echo "tests: all suites passed"
