-- 020_search_in_stock_filter.sql: the search's "in stock" filter asks
-- books_unavailable (migration 018) instead of probing stock.
--
-- Why.  With the filter on, every candidate of a walk that passed the
-- other filters paid a probe of stock: an index descent into its primary
-- key and up to a heap row per warehouse, spread over a table (150 MB at
-- a million books) that no cache holds.  books_unavailable answers the
-- same question (no warehouse has a copy to spare) from an index of a
-- tenth of the books, and for a book that can be bought (most of them)
-- the probe finds nothing, so it reads no heap at all.  Measured on a
-- million generated books, tests/bench/search_kinds.sh (PostgreSQL alone,
-- one client, 10 rounds, this migration's functions and the ones before
-- alternated twice, 2026-12-06): "price <= 20 + in stock" p50 2.71 and
-- 2.22 ms before, 1.37 and 1.38 ms after; the kinds without the filter
-- unchanged.
--
-- How.  The same functions as before (catalog_search_title_merge and
-- catalog_search_matches of 016, catalog_search of 018), each "EXISTS
-- (SELECT 1 FROM stock s WHERE s.book_id = x AND s.on_hand > s.reserved)"
-- now "NOT EXISTS (SELECT 1 FROM books_unavailable u WHERE u.book_id =
-- x)".  The two agree in every transaction: triggers on stock keep
-- books_unavailable in the writer's transaction (018), and the tests
-- check that they agree for every book (orders.test.mjs, the fault run,
-- the checkout benchmark's unavailable_mismatch).  The functions are
-- hundreds of lines each and this is their only change, so they are not
-- written out again here: each one's definition as the database holds it
-- is rewritten with the probe replaced, and the migration fails unless
-- every probe it expects (1, 4 and 1) was there.

DO $$
DECLARE
    f       record;
    def     text;
    probe   text := 'EXISTS \(SELECT 1 FROM stock s WHERE s\.book_id = ([a-z]+\.[a-z_]+) AND s\.on_hand > s\.reserved\)';
    found   int;
BEGIN
    FOR f IN SELECT * FROM (VALUES ('catalog_search_title_merge', 1),
                                   ('catalog_search_matches', 4),
                                   ('catalog_search', 1)) AS v(name, probes)
    LOOP
        def := pg_get_functiondef(f.name::regproc);
        found := (SELECT count(*) FROM regexp_matches(def, probe, 'g'));
        IF found <> f.probes THEN
            RAISE EXCEPTION '020: % has % stock probes, % expected',
                            f.name, found, f.probes;
        END IF;
        EXECUTE regexp_replace(def, probe,
                               'NOT EXISTS (SELECT 1 FROM books_unavailable u WHERE u.book_id = \1)', 'g');
    END LOOP;
END
$$;
