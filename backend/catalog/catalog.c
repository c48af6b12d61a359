/*
 * catalog.c: the shapes of catalog answers, shared by the catalog
 * operations (op_catalog.c, op_review.c, op_admin_catalog.c).
 *
 * Books leave PostgreSQL already as JSON: one round trip brings a page
 * of books with their ordered authors, and the shape lives in one SQL
 * fragment (CHAT_BOOK_SUMMARY_SQL: the list item kept ready-made in
 * book_list_items, with the stock appended) instead of being
 * re-assembled field by field in C.  The C side parses that text into
 * cJSON and adds what depends on configuration (stock_status) or on
 * another query (the first page of reviews).
 *
 * Stock status (on every book, in lists too) sums on_hand - reserved over
 * every warehouse: "out_of_stock"
 * at 0, "low_stock" under the threshold CHAT_LOW_STOCK (environment, read
 * once; default 5), else "in_stock".
 *
 * What it does not do: decide who may see what (the ops do), or cache
 * (the edge does, ngx_chat_cache.c).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "chat_utf8.h"
#include "catalog_cursor.h"
#include "log.h"


#define CHAT_LOW_STOCK_DEFAULT  5


static const char  chat_book_detail_sql[] =
    "SELECT " CHAT_BOOK_SUMMARY_SQL("b.id") ","
    " json_build_object('description', b.description,"
    "  'keywords', to_json(b.keywords), 'language', b.language,"
    "  'pages', b.pages, 'publisher', b.publisher,"
    "  'categories', coalesce((SELECT json_agg(json_build_object("
    "   'id', c.id, 'name', c.name, 'slug', c.slug, 'parent_id', c.parent_id)"
    "   ORDER BY c.id) FROM book_categories bc"
    "   JOIN categories c ON c.id = bc.category_id"
    "   WHERE bc.book_id = b.id), '[]'::json),"
    "  'created_at', b.created_at, 'updated_at', b.updated_at)::text"
    " FROM books b WHERE b.id = $1 AND b.deleted_at IS NULL";

static const char  chat_reviews_sql[] =
    "SELECT r.id, json_build_object('id', r.id, 'book_id', r.book_id,"
    " 'user', json_build_object('id', u.id, 'display_name', u.display_name),"
    " 'rating', r.rating, 'text', r.text, 'created_at', r.created_at)::text"
    " FROM reviews r JOIN users u ON u.id = r.user_id"
    " WHERE r.book_id = $1 AND ($2::bigint = 0 OR r.id < $2::bigint)"
    " ORDER BY r.id DESC LIMIT $3";


int
chat_catalog_require_admin(chat_op_ctx_t *ctx)
{
    if (ctx->cmd->uid > 0 && ctx->cmd->role_len == 5
        && memcmp(ctx->cmd->role, "admin", 5) == 0)
    {
        return 1;
    }

    if (ctx->cmd->uid <= 0) {
        return chat_op_error(ctx, 401, "unauthorized",
                             "this operation needs a signed-in user");
    }

    return chat_op_error(ctx, 403, "forbidden", "this needs the admin role");
}


int
chat_catalog_limit(chat_op_ctx_t *ctx, int64_t *limit)
{
    int  rc;

    *limit = CHAT_CATALOG_LIMIT_DEFAULT;

    rc = chat_op_integer(ctx, "limit", 1, 0, limit);
    if (rc < 0 || (rc == 0 && ctx->reply != NULL)) {
        return rc < 0 ? -1 : 0;
    }

    if (*limit > CHAT_CATALOG_LIMIT_MAX) {
        return chat_op_invalid(ctx, "limit must be at most 100") == 0
               ? 0 : -1;
    }

    return 1;
}


const char *
chat_catalog_opt_string(chat_op_ctx_t *ctx, const char *name, int *bad)
{
    const cJSON  *item;

    *bad = 0;

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, name);
    if (item == NULL || cJSON_IsNull(item)) {
        return NULL;
    }

    if (cJSON_IsString(item) && item->valuestring != NULL) {
        return item->valuestring;
    }

    *bad = 1;
    return chat_op_string(ctx, name);   /* sets the 400, returns NULL */
}


int
chat_catalog_rows_json(PGresult *res, int first, int col, int max,
    cJSON *array)
{
    int     i;
    cJSON  *item;

    for (i = first; i < PQntuples(res) && i < first + max; i++) {
        item = cJSON_Parse(PQgetvalue(res, i, col));
        if (item == NULL) {
            chat_log_error("catalog: the database sent JSON cJSON cannot "
                           "read");
            return -1;
        }

        cJSON_AddItemToArray(array, item);

        if (chat_catalog_summary_stock(item) != 0) {
            return -1;
        }
    }

    return 0;
}


int
chat_catalog_summary_stock(cJSON *book)
{
    cJSON   *available;
    double   n;

    available = cJSON_DetachItemFromObjectCaseSensitive(book, "available");
    n = cJSON_IsNumber(available) ? available->valuedouble : 0;
    cJSON_Delete(available);

    return cJSON_AddStringToObject(book, "stock_status",
               chat_catalog_stock_status((int64_t) n)) != NULL ? 0 : -1;
}


