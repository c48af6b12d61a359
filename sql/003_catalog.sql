-- 003_catalog.sql: the bookstore catalog and per-warehouse stock.
--
-- books: one row per edition, identified by its ISBN-13 (ISBN-10 input is
-- normalised to ISBN-13 by the backend before it gets here).  Money is
-- integer cents in price_cents with an ISO 4217 currency.  A deleted book
-- keeps its row (orders point at it) and gets deleted_at; every read path
-- filters on deleted_at IS NULL.  rating_count / rating_sum are kept by
-- the review insert in the same transaction; rating_avg is derived from
-- them so it can never drift.
--
-- authors are many-to-many with books, ordered by position.  categories
-- form a tree through parent_id; a book may sit in several.
--
-- stock is one row per (book, warehouse): on_hand copies physically there,
-- reserved of them promised to orders not yet shipped.  The CHECKs are the
-- last line against overselling: no code path can make either negative or
-- promise more than is on hand.  Every change to on_hand or reserved is
-- written to stock_ledger in the same transaction (who, when, how much,
-- why), so stock can always be explained.

CREATE TABLE authors (
    id             bigserial   PRIMARY KEY,
    name           text        NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
    bio            text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE categories (
    id             bigserial   PRIMARY KEY,
    parent_id      bigint      REFERENCES categories (id),
    name           text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug           text        NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS NULL OR parent_id <> id)
);

CREATE INDEX categories_parent_idx ON categories (parent_id);

