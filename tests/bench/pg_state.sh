# shellcheck shell=bash
# tests/bench/pg_state.sh: sourced by bench.sh, commit_cluster.sh,
# checkout.sh and isolation.sh: the chat rows the figures need, and the
# database in the state a running system keeps it in, before anything is
# timed.
#
# Why: the workers prepare their hot statements once per connection and
# their sessions force generic plans (backend/engine/db.c).  On a fresh
# stack those plans are made while the tables hold a few rows, and nothing
# replaces them until ANALYZE, which autovacuum runs at most once a minute:
# a run shorter than that kept sequential scans of command_log, one per
# batch, and each burst of figure 3 ran slower than the one before (5,800,
# then 3,950, 2,900, 1,800 commits/s on one stack; tests/bench/README.md).
# A running system's command_log holds every command it has answered.
#
# The same holds for a shop's order tables, and worse when they are
# analyzed while empty: the planner then trusts "0 pages" and plans a
# sequential scan even for a primary-key lookup, and the foreign-key
# checks of every order row (order_items, order_reservations,
# payment_attempts -> orders, run in the workers' sessions with their
# cached plans) scanned the whole orders table, growing with each
# checkout: figure 4 at 300 ms ran 218 paid checkouts/s with PostgreSQL at
# 6.2 ms of CPU each; with past orders, 474/s at 1.8 ms (2026-12-06).  A
# running shop's orders hold its past orders.  And a chat's messages:
# with its partitions analyzed empty, each send's duplicate check scanned
# every partition's heap until autovacuum analyzed them again, a minute or
# more into the run (perf: seq scans under the send statement's subplan).
# And a shop's carts: with cart_items analyzed empty (checkout.sh empties
# the shoppers' carts between runs), every cart write's and checkout's
# look-up by user scanned the whole table (65,000 sequential scans reading
# 14.8 M rows in one figure 4, 2026-12-06).  A running shop's cart_items
# hold the open carts of many customers.

# pg_production_state <conninfo>: past commands in command_log (100,000,
# once per database), past messages (32,000, see pg_past_messages) and
# past orders (20,000, see pg_past_orders), open carts (20,000 lines,
# see pg_past_carts), then
# VACUUM ANALYZE of every table: the statistics make the workers' cached
# plans be planned again against the real sizes, and autovacuum finds
# nothing left to do inside a timed window (the 100,000 rows would
# otherwise bring its pass over command_log into one)
pg_production_state() {
    psql "$1" -Xq -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO command_log (key, op, user_id, request_hash, status, reply, created_at)
SELECT 'bench-past-' || g, 'msg.send', NULL, '\x00', 200, '{}',
       now() - interval '1 day'
  FROM generate_series(1, 100000) g
    ON CONFLICT (key) DO NOTHING;
SQL
    pg_past_messages "$1" 640 50
    pg_past_orders "$1" 20000
    pg_past_carts "$1" 5000
    psql "$1" -Xq -v ON_ERROR_STOP=1 -c "VACUUM ANALYZE"
}

# seed_rows <conninfo> <password hash> <users> <pairs>: users and 1:1
# conversations in one transaction straight in SQL; prints "<first user
# id> <first conversation id>", nothing when the ids are not contiguous
seed_rows() {
    psql "$1" -XtAq -v ON_ERROR_STOP=1 -v hash="$2" -v n="$3" -v p="$4" -F ' ' <<'SQL'
BEGIN;
INSERT INTO users (email, display_name, password_hash)
SELECT 'bench' || g || '@bench.invalid', 'Bench ' || g, :'hash'
  FROM generate_series(1, :n) g ORDER BY g;
SELECT min(id) AS ub, max(id) - min(id) + 1 AS span FROM users
 WHERE email LIKE 'bench%@bench.invalid' AND email <> 'bench-seed@bench.invalid' \gset
INSERT INTO conversations (type, created_by, direct_low, direct_high)
SELECT 'direct', :ub + 2 * k, :ub + 2 * k, :ub + 2 * k + 1
  FROM generate_series(0, :p - 1) k ORDER BY k;
SELECT min(id) AS cb, max(id) - min(id) + 1 AS cspan FROM conversations
 WHERE direct_low >= :ub \gset
INSERT INTO conversation_members (conversation_id, user_id)
SELECT c.id, v.u FROM conversations c
 CROSS JOIN LATERAL (VALUES (c.direct_low), (c.direct_high)) v(u)
 WHERE c.direct_low >= :ub;
COMMIT;
SELECT :ub, :cb WHERE :span = :n AND :cspan = :p;
SQL
}

