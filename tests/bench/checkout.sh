#!/usr/bin/env bash
# tests/bench/checkout.sh: figure 4 of the benchmark, checkouts.  Called by
# tests/bench/bench.sh with its side stack up (it needs the stack's env:
# CHAT_BASE_URL, CHAT_PG_CONNINFO, CHAT_RUN_DIR, and what bench.sh exports
# for conf/stack.sh: STACK, PORT, REDIS_PORT, PG_PORT, PAYMENT_PORT).
#
#   tests/bench/checkout.sh <seconds per run> <result file>
#
# Seeds BENCH_SHOPPERS shoppers (default 400), two warehouses (eu, us),
# 10,000 books with 1,000 copies in each warehouse, 5 best-sellers with
# 100,000 in each, and one book with 100 copies, straight in SQL.  Then
# runs of `chatload checkout` (checkoutload.c), every shopper in a loop
# (cart PUT, a card tokenized, then POST /api/v1/orders with it):
#   spread   every checkout picks one of the 10,000 books
#   hot      every checkout picks one of the 5 best-sellers (hot rows)
#   sell-out all shoppers go for the book with 100 copies (3 s)
# with the payment provider answering at once (the reference: what this
# machine does when nobody waits), then in BENCH_PAYMENT_LATENCY_MS give
# or take BENCH_PAYMENT_JITTER_MS (default 300 and 100, a real
# processor's answer time; set on the running provider through its test
# endpoint).  Last, unless BENCH_CHECKOUT_BLOCKING=0, the spread run with
# the processor's answer time again on a backend restarted with one
# checkout in flight per process (orders:concurrency=1), the way a worker
# that waits on each call behaves, then the backend is restarted as it was.
# After each run the oversell count is computed from PostgreSQL: copies
# held by orders beyond what a stock row has on hand, plus stock rows
# whose reserved differs from the holds of orders or from the ledger,
# plus books whose place in books_unavailable (search's "in stock")
# disagrees with their stock rows (all must be 0); at the end, the provider's ledger against the orders:
# double charges, charges for orders not paid, paid orders not charged
# (all must be 0).  One line per run goes to the result file.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECS=${1:-10}
OUT=${2:-/dev/stdout}
PG=$CHAT_PG_CONNINFO
SHOPPERS=${BENCH_SHOPPERS:-400}
LATENCY=${BENCH_PAYMENT_LATENCY_MS:-300}
JITTER=${BENCH_PAYMENT_JITTER_MS:-100}
PAYMENT_URL=${CHAT_PAYMENT_URL:-http://127.0.0.1:${PAYMENT_PORT:-$((${PORT:-18484} + 10))}}

log() { printf 'bench: %s\n' "$*" >&2; }

# shellcheck disable=SC2034  # read by cpu.sh
RUN=$CHAT_RUN_DIR
CPU_SNAP=$(mktemp -d)
trap 'rm -rf "$CPU_SNAP"' EXIT
# shellcheck source=tests/bench/cpu.sh
. "$HERE/cpu.sh"
# shellcheck source=tests/bench/pg_state.sh
. "$HERE/pg_state.sh"
CPU_PARTS="postgres nginx redis workers provider"

read -r UB FB HB SB < <(psql "$PG" -XtAq -v ON_ERROR_STOP=1 -v n="$SHOPPERS" -F ' ' <<'SQL'
BEGIN;
INSERT INTO users (email, display_name, password_hash)
SELECT 'shopper' || g || '@bench.invalid', 'Shopper ' || g, '!'
  FROM generate_series(1, :n) g ORDER BY g;
INSERT INTO warehouses (code, name, region) VALUES
    ('bench-eu', 'Bench EU', 'eu'), ('bench-us', 'Bench US', 'us');
INSERT INTO books (isbn13, title, price_cents)
SELECT '978' || lpad(g::text, 10, '0'), 'Bench book ' || g, 500 + g % 3000
  FROM generate_series(1, 10006) g ORDER BY g;
SELECT min(id) AS fb FROM books WHERE isbn13 LIKE '978%' AND title LIKE 'Bench book %' \gset
INSERT INTO stock (book_id, warehouse_id, on_hand)
SELECT b.id, w.id, CASE WHEN b.id < :fb + 10000 THEN 1000
                        WHEN b.id < :fb + 10005 THEN 100000
                        ELSE CASE WHEN w.region = 'eu' THEN 100 ELSE 0 END END
  FROM books b CROSS JOIN warehouses w
 WHERE b.id >= :fb AND w.code LIKE 'bench-%';
COMMIT;
SELECT min(id), :fb, :fb + 10000, :fb + 10005 FROM users WHERE email LIKE 'shopper%@bench.invalid';
SQL
)
log "checkout: seeded $SHOPPERS shoppers from id $UB, books $FB.. (hot $HB.., sell-out $SB)"
# as a running shop's tables are: analyzed, nothing for autovacuum to do
# (without it the first run shared the cores with autovacuum's pass over
# the rows just seeded, and its PostgreSQL CPU per checkout was 1.6 times
# the next runs')
psql "$PG" -Xq -c "VACUUM users, books, stock, warehouses, cart_items"
pg_production_state "$PG"

oversell() {
    psql "$PG" -XtAq -v ON_ERROR_STOP=1 <<'SQL'
WITH held AS (
    SELECT book_id, warehouse_id, sum(quantity) AS q FROM order_reservations
     WHERE state = 'held' GROUP BY 1, 2
), ledger AS (
    SELECT book_id, warehouse_id, sum(delta_reserved) AS q FROM stock_ledger GROUP BY 1, 2
)
SELECT 'oversell=' || coalesce(sum(greatest(0, coalesce(h.q, 0) - s.on_hand)), 0)
       || ' mismatched_rows=' || count(*) FILTER (WHERE s.reserved <> coalesce(h.q, 0)
                                                   OR s.reserved <> coalesce(l.q, 0))
       -- search's "in stock" (books_unavailable, sql/018) against stock
       || ' unavailable_mismatch=' || (SELECT count(*) FROM books b
              WHERE EXISTS (SELECT 1 FROM books_unavailable u WHERE u.book_id = b.id)
                  = EXISTS (SELECT 1 FROM stock x WHERE x.book_id = b.id AND x.on_hand > x.reserved))
  FROM stock s
  LEFT JOIN held h USING (book_id, warehouse_id)
  LEFT JOIN ledger l USING (book_id, warehouse_id);
SQL
}

# processor <latency ms> <jitter ms>: the provider's answer time, now
processor() {
    curl -fsS -X PUT "$PAYMENT_URL/v1/test/latency" \
        -d "{\"latency_ms\":$1,\"jitter_ms\":$2}" >/dev/null
}

# cpu_per_checkout <before> <after> <paid>: each component's CPU between
# two cpu_ticks snapshots, per paid checkout
cpu_per_checkout() {
    local hz
    hz=$(getconf CLK_TCK)
    join <(sort "$1") <(sort "$2") | awk -v n="$3" -v hz="$hz" '
        $1 != "time" { parts = parts sprintf(" %s=%.0fus", $1, n > 0 ? ($3 - $2) * 1e6 / hz / n : 0) }
        END { printf "cpu per paid checkout:%s", parts }'
}

run() {  # run <label> <first:count> <seconds> [shoppers]
    local line paid
    # the shoppers' carts only: the past carts of pg_state.sh stay
    psql "$PG" -Xqc "DELETE FROM cart_items WHERE user_id >= $UB AND user_id < $UB + $SHOPPERS"
    # shellcheck disable=SC2086  # a list of names, split on purpose
    cpu_ticks $CPU_PARTS > "$CPU_SNAP/0"
    line=$("$HERE/bin/chatload" checkout --port "${PORT:-18484}" --payment-port "${PAYMENT_URL##*:}" \
        --secret "$CHAT_RUN_DIR/token_secret" --uid-base "$UB" --shoppers "${4:-$SHOPPERS}" \
        --books "$2" --measure "$3" --label "$1")
    # shellcheck disable=SC2086
    cpu_ticks $CPU_PARTS > "$CPU_SNAP/1"
    paid=$(sed -n 's/.* checkouts=\([0-9]*\) .*/\1/p' <<< "$line")
    line="$line $(cpu_per_checkout "$CPU_SNAP/0" "$CPU_SNAP/1" "${paid:-0}")"
    printf '%s %s\n' "$line" "$(oversell)" >> "$OUT"
    log "$line"
}

# restart_backend <lanes>: the stack's backend again with CHAT_LANES=<lanes>
restart_backend() {
    local pidf=$CHAT_RUN_DIR/backend/backend.pid pid i
    pid=$(cat "$pidf")
    kill -TERM "$pid"
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    LANES=$1 "$ROOT/conf/stack.sh" start >/dev/null
}

# the pending ones settle by themselves (the reconciler); give them a moment
settled() {
    local i n
    for ((i = 0; i < 30; i++)); do
        n=$(psql "$PG" -XtAq -c "SELECT count(*) FROM orders WHERE status = 'pending_payment'")
        [ "$n" = 0 ] && return 0
        sleep 1
    done
    log "checkout: $n orders still pending_payment"
}

printf 'shoppers=%s; the processor answers at once (reference), then in %s ± %s ms\n' \
    "$SHOPPERS" "$LATENCY" "$JITTER" >> "$OUT"

processor 0 0
run "spread   0 ms      " "$FB:10000" "$SECS"
run "hot      0 ms      " "$HB:5" "$SECS"

processor "$LATENCY" "$JITTER"
run "spread   ${LATENCY} ms    " "$FB:10000" "$SECS"
run "hot      ${LATENCY} ms    " "$HB:5" "$SECS"
run "sell-out ${LATENCY} ms    " "$SB:1" 3
sold=$(psql "$PG" -XtAq -c "SELECT coalesce(sum(r.quantity), 0) FROM order_reservations r WHERE r.book_id = $SB AND r.state = 'held'")
printf 'sell-out: %s of 100 copies sold\n' "$sold" >> "$OUT"

if [ "${BENCH_CHECKOUT_BLOCKING:-1}" != 0 ]; then
    # a blocking worker: one checkout waiting per process; at most
    # procs / latency checkouts/s, so a short run and few shoppers suffice
    log "checkout: blocking reference (orders:concurrency=1)"
    restart_backend "${LANES:+$LANES;}orders:concurrency=1"
    run "spread   ${LATENCY} ms, 1 in flight per process (blocking)" "$FB:10000" \
        "$(( SECS < 10 ? SECS : 10 ))" 50
    restart_backend "${LANES:-}"
fi

processor 0 0
settled
psql "$PG" -XtAq -F ' ' -c "SELECT id, status FROM orders" > "$CHAT_RUN_DIR/bench-orders.txt"
printf 'payments: %s\n' "$(node "$HERE/checkout_audit.mjs" --audit "$CHAT_RUN_DIR/payments/ledger.jsonl" \
    "$CHAT_RUN_DIR/bench-orders.txt")" >> "$OUT"
