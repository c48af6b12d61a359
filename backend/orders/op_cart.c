/*
 * op_cart.c: the shopper's cart: cart.get, cart.item.put,
 * cart.item.delete.
 *
 * The cart is rows of cart_items (sql/005_orders.sql), one per book, so it
 * is the same on every device and outlives sessions and tokens.  It
 * holds quantities only: every read shows the current catalog price and
 * flags lines the stock cannot cover any more (out_of_stock, with what
 * is available over all warehouses), computed by cart_json() in one
 * round trip.  Nothing is reserved by a cart: stock is reserved at
 * checkout (op_order.c).
 *
 * Limits: 1..99 copies a line (0 is a DELETE), at most 100 lines.  A
 * caller only ever reaches their own cart: the user id is the token's.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ops.h"


#define CHAT_CART_MAX_QUANTITY  99
#define CHAT_CART_MAX_LINES     100


static const char  chat_sql_cart_json[] = "SELECT cart_json($1)::text";

/* $1 user, $2 book, $3 quantity, $4 most lines: whether the book is for
 * sale and how many other lines the cart has, and the line written only
 * when both allow it */
static const char  chat_sql_cart_put[] =
    "WITH chk AS ("
    "  SELECT (SELECT deleted_at IS NULL FROM books WHERE id = $2::bigint)"
    "           AS for_sale,"
    "         (SELECT count(*) FROM cart_items"
    "           WHERE user_id = $1::bigint AND book_id <> $2::bigint)"
    "           AS others), "
    "ins AS ("
    "  INSERT INTO cart_items (user_id, book_id, quantity)"
    "  SELECT $1::bigint, $2::bigint, $3::int FROM chk"
    "   WHERE chk.for_sale AND chk.others < $4::int"
    "  ON CONFLICT (user_id, book_id) DO UPDATE"
    "  SET quantity = EXCLUDED.quantity, updated_at = now()) "
    "SELECT for_sale, others FROM chk";


/* Answers 200 with the cart in res (chat_sql_cart_json's result). */
static int
chat_cart_answer(chat_op_ctx_t *ctx, const PGresult *res)
{
    ctx->reply = cJSON_Parse(PQgetvalue(res, 0, 0));
    if (ctx->reply == NULL) {
        return -1;
    }

    ctx->status = 200;
    return 0;
}


/* Answers 200 with the caller's cart. */
static int
chat_cart_reply(chat_op_ctx_t *ctx)
{
    int          rc;
    char         uid[24];
    PGresult    *res;
    const char  *values[1];

    values[0] = chat_i64(uid, ctx->cmd->uid);

    res = chat_db_query_prepared(ctx->db, chat_sql_cart_json, 1, values,
                                 NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = chat_cart_answer(ctx, res);
    PQclear(res);

    return rc;
}


int
chat_op_cart_get(chat_op_ctx_t *ctx)
{
    int  rc;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    return chat_cart_reply(ctx);
}


int
chat_op_cart_item_put(chat_op_ctx_t *ctx)
{
    int          rc;
    char            uid[24], bid[24], qty[24], max[24];
    int64_t         book_id, quantity;
    PGresult       *res;
    const char     *values[4];
    chat_db_stmt_t  st[2];

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    rc = chat_op_integer(ctx, "book_id", 1, 1, &book_id);
    if (rc != 1) {
        return rc;
    }

    rc = chat_op_integer(ctx, "quantity", 1, 1, &quantity);
    if (rc != 1) {
        return rc;
    }

    if (quantity > CHAT_CART_MAX_QUANTITY) {
        return chat_op_invalid(ctx, "quantity must be 1 to 99");
    }

    values[0] = chat_i64(uid, ctx->cmd->uid);
    values[1] = chat_i64(bid, book_id);
    values[2] = chat_i64(qty, quantity);

    values[3] = chat_i64(max, CHAT_CART_MAX_LINES);

    /* the book must be for sale and the line count stay in bounds: checked
     * and written in one prepared statement, the cart read back behind it
     * in the same round trip (a cart write comes before every checkout, so
     * it is as hot as the checkout; when it is refused, the cart read is
     * wasted, which is cheaper than a second round trip when it is not) */
    memset(st, 0, sizeof(st));
    st[0].sql = chat_sql_cart_put;
    st[0].prepared = 1;
    st[0].nparams = 4;
    st[0].values = values;
    st[1].sql = chat_sql_cart_json;
    st[1].prepared = 1;
    st[1].nparams = 1;
    st[1].values = values;

    if (chat_db_pipeline(ctx->db, st, 2) != 0) {
        return -1;
    }

    res = st[0].res;

    if (PQgetisnull(res, 0, 0) || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        rc = chat_op_error(ctx, 404, "book_not_found", "no such book");

    } else if (atoi(PQgetvalue(res, 0, 1)) >= CHAT_CART_MAX_LINES) {
        rc = chat_op_error(ctx, 400, "cart_full",
                           "a cart holds at most 100 different books");

    } else {
        rc = chat_cart_answer(ctx, st[1].res);
    }

    PQclear(st[0].res);
    PQclear(st[1].res);

    return rc;
}


int
chat_op_cart_item_delete(chat_op_ctx_t *ctx)
{
    int          rc;
    char         uid[24], bid[24];
    int64_t      book_id;
    PGresult    *res;
    const char  *values[2];

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    rc = chat_op_integer(ctx, "book_id", 1, 1, &book_id);
    if (rc != 1) {
        return rc;
    }

    values[0] = chat_i64(uid, ctx->cmd->uid);
    values[1] = chat_i64(bid, book_id);

    /* removing what is not there leaves the cart as it is: 200 */
    res = chat_db_query(ctx->db,
              "DELETE FROM cart_items WHERE user_id = $1 AND book_id = $2",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    return chat_cart_reply(ctx);
}
