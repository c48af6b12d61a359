/*
 * op_catalog.c: reading the catalog.  Anyone may (no user needed).
 *
 *   catalog.categories  {}                                -> {categories}
 *   catalog.author      {author_id}                       -> {author}
 *   catalog.browse      {category?, author?, sort?, cursor?, limit?}
 *                                                         -> {books, next_cursor}
 *   catalog.book        {book_id}                         -> {book}
 *
 * Browse walks one of four keyset orders (title, price ascending; rating,
 * newest descending), each with its own index, from the cursor's (key,
 * id) on: no OFFSET, and a page never shifts when books are added.  A
 * category includes its subcategories (catalog_subtree); an unknown
 * category or author is 404.
 *
 * Search and suggestions are op_search.c.
 *
 * What it does not do: cache (the edge caches these answers in Redis,
 * ngx_chat_cache.c), or show deleted books (every read filters them).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "catalog_cursor.h"
#include "log.h"
#include "ops.h"


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


/*
 * The worker's session plans every statement generically
 * (plan_cache_mode = force_generic_plan, see db.c), which suits the chat's
 * hot statements but blinds the planner here: a generic plan cannot see
 * how many books a category holds, and that decides between walking the
 * sort order's index and collecting the category's books first.  So browse switches to custom plans for its
 * statement and back (search needs no switch: its SQL function chooses
 * its walks itself, op_search.c).  A rollback of the command's savepoint
 * undoes the SET as well; behind a pooler there is no SET to make
 * (db.c).  0, or -1.
 */
static int
chat_catalog_custom_plans(chat_op_ctx_t *ctx, int on)
{
    return chat_db_session_set(ctx->db, on
                        ? "SET plan_cache_mode = force_custom_plan"
                        : "SET plan_cache_mode = force_generic_plan");
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
        "SELECT b.id, (%s)::text, " CHAT_BOOK_SUMMARY_SQL("b.id")
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

    rc = chat_catalog_page(ctx, res, 0, limit, 2, s->name, chat_browse_key);
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
