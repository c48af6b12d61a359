/*
 * op_admin_catalog.c: changing the catalog's books (role admin only);
 * warehouses and stock are op_admin_stock.c's.
 *
 *   admin.book.create       {isbn, title, price_cents, authors, ...} -> 201 {book}
 *   admin.book.update       {book_id, any book field}                -> 200 {book}
 *   admin.book.delete       {book_id}                                -> 200
 *
 * The edge lets only tokens with role admin through to these; every
 * handler checks the role again (chat_catalog_require_admin).
 *
 * Book fields: isbn (ISBN-10 or -13, hyphens allowed; stored as isbn13),
 * title (1..500 characters), subtitle, description (<= 20000), keywords
 * (<= 50 strings), language, pages (> 0), published_on (YYYY-MM-DD),
 * publisher, price_cents (>= 0), currency (ISO 4217, default USD), format
 * (hardcover|paperback|ebook|audiobook), authors (1..20 author ids or
 * names in order; a name not yet known becomes a new author),
 * category_ids (existing categories).  Every field is checked before
 * anything is written, and a 4xx rolls the command's savepoint back
 * anyway, so bad input changes nothing.  The checked fields travel to
 * PostgreSQL as one JSON document: one INSERT or UPDATE reads what is
 * there and leaves the rest alone.
 *
 * A deleted book keeps its row (orders point at it) and only gets
 * deleted_at; its ISBN is free again for a new book (unique only among
 * books not deleted, sql/011_store.sql).
 *
 * After the commit the worker bumps the touched cache generations before
 * it answers (catalog_cache.c), so a read that follows the reply never
 * sees the old book.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_event.h"
#include "catalog.h"
#include "chat_utf8.h"
#include "conv_input.h"
#include "isbn.h"
#include "log.h"
#include "ops.h"


#define CHAT_BOOK_AUTHORS_MAX   20
#define CHAT_BOOK_KEYWORDS_MAX  50
#define CHAT_BOOK_CATEGORIES_MAX 20


static const char  chat_book_insert_sql[] =
    "INSERT INTO books (isbn13, title, subtitle, description, keywords,"
    " language, pages, published_on, publisher, format, price_cents,"
    " currency)"
    " SELECT j->>'isbn13', j->>'title', j->>'subtitle',"
    "  coalesce(j->>'description', ''),"
    "  ARRAY(SELECT jsonb_array_elements_text(coalesce(j->'keywords',"
    "   '[]'::jsonb))),"
    "  coalesce(j->>'language', 'en'), (j->>'pages')::int,"
    "  (j->>'published_on')::date, j->>'publisher',"
    "  coalesce(j->>'format', 'paperback'), (j->>'price_cents')::bigint,"
    "  coalesce(j->>'currency', 'USD')"
    " FROM (SELECT $1::jsonb AS j) x"
    " ON CONFLICT (isbn13) WHERE deleted_at IS NULL DO NOTHING RETURNING id";

#define CHAT_SET(col, expr)                                                 \
    " " col " = CASE WHEN j ? '" col "' THEN " expr " ELSE b." col " END,"

static const char  chat_book_update_sql[] =
    "UPDATE books b SET"
    CHAT_SET("isbn13", "j->>'isbn13'")
    CHAT_SET("title", "j->>'title'")
    CHAT_SET("subtitle", "j->>'subtitle'")
    CHAT_SET("description", "coalesce(j->>'description', '')")
    CHAT_SET("keywords", "ARRAY(SELECT jsonb_array_elements_text("
                         "coalesce(j->'keywords', '[]'::jsonb)))")
    CHAT_SET("language", "coalesce(j->>'language', 'en')")
    CHAT_SET("pages", "(j->>'pages')::int")
    CHAT_SET("published_on", "(j->>'published_on')::date")
    CHAT_SET("publisher", "j->>'publisher'")
    CHAT_SET("format", "coalesce(j->>'format', 'paperback')")
    CHAT_SET("price_cents", "(j->>'price_cents')::bigint")
    CHAT_SET("currency", "coalesce(j->>'currency', 'USD')")
    " updated_at = now()"
    " FROM (SELECT $2::jsonb AS j) x"
    " WHERE b.id = $1 AND b.deleted_at IS NULL RETURNING b.id";


/* ------------------------------------------------------------------------
 * Input
 * --------------------------------------------------------------------- */

