/*
 * op_catalog.c: reading the catalog.  Anyone may (no user needed).
 *
 *   catalog.categories  {}                                -> {categories}
 *   catalog.author      {author_id}                       -> {author}
 *   catalog.browse      {category?, author?, sort?, cursor?, limit?}
 *                                                         -> {books, next_cursor}
 *   catalog.search      {q, category?, min_price?, max_price?, in_stock?,
 *                        cursor?, limit?}                 -> {books, next_cursor}
 *   catalog.book        {book_id}                         -> {book}
 *
 * Browse walks one of four keyset orders (title, price ascending; rating,
 * newest descending), each with its own index, from the cursor's (key,
 * id) on: no OFFSET, and a page never shifts when books are added.  A
 * category includes its subcategories (catalog_subtree); an unknown
 * category or author is 404.
 *
 * Search (see the essay in sql/003_catalog.sql): a query shaped like an
 * ISBN (10 or 13 digits, hyphens and spaces ignored) is an exact lookup;
 * anything else becomes a tsquery through catalog_query() (all words,
 * the last one also as a prefix, unknown words replaced by their nearest
 * known neighbour).  The tsquery is computed in a first statement and
 * passed as a constant to the second, so the planner sees the real words
 * and their frequency: a common word walks the popularity index and stops
 * after a page, a rare one takes the GIN index.  Results come in two
 * tiers, title or author matches first, then the rest; within a tier the
 * more popular first.  The cursor is (tier, popularity, id).
 *
 * What it does not do: cache (the edge caches these answers in Redis,
 * ngx_chat_cache.c), or show deleted books (every read filters them).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "catalog_cursor.h"
#include "isbn.h"
#include "log.h"
#include "ops.h"


#define CHAT_SEARCH_Q_MAX  200


typedef struct {
    const char  *name;
    const char  *key;       /* the sort key expression over books b */
    const char  *cast;      /* its type, for the cursor parameter */
    const char  *cmp;       /* "after" in this order */
    const char  *order;
} chat_browse_sort_t;


static const chat_browse_sort_t  chat_browse_sorts[] = {
    { "title", "b.title", "text", ">", "b.title, b.id" },
    { "price", "b.price_cents", "bigint", ">", "b.price_cents, b.id" },
    { "rating", "b.rating_avg", "numeric", "<",
      "b.rating_avg DESC, b.id DESC" },
    { "newest", "coalesce(b.published_on, date '0001-01-01')", "date", "<",
      "coalesce(b.published_on, date '0001-01-01') DESC, b.id DESC" },
    { NULL, NULL, NULL, NULL, NULL }
};


/* the filters search shares: $2 categories, $3/$4 price, $5 in stock */
#define CHAT_SEARCH_FILTERS_SQL                                             \
    " AND b.deleted_at IS NULL"                                             \
    " AND ($2::bigint[] IS NULL OR EXISTS (SELECT 1 FROM book_categories bc"\
    "  WHERE bc.book_id = b.id AND bc.category_id = ANY($2::bigint[])))"    \
    " AND ($3::bigint IS NULL OR b.price_cents >= $3::bigint)"              \
    " AND ($4::bigint IS NULL OR b.price_cents <= $4::bigint)"              \
    " AND (NOT $5::boolean OR EXISTS (SELECT 1 FROM stock s"                \
    "  WHERE s.book_id = b.id AND s.on_hand > s.reserved))"

static const char  chat_search_sql[] =
    "SELECT x.tier, x.popularity, x.id, " CHAT_BOOK_SUMMARY_SQL "::text"
    " FROM ((SELECT 2 AS tier, b.popularity, b.id FROM books b"
    "   WHERE $6::boolean AND b.title_doc @@ $1::tsquery"
    CHAT_SEARCH_FILTERS_SQL
    "   AND ($7::int IS NULL OR (b.popularity, b.id) < ($7::int, $8::bigint))"
    "   ORDER BY b.popularity DESC, b.id DESC LIMIT $9)"
    "  UNION ALL"
    "  (SELECT 1 AS tier, b.popularity, b.id FROM books b"
    "   WHERE b.search_doc @@ $1::tsquery AND NOT b.title_doc @@ $1::tsquery"
    CHAT_SEARCH_FILTERS_SQL
    "   AND ($10::int IS NULL"
    "        OR (b.popularity, b.id) < ($10::int, $11::bigint))"
    "   ORDER BY b.popularity DESC, b.id DESC LIMIT $9)) x"
    " JOIN books b ON b.id = x.id"
    " ORDER BY x.tier DESC, x.popularity DESC, x.id DESC LIMIT $9";

