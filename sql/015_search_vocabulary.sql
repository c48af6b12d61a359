-- 015_search_vocabulary.sql: a query word's completions found through an
-- index in the plan a worker actually runs, search's plans fixed in the
-- function rather than left to the session, and a shorter first merge for
-- two words.
--
-- Why.  Every search and every suggestion expands its last word to its
-- most frequent completions (catalog_search_terms, 008).  That statement
-- said "(word COLLATE "C") LIKE w || '%'": a LIKE prefix becomes an index
-- range only when the pattern is a constant at planning time, and inside
-- PL/pgSQL under the worker's generic plans (backend/engine/db.c) it is a
-- parameter, so the plan was a sequential scan of the whole vocabulary.
-- The benchmark's catalog never showed it: its generator draws titles
-- from a few hundred words, so catalog_words holds 338 rows.  A real
-- catalog's vocabulary is hundreds of thousands of words.  With 300,000
-- more words in catalog_words (ndoc 0, so no answer changes),
-- catalog_search_terms cost 44-60 ms per query at one client instead of
-- 0.05 ms, on every search and suggestion (EXPLAIN: "Seq Scan on
-- catalog_words").
--
-- How.  The completions come from indexes that a generic plan can use:
-- a prefix of one or two letters walks an index of words by their first
-- one or two letters in ndoc order and stops after the 8 it keeps; a
-- longer prefix is a byte-order range (>= w and < w followed by the
-- highest code point) over the words in some book, with their ndoc in the
-- index, then the 8 most frequent of that range.  Only words in some book
-- (ndoc > 0) are in these indexes, as only they can be completions.
--
-- The cost: ndoc is now in indexes, so the vocabulary's ndoc updates (in
-- the admin's transaction, 008's triggers) are no longer HOT updates and
-- maintain these indexes.  They happen once per word per changed book
-- statement, never on a sale.
--
-- Plans: catalog_search() and catalog_suggest() now carry
-- plan_cache_mode = force_generic_plan themselves.  The worker's session
-- sets it already, but a session that does not (behind pgbouncer in
-- transaction mode no SET is sent; psql; another client) planned each of
-- their statements anew for its first five calls and then switched, so
-- the same search cost differently by the session's age.  They also
-- never start parallel workers: a search is milliseconds, starting
-- workers costs milliseconds of its own, and they take cores from the
-- other lanes.
--
-- Two words: the title tier of a pair merged 2,000 postings of each word
-- (014) before going to the GIN index of titles when that found less than
-- a page.  Most pairs share few titles (river and compass: none; garden
-- and orchid: 303 of 22,000 each, 11 in the merge), so most paid for both:
-- the merge 0.75-1.5 ms, the index 1.3 ms.  Now a short merge of 300 a
-- side comes first (0.2 ms): a page there, or enough matches to promise
-- one at the full depth (matches grow with the depth read), and the full
-- merge follows; fewer, and the GIN index answers at once, when its cost
-- is as low as the full merge's whatever it finds (the two words in at
-- most 200,000 books): with "history" (250,000 books) it took 10-170 ms,
-- and a pair with it merges fully as before.
--
-- GIN pending lists: books' GIN indexes of titles and documents (003)
-- answer the walks' rare fallbacks.  With fastupdate, every scan reads the
-- whole pending list of entries not yet merged, up to the default 4 MB
-- between vacuums: 3,000 new books added 45 pages to each such scan
-- (2.0 ms instead of 1.3).  A 256 kB limit merges them into the index
-- sooner, so a scan reads at most 32 pending pages; inserts still batch.

-- 008's index of every word in byte order served only that LIKE, and
-- never as a range: the completion indexes replace it.
DROP INDEX catalog_words_prefix_idx;

CREATE INDEX catalog_words_complete1_idx ON catalog_words
    ((left(word, 1) COLLATE "C"), ndoc DESC) INCLUDE (word) WHERE ndoc > 0;
CREATE INDEX catalog_words_complete2_idx ON catalog_words
    ((left(word, 2) COLLATE "C"), ndoc DESC) INCLUDE (word) WHERE ndoc > 0;
CREATE INDEX catalog_words_complete_idx ON catalog_words
    ((word COLLATE "C")) INCLUDE (ndoc) WHERE ndoc > 0;

ALTER INDEX books_title_doc_idx SET (gin_pending_list_limit = 256);
ALTER INDEX books_search_doc_idx SET (gin_pending_list_limit = 256);