/*
 * Copies the text field name into fields when present (null is kept as
 * null when nullable).  1 ok or absent, 0 after a 400, -1.
 */
static int
chat_admin_text(chat_op_ctx_t *ctx, cJSON *fields, const char *name,
    long min, long max, int nullable)
{
    long          n;
    char          msg[128];
    const cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, name);
    if (item == NULL) {
        return 1;
    }

    if (cJSON_IsNull(item) && nullable) {
        return cJSON_AddNullToObject(fields, name) ? 1 : -1;
    }

    if (cJSON_IsString(item) && item->valuestring != NULL) {
        n = chat_catalog_text_chars(item->valuestring);
        if (n >= min && n <= max) {
            return cJSON_AddStringToObject(fields, name, item->valuestring)
                   ? 1 : -1;
        }
    }

    snprintf(msg, sizeof(msg), "%s must be text of %ld to %ld characters%s",
             name, min, max, nullable ? " (or null)" : "");

    return chat_op_invalid(ctx, msg) == 0 ? 0 : -1;
}


/* YYYY-MM-DD naming a real day between 1000 and 9999 */
static int
chat_admin_date_valid(const char *s)
{
    int         y, m, d, days;
    static int  mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-'
        || sscanf(s, "%4d-%2d-%2d", &y, &m, &d) != 3
        || y < 1000 || m < 1 || m > 12 || d < 1)
    {
        return 0;
    }

    days = mdays[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        days = 29;
    }

    return d <= days;
}


/*
 * Reads and checks the book fields of ctx->body into fields (a JSON
 * object of what to write).  On create, isbn, title, price_cents and
 * authors are required.  1 ok, 0 after a 400, -1.
 */
