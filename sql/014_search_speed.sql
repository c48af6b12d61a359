-- 014_search_speed.sql: two-word searches by a merge of postings in the
-- title tier, and one plain probe per candidate in the rest tier.
--
-- Why.  At a million books, two words that rarely share a title ("river
-- compass": none or a few hundred titles with both among 30,000 with each)
-- cost 12-17 ms in PostgreSQL alone against a 5 ms target
-- (tests/bench/README.md, figure 5).  EXPLAIN (ANALYZE, BUFFERS) of each
-- statement inside catalog_search() (auto_explain, nested statements)
-- showed where: the title tier walked 500 of the rarer word's title
-- postings and checked each by probing the other word's postings (an index
-- descent per candidate: 2,274 buffer hits), found too few and went on to
-- the GIN index through EXECUTE (planned anew on every call); the rest tier
-- walked again with an aggregate per candidate (4,373 hits); the facets
-- walked a third time (1,091).
--
-- How.  Two positions of one word each (the common multi-word query):
-- the title tier is a merge join of the two words' title postings, each
-- one range of search_postings_rank_idx already in rank order, so a
-- candidate costs a step along a leaf page instead of a descent.  The
-- generic plan takes the merge join by itself (both inputs come sorted
-- from the index).  Each side is bounded (catalog_search_merge_bound()),
-- so what the merge finds is every match above the first side's cut, in
-- rank order; short of a page with a side cut, a static statement on the
-- GIN index of titles finds the few matches (its generic plan is that
-- index; no per-call planning).  The rest tier keeps the walk, but checks a
-- pair's candidate with one or two plain probes of the other word's
-- postings.  It keeps the walk because a word's postings of any tier are
-- two ranges (tier 2, tier 1), and PostgreSQL 15 would not merge a UNION
-- ALL of them in order (it appended and sorted); there the words meet
-- often, so the walk stops early.
--
-- Same functions, same signatures, same answers: 008's essay holds for
-- everything else (queries of one word, or of three words and more, or
-- with several words for one position, walk as before).

-- Each side of the title tier's merge join reads at most this many
-- postings before the GIN index takes over.
CREATE FUNCTION catalog_search_merge_bound() RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT 2000 $$;

-- The ranked matches (008), with the merge join for a pair of words.
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
            -- title match.  Each side stops after mbound postings, so what
            -- it finds is every match ranked above the first side's cut,
            -- in rank order: exact as far as it goes.
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
                             LIMIT mbound) a
                      JOIN (SELECT p.popularity, p.book_id
                              FROM search_postings p
                             WHERE p.word = p_owords[1] AND p.tier = 2
                               AND (cpop IS NULL OR (p.popularity, p.book_id) < (cpop, cid))
                             ORDER BY p.popularity DESC, p.book_id DESC
                             LIMIT mbound) b
                        ON b.popularity = a.popularity AND b.book_id = a.book_id
                     WHERE (p_cats IS NULL OR a.category_ids && p_cats)
                       AND (p_min IS NULL OR a.price_cents >= p_min)
                       AND (p_max IS NULL OR a.price_cents <= p_max)
                       AND (NOT p_in_stock OR EXISTS (SELECT 1 FROM stock s WHERE s.book_id = a.book_id AND s.on_hand > s.reserved))
                     ORDER BY a.popularity DESC, a.book_id DESC
                     LIMIT p_limit) m;
            got := coalesce(cardinality(found), 0);

            -- short of the page with a side cut by the bound: the words
            -- rarely share a title, so the GIN index of titles finds the
            -- few matches.  A static statement: its generic plan is that
            -- index (EXECUTE, below, would plan it anew on every call, as
            -- long as the search itself)
            IF got < least(p_need, p_limit)
               AND (SELECT max(cw.ndoc) FROM catalog_words cw
                     WHERE cw.word IN (p_walk[1], p_owords[1])) > mbound
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
