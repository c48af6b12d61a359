-- 023_search_word_categories.sql: how many postings each word has in each
-- category, per tier, so that a word searched inside a category skips a
-- tier that the category does not hold instead of walking every posting
-- of the word to prove it.
--
-- Why.  Measured on a million generated books (tests/bench/README.md,
-- figure 5, per kind): "category + word" was the only kind of the mix
-- with a p99 over 5 ms (6.6-7.4 ms).  A query of one position is proved
-- by its postings alone (016: nothing to verify), so 016's walk of a tier
-- has no bound: it reads the words' postings in rank order, the category
-- a filter on each, until it has a page.  "orchid" has 30,500 title
-- postings and none in the category "essays": the walk reads all 30,500
-- (7 ms) to find nothing, and only then walks the rest tier.  Words and
-- categories go together (a word is in hundreds of a category's titles or
-- in none: 19 of the mix's 30 pairs have an empty title tier, none a
-- sparse one), so an empty tier is the case to answer at once.  Asking the
-- GIN indexes of titles and of categories together (a BitmapAnd) was
-- tried: it decodes both posting lists (30,500 and 24,774 entries) and
-- cost as much as the walk.
--
-- What.  search_word_categories(word, tier, category_id, n): the live
-- books with word in tier (016's postings: 2 in the title or an author,
-- else 1) and category_id among their categories.  catalog_search_matches
-- (022's function in front of 016's) reads it for a query of one position
-- inside a category: a tier that no word of the position has in any of the
-- category's subtree is skipped, the title tier by starting at the rest
-- tier (as 022 does), the rest tier by ending after the title tier.  The
-- answers are the same (the tier skipped has no match); everything else
-- goes through unchanged.
--
-- Kept current in the writer's transaction, like the postings: statement
-- triggers on books add the difference of the words and categories of the
-- books inserted, changed (text, categories, deleted or restored) or
-- deleted.  A popularity, price or stock change costs only the comparison.
-- Counts are written in (word, tier, category) order, so two writers lock
-- them in the same order and cannot deadlock; a count that falls to 0
-- stays as a row of 0.
--
-- Cost at a million books: 1,408,273 rows, counted from the postings in
-- 13 s.

CREATE TABLE search_word_categories (
    word         text     NOT NULL,
    tier         smallint NOT NULL,
    category_id  bigint   NOT NULL,
    n            int      NOT NULL,
    PRIMARY KEY (word, tier, category_id)
);

INSERT INTO search_word_categories (word, tier, category_id, n)
SELECT p.word, p.tier, c.id, count(*)
  FROM search_postings p, unnest(p.category_ids) AS c(id)
 GROUP BY p.word, p.tier, c.id;

-- n += each book's sign for every (word, tier, category) of its documents
-- (search_doc_words of 008: the postings' own words and tiers)
CREATE FUNCTION search_word_categories_add(p_books books[], p_signs int[])
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO search_word_categories AS s (word, tier, category_id, n)
    SELECT w.word, w.tier, c.id, sum(p_signs[b.ordinality])::int
      FROM unnest(p_books) WITH ORDINALITY AS b
      CROSS JOIN LATERAL search_doc_words(b.title_doc, b.search_doc) w
      CROSS JOIN LATERAL unnest(b.category_ids) AS c(id)
     GROUP BY w.word, w.tier, c.id
    HAVING sum(p_signs[b.ordinality]) <> 0
     ORDER BY w.word, w.tier, c.id
        ON CONFLICT (word, tier, category_id) DO UPDATE SET n = s.n + excluded.n
$$;

CREATE FUNCTION search_word_categories_books_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_word_categories_add(array_agg(n::books), array_agg(1))
       FROM new_books n
      WHERE n.deleted_at IS NULL;
    RETURN NULL;
END
$$;

-- the books whose words, categories or liveness changed: their old
-- versions out, their new ones in
CREATE FUNCTION search_word_categories_books_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_word_categories_add(array_agg(x.b), array_agg(x.sign))
       FROM old_books o
       JOIN new_books n ON n.id = o.id
      CROSS JOIN LATERAL (VALUES (o::books, -1, o.deleted_at IS NULL),
                                 (n::books, 1, n.deleted_at IS NULL)) AS x(b, sign, live)
      WHERE x.live
        AND (o.title_doc, o.search_doc, o.category_ids, o.deleted_at IS NULL)
            IS DISTINCT FROM
            (n.title_doc, n.search_doc, n.category_ids, n.deleted_at IS NULL);
    RETURN NULL;
END
$$;

CREATE FUNCTION search_word_categories_books_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_word_categories_add(array_agg(o::books), array_agg(-1))
       FROM old_books o
      WHERE o.deleted_at IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER books_search_word_categories_insert
    AFTER INSERT ON books REFERENCING NEW TABLE AS new_books
    FOR EACH STATEMENT EXECUTE FUNCTION search_word_categories_books_inserted();
CREATE TRIGGER books_search_word_categories_update
    AFTER UPDATE ON books REFERENCING OLD TABLE AS old_books NEW TABLE AS new_books
    FOR EACH STATEMENT EXECUTE FUNCTION search_word_categories_books_updated();
CREATE TRIGGER books_search_word_categories_delete
    AFTER DELETE ON books REFERENCING OLD TABLE AS old_books
    FOR EACH STATEMENT EXECUTE FUNCTION search_word_categories_books_deleted();

-- 022's function in front of 016's, and now a query of one position in a
-- category: a tier that none of its words has in the category's subtree
-- is skipped
CREATE OR REPLACE FUNCTION catalog_search_matches(
    p_tsq tsquery, p_walk text[], p_walk_ndoc int, p_single boolean,
    p_opos int[], p_owords text[],
    p_cats bigint[], p_min bigint, p_max bigint, p_in_stock boolean,
    p_tier int, p_pop int, p_id bigint, p_limit int, p_need int, p_scan int,
    p_last_tier int)
RETURNS SETOF catalog_match
LANGUAGE plpgsql STABLE AS $$
DECLARE
    in_title  boolean;
    in_rest   boolean;
BEGIN
    IF p_single AND p_walk IS NOT NULL AND p_cats IS NOT NULL THEN
        SELECT coalesce(bool_or(s.n > 0) FILTER (WHERE s.tier = 2), false),
               coalesce(bool_or(s.n > 0) FILTER (WHERE s.tier = 1), false)
          INTO in_title, in_rest
          FROM search_word_categories s
         WHERE s.word = ANY (p_walk) AND s.category_id = ANY (p_cats);
        IF NOT in_title AND coalesce(p_tier, 2) = 2 THEN
            p_tier := 1;
            p_pop := NULL;
            p_id := NULL;
        END IF;
        IF NOT in_rest THEN
            p_last_tier := 2;
        END IF;
    END IF;

    -- (022) a pair with a dense word and no title in common: the rest tier
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
