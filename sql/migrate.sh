#!/bin/sh
# sql/migrate.sh: brings a database up to the newest schema.
#
#   sql/migrate.sh "<psql connection args or conninfo>"
#
#   sql/migrate.sh "dbname=chat host=127.0.0.1 port=5440 user=chat"
#   sql/migrate.sh "postgresql://chat@127.0.0.1:5440/chat"
#   sql/migrate.sh "-h 127.0.0.1 -p 5440 -U chat chat"
#
# An argument starting with "-" is split into psql arguments; anything else
# is passed to psql as one conninfo string or URI.
#
# How it works: schema_migrations (version, applied_at) records what has
# been applied; it is created if missing.  Every file sql/NNN_name.sql is
# considered in filename order.  For each one a psql session takes a
# PostgreSQL advisory lock (so two migrators never interleave), checks the
# file's version (its name without ".sql") against schema_migrations and,
# if it is not there, runs the file and inserts its version in ONE
# transaction: either both happen or neither does.  Re-running is a no-op.
# The first failure stops everything, names the file, and exits non-zero;
# that file's changes are rolled back and later files are not tried.
#
# Rules for migration files: forward-only (never edit or delete an applied
# file; fix with a new one), no BEGIN/COMMIT inside (the script owns the
# transaction), so nothing that cannot run in a transaction (CREATE INDEX
# CONCURRENTLY needs its own mechanism).

set -eu
LC_ALL=C
export LC_ALL

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 \"<psql connection args or conninfo>\"" >&2
    exit 2
fi

conn=$1
dir=$(cd "$(dirname "$0")" && pwd)

# the advisory lock every migrator takes; any fixed number would do
lock="SELECT pg_advisory_lock(hashtext('chat schema_migrations'))"
# (the same expression is in the per-file script below)

run_psql() {
    case $conn in
        -*)
            # deliberately split: the argument is a list of psql options
            # shellcheck disable=SC2086
            psql $conn -X -q -v ON_ERROR_STOP=1 "$@"
            ;;
        *)
            psql "$conn" -X -q -v ON_ERROR_STOP=1 "$@"
            ;;
    esac
}

run_psql -o /dev/null -c "SET client_min_messages = warning" -c "$lock" -c "
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version     text        PRIMARY KEY,
        applied_at  timestamptz NOT NULL DEFAULT now()
    )" || {
    echo "migrate: cannot reach the database or create schema_migrations" >&2
    exit 1
}

applied=0
present=0
seen=" "

for file in "$dir"/[0-9][0-9][0-9]_*.sql; do
    [ -e "$file" ] || continue

    name=$(basename "$file")
    version=${name%.sql}

    case $version in
        *[!a-z0-9_]*)
            echo "migrate: $name: names are NNN_lowercase_words.sql" >&2
            exit 1
            ;;
    esac

    number=${version%%_*}
    case $seen in
        *" $number "*)
            echo "migrate: $name: migration number $number is used twice" >&2
            exit 1
            ;;
    esac
    seen="$seen$number "

    # one session: lock, check, then file + record in one transaction
    if ! result=$(run_psql -v version="$version" -v file="$file" <<'PSQL'
\o /dev/null
SELECT pg_advisory_lock(hashtext('chat schema_migrations'));
\o
SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = :'version')
    AS already \gset
\if :already
\echo present
\else
BEGIN;
\i :file
INSERT INTO schema_migrations (version) VALUES (:'version');
COMMIT;
\echo applied
\endif
PSQL
    ); then
        echo "migrate: FAILED in $name; it was rolled back, nothing after it" \
             "was tried" >&2
        exit 1
    fi

    case $result in
        *applied)
            echo "migrate: applied $name"
            applied=$((applied + 1))
            ;;
        *present)
            present=$((present + 1))
            ;;
        *)
            echo "migrate: $name: unexpected output: $result" >&2
            exit 1
            ;;
    esac
done

echo "migrate: $applied applied, $present already present"
