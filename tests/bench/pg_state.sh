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

# pg_production_state <conninfo>: past commands in command_log (100,000,
# once per database), then VACUUM ANALYZE of every table: the statistics
# make the workers' cached plans be planned again against the real sizes,
# and autovacuum finds nothing left to do inside a timed window (the
# 100,000 rows would otherwise bring its pass over command_log into one)
pg_production_state() {
    psql "$1" -Xq -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO command_log (key, op, user_id, request_hash, status, reply, created_at)
SELECT 'bench-past-' || g, 'msg.send', NULL, '\x00', 200, '{}',
       now() - interval '1 day'
  FROM generate_series(1, 100000) g
    ON CONFLICT (key) DO NOTHING;
SQL
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

