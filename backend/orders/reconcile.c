/*
 * reconcile.c: the reconciler, a periodic task of every worker (every
 * --reconcile-interval-ms, from the worker's tick).
 *
 * A payment attempt stays pending when the provider's answer was not
 * definite (a timeout, a 5xx, a dropped connection) or never came (the
 * worker died between reserving and hearing back).  Each attempt has a
 * lease: until lease_until nobody else asks about it (the checkout that
 * made it is still waiting on its own call).  A pass:
 *
 *   UPDATE payment_attempts SET lease_until = now() + interval,
 *          claims = claims + 1
 *    WHERE id IN (SELECT id ... WHERE status = 'pending'
 *                   AND lease_until <= now() ... FOR UPDATE SKIP LOCKED)
 *   RETURNING ...                       several workers never ask twice
 *
 * then, outside any transaction, starts a lookup for each one on the
 * worker's loop (chat_suspend_task_call), so the lookups run side by side
 * and the lane's commands go on meanwhile; as each answers:
 *
 *   charge: GET /v1/payments?idempotency_key=K
 *     succeeded (or refunded)  -> paid
 *     declined                 -> payment_failed, stock released
 *     processing, or no answer -> asked again next lease
 *     no such payment          -> the provider never saw it: once the
 *                                 order's reservation has lapsed
 *                                 (--reservation-ttl-ms), cancelled and
 *                                 released; before that, asked again
 *     succeeded on an order no longer pending (cancelled meanwhile)
 *                              -> a late charge: its refund is queued
 *   a cancelled order's charge (watched for a while after the
 *   cancellation, orders.c): GET /v1/payments?idempotency_key=K
 *     succeeded                -> a late charge: its refund is queued
 *     no such payment yet      -> asked again later
 *   refund: POST /v1/payments/{id}/refunds again with the attempt's key
 *   and amount (the provider answers a repeat with the refund it made,
 *   or makes it now if the first request never reached it)
 *     refunded                 -> settled: lines, refunded_cents, ledger,
 *                                 stock back if not shipped (orders.c)
 *     refused                  -> the attempt is closed as failed
 *
 * Never a guess: only the provider's record settles anything.  The one
 * verdict drawn from an absence ("no such payment") is guarded twice: the
 * lease has passed (the original call has hit its deadline) and the
 * settlement checks that nobody claimed the attempt since this pass did
 * (a client retry resuming the checkout takes a new claim under the
 * order's row lock before it calls the provider).
 *
 * A pass starts only when the previous one's lookups have all answered
 * (each within --payment-timeout-ms, inside the lease), and claims at
 * most CHAT_RECONCILE_PAGE attempts, so a backlog after a processor
 * outage drains a page per interval without flooding the processor.
 *
 * What it does not do: charge (it has no card: numbers are never
 * stored).  It does carry out refunds: a refund attempt's key and amount
 * make repeating it safe.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ops.h"
#include "orders.h"
#include "payment.h"
#include "reconcile.h"


#define CHAT_RECONCILE_PAGE  64

/* one claimed attempt, carried by its lookup call */
typedef struct {
    char     attempt_id[24];
    int64_t  order_id;
    int      refund;
    int      claims;
    int      lapsed;            /* the order's reservation has lapsed */
    int      watched;           /* a cancelled order's charge, watched */
    int64_t  attempt;
    char     key[256];
} chat_reconcile_item_t;


/* Closes a refund attempt the provider refuses (code). */
static int
chat_reconcile_refund_refused(chat_db_t *db, const char *attempt_id,
    const char *code)
{
    PGresult    *res;
    const char  *values[2];

    values[0] = attempt_id;
    values[1] = code;

    res = chat_db_query(db,
              "UPDATE payment_attempts SET status = 'failed',"
              "       failure_code = $2, updated_at = now()"
              " WHERE id = $1 AND status = 'pending'",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);
    return 0;
}


