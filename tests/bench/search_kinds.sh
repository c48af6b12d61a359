#!/usr/bin/env bash
# Figure 5's search by kind of query, in PostgreSQL alone, at one client:
# the database time of the statement a worker sends for one search
# (catalog_search() and the page's list items, backend/catalog/op_search.c)
# and for one suggestion, p50/p99/max in ms per kind.  The session plans
# generically, as a worker's does (backend/engine/db.c).
#
#   tests/bench/search_kinds.sh <conninfo> [rounds]
#
# Needs the generated catalog (catalog_gen.sh).  Each kind runs `rounds`
# times (default 50) over its queries, the same kinds and words as the
# search mix of catalog.sh, after one untimed round.  Bounded: about
# rounds x 60 statements.  Prints one line per kind; figures, not
# assertions.  best: each query's fastest run, the median of those over
# the kind's queries: what a query costs when nothing else on a shared
# machine takes its core (p50 and p99 include that waiting; the machine's
# load average belongs beside every figure).
set -euo pipefail

CONN=${1:?usage: search_kinds.sh <conninfo> [rounds]}
ROUNDS=${2:-50}

psql "$CONN" -XqAt -v ON_ERROR_STOP=1 -v rounds="$ROUNDS" <<'SQL'
SET plan_cache_mode = force_generic_plan;
SET client_min_messages = notice;
SET bench.rounds = :'rounds';

-- one search as the worker sends it: the function and the list items
CREATE FUNCTION pg_temp.one_search(q text, isbn text, cat bigint, maxp bigint,
                                   stock boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- CHAT_BOOK_SUMMARY_SQL (backend/catalog/catalog.h)
    PERFORM s.tier, s.popularity, s.id,
            CASE WHEN s.id IS NULL THEN s.facets WHEN s.ord > 21 THEN NULL ELSE
                 (SELECT left(li.item, -1) || ', "available" : '
                         || (SELECT coalesce(sum(st.on_hand - st.reserved), 0)
                               FROM stock st WHERE st.book_id = li.book_id) || '}'
                    FROM book_list_items li WHERE li.book_id = s.id) END
       FROM catalog_search(q, isbn, cat, NULL, maxp, stock, NULL, NULL, NULL, 21)
            WITH ORDINALITY AS s(tier, popularity, id, facets, ord)
      ORDER BY s.ord;
END
$$;

CREATE TEMP TABLE kinds (id serial, kind text, q text, isbn text, cat bigint, maxp bigint,
                         stock boolean, suggest boolean DEFAULT false);

INSERT INTO kinds (kind, q, cat)
SELECT 'category + word', w, c.id
  FROM unnest('{garden,river,kingdom,lighthouse,cartographer,orchid,voyage,harbor,compass,lantern}'::text[]) w,
       (SELECT id FROM categories WHERE slug LIKE 'gen-%-%' ORDER BY id LIMIT 3) c;
INSERT INTO kinds (kind, q)
SELECT 'two words', a || ' ' || b
  FROM unnest('{garden,river,kingdom,lighthouse,cartographer}'::text[]) a,
       unnest('{orchid,voyage,harbor,compass,lantern}'::text[]) b;
-- two words of the generated vocabulary (catalog_gen.sh), in a few hundred
-- to a few thousand books each, drawn independently, so they rarely meet
-- anywhere: the words at fixed places of the vocabulary's frequency order
INSERT INTO kinds (kind, q)
SELECT 'two long-tail words', a.word || ' ' || b.word
  FROM (SELECT word, row_number() OVER (ORDER BY ndoc DESC, word) AS n
          FROM catalog_words WHERE ndoc BETWEEN 300 AND 5000 AND word ~ '^[a-z]+$') a
  JOIN (SELECT word, row_number() OVER (ORDER BY ndoc DESC, word) AS n
          FROM catalog_words WHERE ndoc BETWEEN 300 AND 5000 AND word ~ '^[a-z]+$') b
    ON a.n IN (1, 20, 100, 400, 1000) AND b.n = a.n + 7;
INSERT INTO kinds (kind, q)
SELECT 'history + word', 'history ' || w
  FROM unnest('{garden,river,kingdom,lighthouse,cartographer,orchid,voyage,harbor,compass,lantern}'::text[]) w;
INSERT INTO kinds (kind, q)
SELECT 'typo', w FROM unnest('{lighthuose,cartographar,orchad,hrabor,compas,lanterm}'::text[]) w;
INSERT INTO kinds (kind, q, maxp, stock)
SELECT 'price <= 20 + in stock', w, 2000, true
  FROM unnest('{garden,river,kingdom,lighthouse,cartographer,orchid,voyage,harbor,compass,lantern}'::text[]) w;
INSERT INTO kinds (kind, q)
SELECT 'prefix', w FROM unnest('{lighth,cartog,clockm,orch,harb,lante}'::text[]) w;
INSERT INTO kinds (kind, q)
SELECT 'surname', w FROM unnest('{okafor,lindqvist,nakamura,ferreira,kowalski,haddad}'::text[]) w;
INSERT INTO kinds (kind, q) VALUES ('common word', 'history');
INSERT INTO kinds (kind, isbn)
SELECT 'isbn', isbn13 FROM books TABLESAMPLE SYSTEM (1) LIMIT 20;
INSERT INTO kinds (kind, q, suggest)
SELECT 'suggest', w, true FROM unnest('{h,hi,lig,okaf,the gar,maria,cartographer l}'::text[]) w;

CREATE TEMP TABLE times (kind text, id int, ms float8);

DO $$
DECLARE
    k       record;
    r       int;
    t0      timestamptz;
    rounds  int := current_setting('bench.rounds')::int;
BEGIN
    FOR r IN 0 .. rounds LOOP
        FOR k IN SELECT * FROM kinds LOOP
            t0 := clock_timestamp();
            IF k.suggest THEN
                PERFORM catalog_suggest(k.q, 5);
            ELSE
                PERFORM pg_temp.one_search(k.q, k.isbn, k.cat, k.maxp,
                                           coalesce(k.stock, false));
            END IF;
            IF r > 0 THEN
                INSERT INTO times VALUES (k.kind, k.id,
                    extract(epoch FROM clock_timestamp() - t0) * 1000);
            END IF;
        END LOOP;
    END LOOP;
END
$$;

SELECT format('search kind %s p50=%sms p99=%sms max=%sms best=%sms (%s statements)',
              rpad(t.kind || ':', 24),
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t.ms)::numeric, 2),
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY t.ms)::numeric, 2),
              round(max(t.ms)::numeric, 2),
              (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY b.ms)::numeric, 2)
                 FROM (SELECT min(x.ms) AS ms FROM times x WHERE x.kind = t.kind
                        GROUP BY x.id) b),
              count(*))
  FROM times t GROUP BY t.kind ORDER BY percentile_cont(0.5) WITHIN GROUP (ORDER BY t.ms) DESC;
SQL
