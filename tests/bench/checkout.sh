#!/usr/bin/env bash
# tests/bench/checkout.sh: figure 4 of the benchmark, checkouts.  Called by
# tests/bench/bench.sh with its side stack up (it needs the stack's env:
# CHAT_BASE_URL, CHAT_PG_CONNINFO, CHAT_RUN_DIR).
#
#   tests/bench/checkout.sh <seconds per run> <result file>
#
# Seeds 200 shoppers, two warehouses (eu, us), 10,000 books with 1,000
# copies in each warehouse, 5 best-sellers with 100,000 in each, and one
# book with 100 copies, straight in SQL.  Then three runs of
# tests/bench/checkout.mjs, 200 concurrent shoppers each (cart PUT, then
# POST /api/v1/orders with a card that succeeds):
#   spread   every checkout picks one of the 10,000 books
#   hot      every checkout picks one of the 5 best-sellers (hot rows)
#   sell-out all 200 shoppers go for the book with 100 copies
# After each run the oversell count is computed from PostgreSQL: copies
# held by orders beyond what a stock row has on hand, plus stock rows
# whose reserved differs from the holds of orders or from the ledger
# (both must be 0).  One line per run goes to the result file.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SECS=${1:-10}
OUT=${2:-/dev/stdout}
PG=$CHAT_PG_CONNINFO
SHOPPERS=${BENCH_SHOPPERS:-200}

log() { printf 'bench: %s\n' "$*" >&2; }

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
  FROM stock s
  LEFT JOIN held h USING (book_id, warehouse_id)
  LEFT JOIN ledger l USING (book_id, warehouse_id);
SQL
}

run() {  # run <label> <first:count> <seconds>
    local line
    psql "$PG" -Xqc "DELETE FROM cart_items"
    line=$(node "$HERE/checkout.mjs" --base "$CHAT_BASE_URL" --secret "$CHAT_RUN_DIR/token_secret" \
        --uid-base "$UB" --shoppers "$SHOPPERS" --books "$2" --seconds "$3" --label "$1")
    printf '%s %s\n' "$line" "$(oversell)" >> "$OUT"
    log "$line"
}

run "spread  " "$FB:10000" "$SECS"
run "hot     " "$HB:5" "$SECS"
run "sell-out" "$SB:1" 3
sold=$(psql "$PG" -XtAq -c "SELECT coalesce(sum(r.quantity), 0) FROM order_reservations r WHERE r.book_id = $SB AND r.state = 'held'")
printf 'sell-out: %s of 100 copies sold\n' "$sold" >> "$OUT"