static int
chat_admin_book_fields(chat_op_ctx_t *ctx, cJSON *fields, int create)
{
    int           rc, i, n;
    char          isbn[CHAT_ISBN13_LEN + 1];
    cJSON        *array;
    int64_t       v;
    const char   *s;
    const cJSON  *item, *e;

    static const char  *formats[] = {
        "hardcover", "paperback", "ebook", "audiobook", NULL
    };

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "isbn");
    if (item == NULL) {
        item = cJSON_GetObjectItemCaseSensitive(ctx->body, "isbn13");
    }

    if (item != NULL || create) {
        if (!cJSON_IsString(item) || item->valuestring == NULL
            || chat_isbn_normalize(item->valuestring,
                                   strlen(item->valuestring), isbn) != 0)
        {
            return chat_op_error(ctx, 400, "invalid_isbn",
                                 "isbn must be an ISBN-10 or ISBN-13 with a "
                                 "correct check digit") == 0 ? 0 : -1;
        }

        if (cJSON_AddStringToObject(fields, "isbn13", isbn) == NULL) {
            return -1;
        }
    }

    if (create && cJSON_GetObjectItemCaseSensitive(ctx->body, "title")
                  == NULL)
    {
        return chat_op_invalid(ctx, "title is required") == 0 ? 0 : -1;
    }

    if ((rc = chat_admin_text(ctx, fields, "title", 1, 500, 0)) != 1
        || (rc = chat_admin_text(ctx, fields, "subtitle", 0, 500, 1)) != 1
        || (rc = chat_admin_text(ctx, fields, "description", 0, 20000, 1))
           != 1
        || (rc = chat_admin_text(ctx, fields, "publisher", 0, 300, 1)) != 1)
    {
        return rc;
    }

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "price_cents");
    if (item != NULL || create) {
        if (chat_json_integer(item, 0, CHAT_INT_MAX, &v) != 0) {
            return chat_op_invalid(ctx, "price_cents must be an integer "
                                        ">= 0") == 0 ? 0 : -1;
        }
        if (cJSON_AddNumberToObject(fields, "price_cents", (double) v)
            == NULL)
        {
            return -1;
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "pages");
    if (item != NULL && !cJSON_IsNull(item)) {
        if (chat_json_integer(item, 1, 100000, &v) != 0) {
            return chat_op_invalid(ctx, "pages must be an integer 1 to "
                                        "100000") == 0 ? 0 : -1;
        }
        if (cJSON_AddNumberToObject(fields, "pages", (double) v) == NULL) {
            return -1;
        }

    } else if (item != NULL && cJSON_AddNullToObject(fields, "pages") == NULL)
    {
        return -1;
    }

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "published_on");
    if (item != NULL && !cJSON_IsNull(item)) {
        if (!cJSON_IsString(item) || !chat_admin_date_valid(item->valuestring))
        {
            return chat_op_invalid(ctx, "published_on must be a date "
                                        "YYYY-MM-DD") == 0 ? 0 : -1;
        }
        if (cJSON_AddStringToObject(fields, "published_on",
                                    item->valuestring) == NULL)
        {
            return -1;
        }

    } else if (item != NULL
               && cJSON_AddNullToObject(fields, "published_on") == NULL)
    {
        return -1;
    }

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "currency");
    if (item != NULL) {
        s = cJSON_IsString(item) ? item->valuestring : NULL;
        if (s == NULL || strlen(s) != 3 || s[0] < 'A' || s[0] > 'Z'
            || s[1] < 'A' || s[1] > 'Z' || s[2] < 'A' || s[2] > 'Z')
        {
            return chat_op_invalid(ctx, "currency must be three capital "
                                        "letters (ISO 4217)") == 0 ? 0 : -1;
        }
        if (cJSON_AddStringToObject(fields, "currency", s) == NULL) {
            return -1;
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "language");
    if (item != NULL) {
        s = cJSON_IsString(item) ? item->valuestring : NULL;
        n = s ? (int) strlen(s) : 0;
        for (i = 0; i < n; i++) {
            if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
                  || s[i] == '-'))
            {
                break;
            }
        }
        if (s == NULL || n < 2 || n > 16 || i != n) {
            return chat_op_invalid(ctx, "language must be a language tag "
                                        "such as en or pt-BR") == 0 ? 0 : -1;
        }
        if (cJSON_AddStringToObject(fields, "language", s) == NULL) {
            return -1;
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "format");
    if (item != NULL) {
        s = cJSON_IsString(item) ? item->valuestring : NULL;
        for (i = 0; s && formats[i]; i++) {
            if (strcmp(s, formats[i]) == 0) {
                break;
            }
        }
        if (s == NULL || formats[i] == NULL) {
            return chat_op_invalid(ctx, "format must be hardcover, "
                                        "paperback, ebook or audiobook")
                   == 0 ? 0 : -1;
        }
        if (cJSON_AddStringToObject(fields, "format", s) == NULL) {
            return -1;
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "keywords");
    if (item != NULL) {
        n = cJSON_GetArraySize(item);
        if (!cJSON_IsArray(item) || n > CHAT_BOOK_KEYWORDS_MAX) {
            return chat_op_invalid(ctx, "keywords must be an array of at "
                                        "most 50 strings") == 0 ? 0 : -1;
        }

        array = cJSON_AddArrayToObject(fields, "keywords");
        if (array == NULL) {
            return -1;
        }

        cJSON_ArrayForEach(e, item) {
            if (!cJSON_IsString(e) || e->valuestring == NULL
                || chat_catalog_text_chars(e->valuestring) < 1
                || chat_catalog_text_chars(e->valuestring) > 64)
            {
                return chat_op_invalid(ctx, "each keyword must be text of 1 "
                                            "to 64 characters") == 0 ? 0 : -1;
            }
            cJSON_AddItemToArray(array, cJSON_CreateString(e->valuestring));
        }
    }

    /* authors and category_ids are checked here, applied after the row */
    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "authors");
    if (item != NULL || create) {
        n = cJSON_GetArraySize(item);
        if (!cJSON_IsArray(item) || n < 1 || n > CHAT_BOOK_AUTHORS_MAX) {
            return chat_op_invalid(ctx, "authors must be an array of 1 to "
                                        "20 author ids or names")
                   == 0 ? 0 : -1;
        }

        cJSON_ArrayForEach(e, item) {
            if (cJSON_IsString(e) && e->valuestring != NULL
                && chat_catalog_text_chars(e->valuestring) >= 1
                && chat_catalog_text_chars(e->valuestring) <= 300)
            {
                continue;
            }
            if (chat_json_integer(e, 1, CHAT_INT_MAX, &v) == 0) {
                continue;
            }
            return chat_op_invalid(ctx, "each author must be an author id "
                                        "or a name of 1 to 300 characters")
                   == 0 ? 0 : -1;
        }
    }

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "category_ids");
    if (item != NULL) {
        if (!cJSON_IsArray(item)
            || cJSON_GetArraySize(item) > CHAT_BOOK_CATEGORIES_MAX)
        {
            return chat_op_invalid(ctx, "category_ids must be an array of "
                                        "at most 20 category ids")
                   == 0 ? 0 : -1;
        }

        cJSON_ArrayForEach(e, item) {
            if (chat_json_integer(e, 1, CHAT_INT_MAX, &v) != 0) {
                return chat_op_invalid(ctx, "category_ids must hold "
                                            "category ids") == 0 ? 0 : -1;
            }
        }
    }

    return 1;
}


