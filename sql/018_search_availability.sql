-- 018_search_availability.sql: the facets' "in stock" count without a
-- probe of stock per match, and the facets counted in one pass.
--
-- Why.  Measured on a million generated books (tests/bench/catalog.sh's
-- mix of queries at one client, PostgreSQL alone): catalog_search_facets
-- was more than half of a search's database time, 2.2 of 3.9 ms.  Its
-- "in stock" count probed stock once per match (the facets' window is up
-- to 200 matches): an index descent into stock's primary key and up to
-- three heap rows each, spread over 150 MB of table that no CPU cache
-- holds (0.8-1.1 ms per search in the mix); and its categories and price
-- bands scanned the matches seven times over a CTE.
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
