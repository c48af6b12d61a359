-- 018_search_availability.sql: the facets' "in stock" count without a
-- probe of stock per match, the facets counted in one pass, and a
-- one-word query's facets over its best 100 matches instead of 200.
--
-- Why.  Measured on a million generated books, tests/bench/catalog.sh's
-- mix through the whole stack at 300/s (pg_stat_statements, wall time):
-- catalog_search_facets took 0.87 of a search's 3.51 ms.  Its "in stock"
-- count probed stock once per match (the facets' window is up to 200
-- matches): an index descent into stock's primary key and up to three
-- heap rows each, spread over 150 MB of table that no CPU cache holds;
-- and its categories and price bands scanned the matches seven times
-- over a CTE.  Now: 0.56 of 3.06 ms.
--
-- How.  books_unavailable holds the books that no one can buy now: no
-- warehouse has a copy to spare (on_hand > reserved), which includes a
-- book with no stock at all.  In a shop that is a small share of the
-- catalogue (13 % of the generated one), so its index stays in cache, and
-- the facets count the matches in it with one index scan of their ids.
-- It is kept in the writer's transaction, so the count is the same as
-- probing stock:
--   - a new book is unavailable (its stock rows can only come after it);
--   - a stock row with copies to spare, inserted, makes its book available;
--   - an update that moves a stock row across "a copy to spare" (the last
--     copy taken or reserved, a copy returned, restocked) rechecks its
--     book; a sale that leaves copies to spare does not fire at all (the
--     trigger's WHEN), so checkout pays nothing here but on its book's
--     last copy in a warehouse;
--   - a deleted row that had copies to spare rechecks its book.
-- A recheck locks its books' rows (FOR NO KEY UPDATE: a foreign key's
-- check still passes) and then looks at stock with a new snapshot (READ
-- COMMITTED: each statement of a function has its own), so two writers
-- that take the last copies of one book in two warehouses at once, or
-- add a copy beside another's taking the last, cannot both miss the
-- other's change.  A row lock, not an advisory lock: a bulk load of stock
-- takes tens of thousands at once, which an advisory lock table would not
-- hold.  Checkout locks a book's stock rows before any of them changes, in
-- book order, and the book rows after them, so this adds no lock cycle.
--
-- The walks' "in stock" filter (catalog_search_matches) still probes
-- stock: it looks only at candidates of a page with that filter, and the
-- answers are the same.
--
-- The facets in one pass: the price bands as FILTERed counts of one scan,
-- the categories as distinct (book, top-level category) pairs; the JSON
-- is the same, key for key, as 008's.
--
-- The facets' window.  Through the whole stack (figure 5's mix at 300/s,
-- pg_stat_statements) the facets of a query of one position were still
-- a third of a search's database time: a walk of its best 200 matches
-- (0.47 ms) and their counts (0.56 ms).  Counted over the best 100
-- instead, PostgreSQL's CPU per search fell from 3.0-3.5 ms to 2.5-2.7 ms
-- and the mix's ceiling rose from 421-437/s to 484/s.
-- Counts past the window were approximate before and are marked so
-- (facets.approximate; the web app shows "12+").  A query of several
-- positions keeps its 50 (each candidate there costs probes of the other
-- words' postings, so its window was already a quarter).

CREATE TABLE books_unavailable (
    book_id        bigint      PRIMARY KEY
);

INSERT INTO books_unavailable (book_id)
SELECT b.id FROM books b
 WHERE NOT EXISTS (SELECT 1 FROM stock s WHERE s.book_id = b.id AND s.on_hand > s.reserved);

-- Each book of p_books in books_unavailable exactly when no stock row of
-- it has a copy to spare, under its book row's lock.
CREATE FUNCTION books_unavailable_recheck(p_books bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM books b WHERE b.id = ANY (p_books) ORDER BY b.id FOR NO KEY UPDATE;
    DELETE FROM books_unavailable u
     WHERE u.book_id = ANY (p_books)
       AND EXISTS (SELECT 1 FROM stock s WHERE s.book_id = u.book_id AND s.on_hand > s.reserved);
    INSERT INTO books_unavailable (book_id)
    SELECT DISTINCT x.id FROM unnest(p_books) AS x(id)
     WHERE NOT EXISTS (SELECT 1 FROM stock s WHERE s.book_id = x.id AND s.on_hand > s.reserved)
       AND EXISTS (SELECT 1 FROM books b WHERE b.id = x.id)
    ON CONFLICT DO NOTHING;
END
$$;

CREATE FUNCTION books_unavailable_books_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO books_unavailable (book_id)
    SELECT n.id FROM new_books n
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER books_unavailable_books_inserted AFTER INSERT ON books
    REFERENCING NEW TABLE AS new_books
    FOR EACH STATEMENT EXECUTE FUNCTION books_unavailable_books_inserted();

-- rows with a copy to spare make their books available (the recheck,
-- for its lock: a recheck of the same book running beside it, which
-- cannot see these rows, ends first and its insert is seen here)
CREATE FUNCTION books_unavailable_stock_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM books_unavailable_recheck(array_agg(DISTINCT n.book_id))
       FROM new_stock n
      WHERE n.on_hand > n.reserved
     HAVING count(*) > 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER books_unavailable_stock_inserted AFTER INSERT ON stock
    REFERENCING NEW TABLE AS new_stock
    FOR EACH STATEMENT EXECUTE FUNCTION books_unavailable_stock_inserted();

CREATE FUNCTION books_unavailable_stock_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM books_unavailable_recheck(ARRAY[OLD.book_id]);
    ELSE
        PERFORM books_unavailable_recheck(ARRAY[OLD.book_id, NEW.book_id]);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER books_unavailable_stock_updated AFTER UPDATE ON stock
    FOR EACH ROW
    WHEN ((OLD.on_hand > OLD.reserved) IS DISTINCT FROM (NEW.on_hand > NEW.reserved)
          OR OLD.book_id IS DISTINCT FROM NEW.book_id)
    EXECUTE FUNCTION books_unavailable_stock_changed();

CREATE TRIGGER books_unavailable_stock_deleted AFTER DELETE ON stock
    FOR EACH ROW
    WHEN (OLD.on_hand > OLD.reserved)
    EXECUTE FUNCTION books_unavailable_stock_changed();

-- Counts of matches by top-level category, price band and availability
-- (008's answer, one scan of the matches for the bands, one index scan of
-- books_unavailable for availability).
CREATE OR REPLACE FUNCTION catalog_search_facets(m catalog_match[], p_approximate boolean)
RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (WITH RECURSIVE root(id, root_id) AS (
        SELECT c.id, c.id FROM categories c WHERE c.parent_id IS NULL
        UNION ALL
        SELECT c.id, r.root_id FROM categories c JOIN root r ON c.parent_id = r.id
    )
    SELECT json_build_object(
        'categories', coalesce((
            SELECT json_agg(json_build_object('id', c.id, 'name', c.name,
                                              'count', x.n)
                            ORDER BY x.n DESC, c.name)
              FROM (SELECT y.root_id, count(*) AS n
                      FROM (SELECT DISTINCT mm.book_id, r.root_id
                              FROM unnest(m) AS mm, unnest(mm.category_ids) AS bc(id)
                              JOIN root r ON r.id = bc.id) y
                     GROUP BY y.root_id) x
              JOIN categories c ON c.id = x.root_id), '[]'::json),
        'price_bands', (
            SELECT json_build_array(
                       json_build_object('min', 0, 'max', 1000, 'count', b.b0),
                       json_build_object('min', 1000, 'max', 2000, 'count', b.b1),
                       json_build_object('min', 2000, 'max', 5000, 'count', b.b2),
                       json_build_object('min', 5000, 'max', 10000, 'count', b.b3),
                       json_build_object('min', 10000, 'max', NULL, 'count', b.b4))
              FROM (SELECT count(*) FILTER (WHERE mm.price_cents >= 0 AND mm.price_cents < 1000) AS b0,
                           count(*) FILTER (WHERE mm.price_cents >= 1000 AND mm.price_cents < 2000) AS b1,
                           count(*) FILTER (WHERE mm.price_cents >= 2000 AND mm.price_cents < 5000) AS b2,
                           count(*) FILTER (WHERE mm.price_cents >= 5000 AND mm.price_cents < 10000) AS b3,
                           count(*) FILTER (WHERE mm.price_cents >= 10000) AS b4
                      FROM unnest(m) AS mm) b),
        'in_stock', cardinality(m)
                    - (SELECT count(*) FROM books_unavailable u
                        WHERE u.book_id = ANY (ARRAY(SELECT mm.book_id FROM unnest(m) AS mm))),
        'approximate', p_approximate));
END
$$;

-- The best matches a query of one position counts its facets over (008:
-- 200); several positions count over half of it.
CREATE OR REPLACE FUNCTION catalog_search_facet_window() RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT 100 $$;

-- 008's search, but for the window of several positions: half of
-- catalog_search_facet_window() (was a quarter of 200), so it stays 50.
-- One search, one round trip.  Rows: first a header, tier -1 with the
-- facets as JSON in facets (or tier -2 alone: no such category); then the
-- page, (tier, popularity, id) in rank order, at most p_limit rows (the
-- caller asks one more than it shows, to know of a next page).  p_isbn: a
-- normalised ISBN-13 for an exact lookup instead of p_q; '' for an
-- ISBN-shaped query that is no valid ISBN (matches nothing).
CREATE OR REPLACE FUNCTION catalog_search(
    p_q text, p_isbn text, p_category bigint,
    p_min bigint, p_max bigint, p_in_stock boolean,
    p_tier int, p_pop int, p_id bigint, p_limit int)
RETURNS TABLE (tier int, popularity int, id bigint, facets text)
LANGUAGE plpgsql STABLE ROWS 25
-- generic plans carry pessimistic costs; compiling them would cost more
-- than running them; and 015's plan settings
SET jit = off SET plan_cache_mode = force_generic_plan
SET max_parallel_workers_per_gather = 0 AS $$
DECLARE
    cats     bigint[];
    tsq      tsquery;
    walk     text[];
    walk_n   int;
    single   boolean;
    win      int := catalog_search_facet_window();
    page     catalog_match[];
    top      catalog_match[];
    tpos     int[];
    twords   text[];
    opos     int[];
    owords   text[];
    probe    boolean;
    wpos     int;
    approx   boolean := false;
    scan     int;
BEGIN
    IF p_category IS NOT NULL THEN
        cats := catalog_subtree(p_category);
        IF cats = '{}' THEN
            RETURN QUERY SELECT -2, NULL::int, NULL::bigint, NULL::text;
            RETURN;
        END IF;
    END IF;

    IF p_isbn IS NOT NULL THEN
        SELECT array_agg(ROW(0, b.popularity, b.id, b.price_cents,
                             b.category_ids)::catalog_match)
          INTO top
          FROM books b
         WHERE b.isbn13 = p_isbn::char(13) AND b.deleted_at IS NULL AND p_tier IS NULL
           AND (cats IS NULL OR b.category_ids && cats)
           AND (p_min IS NULL OR b.price_cents >= p_min)
           AND (p_max IS NULL OR b.price_cents <= p_max)
           AND (NOT p_in_stock OR EXISTS (SELECT 1 FROM stock s WHERE s.book_id = b.id AND s.on_hand > s.reserved));
        page := top;
    ELSE
        SELECT array_agg(t.pos ORDER BY t.pos), array_agg(t.word ORDER BY t.pos)
          INTO tpos, twords
          FROM catalog_search_terms(p_q) t;

        IF tpos IS NOT NULL THEN
            tsq := catalog_search_tsquery(tpos, twords);
            single := (SELECT count(DISTINCT u) = 1 FROM unnest(tpos) u);

            -- the position whose words are in the fewest books walks; a
            -- position with a word of one letter cannot (one-letter words
            -- have no postings); a walking position in no book at all
            -- means that nothing has every word
            SELECT array_agg(x.word), sum(x.ndoc), min(x.pos)
              INTO walk, walk_n, wpos
              FROM (SELECT t.pos, t.word, coalesce(cw.ndoc, 0) AS ndoc,
                           sum(coalesce(cw.ndoc, 0)) OVER (PARTITION BY t.pos) AS total,
                           bool_and(length(t.word) >= 2) OVER (PARTITION BY t.pos) AS walks
                      FROM unnest(tpos, twords) AS t(pos, word)
                      LEFT JOIN catalog_words cw ON cw.word = t.word) x
             WHERE x.walks
             GROUP BY x.total, x.pos
             ORDER BY x.total, x.pos
             LIMIT 1;

            IF walk_n = 0 THEN
                tpos := NULL;
            END IF;

            -- the other positions' words, when they all have postings
            SELECT array_agg(t.pos), array_agg(t.word), bool_and(length(t.word) >= 2)
              INTO opos, owords, probe
              FROM unnest(tpos, twords) AS t(pos, word)
             WHERE t.pos <> wpos AND NOT single;
            IF NOT coalesce(probe, false) OR walk IS NULL THEN
                opos := NULL;
                owords := NULL;
            END IF;
        END IF;

        IF tpos IS NOT NULL THEN
            -- several positions: each candidate costs a probe of the other
            -- words' postings, so the facets look at fewer of them (50,
            -- as before the window was halved for one position)
            scan := win * 4;
            IF NOT single THEN
                win := catalog_search_facet_window() / 2;
                scan := win;
            END IF;

            -- the page, exactly
            SELECT array_agg(m) INTO page
              FROM catalog_search_matches(tsq, walk, walk_n, single, opos, owords, cats,
                                          p_min, p_max, p_in_stock,
                                          p_tier, p_pop, p_id, p_limit, p_limit,
                                          NULL, 1) m;

            -- the facets' matches: the first ones found among a bounded
            -- number of each walked word's best postings
            IF p_tier IS NULL AND coalesce(cardinality(page), 0) < p_limit THEN
                top := page;        -- the page is every match there is
            ELSE
                SELECT array_agg(m) INTO top
                  FROM catalog_search_matches(tsq, walk, walk_n, single, opos, owords,
                                              cats, p_min, p_max, p_in_stock,
                                              NULL, NULL, NULL, win + 1, 0, scan, 1) m;
                approx := coalesce(cardinality(top), 0) > win
                          OR coalesce(walk_n, 0) > scan;
                -- never fewer than the first page shows
                IF p_tier IS NULL AND coalesce(cardinality(top), 0) < cardinality(page) THEN
                    top := page;
                END IF;
            END IF;
        END IF;
    END IF;

    RETURN QUERY
    SELECT -1, NULL::int, NULL::bigint,
           catalog_search_facets(coalesce(top[1:win], '{}'), approx)::text;

    RETURN QUERY
    SELECT m.tier, m.popularity, m.book_id, NULL::text
      FROM unnest(page) WITH ORDINALITY AS m(tier, popularity, book_id,
                                              price_cents, category_ids, ord)
     ORDER BY m.ord;
END
$$;
