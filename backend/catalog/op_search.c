/*
 * op_search.c: searching the catalog and suggesting as you type.  Anyone
 * may (no user needed); both run in the reads lane.
 *
 *   catalog.search   {q, category?, min_price?, max_price?, in_stock?,
 *                     cursor?, limit?}      -> {books, next_cursor, facets}
 *   catalog.suggest  {q}                    -> {suggestions}
 *
 * Each is one statement, one round trip: the work is in the SQL functions
 * catalog_search() and catalog_suggest() of sql/008_search.sql (ranked
 * postings, the walk of the rarest word, the facets).  This file checks
 * the input, shapes the answer and keeps the cursor.
 *
 * A query shaped like an ISBN (10 or 13 digits, hyphens and spaces
 * ignored) is an exact lookup, and a malformed one matches nothing.
 * Anything else is words: every word must match, the last one also as a
 * prefix, an unknown word is replaced by the nearest known one.  Results
 * come in two tiers, title or author matches first, then the rest, the
 * more popular first within a tier; the cursor is (tier, popularity, id).
 *
 * The statement plans well as the worker session's generic plan (the
 * function walks indexes by construction and plans its rare GIN fallback
 * itself), so unlike browse it needs no SET around it.
 *
 * What it does not do: cache (the edge caches these answers in Redis,
 * ngx_chat_cache.c), or show deleted books.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "catalog_cursor.h"
#include "isbn.h"
#include "log.h"
#include "ops.h"


#define CHAT_SEARCH_Q_MAX   200
#define CHAT_SUGGEST_Q_MAX  100
#define CHAT_SUGGEST_LIMIT  5


/*
 * catalog_search()'s rows with each book's list item: the header first
 * (tier -1 with the facets, or -2: no such category), then the page.
 * $10 is the page's size plus one: the last row only says that a next
 * page exists (chat_catalog_page), so it gets no list item (ord counts
 * the header).
 */
static const char  chat_search_sql[] =
    "SELECT s.tier, s.popularity, s.id,"
    " CASE WHEN s.id IS NULL THEN s.facets WHEN s.ord > $10 THEN NULL ELSE "
    CHAT_BOOK_SUMMARY_SQL("s.id") " END"
    " FROM catalog_search($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    "  WITH ORDINALITY AS s (tier, popularity, id, facets, ord)"
    " ORDER BY s.ord";

static const char  chat_suggest_sql[] = "SELECT catalog_suggest($1, $2)";


/* rows of search: tier, popularity, id, json; the key is "tier:pop" */
static void
chat_search_key(PGresult *res, int row, char *buf, size_t size, int64_t *id)
{
    *id = strtoll(PQgetvalue(res, row, 2), NULL, 10);
    snprintf(buf, size, "%s:%s", PQgetvalue(res, row, 0),
             PQgetvalue(res, row, 1));
}


/*
 * The cursor's tier and popularity from its key "tier:pop", as strings
 * for the statement.  0, or -1 when the key is not one search gave out.
 */
static int
chat_search_cursor_key(const char *key, char *tier, char *pop, size_t size)
{
    long   t, p;
    char  *end;

    t = strtol(key, &end, 10);
    if ((t != 1 && t != 2) || *end != ':' || end[1] < '0' || end[1] > '9') {
        return -1;
    }

    p = strtol(end + 1, &end, 10);
    if (*end != '\0' || p > 2147483647L) {
        return -1;
    }

    snprintf(tier, size, "%ld", t);
    snprintf(pop, size, "%ld", p);

    return 0;
}


/*
 * The body's "q", 1 to max bytes: q, or NULL after a 400 (ctx->reply set)
 * or when memory ran out.
 */
static const char *
chat_search_q(chat_op_ctx_t *ctx, size_t max)
{
    char         msg[48];
    size_t       len;
    const char  *q;

    q = chat_op_string(ctx, "q");
    if (q == NULL) {
        return NULL;
    }

    len = strlen(q);
    if (len == 0 || len > max) {
        snprintf(msg, sizeof(msg), "q must be 1 to %zu bytes", max);
        (void) chat_op_invalid(ctx, msg);
        return NULL;
    }

    return q;
}


