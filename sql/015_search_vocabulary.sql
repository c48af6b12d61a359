-- 015_search_vocabulary.sql: a query word's completions found through an
-- index in the plan a worker actually runs, and search's plans fixed in
-- the function rather than left to the session.
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
-- never start parallel workers: a search is milliseconds, a worker's
-- start-up is about as much, and it takes a core from the other lanes.
--
-- GIN pending lists: books' GIN indexes of titles and documents (003)
-- answer the walks' rare fallbacks.  With fastupdate, every scan reads the
-- whole pending list of entries not yet merged, up to the default 4 MB
-- between vacuums: 3,000 new books added 45 pages to each such scan
-- (2.0 ms instead of 1.3).  A 256 kB limit merges them into the index
-- sooner, so a scan reads at most 32 pending pages; inserts still batch.

CREATE INDEX catalog_words_complete1_idx ON catalog_words
    ((left(word, 1) COLLATE "C"), ndoc DESC) INCLUDE (word) WHERE ndoc > 0;
CREATE INDEX catalog_words_complete2_idx ON catalog_words
    ((left(word, 2) COLLATE "C"), ndoc DESC) INCLUDE (word) WHERE ndoc > 0;
CREATE INDEX catalog_words_complete_idx ON catalog_words
    ((word COLLATE "C")) INCLUDE (ndoc) WHERE ndoc > 0;

ALTER INDEX books_title_doc_idx SET (gin_pending_list_limit = 256);
ALTER INDEX books_search_doc_idx SET (gin_pending_list_limit = 256);

-- The 8 most frequent words in some book that start with p, longest
-- first: each branch is a statement whose generic plan is an index.
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
