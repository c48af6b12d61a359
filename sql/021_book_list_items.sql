-- 021_book_list_items.sql: a book's list item (what search, browse and a
-- book's details show of it) kept ready-made as JSON text, so a page
-- reads one row per book instead of its books row, its authors' row and
-- a json_build_object of fourteen fields.
--
-- Why.  Measured on a million generated books, PostgreSQL alone: the
-- figure-5 search mix of 2,000 queries sent as a worker sends them, in a
-- loop, once warm, the statement before and this one alternated three
-- times (2026-12-06): 2.35-2.53 ms per search before, 2.07-2.52 after
-- (a first version that still joined books: 2.38-2.40 against
-- 2.15-2.22).  Through the whole stack (figure 5, 300/s) the difference
-- is inside the run-to-run spread: PostgreSQL's CPU per search
-- 2,803-3,514 us before, 2,847-3,192 after, alternated three times.
--
-- What is not in it: "available" (on_hand - reserved over every
-- warehouse), which changes with every sale; the reader appends it
-- (CHAT_BOOK_SUMMARY_SQL, backend/catalog/catalog.h), so a sale rewrites
-- nothing here.  The text is json_build_object's, the same as the reader
-- built before, character for character, once "available" is appended.
--
-- How.  book_list_items(book_id, item), kept in the writer's transaction
-- by statement triggers, whoever wrote:
--   - books inserted: their items;
--   - books updated where a field of the item changed (an admin's edit, a
--     review's rating, a cover): those items again; popularity, stock
--     and documents are not in the item and cost only the comparison;
--   - the authors' summary of 019 written (links, an author renamed or
--     merged): triggers on book_list_authors refresh those books' items.
-- A deleted book's row goes with it (ON DELETE CASCADE); a soft-deleted
-- one keeps its item, which nothing lists.  Rows are written in book
-- order, so two overlapping refreshes wait instead of deadlocking, and an
-- item that did not change is not written again.
--
-- Cost: the migration fills it in 29 s at a million books (412 MB); the
-- generator's bulk load pays one INSERT ... SELECT per batch, and again
-- when it links the batch's authors.

CREATE TABLE book_list_items (
    book_id  bigint PRIMARY KEY REFERENCES books (id) ON DELETE CASCADE,
    item     text   NOT NULL
);

-- the items of these books again, from books and book_list_authors
CREATE FUNCTION book_list_items_refresh(p_books bigint[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO book_list_items AS li (book_id, item)
    SELECT b.id,
           json_build_object('id', b.id, 'isbn13', b.isbn13, 'title', b.title,
               'subtitle', b.subtitle,
               'authors', coalesce((SELECT la.authors FROM book_list_authors la
                                     WHERE la.book_id = b.id), '[]'::json),
               'price_cents', b.price_cents, 'currency', b.currency,
               'format', b.format, 'published_on', b.published_on,
               'rating_avg', b.rating_avg::float8,
               'rating_count', b.rating_count, 'cover_url', b.cover_url,
               'cover_thumb_url', b.cover_thumb_url)::text
      FROM books b
     WHERE b.id = ANY (p_books)
     ORDER BY b.id
        ON CONFLICT (book_id) DO UPDATE SET item = EXCLUDED.item
     WHERE li.item IS DISTINCT FROM EXCLUDED.item;
$$;

CREATE FUNCTION book_list_items_books_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM book_list_items_refresh(ARRAY(SELECT n.id FROM new_books n));
    RETURN NULL;
END
$$;

CREATE TRIGGER book_list_items_books_inserted AFTER INSERT ON books
    REFERENCING NEW TABLE AS new_books
    FOR EACH STATEMENT EXECUTE FUNCTION book_list_items_books_inserted();

CREATE FUNCTION book_list_items_books_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM book_list_items_refresh(ARRAY(
        SELECT n.id
          FROM new_books n JOIN old_books o ON o.id = n.id
         WHERE (n.isbn13, n.title, n.subtitle, n.price_cents, n.currency,
                n.format, n.published_on, n.rating_avg, n.rating_count,
                n.cover_url, n.cover_thumb_url)
               IS DISTINCT FROM
               (o.isbn13, o.title, o.subtitle, o.price_cents, o.currency,
                o.format, o.published_on, o.rating_avg, o.rating_count,
                o.cover_url, o.cover_thumb_url)));
    RETURN NULL;
END
$$;

CREATE TRIGGER book_list_items_books_updated AFTER UPDATE ON books
    REFERENCING NEW TABLE AS new_books OLD TABLE AS old_books
    FOR EACH STATEMENT EXECUTE FUNCTION book_list_items_books_updated();

-- the books whose authors' summary (019) changed: links added, removed
-- or reordered, an author renamed or merged; 019's refresh writes that
-- table and nothing else, so its rows name every book concerned
CREATE FUNCTION book_list_items_authors_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM book_list_items_refresh(ARRAY(SELECT o.book_id FROM old_rows o));
    ELSE
        PERFORM book_list_items_refresh(ARRAY(SELECT n.book_id FROM new_rows n));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER book_list_items_authors_ins AFTER INSERT ON book_list_authors
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION book_list_items_authors_changed();
CREATE TRIGGER book_list_items_authors_upd AFTER UPDATE ON book_list_authors
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION book_list_items_authors_changed();
CREATE TRIGGER book_list_items_authors_del AFTER DELETE ON book_list_authors
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION book_list_items_authors_changed();

-- the books there are
SELECT book_list_items_refresh(ARRAY(SELECT b.id FROM books b));
