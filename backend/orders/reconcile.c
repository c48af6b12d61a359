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
 * then, outside any transaction, for each one:
 *
 *   charge: GET /v1/payments?idempotency_key=K
 *     succeeded (or refunded)  -> paid
 *     declined                 -> payment_failed, stock released
 *     processing, or no answer -> asked again next lease
 *     no such payment          -> the provider never saw it: once the
 *                                 order's reservation has lapsed
 *                                 (--reservation-ttl-ms), cancelled and
 *                                 released; before that, asked again
 *   refund: GET /v1/payments/{id}
 *     refunded                 -> refunded (stock back if not shipped)
 *     succeeded                -> the refund never happened: the attempt
 *                                 is closed as failed; an admin may retry
 *
 * Never a guess: only the provider's record settles anything.  The one
 * verdict drawn from an absence ("no such payment") is guarded twice: the
 * lease has passed (the original call has hit its deadline) and the
 * settlement checks that nobody claimed the attempt since this pass did
 * (a client retry resuming the checkout takes a new claim under the
 * order's row lock before it calls the provider).
 *
 * What it does not do: charge (it has no card: numbers are never
 * stored), or retry a refund on its own.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ops.h"
#include "orders.h"
#include "payment.h"
#include "reconcile.h"



/* Closes a refund attempt the provider says never happened. */
static int
chat_reconcile_refund_lost(chat_db_t *db, const char *attempt_id)
{
    PGresult    *res;
    const char  *values[1];

    values[0] = attempt_id;

    res = chat_db_query(db,
              "UPDATE payment_attempts SET status = 'failed',"
              "       failure_code = 'not_refunded', updated_at = now()"
              " WHERE id = $1 AND status = 'pending'",
              1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);
    return 0;
}


int
chat_reconcile(chat_db_t *db, const chat_config_t *cfg,
    chat_events_t *events)
{
    int                i, n, rc, settled, claims;
    char               lease[24];
    int64_t            order_id, admin;
    PGresult          *res;
    const char        *values[1], *kind, *key, *ref, *lapsed;
    chat_pay_result_t  pay;

    values[0] = chat_i64(lease, cfg->payment_timeout_ms
                                + cfg->reconcile_interval_ms);

    res = chat_db_query(db,
              "UPDATE payment_attempts a"
              "   SET lease_until = now() + $1::int * interval '1 millisecond',"
              "       claims = claims + 1, updated_at = now()"
              " WHERE id IN (SELECT id FROM payment_attempts"
              "               WHERE status = 'pending'"
              "                 AND lease_until <= now()"
              "               ORDER BY lease_until LIMIT 16"
              "               FOR UPDATE SKIP LOCKED)"
              " RETURNING a.id, a.order_id, a.kind, a.idempotency_key,"
              "   a.claims,"
              "   (SELECT payment_ref FROM orders WHERE id = a.order_id),"
              "   (SELECT reserved_until <= now() FROM orders"
              "     WHERE id = a.order_id)",
              1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    n = PQntuples(res);
    settled = 0;

    for (i = 0; i < n; i++) {
        order_id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        kind = PQgetvalue(res, i, 2);
        key = PQgetvalue(res, i, 3);
        claims = atoi(PQgetvalue(res, i, 4));
        ref = PQgetvalue(res, i, 5);
        lapsed = PQgetvalue(res, i, 6);
        rc = 0;

        if (strcmp(kind, "refund") == 0) {
            if (PQgetisnull(res, i, 5)) {
                continue;
            }

            chat_payment_get(cfg, ref, &pay);

            if (pay.state == CHAT_PAY_REFUNDED) {
                admin = 0;
                rc = chat_order_settle_refund(db, order_id, "reconciled",
                                              admin, events);
            } else if (pay.state == CHAT_PAY_SUCCEEDED) {
                rc = chat_reconcile_refund_lost(db, PQgetvalue(res, i, 0));
            }

        } else {
            chat_payment_lookup(cfg, key, &pay);

            switch (pay.state) {

            case CHAT_PAY_SUCCEEDED:
            case CHAT_PAY_REFUNDED:
                rc = chat_order_settle(db, order_id, CHAT_SETTLE_PAID,
                                       pay.id, NULL, -1, events);
                break;

            case CHAT_PAY_DECLINED:
                rc = chat_order_settle(db, order_id, CHAT_SETTLE_FAILED,
                                       pay.id, pay.code, -1, events);
                break;

            case CHAT_PAY_NOT_FOUND:
                if (strcmp(lapsed, "t") == 0) {
                    rc = chat_order_settle(db, order_id, CHAT_SETTLE_EXPIRED,
                                           NULL, NULL, claims, events);
                }
                break;

            default:
                break;
            }
        }

        chat_log_info("reconcile: order %lld %s (key %s): provider says %s"
                      "%s", (long long) order_id, kind, key,
                      chat_pay_state_text(pay.state),
                      rc > 0 ? "; settled" : "");

        if (rc < 0) {
            PQclear(res);
            return -1;
        }

        settled += rc > 0;
    }

    PQclear(res);
    return settled;
}
