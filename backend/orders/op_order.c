/*
 * op_order.c: orders after checkout: order.list, order.get (the owner's),
 * admin.order.list, admin.order.ship, admin.order.refund (admins only).
 * The checkout itself is op_checkout.c; settling payments is orders.c.
 *
 * Who sees what.  order.list and order.get only ever look at the caller's
 * orders: another user's order is 404 not_found, exactly like a missing
 * one.  The admin ops check the role the edge took from the verified
 * token (the edge refuses non-admins already; this is the second lock).
 *
 * Ship (a logged op, batched like any cheap write): a paid order's held
 * copies leave the warehouses: on_hand and reserved both go down by the
 * quantity, a ledger row each, the order becomes shipped.
 *
 * Refund (CHAT_OP_SUSPENDS, not logged: it waits on the provider): the
 * order's refund attempt is recorded (idempotency key "refund:<order>",
 * so however often it is retried the provider refunds once), the
 * provider is called outside any transaction (the op suspends on the
 * call, so its worker serves other commands meanwhile), and on success
 * the order becomes refunded, its copies going back to stock when it had
 * not shipped (orders.c).  A refused refund is 409; an unknown outcome is
 * 202 with the order as it stands, and the reconciler finishes it.
 *
 * Every status change queues {"type":"order","order":{...}} for the
 * owner.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_input.h"
#include "log.h"
#include "ops.h"
#include "orders.h"
#include "payment.h"


#define CHAT_ORDERS_PAGE      20
#define CHAT_ORDERS_PAGE_MAX  100

#define CHAT_REFUND_LEASE_MARGIN_MS  2000


static const char  *chat_order_statuses[] = {
    "pending_payment", "payment_failed", "paid", "shipped", "delivered",
    "cancelled", "refunded", NULL
};


static int
chat_op_require_admin(chat_op_ctx_t *ctx)
{
    if (ctx->cmd->uid > 0 && ctx->cmd->role_len == 5
        && memcmp(ctx->cmd->role, "admin", 5) == 0)
    {
        return 1;
    }

    return chat_op_error(ctx, 403, "forbidden", "this needs the admin role");
}


static int
chat_op_no_order(chat_op_ctx_t *ctx)
{
    return chat_op_error(ctx, 404, "not_found", "no such order");
}


/* 200 {order} for order_id. */
static int
chat_order_reply(chat_op_ctx_t *ctx, int status, int64_t order_id)
{
    int     missing;
    cJSON  *order;

    order = chat_order_json(ctx->db, order_id, &missing);
    if (order == NULL) {
        return missing ? chat_op_no_order(ctx) : -1;
    }

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL
        || !cJSON_AddItemToObject(ctx->reply, "order", order))
    {
        cJSON_Delete(order);
        return -1;
    }

    ctx->status = status;
    return 0;
}


/*
 * A page of orders, newest first: {orders, next_cursor}.  The cursor is
 * the id of the last order of the previous page.  uid > 0 limits it to
 * that user, status (or NULL) to that status.
 */
