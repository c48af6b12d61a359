/*
 * op_order.c: orders after checkout: order.list, order.get (the owner's),
 * admin.order.list, admin.order.ship, admin.order.deliver,
 * admin.order.refund (admins only), carrier.delivery (the carrier's
 * webhook).
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
 * Deliver: a shipped order becomes delivered (an admin, or the carrier's
 * webhook, whose event ids count once: carrier_events); delivered again
 * is 200 as it stands; anything else 409.
 *
 * Refund (CHAT_OP_SUSPENDS, not logged: it waits on the provider):
 * {items: [{book_id, quantity}]} for part of the order, none for all that
 * is left.  Under the order's row lock the lines are checked (a book not
 * in the order 400, more than bought and not yet refunded 409) and the
 * refund attempt is recorded with its lines, amount and its own key,
 * made from the command's key ("refund:<order>:<md5 of the command
 * key>"): the same command again (a client's retry with its
 * Idempotency-Key, or the entry reclaimed after its worker died) finds
 * its attempt and answers from it (200 done, 202 still being confirmed,
 * 409 refund_refused) instead of refunding again; one refund at a time
 * per order (409 refund_pending while another is unconfirmed).  The
 * provider is called outside any transaction with that key and amount
 * (the op suspends on the call), and on success orders.c settles it:
 * refunded quantities and cents, the ledger row, the copies back to
 * stock when not shipped, the order refunded once every line is.  A refused refund is 409; an
 * unknown outcome is 202 with the order as it stands, and the reconciler
 * repeats the call with the same key and amount until it knows.
 *
 * Every status change queues {"type":"order","order":{...}} for the
 * owner, and {"type":"admin_change"} (engine/admin_event.c) for the
 * admins' open back offices.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_event.h"
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


/* status {order} for order_id.  announce: the order has just changed,
 * so its event and the admins' go out with the reply. */