int
chat_op_catalog_search(chat_op_ctx_t *ctx)
{
    int                     rc, in_stock, has_cursor;
    char                    catb[24], minb[24], maxb[24], lbuf[24];
    char                    tierb[24], popb[24], idb[24];
    char                    isbn[CHAT_ISBN13_LEN + 1];
    cJSON                  *facets;
    size_t                  qlen;
    int64_t                 limit, category, min_price, max_price;
    PGresult               *res;
    const char             *q, *params[10];
    chat_catalog_cursor_t   cursor;

    q = chat_search_q(ctx, CHAT_SEARCH_Q_MAX);
    if (q == NULL) {
        return ctx->reply ? 0 : -1;
    }

    qlen = strlen(q);

    rc = chat_catalog_limit(ctx, &limit);
    if (rc <= 0) {
        return rc;
    }

    category = -1;
    min_price = -1;
    max_price = -1;

    rc = chat_op_integer(ctx, "category", 1, 0, &category);
    if (rc < 0 || (rc == 0 && ctx->reply != NULL)) {
        return rc < 0 ? -1 : 0;
    }

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

    if (has_cursor
        && chat_search_cursor_key(cursor.key, tierb, popb, sizeof(tierb))
           != 0)
    {
        return chat_op_error(ctx, 400, "invalid_cursor",
                             "cursor is not one this list gave out");
    }

    params[0] = q;
    params[1] = NULL;

    /* an ISBN is an exact lookup, and a malformed one matches nothing */
    if (chat_isbn_shaped(q, qlen)) {
        params[0] = NULL;
        params[1] = chat_isbn_normalize(q, qlen, isbn) == 0 ? isbn : "";
    }

    params[2] = category > 0 ? chat_i64(catb, category) : NULL;
    params[3] = min_price >= 0 ? chat_i64(minb, min_price) : NULL;
    params[4] = max_price >= 0 ? chat_i64(maxb, max_price) : NULL;
    params[5] = in_stock ? "true" : "false";
    params[6] = has_cursor ? tierb : NULL;
    params[7] = has_cursor ? popb : NULL;
    params[8] = has_cursor ? chat_i64(idb, cursor.id) : NULL;
    params[9] = chat_i64(lbuf, limit + 1);

    res = chat_db_query_prepared(ctx->db, chat_search_sql, 10, params, NULL,
                                 NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) < 1 || strcmp(PQgetvalue(res, 0, 0), "-1") != 0) {
        PQclear(res);
        return chat_op_error(ctx, 404, "not_found", "no such category");
    }

    facets = cJSON_Parse(PQgetvalue(res, 0, 3));
    if (facets == NULL) {
        PQclear(res);
        chat_log_error("catalog: the database sent facets cJSON cannot "
                       "read");
        return -1;
    }

    rc = chat_catalog_page(ctx, res, 1, limit, 3, "search", chat_search_key);
    PQclear(res);

    if (rc != 0) {
        cJSON_Delete(facets);
        return -1;
    }

    cJSON_AddItemToObject(ctx->reply, "facets", facets);

    return 0;
}


int
chat_op_catalog_suggest(chat_op_ctx_t *ctx)
{
    char         lbuf[24];
    cJSON       *reply;
    PGresult    *res;
    const char  *q, *params[2];

    q = chat_search_q(ctx, CHAT_SUGGEST_Q_MAX);
    if (q == NULL) {
        return ctx->reply ? 0 : -1;
    }

    params[0] = q;
    params[1] = chat_i64(lbuf, CHAT_SUGGEST_LIMIT);

    res = chat_db_query_prepared(ctx->db, chat_suggest_sql, 2, params, NULL,
                                 NULL);
    if (res == NULL) {
        return -1;
    }

    reply = cJSON_Parse(PQgetvalue(res, 0, 0));
    PQclear(res);

    if (reply == NULL) {
        chat_log_error("catalog: the database sent suggestions cJSON cannot "
                       "read");
        return -1;
    }

    ctx->status = 200;
    ctx->reply = reply;

    return 0;
}