static int
chat_order_page(chat_op_ctx_t *ctx, int64_t uid, const char *status)
{
    int          i, n;
    char         u[24], c[24], l[24];
    cJSON       *list, *order;
    int64_t      cursor, limit, last;
    PGresult    *res;
    const char  *values[4];

    cursor = 0;
    if (chat_op_integer(ctx, "cursor", 1, 0, &cursor) < 0) {
        return -1;
    }

    if (ctx->reply != NULL) {
        return 0;
    }

    if (chat_limit_parse(cJSON_GetObjectItemCaseSensitive(ctx->body, "limit"),
                         CHAT_ORDERS_PAGE, CHAT_ORDERS_PAGE_MAX, &limit) != 0)
    {
        return chat_op_invalid(ctx, "limit must be an integer >= 1");
    }

    values[0] = uid > 0 ? chat_i64(u, uid) : NULL;
    values[1] = cursor > 0 ? chat_i64(c, cursor) : NULL;
    values[2] = chat_i64(l, limit + 1);
    values[3] = status;

    res = chat_db_query(ctx->db,
              "SELECT o.id, order_json(o)::text FROM orders o"
              " WHERE ($1::bigint IS NULL OR o.user_id = $1)"
              "   AND ($2::bigint IS NULL OR o.id < $2)"
              "   AND ($4::text IS NULL OR o.status = $4)"
              " ORDER BY o.id DESC LIMIT $3",
              4, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    n = PQntuples(res);

    ctx->reply = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(ctx->reply, "orders");
    if (list == NULL) {
        PQclear(res);
        return -1;
    }

    last = 0;

    for (i = 0; i < n && i < limit; i++) {
        order = cJSON_Parse(PQgetvalue(res, i, 1));
        if (order == NULL) {
            PQclear(res);
            return -1;
        }

        cJSON_AddItemToArray(list, order);
        last = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    }

    if (n > limit) {
        if (cJSON_AddNumberToObject(ctx->reply, "next_cursor",
                                    (double) last) == NULL)
        {
            PQclear(res);
            return -1;
        }

    } else if (cJSON_AddNullToObject(ctx->reply, "next_cursor") == NULL) {
        PQclear(res);
        return -1;
    }

    PQclear(res);
    ctx->status = 200;
    return 0;
}


int
chat_op_order_list(chat_op_ctx_t *ctx)
{
    int  rc;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    return chat_order_page(ctx, ctx->cmd->uid, NULL);
}


int
chat_op_order_get(chat_op_ctx_t *ctx)
{
    int          rc;
    char         id[24], uid[24];
    int64_t      order_id;
    PGresult    *res;
    const char  *values[2];

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    rc = chat_op_integer(ctx, "order_id", 1, 1, &order_id);
    if (rc != 1) {
        return rc;
    }

    values[0] = chat_i64(id, order_id);
    values[1] = chat_i64(uid, ctx->cmd->uid);

    res = chat_db_query(ctx->db,
              "SELECT order_json(o)::text FROM orders o"
              " WHERE o.id = $1 AND o.user_id = $2",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_no_order(ctx);
    }

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL
        || !cJSON_AddItemToObject(ctx->reply, "order",
                                  cJSON_Parse(PQgetvalue(res, 0, 0))))
    {
        PQclear(res);
        return -1;
    }

    PQclear(res);
    ctx->status = 200;
    return 0;
}


int
chat_op_admin_order_list(chat_op_ctx_t *ctx)
{
    int           rc, i;
    const cJSON  *status;

    rc = chat_op_require_admin(ctx);
    if (rc != 1) {
        return rc;
    }

    status = cJSON_GetObjectItemCaseSensitive(ctx->body, "status");

    if (status == NULL) {
        return chat_order_page(ctx, 0, NULL);
    }

    for (i = 0; cJSON_IsString(status) && chat_order_statuses[i]; i++) {
        if (strcmp(status->valuestring, chat_order_statuses[i]) == 0) {
            return chat_order_page(ctx, 0, chat_order_statuses[i]);
        }
    }

    return chat_op_invalid(ctx, "status must be one of pending_payment, "
                           "payment_failed, paid, shipped, delivered, "
                           "cancelled, refunded");
}


