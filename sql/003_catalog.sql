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
