/*
 * orders.c: orders as the order operations (op_order.c) and the
 * reconciler (reconcile.c) both change them.
 *
 * An order moves pending_payment -> paid | payment_failed | cancelled
 * exactly once.  Who moves it does not matter (the checkout that made
 * it, a retry of that checkout, the reconciler of another worker): each
 * one locks the order row, looks at the status, and only a still
 * pending order is settled, so the first one wins and the others find
 * nothing to do.  The settlement also completes the checkout's
 * command_log row with the final reply, so every later retry of the key
 * gets exactly that answer.
 *
 * Paid, the common case, is one statement (its own transaction): the
 * order and its charge attempt are locked by a FOR UPDATE in the first
 * CTE, and the others update them, empty the cart lines bought and store
 * the reply.  A concurrent settler that got there first makes the row
 * fail the "still pending" test when it is re-checked after the lock
 * wait, so nothing happens, as with the longer transactions of the other
 * outcomes.  One round trip instead of six: a worker settles hundreds of
 * checkouts a second, and under load every round trip waits its turn
 * for a CPU.
 *
 * Stock.  A pending or paid order holds its copies in stock.reserved
 * (order_reservations says which warehouse).  Failing, expiring and
 * refunding before shipment give them back; shipping takes them off
 * on_hand (op_order.c).  Every change to stock writes a stock_ledger row
 * in the same transaction.  Stock rows are always locked in (book_id,
 * warehouse_id) order, the order the checkout locks them in, so these
 * transactions cannot deadlock with checkouts on stock.  An order row
 * is locked before stock rows everywhere.
 *
 * What it does not do: talk to the provider (payment.c) or decide when
 * an outcome is definite (the callers do).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_event.h"
#include "log.h"
#include "ops.h"
#include "orders.h"


static const char  chat_sql_order_json[] =
    "SELECT order_json(o)::text FROM orders o WHERE o.id = $1";


cJSON *
chat_order_json(chat_db_t *db, int64_t order_id, int *missing)
{
    char         id[24];
    cJSON       *order;
    PGresult    *res;
    const char  *values[1];

    *missing = 0;
    values[0] = chat_i64(id, order_id);

    res = chat_db_query_prepared(db, chat_sql_order_json, 1, values, NULL,
                                 NULL);
    if (res == NULL) {
        return NULL;
    }

    if (PQntuples(res) == 0) {
        *missing = 1;
        PQclear(res);
        return NULL;
    }

    order = cJSON_Parse(PQgetvalue(res, 0, 0));
    PQclear(res);

    if (order == NULL) {
        chat_log_error("order %lld: order_json is not JSON",
                       (long long) order_id);
    }

    return order;
}


int
chat_order_event(chat_events_t *events, const cJSON *order)
{
    int64_t       uid;
    cJSON        *ev;
    const cJSON  *user;
    int           rc;

    if (events == NULL) {
        return 0;
    }

    user = cJSON_GetObjectItemCaseSensitive(order, "user_id");
    if (!cJSON_IsNumber(user)) {
        return -1;
    }

    uid = (int64_t) user->valuedouble;

    ev = cJSON_CreateObject();
    if (ev == NULL
        || cJSON_AddStringToObject(ev, "type", "order") == NULL
        || !cJSON_AddItemToObject(ev, "order", cJSON_Duplicate(order, 1)))
    {
        cJSON_Delete(ev);
        return -1;
    }

    rc = chat_events_add(events, ev, &uid, 1);
    cJSON_Delete(ev);

    return rc;
}


/* Runs sql, a string constant (prepared once per connection: these run
 * for every checkout), with the given text parameters; 0 or -1. */
static int
chat_order_exec(chat_db_t *db, const char *sql, int n,
    const char *const *values)
{
    PGresult  *res;

    res = chat_db_query_prepared(db, sql, n, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);
    return 0;
}


