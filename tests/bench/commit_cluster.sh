#!/usr/bin/env bash
# tests/bench/commit_cluster.sh: figure 3's cluster lines: a stack of its
# own whose Redis is a 3-master Redis Cluster (conf/stack.sh with
# STACK_REDIS=cluster), seeded as bench.sh seeds its own; figure 3's burst
# on it, then one paced chat step through its nginx (e2e_step.sh), each
# line on stdout.  Run by bench.sh (BENCH_CLUSTER=0 leaves it out), which
# runs the same paced step on its own stack beside it.
#
#   commit_cluster.sh <password hash> <users> <messages> <e2e clients> <e2e rate>
#
# The same two cores carry all six nodes, so no gain is expected: the
# figure is what routing by slot (backend/engine/redis_route.c) costs the
# worker pool against one server.  Ports: CLUSTER_PORT, CLUSTER_REDIS_PORT
# (6 nodes and their bus ports: 12 from there), CLUSTER_PG_PORT; RES and
# LOAD as bench.sh has them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/bench
cd "$ROOT"
# shellcheck source=tests/bench/pg_state.sh
. "$HERE/pg_state.sh"
# shellcheck source=tests/bench/e2e_step.sh
. "$HERE/e2e_step.sh"

hash=$1 users=$2 count=$3 e2e_clients=$4 e2e_rate=$5
export STACK=bench-cluster STACK_REDIS=cluster PORT=$CLUSTER_PORT
export REDIS_PORT=$CLUSTER_REDIS_PORT PG_PORT=$CLUSTER_PG_PORT
export PAYMENT_PORT=$((CLUSTER_PORT + 10))

conf/stack.sh stop >/dev/null 2>&1 || true
rm -rf "$ROOT/.run/bench-cluster"
trap 'conf/stack.sh stop >/dev/null 2>&1; rm -rf "$ROOT/.run/bench-cluster"' EXIT
if ! conf/stack.sh start > "$RES/cluster-start.log" 2>&1; then
    cat "$RES/cluster-start.log" >&2
    echo "commit_cluster: the cluster stack did not start" >&2
    exit 1
fi
eval "$(conf/stack.sh env)"
export REDISCLI_AUTH

read -r ub cb < <(seed_rows "$CHAT_PG_CONNINFO" "$hash" "$users" $((users / 2)))
[ -n "${cb:-}" ] || { echo "commit_cluster: seeded ids are not contiguous" >&2; exit 1; }
pg_production_state "$CHAT_PG_CONNINFO"
"$LOAD" commit --redis-port "$REDIS_PORT" --count "$count" \
    --pairs $((users / 2)) --uid-base "$ub" --conv-base "$cb"
pg_production_state "$CHAT_PG_CONNINFO"   # as bench.sh does after its burst
e2e_step "$PORT" "$CHAT_RUN_DIR" "$ub" "$cb" "$e2e_clients" "$e2e_rate" 127.0.0.251 "$RES"
