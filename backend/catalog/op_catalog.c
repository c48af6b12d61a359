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
 * known neighbour).  Results come in two tiers, title or author matches
 * first, then the rest, each a statement of its own (the second only when
 * the first has no full page left); within a tier the more popular
 * first.  How a tier is planned is decided from the data, not from the
 * planner's frequency estimates (chat_search_tier): a bounded walk of
 * the popularity index first, the GIN index when that finds too few.
 * The cursor is (tier, popularity, id).
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
    " AND ($2::bigint[] IS NULL OR b.category_ids && $2::bigint[])"         \
    " AND ($3::bigint IS NULL OR b.price_cents >= $3::bigint)"              \
    " AND ($4::bigint IS NULL OR b.price_cents <= $4::bigint)"              \
    " AND (NOT $5::boolean OR EXISTS (SELECT 1 FROM stock s"                \
    "  WHERE s.book_id = b.id AND s.on_hand > s.reserved))"

/*
 * One tier of a search: $6 is the tier's document column test, so the
 * statement text differs per tier (see chat_op_catalog_search).  $7/$8 is
 * the cursor within the tier, $9 the row limit.
 */
#define CHAT_SEARCH_TIER_SQL(tier, match)                                   \
    "SELECT " tier ", b.popularity, b.id, " CHAT_BOOK_SUMMARY_SQL "::text"  \
    " FROM books b WHERE " match                                            \
    CHAT_SEARCH_FILTERS_SQL                                                 \
    " AND ($6::int IS NULL OR (b.popularity, b.id) < ($6::int, $7::bigint))"\
    " ORDER BY b.popularity + 0 DESC, b.id DESC LIMIT $8"

#define CHAT_SEARCH_TITLE_MATCH  "b.title_doc @@ $1::tsquery"
#define CHAT_SEARCH_REST_MATCH                                              \
    "b.search_doc @@ $1::tsquery AND NOT b.title_doc @@ $1::tsquery"

/*
 * The same tier over only the next CHAT_SEARCH_WALK books in popularity
 * order from the cursor on: the planner has no choice but to walk the
 * popularity index for them.
 */
#define CHAT_SEARCH_WALK  5000
#define CHAT_SEARCH_WALK_SQL(tier, match)                                   \
    "SELECT " tier ", b.popularity, b.id, " CHAT_BOOK_SUMMARY_SQL "::text"  \
    " FROM (SELECT * FROM books b WHERE b.deleted_at IS NULL"               \
    "  AND ($6::int IS NULL OR (b.popularity, b.id) < ($6::int, $7::bigint))"\
    "  ORDER BY b.popularity DESC, b.id DESC LIMIT 5000) b"                 \
    " WHERE " match CHAT_SEARCH_FILTERS_SQL                                 \
    " ORDER BY b.popularity DESC, b.id DESC LIMIT $8"

/* tier 2: every word in the title or an author's name */
static const char  chat_search_title_sql[] =
    CHAT_SEARCH_TIER_SQL("2", CHAT_SEARCH_TITLE_MATCH);
static const char  chat_search_title_walk_sql[] =
    CHAT_SEARCH_WALK_SQL("2", CHAT_SEARCH_TITLE_MATCH);

/* tier 1: every word somewhere, but not all of them in title and authors */
static const char  chat_search_rest_sql[] =
    CHAT_SEARCH_TIER_SQL("1", CHAT_SEARCH_REST_MATCH);
static const char  chat_search_rest_walk_sql[] =
    CHAT_SEARCH_WALK_SQL("1", CHAT_SEARCH_REST_MATCH);

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
 * Answers 200 {books: [...], next_cursor} from the rows of res[0..nres)
 * taken in that order, rows of (key columns..., id, book json): the first
 * limit rows are the page; one more means a next page, whose cursor is
 * made from the last row of the page by key.
 */