int
chat_order_release(chat_db_t *db, int64_t order_id, int64_t actor,
    const char *reason)
{
    char         id[24], who[24];
    const char  *values[3];

    values[0] = chat_i64(id, order_id);
    values[1] = reason;
    values[2] = actor > 0 ? chat_i64(who, actor) : NULL;

    /* lock first, in the checkout's order: then change */
    if (chat_order_exec(db,
            "SELECT 1 FROM stock s JOIN order_reservations r"
            " ON r.book_id = s.book_id AND r.warehouse_id = s.warehouse_id"
            " WHERE r.order_id = $1 AND r.state = 'held'"
            " ORDER BY s.book_id, s.warehouse_id FOR UPDATE OF s",
            1, values) != 0)
    {
        return -1;
    }

    return chat_order_exec(db,
        "WITH r AS ("
        "  UPDATE order_reservations SET state = 'released'"
        "   WHERE order_id = $1 AND state = 'held'"
        "   RETURNING book_id, warehouse_id, quantity"
        "), s AS ("
        "  UPDATE stock SET reserved = stock.reserved - r.quantity,"
        "         updated_at = now()"
        "    FROM r WHERE stock.book_id = r.book_id"
        "     AND stock.warehouse_id = r.warehouse_id"
        ") "
        "INSERT INTO stock_ledger (book_id, warehouse_id, delta_reserved,"
        "    reason, actor_id, order_id)"
        " SELECT book_id, warehouse_id, -quantity, $2, $3::bigint, $1"
        "   FROM r",
        3, values);
}


/* Completes the checkout's command_log row and queues the event. */
static int
chat_order_finish(chat_db_t *db, int64_t order_id, cJSON **order)
{
    int          missing;
    char         id[24], *reply;
    cJSON       *root;
    const char  *values[2];

    *order = chat_order_json(db, order_id, &missing);
    if (*order == NULL) {
        return -1;
    }

    root = cJSON_CreateObject();
    if (root == NULL
        || !cJSON_AddItemReferenceToObject(root, "order", *order))
    {
        cJSON_Delete(root);
        goto failed;
    }

    reply = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (reply == NULL) {
        goto failed;
    }

    values[0] = chat_i64(id, order_id);
    values[1] = reply;

    if (chat_order_exec(db,
            "UPDATE command_log SET status = 201, reply = $2"
            "  FROM orders o WHERE o.id = $1 AND command_log.key ="
            "  o.checkout_key",
            2, values) != 0)
    {
        cJSON_free(reply);
        goto failed;
    }

    cJSON_free(reply);
    return 0;

failed:

    cJSON_Delete(*order);
    *order = NULL;
    return -1;
}


/* The order's event, and the order for the caller (or freed). */
static void
chat_order_settled(int64_t order_id, cJSON *order, chat_events_t *events,
    cJSON **settled)
{
    if (chat_order_event(events, order) != 0) {
        chat_log_error("order %lld: its event could not be queued",
                       (long long) order_id);
    }

    if (settled != NULL) {
        *settled = order;
    } else {
        cJSON_Delete(order);
    }
}


static const char  chat_sql_order_paid[] =
    "WITH o AS ("
    "  SELECT o.id, o.user_id FROM orders o"
    "    JOIN payment_attempts a ON a.order_id = o.id AND a.kind = 'charge'"
    "   WHERE o.id = $1 AND o.status = 'pending_payment'"
    "     AND ($3::int < 0 OR a.claims = $3::int)"
    "   FOR UPDATE OF o, a"
    "), a AS ("
    "  UPDATE payment_attempts SET status = 'succeeded',"
    "         provider_id = $2, updated_at = now()"
    "   WHERE order_id IN (SELECT id FROM o) AND kind = 'charge'"
    "), c AS ("
    "  DELETE FROM cart_items c USING o, order_items i"
    "   WHERE i.order_id = o.id AND c.user_id = o.user_id"
    "     AND c.book_id = i.book_id"
    "), u AS ("
    "  UPDATE orders SET status = 'paid', payment_ref = $2,"
    "         card_last4 = coalesce($4, card_last4),"
    "         paid_at = now(), updated_at = now(), reserved_until = NULL"
    "   WHERE id IN (SELECT id FROM o)"
    "  RETURNING user_id, checkout_key,"
    "            jsonb_build_object('order', order_json(orders)) AS reply"
    "), l AS ("
    "  UPDATE command_log SET status = 201, reply = u.reply::text"
    "    FROM u WHERE command_log.key = u.checkout_key"
    ") "
    "SELECT user_id, (reply -> 'order')::text FROM u";