/* A lookup has answered: settles what the provider's record says. */
static void
chat_reconcile_done(chat_db_t *db, const chat_config_t *cfg,
    chat_http_call_t *call, chat_events_t *events)
{
    int                     rc;
    chat_pay_result_t       pay;
    chat_reconcile_item_t  *it = call->data;

    (void) cfg;
    rc = 0;

    if (it->refund) {
        chat_payment_refund_result(call, &pay);

        if (pay.state == CHAT_PAY_REFUNDED) {
            rc = chat_order_settle_refund(db, it->attempt, pay.id, 0,
                                          events);
        } else if (pay.state == CHAT_PAY_DECLINED) {
            rc = chat_reconcile_refund_refused(db, it->attempt_id, pay.code);
        }

    } else if (it->watched) {
        chat_payment_lookup_result(call, &pay);

        if (pay.state == CHAT_PAY_SUCCEEDED) {
            rc = chat_order_late_charge(db, it->order_id, pay.id);
        }

    } else {
        chat_payment_lookup_result(call, &pay);

        switch (pay.state) {

        case CHAT_PAY_SUCCEEDED:
        case CHAT_PAY_REFUNDED:
            rc = chat_order_settle(db, it->order_id, CHAT_SETTLE_PAID,
                                   pay.id, NULL, pay.last4, -1, events,
                                   NULL);
            if (rc == 0 && pay.state == CHAT_PAY_SUCCEEDED) {
                rc = chat_order_late_charge(db, it->order_id, pay.id);
            }
            break;

        case CHAT_PAY_DECLINED:
            rc = chat_order_settle(db, it->order_id, CHAT_SETTLE_FAILED,
                                   pay.id, pay.code, pay.last4, -1, events,
                                   NULL);
            break;

        case CHAT_PAY_NOT_FOUND:
            if (it->lapsed) {
                rc = chat_order_settle(db, it->order_id, CHAT_SETTLE_EXPIRED,
                                       NULL, NULL, NULL, it->claims, events,
                                       NULL);
            }
            break;

        default:
            break;
        }
    }

    /* a failure leaves the attempt pending: asked again after its lease */
    chat_log_info("reconcile: order %lld %s (key %s): provider says %s%s",
                  (long long) it->order_id, it->refund ? "refund" : "charge",
                  it->key, chat_pay_state_text(pay.state),
                  rc > 0 ? "; settled" : rc < 0 ? "; settling failed" : "");
}


int
chat_reconcile(chat_db_t *db, const chat_config_t *cfg,
    chat_events_t *events, chat_suspend_t *calls)
{
    int                     i, n, started;
    char                    lease[24], page[24];
    PGresult               *res;
    const char             *values[2], *ref;
    chat_http_call_t       *call;
    chat_reconcile_item_t  *it;

    (void) events;

    if (chat_suspend_calls(calls) > 0) {
        return 0;               /* the last pass is still asking */
    }

    values[0] = chat_i64(lease, cfg->payment_timeout_ms
                                + cfg->reconcile_interval_ms);
    values[1] = chat_i64(page, CHAT_RECONCILE_PAGE);

    res = chat_db_query(db,
              "UPDATE payment_attempts a"
              "   SET lease_until = now() + CASE WHEN a.status = 'pending'"
              "       THEN $1::int * interval '1 millisecond'"
              "       ELSE interval '" CHAT_LATE_CHARGE_EVERY "' END,"
              "       claims = claims + 1, updated_at = now()"
              " WHERE id IN (SELECT id FROM payment_attempts"
              "               WHERE (status = 'pending'"
              "                  AND lease_until <= now())"
              "                  OR (status = 'abandoned'"
              "                  AND watch_until > now()"
              "                  AND lease_until <= now())"
              "               ORDER BY lease_until LIMIT $2::int"
              "               FOR UPDATE SKIP LOCKED)"
              " RETURNING a.id, a.order_id, a.kind, a.idempotency_key,"
              "   a.claims,"
              "   coalesce(a.payment_ref,"
              "            (SELECT payment_ref FROM orders WHERE id = a.order_id)),"
              "   (SELECT reserved_until <= now() FROM orders"
              "     WHERE id = a.order_id),"
              "   a.status = 'abandoned', a.amount_cents",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    n = PQntuples(res);
    started = 0;

    for (i = 0; i < n; i++) {
        it = calloc(1, sizeof(chat_reconcile_item_t));
        if (it == NULL) {
            break;              /* the rest are asked after their lease */
        }

        snprintf(it->attempt_id, sizeof(it->attempt_id), "%s",
                 PQgetvalue(res, i, 0));
        it->order_id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        it->refund = strcmp(PQgetvalue(res, i, 2), "refund") == 0;
        snprintf(it->key, sizeof(it->key), "%s", PQgetvalue(res, i, 3));
        it->claims = atoi(PQgetvalue(res, i, 4));
        it->lapsed = strcmp(PQgetvalue(res, i, 6), "t") == 0;
        it->watched = strcmp(PQgetvalue(res, i, 7), "t") == 0;
        it->attempt = strtoll(it->attempt_id, NULL, 10);

        if (it->refund && PQgetisnull(res, i, 5)) {
            free(it);
            continue;
        }

        ref = PQgetvalue(res, i, 5);
        call = it->refund
               ? chat_payment_refund_call(cfg, ref, it->key,
                                          strtoll(PQgetvalue(res, i, 8),
                                                  NULL, 10))
               : chat_payment_lookup_call(cfg, it->key);
        if (call == NULL) {
            free(it);
            break;
        }

        call->data = it;
        call->cleanup = free;

        if (chat_suspend_task_call(calls, call, chat_reconcile_done) == 0) {
            started++;
        }
    }

    PQclear(res);
    return started;
}