/* "{1,2,3}" of the integer array item (already checked), malloc'd */
static char *
chat_admin_id_array(const cJSON *item)
{
    char         *s, *p;
    int64_t       v;
    const cJSON  *e;

    s = malloc((size_t) cJSON_GetArraySize(item) * 24 + 3);
    if (s == NULL) {
        return NULL;
    }

    p = s;
    *p++ = '{';

    cJSON_ArrayForEach(e, item) {
        (void) chat_json_integer(e, 1, CHAT_INT_MAX, &v);
        p += sprintf(p, "%s%lld", p == s + 1 ? "" : ",", (long long) v);
    }

    *p++ = '}';
    *p = '\0';

    return s;
}


/*
 * Links the body's authors and categories (when given) to book id,
 * replacing the old links.  1, 0 after a 400 (unknown author or
 * category), -1.
 */
static int
chat_admin_book_links(chat_op_ctx_t *ctx, const char *id)
{
    int           rc, pos;
    char         *ids, posbuf[24], abuf[24];
    int64_t       v;
    PGresult     *res;
    const char   *params[3];
    const cJSON  *item, *e;

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "category_ids");
    if (item != NULL) {
        ids = chat_admin_id_array(item);
        if (ids == NULL) {
            return -1;
        }

        params[0] = ids;

        /* the count of known ids among the distinct ones asked for */
        res = chat_db_query(ctx->db,
            "SELECT (SELECT count(*) FROM categories"
            "        WHERE id = ANY($1::bigint[]))"
            "     = (SELECT count(DISTINCT x) FROM unnest($1::bigint[]) x)",
            1, params, NULL, NULL);
        if (res == NULL) {
            free(ids);
            return -1;
        }

        rc = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);

        if (!rc) {
            free(ids);
            return chat_op_error(ctx, 400, "unknown_category",
                                 "a category in category_ids does not "
                                 "exist") == 0 ? 0 : -1;
        }

        params[0] = id;
        params[1] = ids;

        res = chat_db_query(ctx->db,
            "DELETE FROM book_categories WHERE book_id = $1",
            1, params, NULL, NULL);
        if (res == NULL) {
            free(ids);
            return -1;
        }
        PQclear(res);

        res = chat_db_query(ctx->db,
            "INSERT INTO book_categories (book_id, category_id)"
            " SELECT DISTINCT $1::bigint, x FROM unnest($2::bigint[]) x",
            2, params, NULL, NULL);
        free(ids);
        if (res == NULL) {
            return -1;
        }
        PQclear(res);

        /* the row's copy, for search's filter (sql/003_catalog.sql) */
        res = chat_db_query(ctx->db,
            "UPDATE books SET category_ids = ARRAY(SELECT category_id"
            " FROM book_categories WHERE book_id = $1 ORDER BY 1)"
            " WHERE id = $1", 1, params, NULL, NULL);
        if (res == NULL) {
            return -1;
        }
        PQclear(res);
    }

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "authors");
    if (item == NULL) {
        return 1;
    }

    params[0] = id;
    res = chat_db_query(ctx->db, "DELETE FROM book_authors WHERE book_id = $1",
                        1, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }
    PQclear(res);

    pos = 0;

    cJSON_ArrayForEach(e, item) {
        if (cJSON_IsString(e)) {
            params[0] = e->valuestring;
            res = chat_db_query(ctx->db,
                "WITH f AS (SELECT id FROM authors WHERE name = $1"
                "           ORDER BY id LIMIT 1),"
                " i AS (INSERT INTO authors (name) SELECT $1"
                "       WHERE NOT EXISTS (SELECT 1 FROM f) RETURNING id)"
                " SELECT id FROM f UNION ALL SELECT id FROM i",
                1, params, NULL, NULL);

        } else {
            (void) chat_json_integer(e, 1, CHAT_INT_MAX, &v);
            params[0] = chat_i64(abuf, v);
            res = chat_db_query(ctx->db, "SELECT id FROM authors WHERE id = $1",
                                1, params, NULL, NULL);
        }

        if (res == NULL) {
            return -1;
        }

        if (PQntuples(res) == 0) {
            PQclear(res);
            return chat_op_error(ctx, 400, "unknown_author",
                                 "an author id in authors does not exist")
                   == 0 ? 0 : -1;
        }

        snprintf(abuf, sizeof(abuf), "%s", PQgetvalue(res, 0, 0));
        PQclear(res);

        params[0] = id;
        params[1] = abuf;
        params[2] = chat_i64(posbuf, pos++);

        res = chat_db_query(ctx->db,
            "INSERT INTO book_authors (book_id, author_id, position)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            3, params, NULL, NULL);
        if (res == NULL) {
            return -1;
        }
        PQclear(res);
    }

    return 1;
}


