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
-- the checkout benchmark's unavailable_mismatch).

CREATE OR REPLACE FUNCTION catalog_search_title_merge(
    p_a text, p_b text, p_cats bigint[], p_min bigint, p_max bigint,
    p_in_stock boolean, cpop int, cid bigint, p_bound int, p_limit int)
RETURNS catalog_match[]
LANGUAGE plpgsql STABLE
SET enable_nestloop = off SET enable_hashjoin = off AS $$
BEGIN
    RETURN (
        SELECT array_agg(ROW(2, m.popularity, m.book_id, m.price_cents,
                             m.category_ids)::catalog_match
                         ORDER BY m.popularity DESC, m.book_id DESC)
          FROM (SELECT a.popularity, a.book_id, a.price_cents, a.category_ids
                  FROM (SELECT p.popularity, p.book_id, p.price_cents, p.category_ids
                          FROM search_postings p
                         WHERE p.word = p_a AND p.tier = 2
                           AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                         ORDER BY p.popularity DESC, p.book_id DESC
                         LIMIT p_bound) a
                  JOIN (SELECT p.popularity, p.book_id
                          FROM search_postings p
                         WHERE p.word = p_b AND p.tier = 2
                           AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                         ORDER BY p.popularity DESC, p.book_id DESC
                         LIMIT p_bound) b
                    ON b.popularity = a.popularity AND b.book_id = a.book_id
                 WHERE (p_cats IS NULL OR a.category_ids && p_cats)
                   AND (p_min IS NULL OR a.price_cents >= p_min)
                   AND (p_max IS NULL OR a.price_cents <= p_max)
                   AND (NOT p_in_stock OR NOT EXISTS (SELECT 1 FROM books_unavailable u WHERE u.book_id = a.book_id))
                 ORDER BY a.popularity DESC, a.book_id DESC
                 LIMIT p_limit) m);
END
$$;

