-- 019_book_list_authors.sql: a book's authors as its list item shows them
-- (id and name, in order), kept in a table of their own, so a page of
-- search or browse reads one row per book instead of joining the authors.
--
-- Why.  Per book of a page the authors cost an index scan of
-- book_authors, a look-up of each author, a sort and a json_agg.
-- Measured on a million generated books (PostgreSQL alone, a loop of
-- one-word searches as a worker sends them, the two list items alternated
-- in one session, 2026-12-06): 1.07-1.17 ms per search with the join,
-- 1.00-1.08 with this table (the search function alone 0.73-0.78).  The
-- search mix through the whole stack is CPU-bound (tests/bench/README.md,
-- figure 5); there the gain is inside the run-to-run spread.
--
-- How.  book_list_authors(book_id, authors): the JSON array the list item
-- embeds, '[]' for a book without authors (no row).  Kept in the writer's
-- transaction by statement triggers, whatever wrote:
--   - book_authors inserted, deleted or updated (an admin's book edit, an
--     author merge, the generator's bulk load, a cascade from a deleted
--     author or book): the books those rows name are summarised again;
--   - an author renamed: that author's books.
-- A table of its own rather than a column of books: a books row written
-- again is a new version in every index of books, the GIN indexes of its
-- documents included (no HOT update at fillfactor 100), which a bulk load
-- of a million books would pay twice.  The refresh writes its rows in
-- book order, so two refreshes of overlapping books wait for each other
-- instead of deadlocking.
--
-- Cost: the generator's bulk load pays one aggregate per batch; an admin's
-- edit one row.

CREATE TABLE book_list_authors (
    book_id  bigint PRIMARY KEY REFERENCES books (id) ON DELETE CASCADE,
    authors  json   NOT NULL
);

-- the summary of these books again (no row: no authors)
CREATE FUNCTION book_list_authors_refresh(p_books bigint[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM book_list_authors l
     WHERE l.book_id = ANY (p_books)
       AND NOT EXISTS (SELECT 1 FROM book_authors ba WHERE ba.book_id = l.book_id);

    INSERT INTO book_list_authors (book_id, authors)
    SELECT ba.book_id,
           json_agg(json_build_object('id', au.id, 'name', au.name)
                    ORDER BY ba.position, au.id)
      FROM book_authors ba JOIN authors au ON au.id = ba.author_id
     WHERE ba.book_id = ANY (p_books)
     GROUP BY ba.book_id
     ORDER BY ba.book_id
        ON CONFLICT (book_id) DO UPDATE SET authors = EXCLUDED.authors;
$$;

CREATE FUNCTION book_list_authors_links() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM book_list_authors_refresh(ARRAY(SELECT DISTINCT book_id FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM book_list_authors_refresh(ARRAY(SELECT DISTINCT book_id FROM old_rows));
    ELSE
        PERFORM book_list_authors_refresh(ARRAY(SELECT book_id FROM new_rows
                                                UNION SELECT book_id FROM old_rows));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER book_list_authors_ins AFTER INSERT ON book_authors
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION book_list_authors_links();
CREATE TRIGGER book_list_authors_del AFTER DELETE ON book_authors
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION book_list_authors_links();
CREATE TRIGGER book_list_authors_upd AFTER UPDATE ON book_authors
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION book_list_authors_links();

CREATE FUNCTION book_list_authors_renamed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM book_list_authors_refresh(ARRAY(
        SELECT DISTINCT ba.book_id
          FROM new_rows n JOIN old_rows o ON o.id = n.id
          JOIN book_authors ba ON ba.author_id = n.id
         WHERE n.name IS DISTINCT FROM o.name));
    RETURN NULL;
END
$$;

CREATE TRIGGER book_list_authors_rename AFTER UPDATE ON authors
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION book_list_authors_renamed();

-- the books there are
INSERT INTO book_list_authors (book_id, authors)
SELECT ba.book_id,
       json_agg(json_build_object('id', au.id, 'name', au.name)
                ORDER BY ba.position, au.id)
  FROM book_authors ba JOIN authors au ON au.id = ba.author_id
 GROUP BY ba.book_id;