int
chat_catalog_page(chat_op_ctx_t *ctx, PGresult *res, int first,
    int64_t limit, int json_col, const char *order,
    void (*key)(PGresult *res, int row, char *buf, size_t size, int64_t *id))
{
    int        n, take;
    char       kbuf[CHAT_CURSOR_KEY_MAX + 1];
    char       cursor[CHAT_CURSOR_TEXT_MAX + 1];
    cJSON     *reply, *books;
    int64_t    id;

    reply = cJSON_CreateObject();
    books = cJSON_AddArrayToObject(reply, "books");
    if (books == NULL) {
        cJSON_Delete(reply);
        return -1;
    }

    n = PQntuples(res) - first;
    take = n < limit ? n : (int) limit;

    if (chat_catalog_rows_json(res, first, json_col, take, books) != 0) {
        cJSON_Delete(reply);
        return -1;
    }

    if (n > limit && take > 0) {
        key(res, first + take - 1, kbuf, sizeof(kbuf), &id);

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


int
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


int
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


const char *
chat_catalog_stock_status(int64_t available)
{
    static long  low = -1;
    const char  *env;

    if (low < 0) {
        env = getenv("CHAT_LOW_STOCK");
        low = env ? strtol(env, NULL, 10) : CHAT_LOW_STOCK_DEFAULT;
        if (low < 1) {
            low = CHAT_LOW_STOCK_DEFAULT;
        }
    }

    if (available <= 0) {
        return "out_of_stock";
    }

    return available < low ? "low_stock" : "in_stock";
}


int
chat_catalog_reviews_page(chat_op_ctx_t *ctx, int64_t book_id, int64_t after,
    int64_t limit, cJSON *obj, const char *array_name,
    const char *cursor_name)
{
    int          n, rc;
    char         b[24], a[24], l[24];
    char         cursor[CHAT_CURSOR_TEXT_MAX + 1];
    cJSON       *array;
    PGresult    *res;
    const char  *params[3];

    params[0] = chat_i64(b, book_id);
    params[1] = chat_i64(a, after);
    params[2] = chat_i64(l, limit + 1);

    res = chat_db_query_prepared(ctx->db, chat_reviews_sql, 3, params, NULL,
                                 NULL);
    if (res == NULL) {
        return -1;
    }

    rc = -1;
    n = PQntuples(res);

    array = cJSON_AddArrayToObject(obj, array_name);
    if (array == NULL) {
        goto done;
    }

    if (chat_catalog_rows_json(res, 0, 1, n > limit ? (int) limit : n, array)
        != 0)
    {
        goto done;
    }

    /* one row more than asked for: there is a next page */
    if (n > limit) {
        if (chat_catalog_cursor_encode("reviews", "",
                strtoll(PQgetvalue(res, (int) limit - 1, 0), NULL, 10),
                cursor, sizeof(cursor)) != 0
            || cJSON_AddStringToObject(obj, cursor_name, cursor) == NULL)
        {
            goto done;
        }

    } else if (cJSON_AddNullToObject(obj, cursor_name) == NULL) {
        goto done;
    }

    rc = 0;

done:

    PQclear(res);
    return rc;
}


int
chat_catalog_book_json(chat_op_ctx_t *ctx, int64_t id, cJSON **out)
{
    char          idbuf[24];
    cJSON        *book, *more, *item;
    PGresult     *res;
    const char   *params[1];

    *out = NULL;
    params[0] = chat_i64(idbuf, id);

    res = chat_db_query_prepared(ctx->db, chat_book_detail_sql, 1, params,
                                 NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }

    book = cJSON_Parse(PQgetvalue(res, 0, 0));
    more = cJSON_Parse(PQgetvalue(res, 0, 1));

    if (book == NULL || more == NULL || chat_catalog_summary_stock(book) != 0)
    {
        PQclear(res);
        cJSON_Delete(book);
        cJSON_Delete(more);
        return -1;
    }

    PQclear(res);

    while (more->child != NULL) {
        item = cJSON_DetachItemViaPointer(more, more->child);
        cJSON_AddItemToObject(book, item->string, item);
    }
    cJSON_Delete(more);

    if (chat_catalog_reviews_page(ctx, id, 0, CHAT_CATALOG_REVIEWS_PAGE, book,
                                  "reviews", "reviews_next_cursor")
        != 0)
    {
        cJSON_Delete(book);
        return -1;
    }

    *out = book;
    return 1;
}


/* UTF-8 characters in s, or -1 when s is not valid UTF-8 or has a
 * control character */
long
chat_catalog_text_chars(const char *s)
{
    long    n;
    size_t  i, len;

    len = strlen(s);
    if (!chat_utf8_valid((const unsigned char *) s, len)) {
        return -1;
    }

    n = 0;
    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') {
            return -1;
        }
        n += ((unsigned char) s[i] & 0xc0) != 0x80;
    }

    return n;
}