static const char  chat_isbn_sql[] =
    "SELECT 0, b.popularity, b.id, " CHAT_BOOK_SUMMARY_SQL "::text"
    " FROM books b WHERE b.isbn13 = $1"
    CHAT_SEARCH_FILTERS_SQL;


/* ------------------------------------------------------------------------
 * Shared steps
 * --------------------------------------------------------------------- */

/*
 * The body's "category" as the text array of its subtree ("{3,7}"), in
 * buf; *set 0 when absent.  1 ok, 0 after a 400/404, -1.
 */
static int
chat_catalog_category_filter(chat_op_ctx_t *ctx, char **subtree)
{
    int          rc;
    char         idbuf[24];
    int64_t      category;
    PGresult    *res;
    const char  *params[1];

    *subtree = NULL;

    rc = chat_op_integer(ctx, "category", 1, 0, &category);
    if (rc <= 0) {
        return rc < 0 ? -1 : (ctx->reply ? 0 : 1);
    }

    params[0] = chat_i64(idbuf, category);
    res = chat_db_query(ctx->db, "SELECT catalog_subtree($1::bigint)::text",
                        1, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (strcmp(PQgetvalue(res, 0, 0), "{}") == 0) {
        PQclear(res);
        return chat_op_error(ctx, 404, "not_found", "no such category") == 0
               ? 0 : -1;
    }

    *subtree = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);

    return *subtree ? 1 : -1;
}


/* The optional cursor, decoded for order; 1, 0 after a 400 (or absent:
 * *present 0), -1. */
static int
chat_catalog_cursor(chat_op_ctx_t *ctx, const char *order,
    chat_catalog_cursor_t *c, int *present)
{
    int          bad;
    const char  *s;

    *present = 0;

    s = chat_catalog_opt_string(ctx, "cursor", &bad);
    if (bad) {
        return ctx->reply ? 0 : -1;
    }

    if (s == NULL || *s == '\0') {
        return 1;
    }

    if (chat_catalog_cursor_decode(s, strlen(s), order, c) != 0) {
        return chat_op_error(ctx, 400, "invalid_cursor",
                             "cursor is not one this list gave out") == 0
               ? 0 : -1;
    }

    *present = 1;
    return 1;
}


/*
 * Answers 200 {books: [...], next_cursor} from rows of (key columns...,
 * id, book json): the first limit rows are the page; one more means a
 * next page, whose cursor is made from the last row of the page by key.
 */
static int
chat_catalog_page(chat_op_ctx_t *ctx, PGresult *res, int64_t limit,
    int json_col, const char *order,
    void (*key)(PGresult *res, int row, char *buf, size_t size, int64_t *id))
{
    int      n;
    char     kbuf[CHAT_CURSOR_KEY_MAX + 1];
    char     cursor[CHAT_CURSOR_TEXT_MAX + 1];
    cJSON   *reply, *books;
    int64_t  id;

    n = PQntuples(res);

    reply = cJSON_CreateObject();
    books = cJSON_AddArrayToObject(reply, "books");

    if (books == NULL
        || chat_catalog_rows_json(res, json_col, n > limit ? (int) limit : n,
                                  books)
           != 0)
    {
        cJSON_Delete(reply);
        return -1;
    }

    if (n > limit) {
        key(res, (int) limit - 1, kbuf, sizeof(kbuf), &id);

        if (chat_catalog_cursor_encode(order, kbuf, id, cursor,
                                       sizeof(cursor))
            != 0
            || cJSON_AddStringToObject(reply, "next_cursor", cursor) == NULL)
        {
            cJSON_Delete(reply);
            return -1;
        }

    } else if (cJSON_AddNullToObject(reply, "next_cursor") == NULL) {
        cJSON_Delete(reply);
        return -1;
    }

    ctx->status = 200;
    ctx->reply = reply;

    return 0;
}


