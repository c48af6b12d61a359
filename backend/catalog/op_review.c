/*
 * op_review.c: reviews of books.
 *
 *   catalog.reviews        {book_id, cursor?, limit?}     -> {reviews, next_cursor}
 *   catalog.review.create  {book_id, rating: 1..5, text?} -> 201 {review, book}
 *
 * One review per user per book: the insert is ON CONFLICT (book_id,
 * user_id) DO NOTHING, so a second one, even racing the first, finds the
 * row and answers 409 already_reviewed.  The book's rating_count and
 * rating_sum move in the same transaction (rating_avg is generated from
 * them), under the book row's lock, so the summary is exact whatever
 * runs at the same time.  A review also adds one to the book's
 * popularity.
 *
 * After the commit the worker bumps the book's and the lists' cache
 * generations before answering (catalog_cache.c): the next read of the
 * book shows the review.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "catalog_cursor.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"


#define CHAT_REVIEW_TEXT_MAX  4000


int
chat_op_catalog_reviews(chat_op_ctx_t *ctx)
{
    int                    rc, bad;
    char                   idbuf[24];
    int64_t                id, limit, after;
    PGresult              *res;
    const char            *s, *params[1];
    chat_catalog_cursor_t  cursor;

    rc = chat_op_integer(ctx, "book_id", 1, 1, &id);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_catalog_limit(ctx, &limit);
    if (rc <= 0) {
        return rc;
    }

    after = 0;

    s = chat_catalog_opt_string(ctx, "cursor", &bad);
    if (bad) {
        return ctx->reply ? 0 : -1;
    }

    if (s != NULL && *s != '\0') {
        if (chat_catalog_cursor_decode(s, strlen(s), "reviews", &cursor)
            != 0)
        {
            return chat_op_error(ctx, 400, "invalid_cursor",
                                 "cursor is not one this list gave out");
        }
        after = cursor.id;
    }

    params[0] = chat_i64(idbuf, id);
    res = chat_db_query_prepared(ctx->db,
        "SELECT 1 FROM books WHERE id = $1 AND deleted_at IS NULL",
        1, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = PQntuples(res);
    PQclear(res);

    if (rc == 0) {
        return chat_op_error(ctx, 404, "not_found", "no such book");
    }

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL
        || chat_catalog_reviews_page(ctx, id, after, limit, ctx->reply,
                                     "reviews", "next_cursor")
           != 0)
    {
        return -1;
    }

    ctx->status = 200;
    return 0;
}


int
chat_op_catalog_review_create(chat_op_ctx_t *ctx)
{
    int          rc, bad;
    char         idbuf[24], ubuf[24], rbuf[24];
    cJSON       *review, *book, *summary;
    int64_t      id, rating;
    PGresult    *res;
    const char  *text, *why, *params[4];

    rc = chat_op_require_user(ctx);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_op_integer(ctx, "book_id", 1, 1, &id);
    if (rc <= 0) {
        return rc;
    }

    rc = chat_op_integer(ctx, "rating", 1, 1, &rating);
    if (rc <= 0) {
        return rc;
    }

    if (rating > 5) {
        return chat_op_invalid(ctx, "rating must be an integer 1 to 5");
    }

    text = chat_catalog_opt_string(ctx, "text", &bad);
    if (bad) {
        return ctx->reply ? 0 : -1;
    }

    if (text == NULL) {
        text = "";
    }

    if (*text != '\0') {
        why = chat_text_check(text, strlen(text));
        if (why != NULL) {
            return chat_op_invalid(ctx, "text must be valid UTF-8 of at "
                                        "most 4000 characters");
        }
    }

    params[0] = chat_i64(idbuf, id);
    params[1] = chat_i64(ubuf, ctx->cmd->uid);
    params[2] = chat_i64(rbuf, rating);
    params[3] = text;

    /* the book row's lock orders concurrent reviews of one book */
    res = chat_db_query_prepared(ctx->db,
        "SELECT 1 FROM books WHERE id = $1 AND deleted_at IS NULL"
        " FOR NO KEY UPDATE", 1, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = PQntuples(res);
    PQclear(res);

    if (rc == 0) {
        return chat_op_error(ctx, 404, "not_found", "no such book");
    }

    res = chat_db_query_prepared(ctx->db,
        "WITH r AS (INSERT INTO reviews (book_id, user_id, rating, text)"
        "  VALUES ($1, $2, $3, $4) ON CONFLICT (book_id, user_id) DO NOTHING"
        "  RETURNING id, book_id, user_id, rating, text, created_at),"
        " b AS (UPDATE books SET rating_count = rating_count + 1,"
        "  rating_sum = rating_sum + $3, popularity = popularity + 1"
        "  WHERE id = $1 AND EXISTS (SELECT 1 FROM r)"
        "  RETURNING rating_count, rating_sum)"
        " SELECT json_build_object('id', r.id, 'book_id', r.book_id,"
        "  'user', json_build_object('id', u.id, 'display_name',"
        "  u.display_name), 'rating', r.rating, 'text', r.text,"
        "  'created_at', r.created_at)::text,"
        " json_build_object('id', $1::bigint, 'rating_count', b.rating_count,"
        "  'rating_avg', round(b.rating_sum::numeric / b.rating_count, 2)"
        "  ::float8)::text"
        " FROM r JOIN users u ON u.id = r.user_id, b",
        4, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_error(ctx, 409, "already_reviewed",
                             "you have already reviewed this book");
    }

    review = cJSON_Parse(PQgetvalue(res, 0, 0));
    book = cJSON_Parse(PQgetvalue(res, 0, 1));
    PQclear(res);

    summary = cJSON_CreateObject();
    if (review == NULL || book == NULL || summary == NULL) {
        cJSON_Delete(review);
        cJSON_Delete(book);
        cJSON_Delete(summary);
        return -1;
    }

    cJSON_AddItemToObject(summary, "review", review);
    cJSON_AddItemToObject(summary, "book", book);

    ctx->status = 201;
    ctx->reply = summary;

    return 0;
}