/* chat_order_settle's paid case, in one statement. */
static int
chat_order_settle_paid(chat_db_t *db, int64_t order_id,
    const char *provider_id, const char *last4, int claims,
    chat_events_t *events, cJSON **settled)
{
    char         id[24], cl[24];
    cJSON       *order;
    PGresult    *res;
    const char  *values[4];

    values[0] = chat_i64(id, order_id);
    values[1] = provider_id;
    values[2] = chat_i64(cl, claims);
    values[3] = last4;

    res = chat_db_query_prepared(db, chat_sql_order_paid, 4, values, NULL,
                                 NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;                       /* settled already: first wins */
    }

    chat_log_info("order %lld (user %s): paid", (long long) order_id,
                  PQgetvalue(res, 0, 0));

    order = cJSON_Parse(PQgetvalue(res, 0, 1));
    PQclear(res);

    if (order == NULL) {
        /* committed; only our copy of the answer is lost: the caller
         * answers from the log instead */
        chat_log_error("order %lld: order_json is not JSON",
                       (long long) order_id);
        return 0;
    }

    chat_order_settled(order_id, order, events, settled);
    return 1;
}


int
chat_order_settle(chat_db_t *db, int64_t order_id, chat_settle_e how,
    const char *provider_id, const char *code, const char *last4,
    int claims, chat_events_t *events, cJSON **settled)
{
    int          n;
    char         id[24];
    cJSON       *order;
    PGresult    *res;
    const char  *values[4];
    int64_t      uid;

    if (last4 != NULL && last4[0] == '\0') {
        last4 = NULL;
    }

    if (how == CHAT_SETTLE_PAID) {
        return chat_order_settle_paid(db, order_id, provider_id, last4,
                                      claims, events, settled);
    }

    values[0] = chat_i64(id, order_id);
    values[1] = provider_id;
    values[2] = code;
    values[3] = last4;

    if (chat_db_exec(db, "BEGIN") != 0) {
        return -1;
    }

    res = chat_db_query_prepared(db,
              "SELECT o.status, o.user_id, a.claims FROM orders o"
              "  JOIN payment_attempts a ON a.order_id = o.id"
              "   AND a.kind = 'charge'"
              " WHERE o.id = $1 FOR UPDATE OF o, a",
              1, values, NULL, NULL);
    if (res == NULL) {
        goto failed;
    }

    if (PQntuples(res) == 0
        || strcmp(PQgetvalue(res, 0, 0), "pending_payment") != 0
        || (claims >= 0 && atoi(PQgetvalue(res, 0, 2)) != claims))
    {
        PQclear(res);
        (void) chat_db_exec(db, "ROLLBACK");
        return 0;
    }

    uid = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);

    switch (how) {

    case CHAT_SETTLE_FAILED:
        n = chat_order_release(db, order_id, uid,
                               "payment declined: released");
        if (n == 0) {
            n = chat_order_exec(db,
                    "WITH a AS ("
                    "  UPDATE payment_attempts SET status = 'failed',"
                    "         provider_id = $2, failure_code = $3,"
                    "         updated_at = now()"
                    "   WHERE order_id = $1 AND kind = 'charge'"
                    ") "
                    "UPDATE orders SET status = 'payment_failed',"
                    "       payment_ref = $2, failure_code = $3,"
                    "       card_last4 = coalesce($4, card_last4),"
                    "       updated_at = now(), reserved_until = NULL"
                    " WHERE id = $1",
                    4, values);
        }
        break;

    default:  /* CHAT_SETTLE_EXPIRED */
        n = chat_order_release(db, order_id, 0,
                               "reservation expired: released");
        if (n == 0) {
            n = chat_order_exec(db,
                    "WITH a AS ("
                    "  UPDATE payment_attempts SET status = 'abandoned',"
                    "         failure_code = 'expired', updated_at = now(),"
                    "         watch_until = now() + interval '"
                    CHAT_LATE_CHARGE_WATCH "',"
                    "         lease_until = now() + interval '"
                    CHAT_LATE_CHARGE_EVERY "'"
                    "   WHERE order_id = $1 AND kind = 'charge'"
                    ") "
                    "UPDATE orders SET status = 'cancelled',"
                    "       failure_code = 'reservation_expired',"
                    "       cancelled_at = now(), updated_at = now(),"
                    "       reserved_until = NULL"
                    " WHERE id = $1",
                    1, values);
        }
        break;
    }

    if (n != 0 || chat_order_finish(db, order_id, &order) != 0) {
        goto failed;
    }

    if (chat_db_exec(db, "COMMIT") != 0) {
        cJSON_Delete(order);
        return -1;
    }

    chat_log_info("order %lld (user %lld): %s", (long long) order_id,
                  (long long) uid,
                  how == CHAT_SETTLE_FAILED ? "payment failed, released"
                  : "reservation expired, cancelled and released");

    chat_order_settled(order_id, order, events, settled);

    return 1;