CREATE OR REPLACE FUNCTION catalog_search_matches(
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
    -- two positions of one word each: the title tier merges their postings
    pair    boolean := NOT p_single AND cardinality(p_walk) = 1
                       AND cardinality(p_owords) = 1;
    -- each side of the merge: p_scan postings (the facets' bounded cost)
    -- or the merge's bound
    mbound  int := coalesce(p_scan, catalog_search_merge_bound());
    -- the depth each side of the merge reads this time
    sbound  int;
    -- the candidates a walk checks per word and tier this time
    wbound  int;
    -- the rest tier of a pair answered by its merge
    merged  boolean;
    -- the books of the more frequent word of a pair
    mndoc   int;
    -- the share of books that hold every other position of the query,
    -- were the words independent: a candidate's chance to match
    odens   float8 := (SELECT exp(sum(ln(greatest(x.n, 1)::float8
                                         / greatest(c.reltuples, 1)::float8)))
                         FROM (SELECT sum(cw.ndoc) AS n
                                 FROM unnest(p_opos, p_owords) AS o(pos, word)
                                 JOIN catalog_words cw ON cw.word = o.word
                                GROUP BY o.pos) x,
                              pg_class c
                        WHERE c.oid = 'books'::regclass);
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

        -- the rest tier of a pair: both words, not both in the title.
        -- Merged like the title tier: each word's title and text postings
        -- (four ranges of the rank index, bound rows each, read in rank
        -- order) grouped by book.  Every match ranked at or above the
        -- last row kept is exact when that row ranks at or above every
        -- cut range's last posting (or no range was cut); else the walk
        -- below answers as before.  A range read in order costs a step
        -- along a leaf page per posting, where the walk's candidate costs
        -- an index descent or two.  The four ranges are written out, not
        -- a LATERAL over (word, tier): only a UNION ALL of ordered ranges
        -- is merged in order (a Merge Append), so the grouping streams and
        -- stops after the page instead of reading every range whole.
        -- Only where it is expected to find a page (as the full walk,
        -- below) and the two words are about as frequent, so that their
        -- ranges of equal length reach about as far down the ranking.
        merged := false;
        IF pair AND t = 1 AND p_scan IS NULL
           AND odens * bound * 2 >= least(p_need, p_limit)
           AND (SELECT cw.ndoc FROM catalog_words cw WHERE cw.word = p_owords[1])
               <= 2 * p_walk_ndoc
        THEN
            SELECT array_agg(ROW(1, m.popularity, m.book_id, m.price_cents,
                                 m.category_ids)::catalog_match
                             ORDER BY m.popularity DESC, m.book_id DESC)
              INTO found
              FROM (SELECT a.popularity, a.book_id, a.price_cents, a.category_ids
                      FROM ((SELECT p.popularity, p.book_id, p.price_cents, p.category_ids, p.tier
                               FROM search_postings p
                              WHERE p.word = p_walk[1] AND p.tier = 2
                                AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                              ORDER BY p.popularity DESC, p.book_id DESC
                              LIMIT bound)
                            UNION ALL
                            (SELECT p.popularity, p.book_id, p.price_cents, p.category_ids, p.tier
                               FROM search_postings p
                              WHERE p.word = p_walk[1] AND p.tier = 1
                                AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                              ORDER BY p.popularity DESC, p.book_id DESC
                              LIMIT bound)
                            UNION ALL
                            (SELECT p.popularity, p.book_id, p.price_cents, p.category_ids, p.tier
                               FROM search_postings p
                              WHERE p.word = p_owords[1] AND p.tier = 2
                                AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                              ORDER BY p.popularity DESC, p.book_id DESC
                              LIMIT bound)
                            UNION ALL
                            (SELECT p.popularity, p.book_id, p.price_cents, p.category_ids, p.tier
                               FROM search_postings p
                              WHERE p.word = p_owords[1] AND p.tier = 1
                                AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                              ORDER BY p.popularity DESC, p.book_id DESC
                              LIMIT bound)) a
                     WHERE (p_cats IS NULL OR a.category_ids && p_cats)
                       AND (p_min IS NULL OR a.price_cents >= p_min)
                       AND (p_max IS NULL OR a.price_cents <= p_max)
                     GROUP BY a.popularity, a.book_id, a.price_cents, a.category_ids
                    -- both words (a book has one posting per word), not
                    -- both in the title (tier 2 + 2)
                    HAVING count(*) = 2 AND sum(a.tier) < 4
                       AND (NOT p_in_stock OR NOT EXISTS (SELECT 1 FROM books_unavailable u WHERE u.book_id = a.book_id))
                     ORDER BY a.popularity DESC, a.book_id DESC
                     LIMIT p_limit) m;
            got := coalesce(cardinality(found), 0);
            merged := NOT EXISTS (
                SELECT 1
                  FROM (VALUES (p_walk[1], 2::smallint), (p_walk[1], 1::smallint),
                               (p_owords[1], 2::smallint), (p_owords[1], 1::smallint)) AS r(word, tier),
                LATERAL (SELECT p.popularity, p.book_id
                           FROM search_postings p
                          WHERE p.word = r.word AND p.tier = r.tier
                            AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                          ORDER BY p.popularity DESC, p.book_id DESC
                          OFFSET bound - 1 LIMIT 1) c
                 WHERE got < p_limit
                    OR (c.popularity, c.book_id)
                       > (found[p_limit].popularity, found[p_limit].book_id));
        END IF;

        IF merged THEN
            NULL;       -- found and got are the merge's
        ELSIF pair AND t = 2 THEN
            -- both words' title postings side by side in rank order (one
            -- range of the index each): a book in both is a title match.  Each side stops after sbound postings, so what
            -- it finds is every match ranked above the first side's cut,
            -- in rank order: exact as far as it goes.  First a short
            -- merge; the full depth only when the short one found enough
            -- matches to promise a page there.
            sbound := least(mbound, catalog_search_merge_first_bound());
            LOOP
            found := catalog_search_title_merge(p_walk[1], p_owords[1], p_cats, p_min, p_max,
                                                p_in_stock, cpop, cid, sbound, p_limit);
            got := coalesce(cardinality(found), 0);
            -- a page, or the whole depth read
            EXIT WHEN got >= least(p_need, p_limit) OR sbound >= mbound;
            -- matches found grow with the depth read: this few in the
            -- short merge promise less than a page in the full one, so
            -- the words rarely share a title and the GIN index of titles
            -- (below) answers without the full merge; but only when that
            -- index costs no more than the full merge even if the promise
            -- is wrong (its cost follows the two words' books)
            EXIT WHEN got * mbound < least(p_need, p_limit) * sbound
                  AND p_walk_ndoc + coalesce((SELECT cw.ndoc FROM catalog_words cw
                                               WHERE cw.word = p_owords[1]), 0)
                      <= catalog_search_gin_cheap_ndoc();
            sbound := mbound;
            END LOOP;

            -- short of the page with a side cut by the bound: the words
            -- rarely share a title, so the GIN index of titles finds the
            -- few matches (below)
            mndoc := (SELECT max(cw.ndoc) FROM catalog_words cw
                       WHERE cw.word IN (p_walk[1], p_owords[1]));
            IF got < least(p_need, p_limit) AND mndoc > sbound THEN
                -- unless the other word is in a large share of the books
                -- ("history": a quarter) and the merge's matches promise
                -- many in all (those it found, one more, times the books
                -- per posting it read): the GIN index would then fetch
                -- thousands (2,900 buffers, 10-30 ms), where the walk of
                -- the rarer word's titles, a probe of the other's
                -- postings per candidate, finds a page in about a hundred
                -- (below)
                got := CASE WHEN odens >= catalog_search_dense_share()
                                 AND (got + 1)::bigint * mndoc
                                     > catalog_search_gin_cheap_matches()::bigint * sbound
                            THEN NULL ELSE -1 END;
            END IF;
        ELSE
            got := NULL;
        END IF;

        IF got IS NOT NULL THEN
            NULL;       -- answered above
        ELSIF p_walk IS NOT NULL THEN
            -- the walked words' postings merged in rank order, checked
            -- ones at most bound per word; first a short walk, the full
            -- depth only when the short one found enough matches to
            -- promise a page there (as the pair's merge above)
            -- the short walk only where the full one is expected to
            -- find less than a page (and then go to the GIN indexes
            -- anyway); elsewhere it would be read twice for nothing
            wbound := CASE WHEN verify AND p_scan IS NULL
                                AND odens * bound * cardinality(p_walk) * cardinality(ptiers)
                                    < least(p_need, p_limit)
                           THEN catalog_search_walk_first_bound() END;
            LOOP
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
                                LIMIT coalesce(p_scan, wbound, CASE WHEN verify THEN bound END)) c
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
                               WHEN pair AND t = 1 THEN
                                   -- (the rest tier) the other word in the
                                   -- book's text, or in its title when the
                                   -- walked word is only in the text: one
                                   -- probe, no aggregate per candidate
                                   EXISTS (SELECT 1 FROM search_postings p2
                                            WHERE p2.word = p_owords[1] AND p2.tier = 1
                                              AND p2.popularity = c.popularity
                                              AND p2.book_id = c.book_id)
                                   OR (pt.tier = 1
                                       AND EXISTS (SELECT 1 FROM search_postings p2
                                                    WHERE p2.word = p_owords[1] AND p2.tier = 2
                                                      AND p2.popularity = c.popularity
                                                      AND p2.book_id = c.book_id))
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
                          AND (NOT p_in_stock OR NOT EXISTS (SELECT 1 FROM books_unavailable u WHERE u.book_id = c.book_id))
                        ORDER BY c.popularity DESC, c.book_id DESC
                        LIMIT p_limit) m
                     ORDER BY 2 DESC, 3 DESC
                     LIMIT p_limit) x;
            got := coalesce(cardinality(found), 0);
            -- the full depth read, or every walked posting read
            EXIT WHEN wbound IS NULL OR p_walk_ndoc <= wbound;
            -- every row asked for, and exact: each (word, tier) of the
            -- walk stopped after wbound postings, so a match below a
            -- stream's cut was not seen; none can rank above the last row
            -- when that row ranks at or above every stream's cut (all
            -- p_limit rows, not only the p_need exact ones: suggestions
            -- keep the titles of more rows than they need)
            IF got >= p_limit THEN
                EXIT WHEN NOT EXISTS (
                    SELECT 1
                      FROM unnest(p_walk) AS w(word), unnest(ptiers) AS pt(tier),
                    LATERAL (SELECT p.popularity, p.book_id
                               FROM search_postings p
                              WHERE p.word = w.word AND p.tier = pt.tier
                                AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                              ORDER BY p.popularity DESC, p.book_id DESC
                              OFFSET wbound - 1 LIMIT 1) c
                     WHERE (c.popularity, c.book_id)
                           > (found[p_limit].popularity, found[p_limit].book_id));
            END IF;
            -- the matches the short walk's share promises in all of the
            -- walked words' books (one more than it found, so that none
            -- found still promises some): few, and the GIN indexes, whose
            -- cost follows the matches they fetch, answer at once; many,
            -- and the full walk fills the page sooner
            IF got < least(p_need, p_limit)
               AND (got + 1)::bigint * p_walk_ndoc
               <= catalog_search_gin_cheap_matches()::bigint * wbound
                  * cardinality(p_walk) * cardinality(ptiers)
            THEN
                got := -1;
                EXIT;
            END IF;
            wbound := NULL;
            END LOOP;

            -- a walk cut short by the bound without the rows needed proves
            -- that the words rarely meet: the GIN indexes then find the few
            -- matches (the walk's rows are their first ones)
            IF verify AND got >= 0 AND got < least(p_need, p_limit) AND p_walk_ndoc > bound THEN
                got := -1;
            END IF;
        ELSE
            got := -1;
        END IF;

        IF got < 0 AND t = 2 THEN
            -- "popularity + 0": no index has that order, so the planner
            -- takes the GIN index instead of walking every book.  Static
            -- statements, one per tier: their generic plans are cached
            -- (EXECUTE planned the statement anew on every call)
            SELECT array_agg(ROW(2, x.popularity, x.id, x.price_cents,
                                 x.category_ids)::catalog_match)
              INTO found
              FROM (SELECT b.popularity, b.id, b.price_cents, b.category_ids
                      FROM books b
                     WHERE b.title_doc @@ p_tsq AND b.deleted_at IS NULL
                       AND (p_cats IS NULL OR b.category_ids && p_cats)
                       AND (p_min IS NULL OR b.price_cents >= p_min)
                       AND (p_max IS NULL OR b.price_cents <= p_max)
                       AND (cpop IS NULL OR (b.popularity, b.id) < (cpop, cid))
                       AND (NOT p_in_stock OR NOT EXISTS (SELECT 1 FROM books_unavailable u WHERE u.book_id = b.id))
                     ORDER BY b.popularity + 0 DESC, b.id DESC
                     LIMIT p_limit) x;
        ELSIF got < 0 THEN
            SELECT array_agg(ROW(1, x.popularity, x.id, x.price_cents,
                                 x.category_ids)::catalog_match)
              INTO found
              FROM (SELECT b.popularity, b.id, b.price_cents, b.category_ids
                      FROM books b
                     WHERE b.search_doc @@ p_tsq AND NOT b.title_doc @@ p_tsq
                       AND b.deleted_at IS NULL
                       AND (p_cats IS NULL OR b.category_ids && p_cats)
                       AND (p_min IS NULL OR b.price_cents >= p_min)
                       AND (p_max IS NULL OR b.price_cents <= p_max)
                       AND (cpop IS NULL OR (b.popularity, b.id) < (cpop, cid))
                       AND (NOT p_in_stock OR NOT EXISTS (SELECT 1 FROM books_unavailable u WHERE u.book_id = b.id))
                     ORDER BY b.popularity + 0 DESC, b.id DESC
                     LIMIT p_limit) x;
        END IF;
        IF got < 0 THEN
            got := coalesce(cardinality(found), 0);
        END IF;

        RETURN QUERY SELECT * FROM unnest(found);
        p_limit := p_limit - got;
        p_need := p_need - got;
    END LOOP;
END
$$;

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
           AND (NOT p_in_stock OR NOT EXISTS (SELECT 1 FROM books_unavailable u WHERE u.book_id = b.id));
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
