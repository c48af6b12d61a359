# shellcheck shell=bash
# tests/bench/pg_state.sh: sourced by bench.sh, checkout.sh and
# isolation.sh: the database in the state a running system keeps it in,
# before anything is timed.
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
# once per database), then ANALYZE of every table, which also makes the
# workers' cached plans be planned again against the real sizes
pg_production_state() {
    psql "$1" -Xq -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO command_log (key, op, user_id, request_hash, status, reply, created_at)
SELECT 'bench-past-' || g, 'msg.send', NULL, '\x00', 200, '{}',
       now() - interval '1 day'
  FROM generate_series(1, 100000) g
    ON CONFLICT (key) DO NOTHING;
ANALYZE;
SQL
}
