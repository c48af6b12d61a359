#!/usr/bin/env bash
# tests/bench/isolation.sh: figure 7 of the benchmark, isolation between
# lanes (tests/bench/isolation.mjs says what is measured).
#
#   tests/bench/isolation.sh [full|quick]
#
# Brings up its own side stack (STACK=isolation, ports 18584/16594/15594,
# processor on 18594; BENCH_ISO_PORT, BENCH_ISO_REDIS_PORT, BENCH_ISO_PG_PORT
# move them) with the sign-up rate limit lifted (the burst is the load under
# test, not an attack) and the payment stand-in answering in
# PAYMENT_LATENCY_MS (300) with its slow card past the backend's timeout,
# runs the probe and tears the stack down.  make bench and make bench-quick
# run it; make bench-isolation runs it alone.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODE=${1:-full}
cd "$ROOT"

case "$MODE" in
    full)  SECONDS_PER=10 ;;
    quick) SECONDS_PER=4 ;;
    *)     echo "usage: $0 [full|quick]" >&2; exit 2 ;;
esac

export STACK=isolation
export PORT=${BENCH_ISO_PORT:-18584} REDIS_PORT=${BENCH_ISO_REDIS_PORT:-16594}
export PG_PORT=${BENCH_ISO_PG_PORT:-15594}
export PAYMENT_PORT=$((PORT + 10))
export REGISTER_RATE=1000r/s REGISTER_BURST=1000 CHECKOUT_RATE=1000r/s CHECKOUT_BURST=1000
export PAYMENT_LATENCY_MS=${PAYMENT_LATENCY_MS:-300}
export PAYMENT_SLOW_MS=${PAYMENT_SLOW_MS:-5000} PAYMENT_TIMEOUT_MS=${PAYMENT_TIMEOUT_MS:-3000}
export CATALOG_BOOKS=0 NOTIFY_WEBHOOK=

log() { printf 'bench: %s\n' "$*" >&2; }

conf/stack.sh stop >/dev/null 2>&1 || true
rm -rf .run/isolation
trap 'conf/stack.sh stop >/dev/null 2>&1 || true' EXIT
conf/stack.sh start >&2
set -a
eval "$(conf/stack.sh env)"
set +a
# shellcheck source=tests/bench/pg_state.sh
. tests/bench/pg_state.sh
pg_production_state "$CHAT_PG_CONNINFO"

log "figure 7: isolation, chat at 500 msg/s alone, during 50 sign-ups, during checkouts at 200/s ($SECONDS_PER s each)"
make -s -C tests/bench >&2
node tests/bench/isolation.mjs --rate 500 --seconds "$SECONDS_PER" --signups 50 \
    --checkout-rate 200 --slow-share 0.05 --chatload tests/bench/bin/chatload --port "$PORT"
