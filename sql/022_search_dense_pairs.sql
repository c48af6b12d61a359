-- 022_search_dense_pairs.sql: how many titles hold a dense word together
-- with each other word, so that a pair whose titles never meet skips the
-- title tier instead of proving that it is empty.
--
-- Why.  Measured on a million generated books (tests/bench/README.md,
-- figure 5): "history kingdom" cost 9.4 ms of PostgreSQL through the
-- stack, 10 % of the search mix and 28 % of its database time.
-- "history" is in a quarter of all titles, "kingdom" in 12,192, and never
-- in the same one.  016's pair logic merges both words' title postings
-- (short, then deep), finds nothing, and asks the GIN index of titles,
-- which decodes most of "history"'s 250,000 title entries (2.4 ms warm)
-- to prove that there is no match.  Only then does the rest tier start.
--
-- What.  A word in at least catalog_search_dense_share() of the books
-- (016: 15 %) is dense.  search_dense_pairs(dense, word, n) counts, for
-- every dense word, the live books whose title holds both it and word
-- (the title tier's own test: both words among the title's lexemes of 2
-- to 64 characters, search_doc_words of 008).  catalog_search_matches is
-- now a short function in front of 016's (renamed
-- catalog_search_matches_in_tiers): a pair with a dense word and no
-- title in common starts at the rest tier.  Everything else goes through
-- unchanged, with the same answers (the title tier was empty).
--
-- Kept current in the writer's transaction, like the postings: statement
-- triggers on books add the titles inserted, and the difference of the
-- titles updated (title changed, book deleted or restored) or deleted.
-- A popularity, price or stock change costs only the comparison.
--
-- The set of dense words.  search_dense_pairs_refresh() compares it with
-- catalog_words (ndoc against the books' estimate, as 016's odens does);
-- a word joins at the share and leaves below half of it, so one near the
-- line does not come and go.  When the set changes it takes a SHARE lock
-- on books (writers wait, readers do not): a writer that counted with the
-- old set, and this count from the table, could otherwise both miss the
-- writer's book.  The migration runs it; the catalog area runs it as a
-- periodic task (backend/catalog/area_catalog.c), so a catalog that grows
-- from empty gets its dense words without an operator.
--
-- Cost: at a million books (13 dense words: the generator's "the",
-- "of", "history", its commonest surnames) 288,495 rows, 24 s to count
-- from scratch; an inserted book adds its (dense words x title words)
-- pairs, a few dozen.

CREATE TABLE search_dense_words (
    word  text PRIMARY KEY
);

CREATE TABLE search_dense_pairs (
    dense  text NOT NULL,
    word   text NOT NULL,
    n      int  NOT NULL,
    PRIMARY KEY (dense, word)
);

-- n += each title's sign for every (dense word, other word) pair of its
-- title lexemes; pairs in order, so two writers lock rows in the same
-- order and cannot deadlock
CREATE FUNCTION search_dense_pairs_add(p_titles tsvector[], p_signs int[])
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO search_dense_pairs AS sp (dense, word, n)
    SELECT d.word, w.word, sum(t.sign)::int
      FROM unnest(p_titles, p_signs) AS t(title, sign)
      CROSS JOIN LATERAL unnest(tsvector_to_array(t.title)) AS d(word)
      JOIN search_dense_words dw ON dw.word = d.word
      CROSS JOIN LATERAL unnest(tsvector_to_array(t.title)) AS w(word)
     WHERE w.word <> d.word AND length(w.word) BETWEEN 2 AND 64
     GROUP BY d.word, w.word
    HAVING sum(t.sign) <> 0
     ORDER BY d.word, w.word
        ON CONFLICT (dense, word) DO UPDATE SET n = sp.n + excluded.n
$$;

CREATE FUNCTION search_dense_pairs_books_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM search_dense_words) THEN
        PERFORM search_dense_pairs_add(array_agg(n.title_doc), array_agg(1))
           FROM new_books n
          WHERE n.deleted_at IS NULL;
    END IF;
    RETURN NULL;
END
$$;

-- the books whose title or liveness changed: their old titles out, their
-- new ones in
CREATE FUNCTION search_dense_pairs_books_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM search_dense_words) THEN
        PERFORM search_dense_pairs_add(array_agg(x.title), array_agg(x.sign))
           FROM old_books o
           JOIN new_books n ON n.id = o.id
          CROSS JOIN LATERAL (VALUES (o.title_doc, -1, o.deleted_at IS NULL),
                                     (n.title_doc, 1, n.deleted_at IS NULL))
                AS x(title, sign, live)
          WHERE x.live
            AND (o.title_doc, o.deleted_at IS NULL)
                IS DISTINCT FROM (n.title_doc, n.deleted_at IS NULL);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION search_dense_pairs_books_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM search_dense_words) THEN
        PERFORM search_dense_pairs_add(array_agg(o.title_doc), array_agg(-1))
           FROM old_books o
          WHERE o.deleted_at IS NULL;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER books_search_dense_pairs_insert
    AFTER INSERT ON books REFERENCING NEW TABLE AS new_books
    FOR EACH STATEMENT EXECUTE FUNCTION search_dense_pairs_books_inserted();
CREATE TRIGGER books_search_dense_pairs_update
    AFTER UPDATE ON books REFERENCING OLD TABLE AS old_books NEW TABLE AS new_books
    FOR EACH STATEMENT EXECUTE FUNCTION search_dense_pairs_books_updated();