static int
chat_order_answer(chat_op_ctx_t *ctx, int status, int64_t order_id,
    int announce)
{
    int     missing;
    cJSON  *order;

    order = chat_order_json(ctx->db, order_id, &missing);
    if (order == NULL) {
        return missing ? chat_op_no_order(ctx) : -1;
    }

    if (announce
        && (chat_order_event(ctx->events, order) != 0
            || chat_admin_event(ctx->db, ctx->events, "order", order_id,
                                ctx->cmd->uid) != 0))
    {
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

    ctx->status = status;
    return 0;
}


/* status {order} for order_id. */
static int
chat_order_reply(chat_op_ctx_t *ctx, int status, int64_t order_id)
{
    return chat_order_answer(ctx, status, order_id, 0);
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
    int          rc;
    char         id[24], who[24], msg[96];
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

    return chat_order_answer(ctx, 200, order_id, 1);
}


/* the lines of a refund: what was asked, then what is left of each */
typedef struct {
    int64_t  book_id;
    int64_t  quantity;
} chat_refund_line_t;

#define CHAT_REFUND_LINES_MAX  100

/* what a refund's resume step needs */
typedef struct {
    int64_t  order_id;
    int64_t  attempt_id;
} chat_refund_state_t;


/*
 * Reads the body's items ([{book_id, quantity}], or absent for a full
 * refund) into lines.  Returns the count (0: in full), or -2 after a 400
 * reply, or -1.
 */
static int
chat_refund_lines(chat_op_ctx_t *ctx, chat_refund_line_t *lines)
{
    int           n, k;
    int64_t       book, qty;
    const cJSON  *items, *item;

    items = cJSON_GetObjectItemCaseSensitive(ctx->body, "items");
    if (items == NULL || cJSON_IsNull(items)) {
        return 0;
    }

    if (!cJSON_IsArray(items) || cJSON_GetArraySize(items) == 0
        || cJSON_GetArraySize(items) > CHAT_REFUND_LINES_MAX)
    {
        return chat_op_invalid(ctx, "items must be a list of 1..100 "
                               "{book_id, quantity}") == 0 ? -2 : -1;
    }

    n = 0;

    cJSON_ArrayForEach(item, items) {
        if (!cJSON_IsObject(item)
            || chat_json_integer(cJSON_GetObjectItemCaseSensitive(item,
                                     "book_id"), 1, CHAT_INT_MAX, &book) != 0
            || chat_json_integer(cJSON_GetObjectItemCaseSensitive(item,
                                     "quantity"), 1, 1000000, &qty) != 0)
        {
            return chat_op_invalid(ctx, "each item needs a book_id and a "
                                   "quantity >= 1") == 0 ? -2 : -1;
        }

        for (k = 0; k < n; k++) {
            if (lines[k].book_id == book) {
                return chat_op_invalid(ctx, "a book is named twice in items")
                       == 0 ? -2 : -1;
            }
        }

        lines[n].book_id = book;
        lines[n].quantity = qty;
        n++;
    }

    return n;
}


/*
 * In a transaction with the order row locked: checks the order can be
 * refunded as asked and records the refund attempt (its lines, amount
 * and key).  1 with *st and *payment_ref (malloc'd) set, or 0 after an
 * answer (404, 409, 400, or 200 when a full refund finds it refunded
 * already; or the answer of this command's own earlier run), or -1.
 */
static int
chat_refund_begin(chat_op_ctx_t *ctx, chat_refund_line_t *lines, int n,
    chat_refund_state_t *st, char **payment_ref, int64_t *amount)
{
    int          i, k, rows, found;
    char         id[24], lease[24], amt[24], msg[160], *items_text;
    cJSON       *items, *line;
    int64_t      left, price;
    PGresult    *res;
    const char  *values[4], *status;

    values[0] = chat_i64(id, st->order_id);
    values[1] = chat_i64(lease, ctx->cfg->payment_timeout_ms
                                + CHAT_REFUND_LEASE_MARGIN_MS);
    items = NULL;
    items_text = NULL;
    *amount = 0;

    if (chat_db_exec(ctx->db, "BEGIN") != 0) {
        return -1;
    }

    /* this command's refund attempt, when it ran before: the attempt's
     * key is the command's (a retry, a reclaimed entry) */
    res = chat_db_query(ctx->db,
              "SELECT o.status, o.payment_ref, EXISTS (SELECT 1"
              "   FROM payment_attempts WHERE order_id = $1"
              "    AND kind = 'refund' AND status = 'pending'),"
              "  (SELECT status FROM payment_attempts"
              "    WHERE idempotency_key = 'refund:' || $1 || ':' || md5($2))"
              "  FROM orders o WHERE o.id = $1 FOR UPDATE",
              2, (const char *[]) { values[0], ctx->cmd->key }, NULL, NULL);
    if (res == NULL) {
        goto failed;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        (void) chat_db_exec(ctx->db, "ROLLBACK");
        return chat_op_no_order(ctx);
    }

    if (!PQgetisnull(res, 0, 3)) {
        status = PQgetvalue(res, 0, 3);
        k = strcmp(status, "succeeded") == 0 ? 200
            : strcmp(status, "pending") == 0 ? 202 : 409;
        PQclear(res);
        (void) chat_db_exec(ctx->db, "ROLLBACK");
        if (k == 409) {
            return chat_op_error(ctx, 409, "refund_refused", "the payment "
                                 "provider refused this refund");
        }
        return chat_order_reply(ctx, k, st->order_id);
    }

    status = PQgetvalue(res, 0, 0);

    if (strcmp(status, "refunded") == 0 && n == 0) {
        PQclear(res);
        (void) chat_db_exec(ctx->db, "ROLLBACK");
        return chat_order_reply(ctx, 200, st->order_id);
    }

    if ((strcmp(status, "paid") != 0 && strcmp(status, "shipped") != 0
         && strcmp(status, "delivered") != 0)
        || PQgetisnull(res, 0, 1))
    {
        snprintf(msg, sizeof(msg), "only a paid, shipped or delivered order "
                 "can be refunded; this one is %s", status);
        PQclear(res);
        (void) chat_db_exec(ctx->db, "ROLLBACK");
        return chat_op_error(ctx, 409, "invalid_state", msg);
    }

    if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
        PQclear(res);
        (void) chat_db_exec(ctx->db, "ROLLBACK");
        return chat_op_error(ctx, 409, "refund_pending", "a refund of this "
                             "order is still being confirmed by the payment "
                             "provider; it finishes on its own, try again "
                             "in a moment");
    }

    *payment_ref = strdup(PQgetvalue(res, 0, 1));
    PQclear(res);

    if (*payment_ref == NULL) {
        goto failed;
    }

    /* what is left of each line */
    res = chat_db_query(ctx->db,
              "SELECT book_id, quantity - refunded_quantity, price_cents"
              "  FROM order_items WHERE order_id = $1 ORDER BY book_id",
              1, values, NULL, NULL);
    if (res == NULL) {
        goto failed;
    }

    rows = PQntuples(res);
    items = cJSON_CreateArray();
    if (items == NULL) {
        PQclear(res);
        goto failed;
    }

    for (k = 0; k < (n ? n : rows); k++) {
        found = -1;

        for (i = 0; i < rows; i++) {
            if (n == 0
                || strtoll(PQgetvalue(res, i, 0), NULL, 10)
                   == lines[k].book_id)
            {
                found = n == 0 ? k : i;
                break;
            }
        }

        if (found < 0) {
            snprintf(msg, sizeof(msg), "book %lld is not in this order",
                     (long long) lines[k].book_id);
            PQclear(res);
            goto refuse_400;
        }

        left = strtoll(PQgetvalue(res, found, 1), NULL, 10);
        price = strtoll(PQgetvalue(res, found, 2), NULL, 10);

        if (n == 0) {
            if (left == 0) {
                continue;
            }

        } else if (lines[k].quantity > left) {
            snprintf(msg, sizeof(msg), "book %lld: %lld asked, only %lld "
                     "bought and not yet refunded",
                     (long long) lines[k].book_id,
                     (long long) lines[k].quantity, (long long) left);
            PQclear(res);
            cJSON_Delete(items);
            (void) chat_db_exec(ctx->db, "ROLLBACK");
            free(*payment_ref);
            *payment_ref = NULL;
            return chat_op_error(ctx, 409, "refund_exceeds_order", msg);

        } else {
            left = lines[k].quantity;
        }

        line = cJSON_CreateObject();
        if (line == NULL
            || cJSON_AddNumberToObject(line, "book_id",
                   (double) strtoll(PQgetvalue(res, found, 0), NULL, 10))
               == NULL
            || cJSON_AddNumberToObject(line, "quantity", (double) left) == NULL
            || !cJSON_AddItemToArray(items, line))
        {
            cJSON_Delete(line);
            PQclear(res);
            goto failed;
        }

        *amount += left * price;
    }

    PQclear(res);

    if (cJSON_GetArraySize(items) == 0 || *amount <= 0) {
        cJSON_Delete(items);
        (void) chat_db_exec(ctx->db, "ROLLBACK");
        free(*payment_ref);
        *payment_ref = NULL;
        return chat_op_error(ctx, 409, "refund_exceeds_order",
                             "nothing of this order is left to refund");
    }

    items_text = cJSON_PrintUnformatted(items);
    cJSON_Delete(items);
    items = NULL;

    if (items_text == NULL) {
        goto failed;
    }

    values[2] = chat_i64(amt, *amount);
    values[3] = items_text;

    /* one key per refund command: the provider refunds each once however
     * often it is asked (the reconciler repeats unknown ones), and the
     * same command run again finds it above */
    res = chat_db_query(ctx->db,
              "INSERT INTO payment_attempts (order_id, kind,"
              "    idempotency_key, amount_cents, lease_until, items,"
              "    payment_ref, reason)"
              " SELECT o.id, 'refund', 'refund:' || o.id || ':' || md5($5),"
              "        $3::bigint,"
              "        now() + $2::int * interval '1 millisecond',"
              "        $4::jsonb, o.payment_ref, 'admin'"
              "   FROM orders o WHERE o.id = $1"
              " RETURNING id",
              5, (const char *[]) { values[0], values[1], values[2],
                                    values[3], ctx->cmd->key },
              NULL, NULL);
    cJSON_free(items_text);
    if (res == NULL) {
        goto failed;
    }

    st->attempt_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);

    if (chat_db_exec(ctx->db, "COMMIT") != 0) {
        goto failed;
    }

    return 1;

