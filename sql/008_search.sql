-- 008_search.sql: ranked postings for search, its facets and suggestions
-- as you type, each answered by one SQL function in one round trip.
--
-- Why.  Search ranks in two tiers (every word in the title or an author's
-- name first, then every word anywhere) and by popularity within a tier
-- (003_catalog.sql).  Through the GIN indexes of 003 a query that the
-- popularity walk cannot fill had to collect every match and sort it: a
-- word in a category cost 130 ms at a million books, two words that
-- rarely share a title 30 ms, and a search took up to four statements
-- plus two SETs.
--
-- How.  search_postings holds one row per (word, book): the word, its
-- tier in that book (2: in the title or an author's name, 1: only in the
-- subtitle, keywords or description), the book's popularity, and the
-- filter columns (price, categories) inside the index.  The index is in
-- rank order, (word, tier, popularity DESC, book_id DESC), so one word's
-- best matches are the first entries of its range: a page is an
-- index-only walk that stops after the page, whatever the filters keep
-- (price and category are checked in the index tuple, stock with one probe
-- of stock's primary key).  Several words: the walk goes over the rarest
-- word's postings (catalog_words.ndoc) and checks each candidate by
-- probing the other words' postings with the candidate's full key (the
-- same index, no heap: 3-4 times cheaper than its tsvectors); that walk
-- is bounded (catalog_search_matches, below), and past the bound the tier
-- is answered from the GIN indexes, whose result is then small because
-- the bound proves the words rarely meet.
--
-- Kept in the writer's transaction: statement triggers on books rewrite a
-- book's postings when its documents, popularity, price, categories or
-- deletion change (an admin's edit, a review's popularity), and keep
-- catalog_words.ndoc (how many books have the word) in step.  Stock is
-- not copied here: "in stock" is a probe of stock per candidate, so a
-- sale rewrites nothing of search.
--
-- Query words (catalog_search_terms): every word must match; the last one
-- also as a prefix (its most frequent completions); a word the vocabulary
-- does not know is replaced by a known word one adjacent transposition or
-- one deletion away (hrabor -> harbor, which trigrams miss), else by its
-- nearest trigram neighbour as before.
--
-- Facets are counted over the first catalog_search_facet_window() ranked
-- matches found in a bounded walk (its own, apart from the page's), and
-- marked approximate when there may be more.

CREATE TABLE search_postings (
    word           text        NOT NULL,
    tier           smallint    NOT NULL CHECK (tier IN (1, 2)),
    popularity     int         NOT NULL,
    book_id        bigint      NOT NULL,
    price_cents    bigint      NOT NULL,
    category_ids   bigint[]    NOT NULL
);

ALTER TABLE catalog_words ADD COLUMN ndoc int NOT NULL DEFAULT 0;

-- vocabulary prefixes as a byte-order range (suggestions, the last word)
CREATE INDEX catalog_words_prefix_idx ON catalog_words ((word COLLATE "C"));


-- The postings of one book's documents: each word of 2 to 64 characters
-- once, tier 2 when it is in the title or an author's name.
CREATE FUNCTION search_doc_words(p_title tsvector, p_search tsvector)
RETURNS TABLE (word text, tier smallint)
LANGUAGE sql IMMUTABLE ROWS 20 AS $$
    SELECT s.lexeme,
           CASE WHEN s.lexeme = ANY (tsvector_to_array(p_title))
                THEN 2 ELSE 1 END::smallint
      FROM unnest(tsvector_to_array(p_search || p_title)) AS s(lexeme)
     WHERE length(s.lexeme) BETWEEN 2 AND 64
$$;


-- The initial fill, then the index (faster than maintaining it row by row).
INSERT INTO search_postings (word, tier, popularity, book_id, price_cents,
                             category_ids)
SELECT w.word, w.tier, b.popularity, b.id, b.price_cents, b.category_ids
  FROM books b, search_doc_words(b.title_doc, b.search_doc) w
 WHERE b.deleted_at IS NULL;

CREATE INDEX search_postings_rank_idx ON search_postings
    (word, tier, popularity DESC, book_id DESC) INCLUDE (price_cents, category_ids);

INSERT INTO catalog_words (word, ndoc)
SELECT word, count(*) FROM search_postings GROUP BY word
ON CONFLICT (word) DO UPDATE SET ndoc = excluded.ndoc;


-- ---------------------------------------------------------------------------
-- Keeping postings in step with books (statement triggers, so a bulk
-- insert of 50,000 books is one INSERT of their postings)
-- ---------------------------------------------------------------------------

-- ndoc += delta for each (word, delta); words in order, so two writers
-- lock vocabulary rows in the same order and cannot deadlock
CREATE FUNCTION search_ndoc_add(p_words text[], p_deltas int[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO catalog_words AS cw (word, ndoc)
    SELECT u.w, u.d
      FROM unnest(p_words, p_deltas) AS u(w, d)
     WHERE u.d <> 0
     ORDER BY u.w
    ON CONFLICT (word) DO UPDATE SET ndoc = greatest(cw.ndoc + excluded.ndoc, 0)
$$;

CREATE FUNCTION search_postings_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_postings (word, tier, popularity, book_id,
                                 price_cents, category_ids)
    SELECT w.word, w.tier, n.popularity, n.id, n.price_cents, n.category_ids
      FROM new_books n, search_doc_words(n.title_doc, n.search_doc) w
     WHERE n.deleted_at IS NULL;

    INSERT INTO catalog_words AS cw (word, ndoc)
    SELECT w.word, count(*)
      FROM new_books n, search_doc_words(n.title_doc, n.search_doc) w
     WHERE n.deleted_at IS NULL
     GROUP BY w.word
     ORDER BY w.word
    ON CONFLICT (word) DO UPDATE SET ndoc = cw.ndoc + excluded.ndoc;

    RETURN NULL;
END
$$;

-- A changed book: its old postings out (found by their full index key, so
-- no second index is needed), its new ones in, ndoc moved by the
-- difference.  Books whose search columns did not change (a rating) cost
-- only the comparison.
CREATE FUNCTION search_postings_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r  record;
BEGIN
    FOR r IN
        SELECT o.id, o.title_doc AS o_title, o.search_doc AS o_search,
               o.popularity AS o_pop, o.deleted_at IS NULL AS o_live,
               n.title_doc AS n_title, n.search_doc AS n_search,
               n.popularity AS n_pop, n.price_cents AS n_price,
               n.category_ids AS n_cats, n.deleted_at IS NULL AS n_live
          FROM old_books o JOIN new_books n ON n.id = o.id
         WHERE (o.title_doc, o.search_doc, o.popularity, o.price_cents,
                o.category_ids, o.deleted_at IS NULL)
               IS DISTINCT FROM
               (n.title_doc, n.search_doc, n.popularity, n.price_cents,
                n.category_ids, n.deleted_at IS NULL)
         ORDER BY o.id
    LOOP
        IF r.o_live THEN
            DELETE FROM search_postings p
             USING search_doc_words(r.o_title, r.o_search) w
             WHERE p.word = w.word AND p.tier = w.tier
               AND p.popularity = r.o_pop AND p.book_id = r.id;
        END IF;

        IF r.n_live THEN
            INSERT INTO search_postings (word, tier, popularity, book_id,
                                         price_cents, category_ids)
            SELECT w.word, w.tier, r.n_pop, r.id, r.n_price, r.n_cats
              FROM search_doc_words(r.n_title, r.n_search) w;
        END IF;

        -- the vocabulary counts move only when the words do
        IF r.o_live <> r.n_live OR r.o_title <> r.n_title
           OR r.o_search <> r.n_search
        THEN
            PERFORM search_ndoc_add(array_agg(d.word), array_agg(d.delta))
               FROM (SELECT coalesce(a.word, b.word) AS word,
                            (CASE WHEN b.word IS NULL THEN 0 ELSE 1 END)
                            - (CASE WHEN a.word IS NULL THEN 0 ELSE 1 END) AS delta
                       FROM (SELECT w.word FROM search_doc_words(r.o_title, r.o_search) w
                              WHERE r.o_live) a
                       FULL JOIN (SELECT w.word FROM search_doc_words(r.n_title, r.n_search) w
                                   WHERE r.n_live) b ON a.word = b.word) d;
        END IF;
    END LOOP;

    RETURN NULL;
END
$$;

CREATE TRIGGER books_search_postings_insert
    AFTER INSERT ON books REFERENCING NEW TABLE AS new_books
    FOR EACH STATEMENT EXECUTE FUNCTION search_postings_inserted();

CREATE TRIGGER books_search_postings_update
    AFTER UPDATE ON books REFERENCING OLD TABLE AS old_books NEW TABLE AS new_books
    FOR EACH STATEMENT EXECUTE FUNCTION search_postings_updated();


-- ---------------------------------------------------------------------------
-- Reading
-- ---------------------------------------------------------------------------

-- Facets are counted over at most this many ranked matches (a quarter
-- of it for a query of several words).
CREATE FUNCTION catalog_search_facet_window() RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT 200 $$;

-- A walk over one word's postings checks at most this many candidates
-- against the other words before the tier goes to the GIN indexes.
CREATE FUNCTION catalog_search_walk_bound() RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT 500 $$;

-- The words a query word stands for, one set per position: pos, word,
-- ndoc (books with it; 0 for a word not in the postings).  The last word
-- is also a prefix: its up to 8 most frequent completions.  A word of one
-- or two letters is taken as typed.
CREATE FUNCTION catalog_search_terms(q text)
RETURNS TABLE (pos int, word text, ndoc int)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    words  text[];
    w      text;
    fix    text;
    i      int;
    n      int;
BEGIN
    SELECT array_agg(left(t.token, 64) ORDER BY t.ord)
      INTO words
      FROM unnest(regexp_split_to_array(lower(coalesce(q, '')),
                                        '[^[:alnum:]]+')) WITH ORDINALITY AS t(token, ord)
     WHERE t.token <> '';

    n := least(coalesce(array_length(words, 1), 0), 8);

    FOR i IN 1 .. n LOOP
        w := words[i];

        IF i = n THEN
            RETURN QUERY
            SELECT i, x.word, x.ndoc FROM (
                SELECT cw.word, cw.ndoc FROM catalog_words cw
                 WHERE cw.word = w
                UNION
                (SELECT cw.word, cw.ndoc FROM catalog_words cw
                  WHERE (cw.word COLLATE "C") LIKE w || '%' AND cw.ndoc > 0
                  ORDER BY cw.ndoc DESC, cw.word LIMIT 8)) x;
            IF FOUND THEN
                CONTINUE;
            END IF;
        END IF;

        RETURN QUERY SELECT i, cw.word, cw.ndoc FROM catalog_words cw
                      WHERE cw.word = w;
        IF FOUND THEN
            CONTINUE;
        END IF;

        IF length(w) < 3 THEN
            RETURN QUERY SELECT i, w, 0;
            CONTINUE;
        END IF;

        -- one adjacent transposition or one extra letter away
        SELECT cw.word INTO fix
          FROM catalog_words cw
         WHERE cw.ndoc > 0 AND cw.word IN (
               SELECT left(w, k - 1) || substr(w, k + 1, 1) || substr(w, k, 1)
                      || substr(w, k + 2)
                 FROM generate_series(1, length(w) - 1) k
               UNION ALL
               SELECT left(w, k - 1) || substr(w, k + 1)
                 FROM generate_series(1, length(w)) k)
         ORDER BY cw.ndoc DESC, cw.word
         LIMIT 1;

        IF fix IS NULL THEN
            SELECT cw.word INTO fix
              FROM catalog_words cw
             WHERE cw.word % w AND cw.ndoc > 0
             ORDER BY cw.word <-> w, cw.ndoc DESC, cw.word
             LIMIT 1;
        END IF;

        RETURN QUERY SELECT i, cw.word, cw.ndoc FROM catalog_words cw
                      WHERE cw.word = coalesce(fix, w);
        IF NOT FOUND THEN
            RETURN QUERY SELECT i, w, 0;
        END IF;
    END LOOP;
END
$$;

-- "a:* b" from terms: every position, any of its words
-- (PL/pgSQL rather than SQL here and below: its statements are planned
-- once per session, a SQL function's on every call; 006_json_plans.sql)
CREATE FUNCTION catalog_search_tsquery(p_pos int[], p_words text[])
RETURNS tsquery
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (SELECT to_tsquery('simple', string_agg(x.alts, ' & ' ORDER BY x.pos))
              FROM (SELECT u.pos, '(' || string_agg(quote_literal(u.word), ' | ')
                           || ')' AS alts
                      FROM unnest(p_pos, p_words) AS u(pos, word)
                     GROUP BY u.pos) x);
END
$$;

CREATE TYPE catalog_match AS (
    tier         int,
    popularity   int,
    book_id      bigint,
    price_cents  bigint,
    category_ids bigint[]
);

-- The ranked matches after the cursor (p_tier, p_pop, p_id; NULLs: from
-- the start), at most p_limit, of which the first p_need exactly (a page;
-- past that a bounded walk may stop short).  p_scan: at most this many
-- postings per word and tier are looked at (the facets' bounded cost;
-- NULL: as many as the page needs).  p_walk: the
-- words of the rarest position (NULL when no position can walk);
-- p_single: the query is one position, so a posting alone proves the
-- match.  p_opos, p_owords: the other positions' words, to check a
-- candidate by probing their postings (NULL: check the book's documents,
-- for a one-letter word has no postings).  p_last_tier: 2 for title
-- matches only.
CREATE FUNCTION catalog_search_matches(
    p_tsq tsquery, p_walk text[], p_walk_ndoc int, p_single boolean,
    p_opos int[], p_owords text[],
    p_cats bigint[], p_min bigint, p_max bigint, p_in_stock boolean,
    p_tier int, p_pop int, p_id bigint, p_limit int, p_need int, p_scan int,
    p_last_tier int)
RETURNS SETOF catalog_match
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t       int;
    got     int;
    cpop    int;
    cid     bigint;
    bound   int := catalog_search_walk_bound();
    ptiers  smallint[];
    ptiers2 smallint[];
    verify  boolean;
    nother  int := (SELECT count(DISTINCT u) FROM unnest(p_opos) u);
    found   catalog_match[];
BEGIN
    FOR t IN REVERSE 2 .. p_last_tier LOOP
        CONTINUE WHEN p_tier IS NOT NULL AND t > p_tier;
        EXIT WHEN p_limit <= 0;

        -- the cursor applies within its own tier only
        IF p_tier IS NOT NULL AND t = p_tier THEN
            cpop := p_pop;
            cid := p_id;
        ELSE
            cpop := NULL;
            cid := NULL;
        END IF;

        -- postings alone prove a match of a one-position query in its
        -- title tier, and in the rest tier when that position is one word
        -- (the word is not in the title); anything else is checked
        -- against the book's documents
        verify := NOT (p_single AND (t = 2 OR cardinality(p_walk) = 1));

        -- the postings a match of this tier can be found through: a
        -- title match has a walked word in its title; a rest match may
        -- have it anywhere, unless the query is that one position
        ptiers := CASE WHEN t = 2 OR p_single THEN ARRAY[t]::smallint[]
                       ELSE '{2,1}'::smallint[] END;
        -- and the postings that can prove another word of it
        ptiers2 := CASE WHEN t = 2 THEN '{2}'::smallint[] ELSE '{2,1}'::smallint[] END;

        IF p_walk IS NOT NULL THEN
            -- the walked words' postings merged in rank order, checked
            -- ones at most bound per word
            SELECT array_agg(ROW(x.tier, x.popularity, x.book_id,
                                 x.price_cents, x.category_ids)::catalog_match
                             ORDER BY x.popularity DESC, x.book_id DESC)
              INTO found
              FROM (SELECT DISTINCT t AS tier, m.popularity, m.book_id,
                           m.price_cents, m.category_ids
                      FROM unnest(p_walk) AS w(word), unnest(ptiers) AS pt(tier),
                   LATERAL (
                       SELECT c.popularity, c.book_id, c.price_cents, c.category_ids
                         FROM (SELECT p.popularity, p.book_id, p.price_cents,
                                      p.category_ids
                                 FROM search_postings p
                                WHERE p.word = w.word AND p.tier = pt.tier
                                  AND (cpop IS NULL
                                       OR (p.popularity, p.book_id) < (cpop, cid))
                                ORDER BY p.popularity DESC, p.book_id DESC
                                LIMIT coalesce(p_scan, CASE WHEN verify THEN bound END)) c
                        -- the filters outside the limit: it bounds the
                        -- postings looked at, not the ones kept
                        WHERE (p_cats IS NULL OR c.category_ids && p_cats)
                          AND (p_min IS NULL OR c.price_cents >= p_min)
                          AND (p_max IS NULL OR c.price_cents <= p_max)
                          AND (NOT verify
                               OR CASE WHEN p_opos IS NULL THEN
                                   EXISTS (SELECT 1 FROM books b
                                            WHERE b.id = c.book_id
                                              AND CASE WHEN t = 2
                                                       THEN b.title_doc @@ p_tsq
                                                       ELSE b.search_doc @@ p_tsq
                                                            AND NOT b.title_doc @@ p_tsq END)
                               ELSE
                                   -- each other position's best tier in this
                                   -- book, from its postings' index alone
                                   (SELECT CASE WHEN t = 2
                                                THEN count(*) FILTER (WHERE x.best = 2) = nother
                                                ELSE count(*) = nother
                                                     AND NOT (pt.tier = 2 AND count(*) FILTER
                                                              (WHERE x.best = 2) = nother) END
                                      FROM (SELECT max(p2.tier) AS best
                                              FROM unnest(p_opos, p_owords) AS o(pos, word)
                                              JOIN search_postings p2
                                                ON p2.word = o.word AND p2.tier = ANY (ptiers2)
                                               AND p2.popularity = c.popularity
                                               AND p2.book_id = c.book_id
                                             GROUP BY o.pos) x)
                               END)
                          -- a copy anyone can buy (written out: a SQL function with a
                          -- subquery is never inlined, and planned on every call)
                          AND (NOT p_in_stock OR EXISTS (SELECT 1 FROM stock s WHERE s.book_id = c.book_id AND s.on_hand > s.reserved))
                        ORDER BY c.popularity DESC, c.book_id DESC
                        LIMIT p_limit) m
                     ORDER BY 2 DESC, 3 DESC
                     LIMIT p_limit) x;
            got := coalesce(cardinality(found), 0);

            -- a walk cut short by the bound without the rows needed proves
            -- that the words rarely meet: the GIN indexes then find the few
            -- matches (the walk's rows are their first ones)
            IF verify AND got < least(p_need, p_limit) AND p_walk_ndoc > bound THEN
                got := -1;
            END IF;
        ELSE
            got := -1;
        END IF;

        IF got < 0 THEN
            -- "popularity + 0": no index has that order, so the planner
            -- takes the GIN index instead of walking every book
            EXECUTE
                'SELECT array_agg(ROW(x.tier, x.popularity, x.book_id,'
                ' x.price_cents, x.category_ids)::catalog_match) FROM ('
                'SELECT $1 AS tier, b.popularity, b.id AS book_id, b.price_cents, b.category_ids'
                '  FROM books b'
                ' WHERE ' || CASE WHEN t = 2 THEN 'b.title_doc @@ $2'
                                  ELSE 'b.search_doc @@ $2 AND NOT b.title_doc @@ $2' END
             || '   AND b.deleted_at IS NULL'
                '   AND ($3::bigint[] IS NULL OR b.category_ids && $3)'
                '   AND ($4::bigint IS NULL OR b.price_cents >= $4)'
                '   AND ($5::bigint IS NULL OR b.price_cents <= $5)'
                '   AND ($6::int IS NULL OR (b.popularity, b.id) < ($6, $7))'
                '   AND (NOT $8 OR EXISTS (SELECT 1 FROM stock s WHERE s.book_id = b.id AND s.on_hand > s.reserved))'
                ' ORDER BY b.popularity + 0 DESC, b.id DESC LIMIT $9) x'
                INTO found
                USING t, p_tsq, p_cats, p_min, p_max, cpop, cid, p_in_stock, p_limit;
            got := coalesce(cardinality(found), 0);
        END IF;

        RETURN QUERY SELECT * FROM unnest(found);
        p_limit := p_limit - got;
        p_need := p_need - got;
    END LOOP;
END
$$;

-- Counts of matches by top-level category, price band and availability.
CREATE FUNCTION catalog_search_facets(m catalog_match[], p_approximate boolean)
RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (WITH RECURSIVE root(id, root_id) AS (
        SELECT c.id, c.id FROM categories c WHERE c.parent_id IS NULL
        UNION ALL
        SELECT c.id, r.root_id FROM categories c JOIN root r ON c.parent_id = r.id
    ),
    matches AS (SELECT * FROM unnest(m)),
    bands(lo, hi) AS (VALUES (0::bigint, 1000::bigint), (1000, 2000),
                             (2000, 5000), (5000, 10000), (10000, NULL))
    SELECT json_build_object(
        'categories', coalesce((
            SELECT json_agg(json_build_object('id', c.id, 'name', c.name,
                                              'count', x.n)
                            ORDER BY x.n DESC, c.name)
              FROM (SELECT r.root_id, count(DISTINCT mm.book_id) AS n
                      FROM matches mm, unnest(mm.category_ids) AS bc(id)
                      JOIN root r ON r.id = bc.id
                     GROUP BY r.root_id) x
              JOIN categories c ON c.id = x.root_id), '[]'::json),
        'price_bands', (
            SELECT json_agg(json_build_object('min', bd.lo, 'max', bd.hi,
                                              'count', (SELECT count(*) FROM matches mm
                                                         WHERE mm.price_cents >= bd.lo
                                                           AND (bd.hi IS NULL
                                                                OR mm.price_cents < bd.hi)))
                            ORDER BY bd.lo)
              FROM bands bd),
        'in_stock', (SELECT count(*) FROM matches mm
                      WHERE EXISTS (SELECT 1 FROM stock s WHERE s.book_id = mm.book_id AND s.on_hand > s.reserved)),
        'approximate', p_approximate));
END
$$;

-- One search, one round trip.  Rows: first a header, tier -1 with the
-- facets as JSON in facets (or tier -2 alone: no such category); then the
-- page, (tier, popularity, id) in rank order, at most p_limit rows (the
-- caller asks one more than it shows, to know of a next page).  p_isbn: a
-- normalised ISBN-13 for an exact lookup instead of p_q; '' for an
-- ISBN-shaped query that is no valid ISBN (matches nothing).
CREATE FUNCTION catalog_search(
    p_q text, p_isbn text, p_category bigint,
    p_min bigint, p_max bigint, p_in_stock boolean,
    p_tier int, p_pop int, p_id bigint, p_limit int)
RETURNS TABLE (tier int, popularity int, id bigint, facets text)
LANGUAGE plpgsql STABLE ROWS 25
-- generic plans carry pessimistic costs; compiling them would cost more
-- than running them
SET jit = off AS $$
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
            -- words' postings, so the facets look at fewer of them
            scan := win * 4;
            IF NOT single THEN
                win := catalog_search_facet_window() / 4;
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

-- Suggestions as you type: up to p_limit titles of the most popular books
-- whose title or authors start with what was typed (every word, the last
-- as a prefix), then the authors among those books whose names match.
CREATE FUNCTION catalog_suggest(p_q text, p_limit int) RETURNS text
LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    tpos    int[];
    twords  text[];
    tsq     tsquery;
    walk    text[];
    walk_n  int;
    ids     bigint[];
BEGIN
    SELECT array_agg(t.pos ORDER BY t.pos), array_agg(t.word ORDER BY t.pos)
      INTO tpos, twords
      FROM catalog_search_terms(p_q) t
      JOIN catalog_words cw ON cw.word = t.word AND cw.ndoc > 0;

    IF tpos IS NOT NULL THEN
        tsq := catalog_search_tsquery(tpos, twords);

        SELECT array_agg(x.word), sum(x.ndoc) INTO walk, walk_n
          FROM (SELECT t.pos, t.word, cw.ndoc,
                       sum(cw.ndoc) OVER (PARTITION BY t.pos) AS total
                  FROM unnest(tpos, twords) AS t(pos, word)
                  JOIN catalog_words cw ON cw.word = t.word) x
         GROUP BY x.total, x.pos
         ORDER BY x.total, x.pos
         LIMIT 1;

        -- the title tier only: a suggestion names what was typed
        SELECT array_agg(m.book_id ORDER BY m.popularity DESC, m.book_id DESC)
          INTO ids
          FROM catalog_search_matches(tsq, walk, walk_n,
                                      (SELECT count(DISTINCT u) = 1 FROM unnest(tpos) u),
                                      NULL, NULL, NULL, NULL, NULL, false, NULL, NULL, NULL,
                                      50, 5, NULL, 2) m;
    END IF;

    RETURN json_build_object('suggestions', coalesce((
        SELECT json_agg(s.j ORDER BY s.k, s.ord)
          FROM ((SELECT 0 AS k, min(x.ord) AS ord,
                        json_build_object('kind', 'title', 'text', b.title,
                                          'book_id', (array_agg(b.id ORDER BY x.ord))[1]) AS j
                   FROM unnest(ids) WITH ORDINALITY AS x(id, ord)
                   JOIN books b ON b.id = x.id
                  WHERE to_tsvector('simple', b.title) @@ tsq
                  GROUP BY b.title
                  ORDER BY min(x.ord) LIMIT p_limit)
                UNION ALL
                (SELECT 1, min(x.ord),
                        json_build_object('kind', 'author', 'text', a.name,
                                          'author_id', a.id)
                   FROM unnest(ids) WITH ORDINALITY AS x(id, ord)
                   JOIN book_authors ba ON ba.book_id = x.id
                   JOIN authors a ON a.id = ba.author_id
                  WHERE to_tsvector('simple', a.name) @@ tsq
                  GROUP BY a.id, a.name
                  ORDER BY min(x.ord) LIMIT p_limit)) s), '[]'::json))::text;
END
$$;