CREATE TRIGGER books_search_dense_pairs_delete
    AFTER DELETE ON books REFERENCING OLD TABLE AS old_books
    FOR EACH STATEMENT EXECUTE FUNCTION search_dense_pairs_books_deleted();

-- Words into the set of dense words (their pairs counted from the books)
-- and out of it.  The SHARE lock on books waits for every writer that
-- counted with the old set and keeps new ones out until the count is
-- done; the count's statement sees what they committed.  A writer's
-- trigger reads the set with its statement's snapshot, so a writer that
-- waited for the lock counts with the new set: true in READ COMMITTED,
-- which every worker's transaction is (a REPEATABLE READ writer that took
-- its snapshot before the change would count with the old one).
CREATE FUNCTION search_dense_words_set(p_join text[], p_leave text[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    joined  text[];
BEGIN
    LOCK TABLE books IN SHARE MODE;

    DELETE FROM search_dense_pairs WHERE dense = ANY (p_leave);
    DELETE FROM search_dense_words WHERE word = ANY (p_leave);

    WITH ins AS (
        INSERT INTO search_dense_words (word)
        SELECT DISTINCT w FROM unnest(p_join) w
         WHERE length(w) BETWEEN 2 AND 64 AND w <> ALL (coalesce(p_leave, '{}'))
        ON CONFLICT (word) DO NOTHING
        RETURNING word)
    SELECT array_agg(word) INTO joined FROM ins;

    INSERT INTO search_dense_pairs (dense, word, n)
    SELECT d.word, w.word, count(*)
      FROM books b
     CROSS JOIN LATERAL unnest(tsvector_to_array(b.title_doc)) AS d(word)
     CROSS JOIN LATERAL unnest(tsvector_to_array(b.title_doc)) AS w(word)
     WHERE b.deleted_at IS NULL AND d.word = ANY (joined)
       AND w.word <> d.word AND length(w.word) BETWEEN 2 AND 64
     GROUP BY d.word, w.word;
END
$$;

-- The dense words again from catalog_words: a word joins at the share and
-- leaves below half of it.  The number that joined or left: 0 when the
-- set stands, which costs one read of the vocabulary and takes no lock.
CREATE FUNCTION search_dense_pairs_refresh() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    books_n  float8;
    joined   text[];
    leaving  text[];
BEGIN
    books_n := (SELECT CASE WHEN c.reltuples > 0 THEN c.reltuples
                            ELSE (SELECT count(*) FROM books) END
                  FROM pg_class c WHERE c.oid = 'books'::regclass);

    SELECT coalesce(array_agg(cw.word ORDER BY cw.word), '{}') INTO joined
      FROM catalog_words cw
     WHERE cw.ndoc > 0 AND cw.ndoc >= catalog_search_dense_share() * books_n
       AND length(cw.word) BETWEEN 2 AND 64
       AND NOT EXISTS (SELECT 1 FROM search_dense_words dw WHERE dw.word = cw.word);

    SELECT coalesce(array_agg(dw.word ORDER BY dw.word), '{}') INTO leaving
      FROM search_dense_words dw
      LEFT JOIN catalog_words cw ON cw.word = dw.word
     WHERE coalesce(cw.ndoc, 0) < catalog_search_dense_share() / 2 * books_n;

    IF joined = '{}' AND leaving = '{}' THEN
        RETURN 0;
    END IF;

    PERFORM search_dense_words_set(joined, leaving);
    RETURN cardinality(joined) + cardinality(leaving);
END
$$;

-- 016's ranked matches keep their body under a new name; the function in
-- front of them decides where they start
ALTER FUNCTION catalog_search_matches(
    tsquery, text[], int, boolean, int[], text[], bigint[], bigint, bigint,
    boolean, int, int, bigint, int, int, int, int)
    RENAME TO catalog_search_matches_in_tiers;

-- A pair (two positions of one word each, as 016's "pair") with a dense
-- word whose titles never meet the other word's: the title tier is empty,
-- so the matches start at the rest tier, from its top (a cursor inside
-- the title tier has nothing after it there).  A query of only the title
-- tier (p_last_tier 2) then finds nothing, as it would have.
CREATE FUNCTION catalog_search_matches(
    p_tsq tsquery, p_walk text[], p_walk_ndoc int, p_single boolean,
    p_opos int[], p_owords text[],
    p_cats bigint[], p_min bigint, p_max bigint, p_in_stock boolean,
    p_tier int, p_pop int, p_id bigint, p_limit int, p_need int, p_scan int,
    p_last_tier int)
RETURNS SETOF catalog_match
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT p_single AND cardinality(p_walk) = 1 AND cardinality(p_owords) = 1
       AND coalesce(p_tier, 2) = 2
       AND EXISTS (SELECT 1 FROM search_dense_words dw
                    WHERE dw.word IN (p_walk[1], p_owords[1]))
       AND NOT EXISTS (SELECT 1 FROM search_dense_pairs sp
                        WHERE sp.n > 0
                          AND ((sp.dense = p_walk[1] AND sp.word = p_owords[1])
                               OR (sp.dense = p_owords[1] AND sp.word = p_walk[1])))
    THEN
        p_tier := 1;
        p_pop := NULL;
        p_id := NULL;
    END IF;

    RETURN QUERY
    SELECT * FROM catalog_search_matches_in_tiers(
        p_tsq, p_walk, p_walk_ndoc, p_single, p_opos, p_owords, p_cats,
        p_min, p_max, p_in_stock, p_tier, p_pop, p_id, p_limit, p_need,
        p_scan, p_last_tier);
END
$$;

SELECT search_dense_pairs_refresh();