refuse_400:

    cJSON_Delete(items);
    (void) chat_db_exec(ctx->db, "ROLLBACK");
    free(*payment_ref);
    *payment_ref = NULL;
    return chat_op_invalid(ctx, msg);

failed:

    cJSON_Delete(items);
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
    int                   rc;
    char                  id[24], msg[160];
    PGresult             *res;
    const char           *values[2];
    chat_pay_result_t     pay;
    chat_refund_state_t  *st = call->data;

    chat_payment_refund_result(call, &pay);

    values[0] = chat_i64(id, st->attempt_id);

    switch (pay.state) {

    case CHAT_PAY_REFUNDED:
        rc = chat_order_settle_refund(ctx->db, st->attempt_id, pay.id,
                                      ctx->cmd->uid, ctx->events);
        if (rc < 0) {
            return -1;
        }

        return chat_order_reply(ctx, 200, st->order_id);

    case CHAT_PAY_DECLINED:
        values[1] = pay.code;
        res = chat_db_query(ctx->db,
                  "UPDATE payment_attempts SET status = 'failed',"
                  "       failure_code = $2, updated_at = now()"
                  " WHERE id = $1 AND status = 'pending'",
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
                  " WHERE id = $1",
                  2, values, NULL, NULL);
        PQclear(res);

        chat_log_warn("order %lld: refund outcome unknown (%s); left to "
                      "the reconciler", (long long) st->order_id, pay.error);

        return chat_order_reply(ctx, 202, st->order_id);
    }
}