failed:

    if (chat_db_ok(db)) {
        (void) chat_db_exec(db, "ROLLBACK");
    }

    return -1;
}


int
chat_order_settle_refund(chat_db_t *db, int64_t attempt_id,
    const char *refund_id, int64_t actor, chat_events_t *events)
{
    int          missing, late;
    char         id[24], who[24], oid[24];
    cJSON       *order;
    int64_t      order_id;
    PGresult    *res;
    const char  *values[4];

    values[0] = chat_i64(id, attempt_id);

    if (chat_db_exec(db, "BEGIN") != 0) {
        return -1;
    }

    /* the order row first (the lock order), then its attempt */
    res = chat_db_query(db,
              "SELECT o.id, o.status, a.status, a.reason = 'late_charge'"
              "  FROM payment_attempts a JOIN orders o ON o.id = a.order_id"
              " WHERE a.id = $1 AND a.kind = 'refund' FOR UPDATE OF o, a",
              1, values, NULL, NULL);
    if (res == NULL) {
        goto failed;
    }

    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 2), "pending") != 0)
    {
        PQclear(res);                   /* settled already: never twice */
        (void) chat_db_exec(db, "ROLLBACK");
        return 0;
    }

    order_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    late = strcmp(PQgetvalue(res, 0, 3), "t") == 0;

    values[1] = refund_id;
    values[2] = actor > 0 ? chat_i64(who, actor) : NULL;
    values[3] = chat_i64(oid, order_id);

    /* copies not shipped go back to stock; shipped ones are the buyer's */
    if (!late && strcmp(PQgetvalue(res, 0, 1), "paid") == 0) {
        PQclear(res);
        res = chat_db_query(db,
                  "SELECT order_release_lines(a.order_id, a.items,"
                  "       $2::bigint, 'refund: released')"
                  "  FROM payment_attempts a WHERE a.id = $1",
                  2, (const char *[]) { values[0], values[2] }, NULL, NULL);
        if (res == NULL) {
            goto failed;
        }
    }

    PQclear(res);

    /* the lines' refunded quantities (their CHECK: never more than was
     * bought), the order's refunded_cents (never more than charged), the
     * ledger row (unique per attempt), the attempt closed */
    if (chat_order_exec(db,
            "WITH a AS ("
            "  UPDATE payment_attempts SET status = 'succeeded',"
            "         provider_id = $2, updated_at = now()"
            "   WHERE id = $1"
            "  RETURNING order_id, amount_cents, coalesce(items, '[]') AS items,"
            "            coalesce(reason, 'admin') AS reason"
            "), i AS ("
            "  UPDATE order_items i SET refunded_quantity ="
            "         i.refunded_quantity + (e->>'quantity')::int"
            "    FROM a, jsonb_array_elements(a.items) e"
            "   WHERE i.order_id = a.order_id"
            "     AND i.book_id = (e->>'book_id')::bigint"
            "), l AS ("
            "  INSERT INTO order_refunds (order_id, attempt_id, amount_cents,"
            "      items, reason, provider_id, actor_id)"
            "  SELECT order_id, $1, amount_cents, items, reason, $2,"
            "         $3::bigint FROM a"
            ") "
            "UPDATE orders o SET refunded_cents = o.refunded_cents"
            "       + a.amount_cents, updated_at = now()"
            "  FROM a WHERE o.id = a.order_id",
            3, values) != 0)
    {
        goto failed;
    }

    /* every line given back: the order is refunded (a late charge's
     * order stays cancelled: it never was paid) */
    if (!late
        && chat_order_exec(db,
               "UPDATE orders o SET status = 'refunded', refunded_at = now()"
               " WHERE o.id = $1 AND o.status <> 'refunded'"
               "   AND NOT EXISTS (SELECT 1 FROM order_items i"
               "        WHERE i.order_id = o.id"
               "          AND i.refunded_quantity < i.quantity)",
               1, &values[3]) != 0)
    {
        goto failed;
    }

    order = chat_order_json(db, order_id, &missing);
    if (order == NULL) {
        goto failed;
    }

    if (chat_db_exec(db, "COMMIT") != 0) {
        cJSON_Delete(order);
        return -1;
    }

    chat_log_info("order %lld: refund attempt %lld confirmed (%s)%s",
                  (long long) order_id, (long long) attempt_id, refund_id,
                  late ? ": a late charge given back" : "");

    if (chat_order_event(events, order) != 0
        || chat_admin_event(db, events, "order", order_id, actor) != 0)
    {
        chat_log_error("order %lld: its events could not be queued",
                       (long long) order_id);
    }

    cJSON_Delete(order);
    return 1;

