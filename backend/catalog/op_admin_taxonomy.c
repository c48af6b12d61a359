/*
 * op_admin_taxonomy.c: the back office's categories and authors, and a
 * book's stock as the admin sees it (role admin only).
 *
 *   admin.category.create  {name, parent_id?}                 -> 201 {category}
 *   admin.category.update  {category_id, name?, parent_id?,   -> 200 {category}
 *                           merge_into?}
 *   admin.author.create    {name, bio?}                        -> 201 {author}
 *   admin.author.update    {author_id, name?, bio?,            -> 200 {author}
 *                           merge_into?}
 *   admin.inventory.book   {book_id}                           -> 200 {book_id,
 *                           stock: [{warehouse_id, code, name, region,
 *                           on_hand, reserved}], ledger: [the last 20]}
 *
 * The books' derived columns follow: a merged category's books get their
 * category_ids (search's filter) again, a renamed or merged author's
 * books their search documents (catalog_book_refresh, sql/003_catalog.sql).
 *
 * A category moves by parent_id (null: to the top) and never under itself
 * or its own subtree (400); two categories of one parent never share a
 * name (409).  Merging (merge_into: another id) moves the books and the
 * subcategories of this one to that one and removes this one; the answer
 * is the one kept.  Authors merge the same way (their books keep their
 * order of authors); a new author's exact name already taken is 409: the
 * admin merges duplicates instead of making more.
 *
 * The edge's cached pages: these ops touch the lists (the category tree
 * is one) and the pages of the books they changed, named in the reply's
 * touched_book_ids (catalog_cache.c; at most CHAT_TOUCHED_BOOKS_MAX of
 * them: past that, the other books' pages show the new name once their
 * cache entry expires, chat_cache_ttl).
 *
 * Every check comes before any write, and a 4xx rolls the command's
 * savepoint back anyway, so bad input changes nothing.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"


#define CHAT_CATEGORY_NAME_MAX  200
#define CHAT_AUTHOR_NAME_MAX    300
#define CHAT_AUTHOR_BIO_MAX     20000


/*
 * The optional text field name of 1..max characters: 1 with *out set, 0
 * when absent (*out NULL) or after a 400 (ctx->reply set), -1.
 */
static int
chat_taxonomy_text(chat_op_ctx_t *ctx, const char *name, long max,
    const char **out)
{
    int     bad;
    long    n;
    char    msg[96];

    *out = chat_catalog_opt_string(ctx, name, &bad);
    if (bad) {
        return ctx->reply != NULL ? 0 : -1;
    }

    if (*out == NULL) {
        return 0;
    }

    n = chat_catalog_text_chars(*out);
    if (n < 1 || n > max) {
        *out = NULL;
        snprintf(msg, sizeof(msg), "%s must be text of 1 to %ld characters",
                 name, max);
        return chat_op_invalid(ctx, msg);
    }

    return 1;
}


/*
 * Answers status {key: object} from the first column of res (JSON text)
 * and adds touched_book_ids from the second (a JSON array), if any.
 */
static int
chat_taxonomy_reply(chat_op_ctx_t *ctx, int status, const char *key,
    PGresult *res)
{
    cJSON  *obj, *books;

    obj = cJSON_Parse(PQgetvalue(res, 0, 0));
    books = PQnfields(res) > 1 ? cJSON_Parse(PQgetvalue(res, 0, 1)) : NULL;

    ctx->reply = cJSON_CreateObject();
    if (obj == NULL || ctx->reply == NULL
        || !cJSON_AddItemToObject(ctx->reply, key, obj))
    {
        cJSON_Delete(obj);
        cJSON_Delete(books);
        return -1;
    }

    if (books != NULL
        && !cJSON_AddItemToObject(ctx->reply, "touched_book_ids", books))
    {
        cJSON_Delete(books);
        return -1;
    }

    ctx->status = status;
    return 0;
}