static int
chat_catalog_page(chat_op_ctx_t *ctx, PGresult **res, int nres,
    int64_t limit, int json_col, const char *order,
    void (*key)(PGresult *res, int row, char *buf, size_t size, int64_t *id))
{
    int        i, n, take, last_row;
    char       kbuf[CHAT_CURSOR_KEY_MAX + 1];
    char       cursor[CHAT_CURSOR_TEXT_MAX + 1];
    cJSON     *reply, *books;
    int64_t    id, room;
    PGresult  *last;

    reply = cJSON_CreateObject();
    books = cJSON_AddArrayToObject(reply, "books");
    if (books == NULL) {
        cJSON_Delete(reply);
        return -1;
    }

    n = 0;
    room = limit;
    last = NULL;
    last_row = 0;

    for (i = 0; i < nres; i++) {
        if (res[i] == NULL) {
            continue;
        }

        n += PQntuples(res[i]);
        take = PQntuples(res[i]) < room ? PQntuples(res[i]) : (int) room;

        if (chat_catalog_rows_json(res[i], json_col, take, books) != 0) {
            cJSON_Delete(reply);
            return -1;
        }

        if (take > 0) {
            last = res[i];
            last_row = take - 1;
        }
        room -= take;
    }

    if (n > limit && last != NULL) {
        key(last, last_row, kbuf, sizeof(kbuf), &id);

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


/*
 * The worker's session plans every statement generically
 * (plan_cache_mode = force_generic_plan, see db.c), which suits the chat's
 * hot statements but blinds the planner here: a generic plan cannot see
 * how many books a category holds, and that decides between walking the
 * sort order's index and collecting the category's books first, nor
 * what a search's filters keep.  So browse and search switch to custom
 * plans for their statements and back (search still forces the choice
 * that matters itself, chat_search_tier).  A rollback of the command's
 * savepoint undoes the SET as well.  0, or -1.
 */
static int
chat_catalog_custom_plans(chat_op_ctx_t *ctx, int on)
{
    return chat_db_exec(ctx->db, on
                        ? "SET plan_cache_mode = force_custom_plan"
                        : "SET plan_cache_mode = force_generic_plan");
}


/*
 * One tier of a search, with its plan chosen from the data rather than
 * from the planner's guess.  The choice is between walking the popularity
 * index until a page of matches turned up (right for a word in thousands
 * of books: a page costs a few hundred rows) and starting from the GIN
 * index or a filter (right for rare words or narrow filters).  The
 * planner decides by its estimate of the word's frequency, which can be
 * far off: for a word it has no statistics on, or for "in the text but
 * not in the title" (it multiplies two frequencies as if they were
 * independent), it may expect thousands of matches where there are none
 * and walk the whole table for them, seconds at a million books.  So:
 * walk the next CHAT_SEARCH_WALK books by popularity (bounded: a few
 * milliseconds); if that gave a full page, it is the page.  Otherwise
 * matches are rare among the popular books (fewer than one in ~250), and
 * the tier runs again ordered by "popularity + 0", an order no index
 * gives, so the planner cannot walk for it and picks between the GIN
 * index and the filters (a category's books) by cost.  The result (limit
 * in params[7]), or NULL.
 */
static PGresult *
chat_search_tier(chat_op_ctx_t *ctx, const char *walk_sql, const char *sql,
    const char **params)
{
    PGresult  *res;

    res = chat_db_query(ctx->db, walk_sql, 8, params, NULL, NULL);
    if (res == NULL) {
        return NULL;
    }

    if (PQntuples(res) >= atoi(params[7])) {
        return res;
    }

    PQclear(res);

    return chat_db_query(ctx->db, sql, 8, params, NULL, NULL);
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
        " AND ($1::bigint[] IS NULL OR b.category_ids && $1::bigint[])"
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

    res = NULL;
    if (chat_catalog_custom_plans(ctx, 1) == 0) {
        res = chat_db_query(ctx->db, sql, 5, params, NULL, NULL);
        if (chat_catalog_custom_plans(ctx, 0) != 0) {
            PQclear(res);
            res = NULL;
        }
    }
    free(subtree);

    if (res == NULL) {
        return -1;
    }

    rc = chat_catalog_page(ctx, &res, 1, limit, 2, s->name, chat_browse_key);
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
    int64_t                 room;
    PGresult               *tiers[2];
    char                    minb[24], maxb[24], lbuf[24], pbuf[24], ibuf[24];
    char                    isbn[CHAT_ISBN13_LEN + 1];
    size_t                  qlen;
    int64_t                 limit, min_price, max_price;
    PGresult               *res;
    const char             *q, *params[8];
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

        rc = chat_catalog_page(ctx, &res, 1, limit, 3, "search",
                               chat_search_key);
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

    /*
     * The title tier first; the rest only when the title tier has no
     * full page left.  Two statements, because as one (UNION ALL) the
     * planner would plan both, and its estimate for "in the text but
     * not in the title" multiplies two frequencies as if they were
     * independent: for a word in a quarter of the titles it expects
     * 190,000 rows where there are none, walks the popularity index
     * for them and reads the whole table.  Each statement gets the real
     * words as constants (not a prepared, generic plan), so the planner
     * sees how common they are.
     */
    params[0] = tsq;
    params[7] = chat_i64(lbuf, limit + 1);

    tiers[0] = NULL;
    tiers[1] = NULL;
    rc = -1;

    /* custom plans (see chat_catalog_custom_plans): measured 5-15 ms a
     * page against 45-70 ms with the session's generic ones */
    if (chat_catalog_custom_plans(ctx, 1) != 0) {
        goto done;
    }

    if (tier == 2) {
        params[5] = has_cursor ? pbuf : NULL;
        params[6] = has_cursor ? chat_i64(ibuf, cursor.id) : NULL;
        if (has_cursor) {
            snprintf(pbuf, sizeof(pbuf), "%s", colon + 1);
        }

        tiers[0] = chat_search_tier(ctx, chat_search_title_walk_sql,
                                    chat_search_title_sql, params);
        if (tiers[0] == NULL) {
            goto done;
        }

        /* the rest tier starts from its beginning */
        has_cursor = 0;
    }

    if (tiers[0] == NULL || PQntuples(tiers[0]) <= limit) {
        room = limit + 1 - (tiers[0] ? PQntuples(tiers[0]) : 0);
        params[7] = chat_i64(lbuf, room);

        if (has_cursor) {
            snprintf(pbuf, sizeof(pbuf), "%s", colon + 1);
        }
        params[5] = has_cursor ? pbuf : NULL;
        params[6] = has_cursor ? chat_i64(ibuf, cursor.id) : NULL;

        tiers[1] = chat_search_tier(ctx, chat_search_rest_walk_sql,
                                    chat_search_rest_sql, params);
        if (tiers[1] == NULL) {
            goto done;
        }
    }

    rc = chat_catalog_page(ctx, tiers, 2, limit, 3, "search",
                           chat_search_key);

done:

    /* also after a failure: the session must not keep search's plans */
    if (chat_catalog_custom_plans(ctx, 0) != 0) {
        rc = -1;
    }

    PQclear(tiers[0]);
    PQclear(tiers[1]);
    free(tsq);
    free(subtree);

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