static int
chat_catalog_empty_page(chat_op_ctx_t *ctx)
{
    ctx->reply = cJSON_CreateObject();
    ctx->status = 200;

    if (ctx->reply == NULL
        || cJSON_AddArrayToObject(ctx->reply, "books") == NULL
        || cJSON_AddNullToObject(ctx->reply, "next_cursor") == NULL)
    {
        return -1;
    }

    return 0;
}


/* ------------------------------------------------------------------------
 * Categories and authors
 * --------------------------------------------------------------------- */

int
chat_op_catalog_categories(chat_op_ctx_t *ctx)
{
    cJSON     *reply, *list;
    PGresult  *res;

    res = chat_db_query_prepared(ctx->db,
        "SELECT coalesce(json_agg(json_build_object('id', id, 'parent_id',"
        " parent_id, 'name', name, 'slug', slug) ORDER BY id), '[]')::text"
        " FROM categories", 0, NULL, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    list = cJSON_Parse(PQgetvalue(res, 0, 0));
    PQclear(res);

    reply = cJSON_CreateObject();
    if (list == NULL || reply == NULL) {
        cJSON_Delete(list);
        cJSON_Delete(reply);
        return -1;
    }

    cJSON_AddItemToObject(reply, "categories", list);

    ctx->status = 200;
    ctx->reply = reply;

    return 0;
}


int
chat_op_catalog_author(chat_op_ctx_t *ctx)
{
    int          rc;
    char         idbuf[24];
    cJSON       *reply, *author;
    int64_t      id;
    PGresult    *res;
    const char  *params[1];

    rc = chat_op_integer(ctx, "author_id", 1, 1, &id);
    if (rc <= 0) {
        return rc;
    }

    params[0] = chat_i64(idbuf, id);

    res = chat_db_query_prepared(ctx->db,
        "SELECT json_build_object('id', a.id, 'name', a.name, 'bio', a.bio,"
        " 'book_count', (SELECT count(*) FROM book_authors ba"
        "  JOIN books b ON b.id = ba.book_id AND b.deleted_at IS NULL"
        "  WHERE ba.author_id = a.id))::text"
        " FROM authors a WHERE a.id = $1", 1, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_error(ctx, 404, "not_found", "no such author");
    }

    author = cJSON_Parse(PQgetvalue(res, 0, 0));
    PQclear(res);

    reply = cJSON_CreateObject();
    if (author == NULL || reply == NULL) {
        cJSON_Delete(author);
        cJSON_Delete(reply);
        return -1;
    }

    cJSON_AddItemToObject(reply, "author", author);

    ctx->status = 200;
    ctx->reply = reply;

    return 0;
}


/* ------------------------------------------------------------------------
 * Browse
 * --------------------------------------------------------------------- */

/* rows of browse: id, key, json */
static void
chat_browse_key(PGresult *res, int row, char *buf, size_t size, int64_t *id)
{
    *id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    snprintf(buf, size, "%s", PQgetvalue(res, row, 1));
}


int
chat_op_catalog_browse(chat_op_ctx_t *ctx)
{
    int                        rc, bad, has_cursor;
    char                      *subtree, sql[2048];
    char                       abuf[24], cbuf[24], lbuf[24];
    int64_t                    author, limit;
    PGresult                  *res;
    const char                *sort, *params[5];
    chat_catalog_cursor_t      cursor;
    const chat_browse_sort_t  *s;

    rc = chat_catalog_limit(ctx, &limit);
    if (rc <= 0) {
        return rc;
    }

    sort = chat_catalog_opt_string(ctx, "sort", &bad);
    if (bad) {
        return ctx->reply ? 0 : -1;
    }

    for (s = chat_browse_sorts; s->name; s++) {
        if (sort == NULL || *sort == '\0' || strcmp(sort, s->name) == 0) {
            break;
        }
    }

    if (s->name == NULL) {
        return chat_op_invalid(ctx, "sort must be title, price, rating or "
                                    "newest");
    }

    rc = chat_catalog_cursor(ctx, s->name, &cursor, &has_cursor);
    if (rc <= 0) {
        return rc;
    }

    author = 0;
    rc = chat_op_integer(ctx, "author", 1, 0, &author);
    if (rc < 0 || (rc == 0 && ctx->reply != NULL)) {
        return rc < 0 ? -1 : 0;
    }

    if (author > 0) {
        params[0] = chat_i64(abuf, author);
        res = chat_db_query(ctx->db, "SELECT 1 FROM authors WHERE id = $1",
                            1, params, NULL, NULL);
        if (res == NULL) {
            return -1;
        }
        rc = PQntuples(res);
        PQclear(res);
        if (rc == 0) {
            return chat_op_error(ctx, 404, "not_found", "no such author");
        }
    }

    rc = chat_catalog_category_filter(ctx, &subtree);
    if (rc <= 0) {
        return rc;
    }

    snprintf(sql, sizeof(sql),
        "SELECT b.id, (%s)::text, " CHAT_BOOK_SUMMARY_SQL "::text"
        " FROM books b WHERE b.deleted_at IS NULL"
        " AND ($1::bigint[] IS NULL OR EXISTS (SELECT 1 FROM book_categories"
        "  bc WHERE bc.book_id = b.id AND bc.category_id = ANY($1::bigint[])))"
        " AND ($2::bigint IS NULL OR EXISTS (SELECT 1 FROM book_authors ba"
        "  WHERE ba.book_id = b.id AND ba.author_id = $2::bigint))"
        " AND ($3::text IS NULL OR (%s, b.id) %s ($3::%s, $4::bigint))"
        " ORDER BY %s LIMIT $5",
        s->key, s->key, s->cmp, s->cast, s->order);

    params[0] = subtree;
    params[1] = author > 0 ? chat_i64(abuf, author) : NULL;
    params[2] = has_cursor ? cursor.key : NULL;
    params[3] = has_cursor ? chat_i64(cbuf, cursor.id) : NULL;
    params[4] = chat_i64(lbuf, limit + 1);

    res = chat_db_query(ctx->db, sql, 5, params, NULL, NULL);
    free(subtree);

    if (res == NULL) {
        return -1;
    }

    rc = chat_catalog_page(ctx, res, limit, 2, s->name, chat_browse_key);
    PQclear(res);

    return rc;
}


/* ------------------------------------------------------------------------
 * Search
 * --------------------------------------------------------------------- */

/* rows of search: tier, popularity, id, json; the key is "tier:pop" */
static void
chat_search_key(PGresult *res, int row, char *buf, size_t size, int64_t *id)
{
    *id = strtoll(PQgetvalue(res, row, 2), NULL, 10);
    snprintf(buf, size, "%s:%s", PQgetvalue(res, row, 0),
             PQgetvalue(res, row, 1));
}


/* "true"/"1" or "false"/"0"; absent is false.  1, 0 after a 400, -1. */
static int
chat_catalog_flag(chat_op_ctx_t *ctx, const char *name, int *on)
{
    int           bad;
    char          msg[96];
    const char   *s;
    const cJSON  *item;

    *on = 0;

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, name);
    if (cJSON_IsBool(item)) {
        *on = cJSON_IsTrue(item);
        return 1;
    }

    s = chat_catalog_opt_string(ctx, name, &bad);
    if (bad) {
        return ctx->reply ? 0 : -1;
    }

    if (s == NULL || strcmp(s, "false") == 0 || strcmp(s, "0") == 0
        || *s == '\0')
    {
        return 1;
    }

    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *on = 1;
        return 1;
    }

    snprintf(msg, sizeof(msg), "%s must be true or false", name);
    return chat_op_invalid(ctx, msg) == 0 ? 0 : -1;
}