/* the ids of the books of a category or author, capped, as JSON */
#define CHAT_TOUCHED_SQL(table, column, param)                               \
    "coalesce((SELECT json_agg(book_id) FROM (SELECT book_id FROM " table    \
    " WHERE " column " = " param " ORDER BY book_id LIMIT 128) t),"          \
    " '[]')::text"

#define CHAT_CATEGORY_JSON                                                   \
    "json_build_object('id', c.id, 'parent_id', c.parent_id,"                \
    " 'name', c.name, 'slug', c.slug)::text"


/* ------------------------------------------------------------------------
 * Categories
 * --------------------------------------------------------------------- */

/* 1 when category id exists, 0 when not, -1. */
static int
chat_category_exists(chat_op_ctx_t *ctx, int64_t id)
{
    int          found;
    char         buf[24];
    PGresult    *res;
    const char  *values[1];

    values[0] = chat_i64(buf, id);

    res = chat_db_query(ctx->db, "SELECT 1 FROM categories WHERE id = $1",
                        1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    found = PQntuples(res) > 0;
    PQclear(res);

    return found;
}


/* 1 when other is id itself or in id's subtree, 0 when not, -1. */
static int
chat_category_within(chat_op_ctx_t *ctx, int64_t id, int64_t other)
{
    int          within;
    char         a[24], b[24];
    PGresult    *res;
    const char  *values[2];

    values[0] = chat_i64(a, id);
    values[1] = chat_i64(b, other);

    res = chat_db_query(ctx->db,
              "WITH RECURSIVE t AS (SELECT $1::bigint AS id UNION"
              "  SELECT c.id FROM categories c JOIN t ON c.parent_id = t.id)"
              " SELECT EXISTS (SELECT 1 FROM t WHERE id = $2::bigint)",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    within = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);

    return within;
}


/* 409 when another category of parent (0: the top) has name. 1 when
 * free, 0 after the 409, -1. */
static int
chat_category_name_free(chat_op_ctx_t *ctx, const char *name, int64_t parent,
    int64_t self)
{
    int          taken;
    char         p[24], s[24];
    PGresult    *res;
    const char  *values[3];

    values[0] = name;
    values[1] = parent > 0 ? chat_i64(p, parent) : NULL;
    values[2] = chat_i64(s, self);

    res = chat_db_query(ctx->db,
              "SELECT 1 FROM categories WHERE lower(name) = lower($1)"
              "   AND parent_id IS NOT DISTINCT FROM $2::bigint"
              "   AND id <> $3::bigint",
              3, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    taken = PQntuples(res) > 0;
    PQclear(res);

    if (taken) {
        return chat_op_error(ctx, 409, "duplicate_category", "a category "
                             "of that name is already there");
    }

    return 1;
}


int
chat_op_admin_category_create(chat_op_ctx_t *ctx)
{
    int          rc;
    char         p[24];
    int64_t      parent;
    PGresult    *res;
    const char  *name, *values[2];

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_taxonomy_text(ctx, "name", CHAT_CATEGORY_NAME_MAX, &name);
    if (rc <= 0) {
        return rc < 0 ? -1 : ctx->reply != NULL
               ? 0 : chat_op_invalid(ctx, "name is required");
    }

    parent = 0;
    if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ctx->body,
                                                       "parent_id")))
    {
        rc = chat_op_integer(ctx, "parent_id", 1, 0, &parent);
        if (rc < 0 || ctx->reply != NULL) {
            return rc < 0 ? -1 : 0;
        }
    }

    if (parent > 0) {
        rc = chat_category_exists(ctx, parent);
        if (rc <= 0) {
            return rc < 0 ? -1 : chat_op_invalid(ctx, "parent_id: no such "
                                                 "category");
        }
    }

    rc = chat_category_name_free(ctx, name, parent, 0);
    if (rc <= 0) {
        return rc;
    }

    values[0] = name;
    values[1] = parent > 0 ? chat_i64(p, parent) : NULL;

    /* the slug from the name; the id appended when it is taken */
    res = chat_db_query(ctx->db,
              "WITH n AS (SELECT nextval('categories_id_seq') AS id,"
              "   coalesce(nullif(trim(both '-' from regexp_replace("
              "     lower($1), '[^a-z0-9]+', '-', 'g')), ''), 'category')"
              "   AS base) "
              "INSERT INTO categories (id, parent_id, name, slug)"
              " SELECT n.id, $2::bigint, $1, CASE WHEN EXISTS (SELECT 1"
              "        FROM categories WHERE slug = n.base)"
              "        THEN n.base || '-' || n.id ELSE n.base END FROM n"
              " RETURNING json_build_object('id', id, 'parent_id', parent_id,"
              "   'name', name, 'slug', slug)::text",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = chat_taxonomy_reply(ctx, 201, "category", res);
    PQclear(res);

    return rc;
}