int
chat_op_admin_order_ship(chat_op_ctx_t *ctx)
{
    int          rc, missing;
    char         id[24], who[24], msg[96];
    cJSON       *order;
    int64_t      order_id;
    PGresult    *res;
    const char  *values[2];

    rc = chat_op_require_admin(ctx);
    if (rc != 1) {
        return rc;
    }

    rc = chat_op_integer(ctx, "order_id", 1, 1, &order_id);
    if (rc != 1) {
        return rc;
    }

    values[0] = chat_i64(id, order_id);
    values[1] = chat_i64(who, ctx->cmd->uid);

    res = chat_db_query(ctx->db,
              "SELECT status FROM orders WHERE id = $1 FOR UPDATE",
              1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_no_order(ctx);
    }

    if (strcmp(PQgetvalue(res, 0, 0), "paid") != 0) {
        snprintf(msg, sizeof(msg), "only a paid order can ship; this one is "
                 "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        return chat_op_error(ctx, 409, "invalid_state", msg);
    }

    PQclear(res);

    /* stock rows in the one lock order, then the change */
    res = chat_db_query(ctx->db,
              "SELECT 1 FROM stock s JOIN order_reservations r"
              " ON r.book_id = s.book_id AND r.warehouse_id = s.warehouse_id"
              " WHERE r.order_id = $1 AND r.state = 'held'"
              " ORDER BY s.book_id, s.warehouse_id FOR UPDATE OF s",
              1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    res = chat_db_query(ctx->db,
              "WITH r AS ("
              "  UPDATE order_reservations SET state = 'shipped'"
              "   WHERE order_id = $1 AND state = 'held'"
              "   RETURNING book_id, warehouse_id, quantity"
              "), s AS ("
              "  UPDATE stock SET on_hand = stock.on_hand - r.quantity,"
              "         reserved = stock.reserved - r.quantity,"
              "         updated_at = now()"
              "    FROM r WHERE stock.book_id = r.book_id"
              "     AND stock.warehouse_id = r.warehouse_id"
              "), l AS ("
              "  INSERT INTO stock_ledger (book_id, warehouse_id,"
              "      delta_on_hand, delta_reserved, reason, actor_id,"
              "      order_id)"
              "  SELECT book_id, warehouse_id, -quantity, -quantity,"
              "         'shipped', $2, $1 FROM r"
              ") "
              "UPDATE orders SET status = 'shipped', shipped_at = now(),"
              "       updated_at = now() WHERE id = $1",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    order = chat_order_json(ctx->db, order_id, &missing);
    if (order == NULL) {
        return -1;
    }

    if (chat_order_event(ctx->events, order) != 0) {
        cJSON_Delete(order);
        return -1;
    }

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL
        || !cJSON_AddItemToObject(ctx->reply, "order", order))
    {
        cJSON_Delete(order);
        return -1;
    }

    ctx->status = 200;
    return 0;
}


/*
 * Records the refund attempt (a new claim on it if it exists) with the
 * order row locked.  1 with *payment_ref set (malloc'd), or 0 after an
 * answer (404, 409, or 200 when already refunded), or -1.
 */
static int
chat_refund_begin(chat_op_ctx_t *ctx, int64_t order_id, char **payment_ref)
{
    char         id[24], lease[24], msg[96];
    PGresult    *res;
    const char  *values[2], *status;

    values[0] = chat_i64(id, order_id);
    values[1] = chat_i64(lease, ctx->cfg->payment_timeout_ms
                                + CHAT_REFUND_LEASE_MARGIN_MS);

    if (chat_db_exec(ctx->db, "BEGIN") != 0) {
        return -1;
    }

    res = chat_db_query(ctx->db,
              "SELECT status, payment_ref FROM orders WHERE id = $1"
              " FOR UPDATE",
              1, values, NULL, NULL);
    if (res == NULL) {
        goto failed;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        (void) chat_db_exec(ctx->db, "ROLLBACK");
        return chat_op_no_order(ctx);
    }

    status = PQgetvalue(res, 0, 0);

    if (strcmp(status, "refunded") == 0) {
        PQclear(res);
        (void) chat_db_exec(ctx->db, "ROLLBACK");
        return chat_order_reply(ctx, 200, order_id);
    }

    if ((strcmp(status, "paid") != 0 && strcmp(status, "shipped") != 0
         && strcmp(status, "delivered") != 0)
        || PQgetisnull(res, 0, 1))
    {
        snprintf(msg, sizeof(msg), "only a paid or shipped order can be "
                 "refunded; this one is %s", status);
        PQclear(res);
        (void) chat_db_exec(ctx->db, "ROLLBACK");
        return chat_op_error(ctx, 409, "invalid_state", msg);
    }

    *payment_ref = strdup(PQgetvalue(res, 0, 1));
    PQclear(res);

    if (*payment_ref == NULL) {
        goto failed;
    }

    res = chat_db_query(ctx->db,
              "INSERT INTO payment_attempts (order_id, kind,"
              "    idempotency_key, amount_cents, lease_until)"
              " SELECT id, 'refund', 'refund:' || id, total_cents,"
              "        now() + $2::int * interval '1 millisecond'"
              "   FROM orders WHERE id = $1"
              " ON CONFLICT (idempotency_key) DO UPDATE"
              " SET status = 'pending', claims = payment_attempts.claims + 1,"
              "     lease_until = EXCLUDED.lease_until, updated_at = now()",
              2, values, NULL, NULL);
    if (res == NULL) {
        goto failed;
    }

    PQclear(res);

    if (chat_db_exec(ctx->db, "COMMIT") != 0) {
        goto failed;
    }

    return 1;

failed:

    free(*payment_ref);
    *payment_ref = NULL;

    if (chat_db_ok(ctx->db)) {
        (void) chat_db_exec(ctx->db, "ROLLBACK");
    }

    return -1;
}


/* The resume step of a refund: the provider's call has finished. */
static int
chat_refund_done(chat_op_ctx_t *ctx, chat_http_call_t *call)
{
    int                rc;
    char               id[24], msg[160];
    int64_t            order_id;
    PGresult          *res;
    const char        *values[2];
    chat_pay_result_t  pay;

    order_id = *(int64_t *) call->data;

    chat_payment_refund_result(call, &pay);

    values[0] = chat_i64(id, order_id);

    switch (pay.state) {

    case CHAT_PAY_REFUNDED:
        rc = chat_order_settle_refund(ctx->db, order_id, pay.id,
                                      ctx->cmd->uid, ctx->events);
        if (rc < 0) {
            return -1;
        }

        return chat_order_reply(ctx, 200, order_id);

    case CHAT_PAY_DECLINED:
        values[1] = pay.code;
        res = chat_db_query(ctx->db,
                  "UPDATE payment_attempts SET status = 'failed',"
                  "       failure_code = $2, updated_at = now()"
                  " WHERE order_id = $1 AND kind = 'refund'",
                  2, values, NULL, NULL);
        if (res == NULL) {
            return -1;
        }

        PQclear(res);
        snprintf(msg, sizeof(msg), "the payment provider refused the "
                 "refund (%s)", pay.code);
        return chat_op_error(ctx, 409, "refund_refused", msg);

    default:
        values[1] = pay.error;
        res = chat_db_query(ctx->db,
                  "UPDATE payment_attempts SET last_error = $2,"
                  "       updated_at = now()"
                  " WHERE order_id = $1 AND kind = 'refund'",
                  2, values, NULL, NULL);
        PQclear(res);

        chat_log_warn("order %lld: refund outcome unknown (%s); left to "
                      "the reconciler", (long long) order_id, pay.error);

        return chat_order_reply(ctx, 202, order_id);
    }
}


int
chat_op_admin_order_refund(chat_op_ctx_t *ctx)
{
    int                rc;
    char               key[48], *ref;
    int64_t            order_id, *data;
    chat_http_call_t  *call;

    rc = chat_op_require_admin(ctx);
    if (rc != 1) {
        return rc;
    }

    rc = chat_op_integer(ctx, "order_id", 1, 1, &order_id);
    if (rc != 1) {
        return rc;
    }

    ref = NULL;
    rc = chat_refund_begin(ctx, order_id, &ref);
    if (rc != 1) {
        return rc;
    }

    snprintf(key, sizeof(key), "refund:%lld", (long long) order_id);

    call = chat_payment_refund_call(ctx->cfg, ref, key);
    free(ref);

    data = malloc(sizeof(int64_t));
    if (call == NULL || data == NULL) {
        chat_http_call_free(call);
        free(data);
        return -1;
    }

    *data = order_id;
    call->data = data;
    call->cleanup = free;

    return chat_op_suspend(ctx, call, chat_refund_done);
}