int
chat_op_admin_order_refund(chat_op_ctx_t *ctx)
{
    int                   rc, n;
    char                  key[64], *ref;
    int64_t               order_id, amount;
    PGresult             *res;
    const char           *values[1];
    chat_http_call_t     *call;
    chat_refund_line_t    lines[CHAT_REFUND_LINES_MAX];
    chat_refund_state_t  *st;

    rc = chat_op_require_admin(ctx);
    if (rc != 1) {
        return rc;
    }

    rc = chat_op_integer(ctx, "order_id", 1, 1, &order_id);
    if (rc != 1) {
        return rc;
    }

    n = chat_refund_lines(ctx, lines);
    if (n < 0) {
        return n == -2 ? 0 : -1;
    }

    st = calloc(1, sizeof(chat_refund_state_t));
    if (st == NULL) {
        return -1;
    }

    st->order_id = order_id;
    ref = NULL;

    rc = chat_refund_begin(ctx, lines, n, st, &ref, &amount);
    if (rc != 1) {
        free(st);
        return rc;
    }

    /* the attempt's key, as the reconciler will repeat it */
    values[0] = chat_i64(key, st->attempt_id);
    res = chat_db_query(ctx->db,
              "SELECT idempotency_key FROM payment_attempts WHERE id = $1",
              1, values, NULL, NULL);
    if (res == NULL || PQntuples(res) != 1) {
        PQclear(res);
        free(ref);
        free(st);
        return -1;
    }

    snprintf(key, sizeof(key), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    call = chat_payment_refund_call(ctx->cfg, ref, key, amount);
    free(ref);

    if (call == NULL) {
        free(st);
        return -1;
    }

    call->data = st;
    call->cleanup = free;

    return chat_op_suspend(ctx, call, chat_refund_done);
}


/* 200 {order} after a delivery, 409 before shipping, 404 for none. */
static int
chat_deliver_answer(chat_op_ctx_t *ctx, int64_t order_id)
{
    int     rc;
    char    was[32], msg[96];

    rc = chat_order_deliver(ctx->db, order_id, was, sizeof(was));
    if (rc < 0) {
        return -1;
    }

    if (rc == 0 && was[0] == '\0') {
        return chat_op_no_order(ctx);
    }

    if (rc == 0 && strcmp(was, "delivered") != 0) {
        snprintf(msg, sizeof(msg), "only a shipped order can be delivered; "
                 "this one is %s", was);
        return chat_op_error(ctx, 409, "invalid_state", msg);
    }

    if (rc == 0) {
        return chat_order_reply(ctx, 200, order_id);   /* said twice */
    }

    return chat_order_answer(ctx, 200, order_id, 1);
}


int
chat_op_admin_order_deliver(chat_op_ctx_t *ctx)
{
    int      rc;
    int64_t  order_id;

    rc = chat_op_require_admin(ctx);
    if (rc != 1) {
        return rc;
    }

    rc = chat_op_integer(ctx, "order_id", 1, 1, &order_id);
    if (rc != 1) {
        return rc;
    }

    return chat_deliver_answer(ctx, order_id);
}


/*
 * carrier.delivery {event_id, order_id, status: "delivered"}: the
 * carrier's webhook, for accounts of role carrier (or admin).  Each
 * event id counts once: the same event again answers the order as it
 * stands, the same id for another order is 409.
 */
int
chat_op_carrier_delivery(chat_op_ctx_t *ctx)
{
    int           rc;
    char          id[24], who[24];
    int64_t       order_id;
    PGresult     *res;
    const char   *values[3], *event;
    const cJSON  *status;

    if (!(ctx->cmd->uid > 0
          && ((ctx->cmd->role_len == 7
               && memcmp(ctx->cmd->role, "carrier", 7) == 0)
              || (ctx->cmd->role_len == 5
                  && memcmp(ctx->cmd->role, "admin", 5) == 0))))
    {
        return chat_op_error(ctx, 403, "forbidden",
                             "this needs a carrier's account");
    }

    event = chat_op_string(ctx, "event_id");
    if (event == NULL) {
        return ctx->reply != NULL ? 0 : -1;
    }

    if (event[0] == '\0' || strlen(event) > 128) {
        return chat_op_invalid(ctx, "event_id must be 1..128 characters");
    }

    rc = chat_op_integer(ctx, "order_id", 1, 1, &order_id);
    if (rc != 1) {
        return rc;
    }

    status = cJSON_GetObjectItemCaseSensitive(ctx->body, "status");
    if (!cJSON_IsString(status)
        || strcmp(status->valuestring, "delivered") != 0)
    {
        return chat_op_invalid(ctx, "status must be \"delivered\"");
    }

    values[0] = event;
    values[1] = chat_i64(id, order_id);
    values[2] = chat_i64(who, ctx->cmd->uid);

    res = chat_db_query(ctx->db,
              "WITH i AS ("
              "  INSERT INTO carrier_events (event_id, order_id, status,"
              "      actor_id)"
              "  SELECT $1, id, 'delivered', $3 FROM orders WHERE id = $2"
              "  ON CONFLICT (event_id) DO NOTHING RETURNING order_id"
              ") "
              "SELECT (SELECT count(*) FROM i),"
              "       (SELECT order_id FROM carrier_events"
              "         WHERE event_id = $1)",
              3, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        /* seen before (or no such order) */
        if (PQgetisnull(res, 0, 1)) {
            PQclear(res);
            return chat_op_no_order(ctx);
        }

        rc = strtoll(PQgetvalue(res, 0, 1), NULL, 10) == order_id;
        PQclear(res);

        return rc ? chat_order_reply(ctx, 200, order_id)
                  : chat_op_error(ctx, 409, "event_id_reused", "this "
                                  "event id was sent for another order");
    }

    PQclear(res);

    return chat_deliver_answer(ctx, order_id);
}