int
chat_op_admin_category_update(chat_op_ctx_t *ctx)
{
    int           rc, move;
    char          idb[24], pb[24], mb[24];
    int64_t       id, parent, into;
    PGresult     *res;
    const char   *name, *values[3];
    const cJSON  *p;

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_op_integer(ctx, "category_id", 1, 1, &id);
    if (rc != 1) {
        return rc;
    }

    rc = chat_taxonomy_text(ctx, "name", CHAT_CATEGORY_NAME_MAX, &name);
    if (rc < 0 || ctx->reply != NULL) {
        return rc < 0 ? -1 : 0;
    }

    p = cJSON_GetObjectItemCaseSensitive(ctx->body, "parent_id");
    move = p != NULL;
    parent = 0;

    if (p != NULL && !cJSON_IsNull(p)) {
        rc = chat_op_integer(ctx, "parent_id", 1, 1, &parent);
        if (rc != 1) {
            return rc;
        }
    }

    into = 0;
    rc = chat_op_integer(ctx, "merge_into", 1, 0, &into);
    if (rc < 0 || ctx->reply != NULL) {
        return rc < 0 ? -1 : 0;
    }

    if (into > 0 && (name != NULL || move)) {
        return chat_op_invalid(ctx, "merge_into goes alone: merge, then "
                               "rename or move the category kept");
    }

    if (into == 0 && name == NULL && !move) {
        return chat_op_invalid(ctx, "nothing to change: give name, "
                               "parent_id or merge_into");
    }

    rc = chat_category_exists(ctx, id);
    if (rc <= 0) {
        return rc < 0 ? -1 : chat_op_error(ctx, 404, "not_found",
                                           "no such category");
    }

    values[0] = chat_i64(idb, id);

    if (into > 0) {
        rc = chat_category_exists(ctx, into);
        if (rc <= 0) {
            return rc < 0 ? -1 : chat_op_invalid(ctx, "merge_into: no such "
                                                 "category");
        }

        rc = chat_category_within(ctx, id, into);
        if (rc != 0) {
            return rc < 0 ? -1 : chat_op_invalid(ctx, "merge_into must not "
                                 "be the category itself or one under it");
        }

        values[1] = chat_i64(mb, into);

        res = chat_db_query(ctx->db,
                  "WITH b AS ("
                  "  SELECT " CHAT_TOUCHED_SQL("book_categories",
                                               "category_id", "$1")
                  "  AS ids"
                  "), m AS ("
                  "  INSERT INTO book_categories (book_id, category_id)"
                  "  SELECT book_id, $2::bigint FROM book_categories"
                  "   WHERE category_id = $1::bigint ON CONFLICT DO NOTHING"
                  "), d AS ("
                  "  DELETE FROM book_categories WHERE category_id = $1::bigint"
                  "), k AS ("
                  "  UPDATE categories SET parent_id = $2::bigint"
                  "   WHERE parent_id = $1::bigint"
                  ") "
                  "SELECT ids FROM b",
                  2, values, NULL, NULL);
        if (res == NULL) {
            return -1;
        }

        PQclear(res);

        /* the statement's parts saw one snapshot: the books' own copy of
         * their categories (search's filter, sql/003_catalog.sql) and the
         * category row go after */
        res = chat_db_query(ctx->db,
                  "UPDATE books b SET category_ids = ARRAY(SELECT category_id"
                  "  FROM book_categories WHERE book_id = b.id ORDER BY 1)"
                  " WHERE b.category_ids @> ARRAY[$1::bigint]"
                  "   AND $2::bigint IS NOT NULL",
                  2, values, NULL, NULL);
        if (res == NULL) {
            return -1;
        }

        PQclear(res);
        res = chat_db_query(ctx->db,
                  "WITH d AS (DELETE FROM categories WHERE id = $1) "
                  "SELECT " CHAT_CATEGORY_JSON ", "
                  CHAT_TOUCHED_SQL("book_categories", "category_id", "$2")
                  " FROM categories c WHERE c.id = $2",
                  2, values, NULL, NULL);
        if (res == NULL) {
            return -1;
        }

        rc = chat_taxonomy_reply(ctx, 200, "category", res);
        PQclear(res);

        return rc;
    }

    if (move && parent > 0) {
        rc = chat_category_exists(ctx, parent);
        if (rc <= 0) {
            return rc < 0 ? -1 : chat_op_invalid(ctx, "parent_id: no such "
                                                 "category");
        }

        rc = chat_category_within(ctx, id, parent);
        if (rc != 0) {
            return rc < 0 ? -1 : chat_op_invalid(ctx, "a category cannot "
                                 "move under itself or one of its own");
        }
    }

    values[1] = name;
    values[2] = parent > 0 ? chat_i64(pb, parent) : NULL;

    /* the name must be free where the category ends up */
    res = chat_db_query(ctx->db,
              move ? "SELECT coalesce($2, name), $3::bigint FROM categories"
                     " WHERE id = $1"
                   : "SELECT coalesce($2, name), parent_id FROM categories"
                     " WHERE id = $1 AND $3::bigint IS NULL",
              3, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = chat_category_name_free(ctx, PQgetvalue(res, 0, 0),
                                 PQgetisnull(res, 0, 1)
                                 ? 0 : strtoll(PQgetvalue(res, 0, 1), NULL,
                                               10), id);
    PQclear(res);

    if (rc <= 0) {
        return rc;
    }

    res = chat_db_query(ctx->db,
              move ? "UPDATE categories c SET name = coalesce($2, c.name),"
                     "       parent_id = $3::bigint WHERE c.id = $1"
                     " RETURNING " CHAT_CATEGORY_JSON ", "
                     CHAT_TOUCHED_SQL("book_categories", "category_id", "$1")
                   : "UPDATE categories c SET name = coalesce($2, c.name)"
                     " WHERE c.id = $1 AND $3::bigint IS NULL"
                     " RETURNING " CHAT_CATEGORY_JSON ", "
                     CHAT_TOUCHED_SQL("book_categories", "category_id", "$1"),
              3, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = chat_taxonomy_reply(ctx, 200, "category", res);
    PQclear(res);

    return rc;
}


/* ------------------------------------------------------------------------
 * Authors
 * --------------------------------------------------------------------- */

#define CHAT_AUTHOR_JSON                                                     \
    "json_build_object('id', a.id, 'name', a.name, 'bio', a.bio)::text"


/* 409 when another author has exactly name: 1 when free, 0, -1. */
static int
chat_author_name_free(chat_op_ctx_t *ctx, const char *name, int64_t self)
{
    int          taken;
    char         s[24];
    PGresult    *res;
    const char  *values[2];

    values[0] = name;
    values[1] = chat_i64(s, self);

    res = chat_db_query(ctx->db,
              "SELECT 1 FROM authors WHERE name = $1 AND id <> $2::bigint",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    taken = PQntuples(res) > 0;
    PQclear(res);

    if (taken) {
        return chat_op_error(ctx, 409, "duplicate_author", "an author of "
                             "that name exists: merge duplicates instead");
    }

    return 1;
}


int
chat_op_admin_author_create(chat_op_ctx_t *ctx)
{
    int          rc;
    PGresult    *res;
    const char  *name, *bio, *values[2];

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_taxonomy_text(ctx, "name", CHAT_AUTHOR_NAME_MAX, &name);
    if (rc <= 0) {
        return rc < 0 ? -1 : ctx->reply != NULL
               ? 0 : chat_op_invalid(ctx, "name is required");
    }

    rc = chat_taxonomy_text(ctx, "bio", CHAT_AUTHOR_BIO_MAX, &bio);
    if (rc < 0 || ctx->reply != NULL) {
        return rc < 0 ? -1 : 0;
    }

    rc = chat_author_name_free(ctx, name, 0);
    if (rc <= 0) {
        return rc;
    }

    values[0] = name;
    values[1] = bio;

    res = chat_db_query(ctx->db,
              "INSERT INTO authors AS a (name, bio) VALUES ($1, $2)"
              " RETURNING " CHAT_AUTHOR_JSON,
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = chat_taxonomy_reply(ctx, 201, "author", res);
    PQclear(res);

    return rc;
}


int
chat_op_admin_author_update(chat_op_ctx_t *ctx)
{
    int          rc, found;
    char         idb[24], mb[24];
    int64_t      id, into;
    PGresult    *res;
    const char  *name, *bio, *values[3];

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_op_integer(ctx, "author_id", 1, 1, &id);
    if (rc != 1) {
        return rc;
    }

    rc = chat_taxonomy_text(ctx, "name", CHAT_AUTHOR_NAME_MAX, &name);
    if (rc < 0 || ctx->reply != NULL) {
        return rc < 0 ? -1 : 0;
    }

    rc = chat_taxonomy_text(ctx, "bio", CHAT_AUTHOR_BIO_MAX, &bio);
    if (rc < 0 || ctx->reply != NULL) {
        return rc < 0 ? -1 : 0;
    }

    into = 0;
    rc = chat_op_integer(ctx, "merge_into", 1, 0, &into);
    if (rc < 0 || ctx->reply != NULL) {
        return rc < 0 ? -1 : 0;
    }

    if (into > 0 && (name != NULL || bio != NULL)) {
        return chat_op_invalid(ctx, "merge_into goes alone: merge, then "
                               "rename the author kept");
    }

    if (into == 0 && name == NULL && bio == NULL) {
        return chat_op_invalid(ctx, "nothing to change: give name, bio or "
                               "merge_into");
    }

    if (into == id) {
        return chat_op_invalid(ctx, "an author cannot merge into itself");
    }

    values[0] = chat_i64(idb, id);
    values[1] = into > 0 ? chat_i64(mb, into) : NULL;

    res = chat_db_query(ctx->db,
              "SELECT EXISTS (SELECT 1 FROM authors WHERE id = $1),"
              " $2::bigint IS NULL OR EXISTS (SELECT 1 FROM authors"
              "  WHERE id = $2::bigint)",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    found = (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
            | (strcmp(PQgetvalue(res, 0, 1), "t") == 0) << 1;
    PQclear(res);

    if (!(found & 1)) {
        return chat_op_error(ctx, 404, "not_found", "no such author");
    }

    if (!(found & 2)) {
        return chat_op_invalid(ctx, "merge_into: no such author");
    }

    if (into > 0) {
        /* the books move to the author kept, each at this author's place
         * in its list unless the kept one is on it already */
        res = chat_db_query(ctx->db,
                  "WITH m AS ("
                  "  INSERT INTO book_authors (book_id, author_id, position)"
                  "  SELECT book_id, $2::bigint, position FROM book_authors"
                  "   WHERE author_id = $1 ON CONFLICT DO NOTHING"
                  ") "
                  "DELETE FROM book_authors WHERE author_id = $1",
                  2, values, NULL, NULL);
        if (res == NULL) {
            return -1;
        }

        PQclear(res);

        /* the books' search documents carry their authors' names */
        res = chat_db_query(ctx->db,
                  "SELECT catalog_book_refresh(book_id) FROM book_authors"
                  " WHERE author_id = $2::bigint AND $1::bigint > 0",
                  2, values, NULL, NULL);
        if (res == NULL) {
            return -1;
        }

        PQclear(res);

        res = chat_db_query(ctx->db,
                  "WITH d AS (DELETE FROM authors WHERE id = $1) "
                  "SELECT " CHAT_AUTHOR_JSON ", "
                  CHAT_TOUCHED_SQL("book_authors", "author_id", "$2::bigint")
                  " FROM authors a WHERE a.id = $2::bigint",
                  2, values, NULL, NULL);
        if (res == NULL) {
            return -1;
        }

        rc = chat_taxonomy_reply(ctx, 200, "author", res);
        PQclear(res);

        return rc;
    }

    if (name != NULL) {
        rc = chat_author_name_free(ctx, name, id);
        if (rc <= 0) {
            return rc;
        }
    }

    values[1] = name;
    values[2] = bio;

    res = chat_db_query(ctx->db,
              "UPDATE authors a SET name = coalesce($2, a.name),"
              "       bio = coalesce($3, a.bio) WHERE a.id = $1"
              " RETURNING " CHAT_AUTHOR_JSON ", "
              CHAT_TOUCHED_SQL("book_authors", "author_id", "$1"),
              3, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (name != NULL) {
        /* the books' search documents carry their authors' names */
        PGresult  *refresh;

        refresh = chat_db_query(ctx->db,
                      "SELECT catalog_book_refresh(book_id) FROM book_authors"
                      " WHERE author_id = $1",
                      1, values, NULL, NULL);
        if (refresh == NULL) {
            PQclear(res);
            return -1;
        }

        PQclear(refresh);
    }

    rc = chat_taxonomy_reply(ctx, 200, "author", res);
    PQclear(res);

    return rc;
}


/* ------------------------------------------------------------------------
 * A book's stock, per warehouse, with its recent ledger
 * --------------------------------------------------------------------- */

int
chat_op_admin_inventory_book(chat_op_ctx_t *ctx)
{
    int          rc;
    char         idb[24];
    int64_t      id;
    PGresult    *res;
    const char  *values[1];

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_op_integer(ctx, "book_id", 1, 1, &id);
    if (rc != 1) {
        return rc;
    }

    values[0] = chat_i64(idb, id);

    /* every warehouse, stocked or not, so the grid can fill any */
    res = chat_db_query(ctx->db,
              "SELECT json_build_object('book_id', b.id,"
              " 'stock', coalesce((SELECT json_agg(json_build_object("
              "   'warehouse_id', w.id, 'code', w.code, 'name', w.name,"
              "   'region', w.region, 'on_hand', coalesce(s.on_hand, 0),"
              "   'reserved', coalesce(s.reserved, 0)) ORDER BY w.id)"
              "   FROM warehouses w LEFT JOIN stock s"
              "     ON s.warehouse_id = w.id AND s.book_id = b.id), '[]'),"
              " 'ledger', coalesce((SELECT json_agg(x ORDER BY x.id DESC)"
              "   FROM (SELECT l.id, l.warehouse_id, l.delta_on_hand,"
              "           l.delta_reserved, l.reason, l.order_id,"
              "           l.created_at FROM stock_ledger l"
              "          WHERE l.book_id = b.id"
              "          ORDER BY l.id DESC LIMIT 20) x), '[]'))::text"
              "  FROM books b WHERE b.id = $1 AND b.deleted_at IS NULL",
              1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_error(ctx, 404, "not_found", "no such book");
    }

    ctx->reply = cJSON_Parse(PQgetvalue(res, 0, 0));
    PQclear(res);

    if (ctx->reply == NULL) {
        return -1;
    }

    ctx->status = 200;
    return 0;
}