int
chat_op_catalog_search(chat_op_ctx_t *ctx)
{
    int                     rc, in_stock, has_cursor, tier;
    char                   *subtree, *tsq, *colon;
    char                    minb[24], maxb[24], lbuf[24], pbuf[24], ibuf[24];
    char                    isbn[CHAT_ISBN13_LEN + 1];
    size_t                  qlen;
    int64_t                 limit, min_price, max_price;
    PGresult               *res;
    const char             *q, *params[11];
    chat_catalog_cursor_t   cursor;

    q = chat_op_string(ctx, "q");
    if (q == NULL) {
        return ctx->reply ? 0 : -1;
    }

    qlen = strlen(q);
    if (qlen == 0 || qlen > CHAT_SEARCH_Q_MAX) {
        return chat_op_invalid(ctx, "q must be 1 to 200 bytes");
    }

    rc = chat_catalog_limit(ctx, &limit);
    if (rc <= 0) {
        return rc;
    }

    min_price = -1;
    max_price = -1;

    rc = chat_op_integer(ctx, "min_price", 0, 0, &min_price);
    if (rc < 0 || (rc == 0 && ctx->reply != NULL)) {
        return rc < 0 ? -1 : 0;
    }

    rc = chat_op_integer(ctx, "max_price", 0, 0, &max_price);
    if (rc < 0 || (rc == 0 && ctx->reply != NULL)) {
        return rc < 0 ? -1 : 0;
    }

    rc = chat_catalog_flag(ctx, "in_stock", &in_stock);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_catalog_cursor(ctx, "search", &cursor, &has_cursor);
    if (rc <= 0) {
        return rc;
    }

    tier = 2;
    if (has_cursor) {
        tier = (int) strtol(cursor.key, &colon, 10);
        if ((tier != 1 && tier != 2) || *colon != ':'
            || colon[1] < '0' || colon[1] > '9')
        {
            return chat_op_error(ctx, 400, "invalid_cursor",
                                 "cursor is not one this list gave out");
        }
    }

    rc = chat_catalog_category_filter(ctx, &subtree);
    if (rc <= 0) {
        return rc;
    }

    params[1] = subtree;
    params[2] = min_price >= 0 ? chat_i64(minb, min_price) : NULL;
    params[3] = max_price >= 0 ? chat_i64(maxb, max_price) : NULL;
    params[4] = in_stock ? "true" : "false";

    /* an ISBN is an exact lookup, and a malformed one matches nothing */
    if (chat_isbn_shaped(q, qlen)) {
        if (chat_isbn_normalize(q, qlen, isbn) != 0 || has_cursor) {
            res = NULL;
            params[0] = "";
            rc = 0;

        } else {
            params[0] = isbn;
            res = chat_db_query_prepared(ctx->db, chat_isbn_sql, 5, params,
                                         NULL, NULL);
            rc = res ? 0 : -1;
        }

        free(subtree);

        if (rc != 0) {
            return -1;
        }

        if (res == NULL) {
            return chat_catalog_empty_page(ctx);
        }

        rc = chat_catalog_page(ctx, res, limit, 3, "search", chat_search_key);
        PQclear(res);
        return rc;
    }

    params[0] = q;
    res = chat_db_query_prepared(ctx->db, "SELECT catalog_query($1)::text",
                                 1, params, NULL, NULL);
    if (res == NULL) {
        free(subtree);
        return -1;
    }

    tsq = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
    PQclear(res);

    if (tsq == NULL) {
        /* nothing searchable in q (only punctuation) */
        free(subtree);
        return chat_catalog_empty_page(ctx);
    }

    params[0] = tsq;
    params[5] = tier == 2 ? "true" : "false";
    params[6] = NULL;
    params[7] = NULL;
    params[8] = chat_i64(lbuf, limit + 1);
    params[9] = NULL;
    params[10] = NULL;

    if (has_cursor) {
        snprintf(pbuf, sizeof(pbuf), "%s", colon + 1);
        chat_i64(ibuf, cursor.id);
        params[tier == 2 ? 6 : 9] = pbuf;
        params[tier == 2 ? 7 : 10] = ibuf;
    }

    /* the planner must see the words: not a prepared (generic) plan */
    res = chat_db_query(ctx->db, chat_search_sql, 11, params, NULL, NULL);

    free(tsq);
    free(subtree);

    if (res == NULL) {
        return -1;
    }

    rc = chat_catalog_page(ctx, res, limit, 3, "search", chat_search_key);
    PQclear(res);

    return rc;
}


/* ------------------------------------------------------------------------
 * Book details
 * --------------------------------------------------------------------- */

int
chat_op_catalog_book(chat_op_ctx_t *ctx)
{
    int      rc;
    cJSON   *book;
    int64_t  id;

    rc = chat_op_integer(ctx, "book_id", 1, 1, &id);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_catalog_book_json(ctx, id, &book);
    if (rc < 0) {
        return -1;
    }

    if (rc == 0) {
        return chat_op_error(ctx, 404, "not_found", "no such book");
    }

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL) {
        cJSON_Delete(book);
        return -1;
    }

    cJSON_AddItemToObject(ctx->reply, "book", book);
    ctx->status = 200;

    return 0;
}
