/*
 * catalog.h: what the catalog operations share: the JSON shapes of a
 * book (made by PostgreSQL, see catalog.c), page limits, stock status,
 * the admin check.
 */

#ifndef CHAT_CATALOG_H
#define CHAT_CATALOG_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "catalog_cursor.h"
#include "ops.h"

#define CHAT_CATALOG_LIMIT_DEFAULT  20
#define CHAT_CATALOG_LIMIT_MAX      100
#define CHAT_CATALOG_REVIEWS_PAGE   10

/*
 * A list item, as JSON text, of the book whose id is the SQL expression
 * id: id, isbn13, title, subtitle, authors [{id, name}] in order,
 * price_cents, currency, format, published_on, rating_avg, rating_count,
 * cover_url and cover_thumb_url (null without a cover; media/op_media.c
 * makes them), then available (on_hand - reserved over every warehouse).
 * All but available come ready-made from book_list_items
 * (sql/021_book_list_items.sql, kept by triggers) instead of being built
 * per book; available changes with every sale, so it is appended here,
 * which gives the text json_build_object of every field would, character
 * for character.
 */
#define CHAT_BOOK_SUMMARY_SQL(id)                                           \
    "(SELECT left(li.item, -1) || ', \"available\" : '"                     \
    " || (SELECT coalesce(sum(st.on_hand - st.reserved), 0) FROM stock st"  \
    " WHERE st.book_id = li.book_id) || '}'"                                \
    " FROM book_list_items li WHERE li.book_id = " id ")"

/* 1 when the command comes from an admin; else sets 403 and returns 0
 * (-1 if memory ran out).  The edge checked already: this is the second
 * lock on the door. */
int chat_catalog_require_admin(chat_op_ctx_t *ctx);

/* The body's "limit" in 1..CHAT_CATALOG_LIMIT_MAX (default 20): 1 with
 * *limit set, 0 after a 400, -1. */
int chat_catalog_limit(chat_op_ctx_t *ctx, int64_t *limit);

/* The optional string field name: NULL when absent (*bad 0), or NULL
 * after a 400 (*bad 1; ctx->reply set, or NULL when memory ran out). */
const char *chat_catalog_opt_string(chat_op_ctx_t *ctx, const char *name,
    int *bad);

/* Appends the JSON text in column col of max rows of res from row first
 * on to array.  0, or -1 (bad JSON from the database, memory). */
int chat_catalog_rows_json(PGresult *res, int first, int col, int max,
    cJSON *array);

/*
 * Answers 200 {books: [...], next_cursor} from the rows of res from row
 * first on, rows of (key columns..., id, book json in json_col): the
 * first limit rows are the page; one more means a next page, whose cursor
 * (for order) is made by key from the last row of the page.  0, or -1.
 */
int chat_catalog_page(chat_op_ctx_t *ctx, PGresult *res, int first,
    int64_t limit, int json_col, const char *order,
    void (*key)(PGresult *res, int row, char *buf, size_t size, int64_t *id));

/* The optional "cursor", decoded for order into c: 1 (*present 0 when
 * absent), 0 after a 400, -1. */
int chat_catalog_cursor(chat_op_ctx_t *ctx, const char *order,
    chat_catalog_cursor_t *c, int *present);

/* The optional flag name, "true"/"1" or "false"/"0" (or a JSON boolean);
 * absent is false.  1 with *on set, 0 after a 400, -1. */
int chat_catalog_flag(chat_op_ctx_t *ctx, const char *name, int *on);

/* A summary's "available" (copies on hand and not promised) turned into
 * its stock_status: the count itself is not published.  0, or -1. */
int chat_catalog_summary_stock(cJSON *book);

/*
 * The full book object of book id (a live one): the list item plus
 * description, keywords, language, pages, publisher, categories,
 * stock_status, the first page of reviews and reviews_next_cursor.
 * Returns 1 with *out (the caller owns it), 0 when there is no such live
 * book, -1 on failure.
 */
int chat_catalog_book_json(chat_op_ctx_t *ctx, int64_t id, cJSON **out);

/* "in_stock", "low_stock" or "out_of_stock" for this many available
 * copies; "low" is under CHAT_LOW_STOCK (environment, default 5). */
const char *chat_catalog_stock_status(int64_t available);

/* The reviews of a book after review id after (0: from the newest), up
 * to limit, newest first, as {"reviews": [...], "next_cursor": ...}
 * members added to obj.  0, or -1. */
int chat_catalog_reviews_page(chat_op_ctx_t *ctx, int64_t book_id,
    int64_t after, int64_t limit, cJSON *obj, const char *array_name,
    const char *cursor_name);

/* UTF-8 characters in s, or -1 when s is not valid UTF-8 or has a control
 * character other than newline and tab (names, titles, descriptions). */
long chat_catalog_text_chars(const char *s);

#endif /* CHAT_CATALOG_H */