/* Refreshes the search documents of id and answers status {book}. */
static int
chat_admin_book_reply(chat_op_ctx_t *ctx, const char *id, int status)
{
    int         rc;
    cJSON      *book;
    PGresult   *res;
    const char *params[1];

    params[0] = id;
    res = chat_db_query(ctx->db, "SELECT catalog_book_refresh($1)", 1, params,
                        NULL, NULL);
    if (res == NULL) {
        return -1;
    }
    PQclear(res);

    rc = chat_catalog_book_json(ctx, strtoll(id, NULL, 10), &book);
    if (rc <= 0) {
        return -1;              /* it was just written: it must be there */
    }

    /* the other admins' open pages fetch it again */
    if (chat_admin_event(ctx->db, ctx->events, "book",
                         strtoll(id, NULL, 10), ctx->cmd->uid) != 0)
    {
        cJSON_Delete(book);
        return -1;
    }

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL) {
        cJSON_Delete(book);
        return -1;
    }

    cJSON_AddItemToObject(ctx->reply, "book", book);
    ctx->status = status;

    return 0;
}


/* ------------------------------------------------------------------------
 * Books
 * --------------------------------------------------------------------- */

int
chat_op_admin_book_create(chat_op_ctx_t *ctx)
{
    int          rc;
    char        *text, id[24];
    cJSON       *fields;
    PGresult    *res;
    const char  *params[1];

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    fields = cJSON_CreateObject();
    if (fields == NULL) {
        return -1;
    }

    rc = chat_admin_book_fields(ctx, fields, 1);
    if (rc <= 0) {
        cJSON_Delete(fields);
        return rc;
    }

    text = cJSON_PrintUnformatted(fields);
    cJSON_Delete(fields);
    if (text == NULL) {
        return -1;
    }

    params[0] = text;
    res = chat_db_query(ctx->db, chat_book_insert_sql, 1, params, NULL, NULL);
    cJSON_free(text);

    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_error(ctx, 409, "duplicate_isbn",
                             "a book with this ISBN exists");
    }

    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    rc = chat_admin_book_links(ctx, id);
    if (rc <= 0) {
        return rc;
    }

    return chat_admin_book_reply(ctx, id, 201);
}