# pg_past_orders <conninfo> <n>: n past orders, once per database, that
# change nothing a figure counts: a shopper, a book and a warehouse of
# their own (code past-orders: no bench seed matches it), and for each
# order one line, a charge the processor declined, and one copy reserved
# then released with its two ledger rows (the stock row's reserved and its
# ledger both stay 0, so the oversell check holds; no order is paid and no
# charge succeeded, so the charge audit holds)
pg_past_orders() {
    psql "$1" -Xq -v ON_ERROR_STOP=1 -v n="$2" <<'SQL'
BEGIN;
SELECT NOT EXISTS (SELECT 1 FROM warehouses WHERE code = 'past-orders') AS fresh \gset
\if :fresh
INSERT INTO users (email, display_name, password_hash)
VALUES ('past-orders@bench.invalid', 'Past orders', '!');
INSERT INTO warehouses (code, name, region) VALUES ('past-orders', 'Past orders', 'eu');
INSERT INTO books (isbn13, title, price_cents)
VALUES ('9790000000001', 'Past orders', 1000);
INSERT INTO stock (book_id, warehouse_id, on_hand)
SELECT b.id, w.id, 1 FROM books b, warehouses w
 WHERE b.isbn13 = '9790000000001' AND w.code = 'past-orders';
SELECT u.id AS pu, b.id AS pb, w.id AS pw
  FROM users u, books b, warehouses w
 WHERE u.email = 'past-orders@bench.invalid' AND b.isbn13 = '9790000000001'
   AND w.code = 'past-orders' \gset
CREATE TEMP TABLE past ON COMMIT DROP AS
WITH o AS (
    INSERT INTO orders (user_id, status, checkout_key, total_cents, currency,
                        shipping_address, region, failure_code, created_at, updated_at)
    SELECT :pu, 'payment_failed', 'bench-past-order-' || g, 1000, 'EUR',
           '{"country": "DE"}', 'eu', 'card_declined',
           now() - interval '2 days', now() - interval '2 days'
      FROM generate_series(1, :n) g
    RETURNING id, checkout_key
) SELECT * FROM o;
INSERT INTO order_items (order_id, book_id, title, quantity, price_cents)
SELECT id, :pb, 'Past orders', 1, 1000 FROM past;
INSERT INTO order_reservations (order_id, book_id, warehouse_id, quantity, state)
SELECT id, :pb, :pw, 1, 'released' FROM past;
INSERT INTO payment_attempts (order_id, kind, idempotency_key, amount_cents,
                              status, failure_code, lease_until)
SELECT id, 'charge', checkout_key, 1000, 'failed', 'card_declined',
       now() - interval '2 days' FROM past;
INSERT INTO stock_ledger (book_id, warehouse_id, delta_reserved, reason, order_id)
SELECT :pb, :pw, d, 'past order', id FROM past, (VALUES (1), (-1)) v(d);
\endif
COMMIT;
SQL
}

# pg_past_carts <conninfo> <n>: the open carts of n customers, once per
# database, four lines each of four books of their own (past-carts), so
# the statistics see many users with a few lines each, as a shop's do;
# no bench shopper's cart and no stock row a figure counts changes
pg_past_carts() {
    psql "$1" -Xq -v ON_ERROR_STOP=1 -v n="$2" <<'SQL'
BEGIN;
SELECT NOT EXISTS (SELECT 1 FROM books WHERE isbn13 = '9790000000011') AS fresh \gset
\if :fresh
INSERT INTO books (isbn13, title, price_cents)
SELECT '97900000000' || (10 + g), 'Past carts ' || g, 1000
  FROM generate_series(1, 4) g;
INSERT INTO users (email, display_name, password_hash)
SELECT 'past-cart' || g || '@bench.invalid', 'Past cart ' || g, '!'
  FROM generate_series(1, :n) g;
INSERT INTO cart_items (user_id, book_id, quantity)
SELECT u.id, b.id, 1 FROM users u, books b
 WHERE u.email LIKE 'past-cart%@bench.invalid'
   AND b.isbn13 BETWEEN '9790000000011' AND '9790000000014';
\endif
COMMIT;
SQL
}

# pg_past_messages <conninfo> <conversations> <messages each>: past
# messages, once per database, between two users of their own
# (past-messages-a/b@bench.invalid) in group conversations of their own,
# so no bench user's history, unread counts or sequence numbers change:
# seq 1..n in each, last_seq and both members' read markers at n
pg_past_messages() {
    psql "$1" -Xq -v ON_ERROR_STOP=1 -v nc="$2" -v nm="$3" <<'SQL'
BEGIN;
SELECT NOT EXISTS (SELECT 1 FROM users WHERE email = 'past-messages-a@bench.invalid') AS fresh \gset
\if :fresh
INSERT INTO users (email, display_name, password_hash)
VALUES ('past-messages-a@bench.invalid', 'Past messages A', '!'),
       ('past-messages-b@bench.invalid', 'Past messages B', '!');
SELECT min(id) AS pa, max(id) AS pb FROM users
 WHERE email LIKE 'past-messages-_@bench.invalid' \gset
CREATE TEMP TABLE past ON COMMIT DROP AS
WITH c AS (
    INSERT INTO conversations (type, title, created_by, last_seq, last_activity_at, created_at)
    SELECT 'group', 'Past ' || g, :pa, :nm, now() - interval '1 day', now() - interval '30 days'
      FROM generate_series(1, :nc) g
    RETURNING id
) SELECT id FROM c;
INSERT INTO conversation_members (conversation_id, user_id, last_read_seq, last_delivered_seq)
SELECT p.id, u, :nm, :nm FROM past p, (VALUES (:pa), (:pb)) v(u);
INSERT INTO messages (conversation_id, seq, sender_id, client_msg_id, text, created_at)
SELECT p.id, s, CASE WHEN s % 2 = 0 THEN :pa ELSE :pb END, 'past-' || s,
       'past message ' || s || ' about the ' || (ARRAY['garden', 'river', 'harbor', 'lantern',
       'voyage', 'orchid', 'compass', 'kingdom'])[1 + (p.id + s) % 8] || ' and the weekend plans',
       now() - interval '30 days' + s * interval '1 minute'
  FROM past p, generate_series(1, :nm) s;
\endif
COMMIT;
SQL
}