CREATE TABLE books (
    id             bigserial   PRIMARY KEY,
    isbn13         char(13)    NOT NULL UNIQUE CHECK (isbn13 ~ '^97[89][0-9]{10}$'),
    title          text        NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    subtitle       text,
    description    text        NOT NULL DEFAULT '',
    keywords       text[]      NOT NULL DEFAULT '{}',
    language       text        NOT NULL DEFAULT 'en',
    pages          int         CHECK (pages IS NULL OR pages > 0),
    published_on   date,
    publisher      text,
    format         text        NOT NULL DEFAULT 'paperback'
                               CHECK (format IN ('hardcover', 'paperback',
                                                 'ebook', 'audiobook')),
    price_cents    bigint      NOT NULL CHECK (price_cents >= 0),
    currency       char(3)     NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    rating_count   int         NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
    rating_sum     bigint      NOT NULL DEFAULT 0 CHECK (rating_sum >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);

CREATE TABLE book_authors (
    book_id        bigint      NOT NULL REFERENCES books (id),
    author_id      bigint      NOT NULL REFERENCES authors (id),
    position       smallint    NOT NULL DEFAULT 0,
    PRIMARY KEY (book_id, author_id)
);

CREATE INDEX book_authors_author_idx ON book_authors (author_id, book_id);

CREATE TABLE book_categories (
    book_id        bigint      NOT NULL REFERENCES books (id),
    category_id    bigint      NOT NULL REFERENCES categories (id),
    PRIMARY KEY (book_id, category_id)
);

CREATE INDEX book_categories_category_idx ON book_categories (category_id, book_id);

CREATE TABLE reviews (
    id             bigserial   PRIMARY KEY,
    book_id        bigint      NOT NULL REFERENCES books (id),
    user_id        bigint      NOT NULL REFERENCES users (id),
    rating         smallint    NOT NULL CHECK (rating BETWEEN 1 AND 5),
    text           text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (book_id, user_id)
);

CREATE INDEX reviews_book_idx ON reviews (book_id, id DESC);

CREATE TABLE warehouses (
    id             bigserial   PRIMARY KEY,
    code           text        NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_-]{1,32}$'),
    name           text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    region         text        NOT NULL CHECK (length(region) BETWEEN 1 AND 64),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stock (
    book_id        bigint      NOT NULL REFERENCES books (id),
    warehouse_id   bigint      NOT NULL REFERENCES warehouses (id),
    on_hand        int         NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved       int         NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (book_id, warehouse_id),
    CHECK (reserved <= on_hand)
);

CREATE TABLE stock_ledger (
    id             bigserial   PRIMARY KEY,
    book_id        bigint      NOT NULL,
    warehouse_id   bigint      NOT NULL,
    delta_on_hand  int         NOT NULL DEFAULT 0,
    delta_reserved int         NOT NULL DEFAULT 0,
    reason         text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    actor_id       bigint,                 -- the admin or buyer; NULL: the system
    order_id       bigint,                 -- set by checkout, ship, refund, expiry
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (book_id, warehouse_id) REFERENCES stock (book_id, warehouse_id)
);

CREATE INDEX stock_ledger_book_idx ON stock_ledger (book_id, warehouse_id, id);


-- ---------------------------------------------------------------------------
-- Search, browse and popularity (the catalog reads of backend/op_catalog.c).
--
-- rating_avg is stored, generated from rating_sum / rating_count, so the
-- "rating" sort has an index and the value can never drift from the sums.
--
-- popularity is the tie-breaker of search and the "popular first" order of
-- a common word: the generator seeds it, every review adds one (checkout may
-- add sales later).  It is a plain counter, not a promise of anything.
--
-- Search documents (both 'simple' configuration: no stemming, no stop
-- words, so prefixes and typo fixes work on the words people typed):
--   title_doc   title + author names                         (weight A)
--   search_doc  title, authors (A), subtitle, keywords (B), description (C)
-- They are kept by catalog_book_refresh(book_id), called by every write
-- that changes a book's words, and by the generator in bulk.
--
-- Ranking.  ts_rank over every match of a word in a quarter of a million
-- books costs hundreds of milliseconds (it must read every match's
-- tsvector).  Instead a search ranks in two tiers: books whose title or
-- authors match all the words (title_doc), then books that match only
-- elsewhere (search_doc), and within a tier by popularity, then id.  That
-- order has an index (books_popularity_idx), so a common word walks it and
-- stops after one page, while a rare word takes the GIN index and sorts its
-- few matches: the planner picks by the word's frequency.  The measured
-- comparison with ts_rank and with rum is in tests/bench/README.md.
--
-- catalog_words is the vocabulary of titles, authors and keywords, with a
-- trigram index: a query word that is not in it is replaced by its nearest
-- neighbour (pg_trgm similarity), which is how a one-letter typo still
-- finds the book.  pg_trgm is a trusted extension: the database owner may
-- create it, no superuser needed.
-- ---------------------------------------------------------------------------

CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE books
    ADD COLUMN rating_avg  numeric(3, 2) GENERATED ALWAYS AS
        (CASE WHEN rating_count > 0
              THEN round(rating_sum::numeric / rating_count, 2)
              ELSE 0 END) STORED,
    ADD COLUMN popularity  int      NOT NULL DEFAULT 0,
    ADD COLUMN title_doc   tsvector NOT NULL DEFAULT ''::tsvector,
    ADD COLUMN search_doc  tsvector NOT NULL DEFAULT ''::tsvector,
    ADD COLUMN category_ids bigint[] NOT NULL DEFAULT '{}';

-- category_ids repeats book_categories on the row (kept by the same
-- writers, in the same transaction) so that "these words in this
-- category" is one BitmapAnd of two GIN indexes: through book_categories
-- it had to fetch every book of one side, 0.4-0.6 s at a million books.
CREATE INDEX books_category_ids_idx ON books USING gin (category_ids);

CREATE INDEX books_title_doc_idx  ON books USING gin (title_doc);
CREATE INDEX books_search_doc_idx ON books USING gin (search_doc);

-- the keyset orders of browse and search, live books only
CREATE INDEX books_title_idx      ON books (title, id) WHERE deleted_at IS NULL;
CREATE INDEX books_price_idx      ON books (price_cents, id) WHERE deleted_at IS NULL;
CREATE INDEX books_rating_idx     ON books (rating_avg DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX books_newest_idx     ON books ((coalesce(published_on, date '0001-01-01')) DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX books_popularity_idx ON books (popularity DESC, id DESC) WHERE deleted_at IS NULL;

CREATE INDEX book_authors_book_idx ON book_authors (book_id, position);
CREATE INDEX authors_name_idx ON authors (name);
CREATE INDEX book_categories_book_idx ON book_categories (book_id);

CREATE TABLE catalog_words (
    word           text        PRIMARY KEY CHECK (length(word) BETWEEN 1 AND 64)
);

CREATE INDEX catalog_words_trgm_idx ON catalog_words USING gin (word gin_trgm_ops);

-- the lowercase words of some text, as the 'simple' parser sees them
CREATE FUNCTION catalog_text_words(t text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE AS $$
    SELECT DISTINCT lexeme
      FROM unnest(to_tsvector('simple', coalesce(t, ''))) AS u
     WHERE length(lexeme) BETWEEN 2 AND 64
$$;

-- Recomputes a book's search documents and adds its words to the
-- vocabulary.  Called in the writer's transaction, after its authors are
-- linked.
CREATE FUNCTION catalog_book_refresh(p_book bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    names  text;
BEGIN
    SELECT coalesce(string_agg(au.name, ' ' ORDER BY ba.position), '')
      INTO names
      FROM book_authors ba JOIN authors au ON au.id = ba.author_id
     WHERE ba.book_id = p_book;

    UPDATE books b
       SET title_doc = setweight(to_tsvector('simple', b.title || ' ' || names), 'A'),
           search_doc = setweight(to_tsvector('simple', b.title || ' ' || names), 'A')
                     || setweight(to_tsvector('simple', coalesce(b.subtitle, '') || ' '
                                  || array_to_string(b.keywords, ' ')), 'B')
                     || setweight(to_tsvector('simple', b.description), 'C')
     WHERE b.id = p_book;

    INSERT INTO catalog_words (word)
    SELECT w FROM books b,
           catalog_text_words(b.title || ' ' || names || ' '
                              || array_to_string(b.keywords, ' ')) AS w
     WHERE b.id = p_book
    ON CONFLICT DO NOTHING;
END
$$;

-- Turns what someone typed into a tsquery: every word must match; the last
-- word also as a prefix (search as you type); a word the vocabulary does
-- not know is replaced by its nearest known neighbour when there is one
-- (a typo).  NULL when nothing searchable is left.
CREATE FUNCTION catalog_query(q text) RETURNS tsquery
LANGUAGE plpgsql STABLE AS $$
DECLARE
    words  text[];
    parts  text[] := '{}';
    w      text;
    fix    text;
    i      int;
    n      int;
BEGIN
    SELECT array_agg(t.token ORDER BY t.ord)
      INTO words
      FROM unnest(regexp_split_to_array(lower(coalesce(q, '')),
                                        '[^[:alnum:]]+')) WITH ORDINALITY AS t(token, ord)
     WHERE t.token <> '';

    n := coalesce(array_length(words, 1), 0);
    IF n = 0 THEN
        RETURN NULL;
    END IF;

    FOR i IN 1 .. least(n, 8) LOOP
        w := left(words[i], 64);
        IF i = n AND EXISTS (SELECT 1 FROM catalog_words
                              WHERE word LIKE w || '%') THEN
            parts := parts || (quote_literal(w) || ':*');
        ELSIF EXISTS (SELECT 1 FROM catalog_words WHERE word = w) OR length(w) < 3 THEN
            parts := parts || quote_literal(w);
        ELSE
            SELECT word INTO fix
              FROM catalog_words
             WHERE word % w
             ORDER BY word <-> w, word
             LIMIT 1;
            parts := parts || quote_literal(coalesce(fix, w));
        END IF;
    END LOOP;

    RETURN to_tsquery('simple', array_to_string(parts, ' & '));
END
$$;

-- the subtree of a category, itself included
CREATE FUNCTION catalog_subtree(p_category bigint) RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE t(id) AS (
        SELECT id FROM categories WHERE id = p_category
        UNION
        SELECT c.id FROM categories c JOIN t ON c.parent_id = t.id
    )
    SELECT coalesce(array_agg(id), '{}') FROM t
$$;