-- The 8 most frequent words in some book that start with p, the most
-- frequent first: each branch is a statement whose generic plan is an
-- index.
CREATE FUNCTION catalog_words_completions(p text)
RETURNS TABLE (word text, ndoc int)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF length(p) = 1 THEN
        RETURN QUERY
        SELECT cw.word, cw.ndoc FROM catalog_words cw
         WHERE (left(cw.word, 1) COLLATE "C") = p AND cw.ndoc > 0
         ORDER BY (left(cw.word, 1) COLLATE "C"), cw.ndoc DESC, cw.word
         LIMIT 8;
    ELSIF length(p) = 2 THEN
        RETURN QUERY
        SELECT cw.word, cw.ndoc FROM catalog_words cw
         WHERE (left(cw.word, 2) COLLATE "C") = p AND cw.ndoc > 0
         ORDER BY (left(cw.word, 2) COLLATE "C"), cw.ndoc DESC, cw.word
         LIMIT 8;
    ELSIF length(p) > 2 THEN
        -- chr(1114111), the highest code point, sorts after every
        -- character in byte order (UTF-8)
        RETURN QUERY
        SELECT cw.word, cw.ndoc FROM catalog_words cw
         WHERE (cw.word COLLATE "C") >= p
           AND (cw.word COLLATE "C") < p || chr(1114111)
           AND cw.ndoc > 0
         ORDER BY cw.ndoc DESC, cw.word
         LIMIT 8;
    END IF;
END
$$;

-- The words a query word stands for (008), the completions through the
-- indexes above.
CREATE OR REPLACE FUNCTION catalog_search_terms(q text)
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
                SELECT c.word, c.ndoc FROM catalog_words_completions(w) c) x;
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

ALTER FUNCTION catalog_search(text, text, bigint, bigint, bigint, boolean, int, int, bigint, int)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION catalog_search(text, text, bigint, bigint, bigint, boolean, int, int, bigint, int)
    SET max_parallel_workers_per_gather = 0;
ALTER FUNCTION catalog_suggest(text, int) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION catalog_suggest(text, int) SET max_parallel_workers_per_gather = 0;

-- Each side of the title tier's first, short merge reads at most this many
-- postings (catalog_search_matches, below).
CREATE FUNCTION catalog_search_merge_first_bound() RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT 300 $$;

-- Two words in at most this many books in all (catalog_words.ndoc): the
-- GIN index of titles finds their common titles in about the time of the
-- full merge (1.3 ms at 186,000, "river compass"; "history" alone is in
-- 250,000 books, and with it the index took 10-170 ms).
CREATE FUNCTION catalog_search_gin_cheap_ndoc() RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT 200000 $$;

-- The ranked matches (008, 014), the title tier of a pair of words merged
-- in two depths.
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

        IF pair AND t = 2 THEN
            -- both words' title postings side by side in rank order (one
            -- range of the index each, a merge join): a book in both is a
            -- title match.  Each side stops after sbound postings, so what
            -- it finds is every match ranked above the first side's cut,
            -- in rank order: exact as far as it goes.  First a short
            -- merge; the full depth only when the short one found enough
            -- matches to promise a page there.
            sbound := least(mbound, catalog_search_merge_first_bound());
            LOOP
            SELECT array_agg(ROW(2, m.popularity, m.book_id, m.price_cents,
                                 m.category_ids)::catalog_match
                             ORDER BY m.popularity DESC, m.book_id DESC)
              INTO found
              FROM (SELECT a.popularity, a.book_id, a.price_cents, a.category_ids
                      FROM (SELECT p.popularity, p.book_id, p.price_cents, p.category_ids
                              FROM search_postings p
                             WHERE p.word = p_walk[1] AND p.tier = 2
                               AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                             ORDER BY p.popularity DESC, p.book_id DESC
                             LIMIT sbound) a
                      JOIN (SELECT p.popularity, p.book_id
                              FROM search_postings p
                             WHERE p.word = p_owords[1] AND p.tier = 2
                               AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                             ORDER BY p.popularity DESC, p.book_id DESC
                             LIMIT sbound) b
                        ON b.popularity = a.popularity AND b.book_id = a.book_id
                     WHERE (p_cats IS NULL OR a.category_ids && p_cats)
                       AND (p_min IS NULL OR a.price_cents >= p_min)
                       AND (p_max IS NULL OR a.price_cents <= p_max)
                       AND (NOT p_in_stock OR EXISTS (SELECT 1 FROM stock s WHERE s.book_id = a.book_id AND s.on_hand > s.reserved))
                     ORDER BY a.popularity DESC, a.book_id DESC
                     LIMIT p_limit) m;
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
            -- few matches.  A static statement: its generic plan is that
            -- index (EXECUTE, below, would plan it anew on every call, as
            -- long as the search itself)
            IF got < least(p_need, p_limit)
               AND (SELECT max(cw.ndoc) FROM catalog_words cw
                     WHERE cw.word IN (p_walk[1], p_owords[1])) > sbound
            THEN
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
                           AND (NOT p_in_stock OR EXISTS (SELECT 1 FROM stock s WHERE s.book_id = b.id AND s.on_hand > s.reserved))
                         ORDER BY b.popularity + 0 DESC, b.id DESC
                         LIMIT p_limit) x;
                got := coalesce(cardinality(found), 0);
            END IF;
        ELSIF p_walk IS NOT NULL THEN
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
                               WHEN pair THEN
                                   -- (the rest tier: the title tier of a
                                   -- pair merges) the other word in the
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