int
chat_op_admin_book_update(chat_op_ctx_t *ctx)
{
    int           rc;
    char         *text, id[24];
    cJSON        *fields;
    int64_t       book_id;
    PGresult     *res;
    const char   *params[2];
    const cJSON  *isbn;

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_op_integer(ctx, "book_id", 1, 1, &book_id);
    if (rc <= 0) {
        return rc;
    }

    fields = cJSON_CreateObject();
    if (fields == NULL) {
        return -1;
    }

    rc = chat_admin_book_fields(ctx, fields, 0);
    if (rc <= 0) {
        cJSON_Delete(fields);
        return rc;
    }

    params[0] = chat_i64(id, book_id);

    /* a new ISBN must not be another book's */
    isbn = cJSON_GetObjectItemCaseSensitive(fields, "isbn13");
    if (isbn != NULL) {
        params[1] = isbn->valuestring;
        res = chat_db_query(ctx->db,
            "SELECT 1 FROM books WHERE isbn13 = $2 AND id <> $1"
            " AND deleted_at IS NULL",
            2, params, NULL, NULL);
        if (res == NULL) {
            cJSON_Delete(fields);
            return -1;
        }

        rc = PQntuples(res);
        PQclear(res);

        if (rc > 0) {
            cJSON_Delete(fields);
            return chat_op_error(ctx, 409, "duplicate_isbn",
                                 "another book has this ISBN");
        }
    }

    text = cJSON_PrintUnformatted(fields);
    cJSON_Delete(fields);
    if (text == NULL) {
        return -1;
    }

    params[1] = text;
    res = chat_db_query(ctx->db, chat_book_update_sql, 2, params, NULL, NULL);
    cJSON_free(text);

    if (res == NULL) {
        return -1;
    }

    rc = PQntuples(res);
    PQclear(res);

    if (rc == 0) {
        return chat_op_error(ctx, 404, "not_found", "no such book");
    }

    rc = chat_admin_book_links(ctx, id);
    if (rc <= 0) {
        return rc;
    }

    return chat_admin_book_reply(ctx, id, 200);
}


int
chat_op_admin_book_delete(chat_op_ctx_t *ctx)
{
    int          rc;
    char         id[24];
    int64_t      book_id;
    PGresult    *res;
    const char  *params[1];

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_op_integer(ctx, "book_id", 1, 1, &book_id);
    if (rc <= 0) {
        return rc;
    }

    params[0] = chat_i64(id, book_id);
    res = chat_db_query(ctx->db,
        "UPDATE books SET deleted_at = now(), updated_at = now()"
        " WHERE id = $1 AND deleted_at IS NULL RETURNING id",
        1, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = PQntuples(res);
    PQclear(res);

    if (rc == 0) {
        return chat_op_error(ctx, 404, "not_found", "no such book");
    }

    if (chat_admin_event(ctx->db, ctx->events, "book", book_id,
                         ctx->cmd->uid) != 0)
    {
        return -1;
    }

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL
        || cJSON_AddNumberToObject(ctx->reply, "book_id", (double) book_id)
           == NULL
        || cJSON_AddTrueToObject(ctx->reply, "deleted") == NULL)
    {
        return -1;
    }

    ctx->status = 200;
    return 0;
}