failed:

    if (chat_db_ok(db)) {
        (void) chat_db_exec(db, "ROLLBACK");
    }

    return -1;
}


int
chat_order_late_charge(chat_db_t *db, int64_t order_id,
    const char *payment_id)
{
    int          n;
    char         id[24];
    PGresult    *res;
    const char  *values[2];

    values[0] = chat_i64(id, order_id);
    values[1] = payment_id;

    res = chat_db_query(db,
              "WITH o AS ("
              "  SELECT o.id, a.amount_cents FROM orders o"
              "    JOIN payment_attempts a ON a.order_id = o.id"
              "     AND a.kind = 'charge'"
              "   WHERE o.id = $1"
              "     AND o.status IN ('cancelled', 'payment_failed')"
              "     AND o.payment_ref IS DISTINCT FROM $2"
              "), w AS ("
              "  UPDATE payment_attempts SET watch_until = NULL,"
              "         provider_id = $2, updated_at = now()"
              "   WHERE order_id IN (SELECT id FROM o) AND kind = 'charge'"
              ") "
              "INSERT INTO payment_attempts (order_id, kind, idempotency_key,"
              "    amount_cents, lease_until, payment_ref, reason)"
              " SELECT id, 'refund', 'late:' || id, amount_cents, now(), $2,"
              "        'late_charge' FROM o"
              " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    n = PQntuples(res);
    PQclear(res);

    if (n > 0) {
        chat_log_warn("order %lld was not paid but the provider charged it "
                      "(%s): a refund of the late charge is queued",
                      (long long) order_id, payment_id);
    }

    return n > 0;
}


int
chat_order_deliver(chat_db_t *db, int64_t order_id, char *was, size_t size)
{
    int          changed;
    char         id[24];
    PGresult    *res;
    const char  *values[1];

    values[0] = chat_i64(id, order_id);

    res = chat_db_query(db,
              "WITH o AS (SELECT id, status FROM orders WHERE id = $1"
              "            FOR UPDATE), "
              "u AS (UPDATE orders SET status = 'delivered',"
              "             delivered_at = now(), updated_at = now()"
              "       WHERE id IN (SELECT id FROM o WHERE status = 'shipped')"
              "      RETURNING id) "
              "SELECT o.status, EXISTS (SELECT 1 FROM u) FROM o",
              1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        was[0] = '\0';
        return 0;
    }

    snprintf(was, size, "%s", PQgetvalue(res, 0, 0));
    changed = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);

    return changed;
}
