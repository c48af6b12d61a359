/*
 * orders.h: what the order operations and the reconciler share: the
 * order object, stock release, and settling a payment's outcome.  See
 * orders.c.
 */

#ifndef CHAT_ORDERS_H
#define CHAT_ORDERS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "event.h"

/*
 * A cancelled order's charge may still land: the request can reach the
 * provider after we gave up on it.  Its attempt is looked up every
 * CHAT_LATE_CHARGE_EVERY for CHAT_LATE_CHARGE_WATCH after the
 * cancellation (reconcile.c), and a charge found is refunded.
 */
#define CHAT_LATE_CHARGE_WATCH  "10 minutes"
#define CHAT_LATE_CHARGE_EVERY  "5 seconds"

typedef enum {
    CHAT_SETTLE_PAID = 0,       /* the charge succeeded */
    CHAT_SETTLE_FAILED,         /* declined: release the stock */
    CHAT_SETTLE_EXPIRED         /* the provider never saw it and the
                                   reservation lapsed: release, cancel */
} chat_settle_e;

/* The API's order object for order_id (NULL: no such order, or an error;
 * *missing tells which). */
cJSON *chat_order_json(chat_db_t *db, int64_t order_id, int *missing);

/* Queues {"type":"order","order":order} for the order's owner. */
int chat_order_event(chat_events_t *events, const cJSON *order);

/*
 * Inside the caller's transaction, with the order row locked: gives the
 * order's held reservations back (stock.reserved down, a stock_ledger row
 * each, reservations released), stock rows locked in (book, warehouse)
 * order first.  0, or -1.
 */
int chat_order_release(chat_db_t *db, int64_t order_id, int64_t actor,
    const char *reason);

/*
 * In a transaction of its own: if the order is still pending_payment
 * (and, when claims >= 0, its charge attempt has not been claimed by
 * anyone since the caller's claim number claims), settles it: paid (the
 * cart lines bought leave the cart), payment_failed or cancelled (stock
 * released), the charge attempt closed, the checkout's command_log row
 * completed with 201 {order}, and the order event queued on events (may
 * be NULL).  last4 (the card's last four digits, from the provider's
 * payment; NULL or "" when it did not say) is kept on a paid or failed
 * order.  Returns 1 when settled now, with *order set to the order
 * object when order is not NULL (the caller deletes it), 0 when there
 * was nothing to do, -1 on failure (rolled back).
 */
int chat_order_settle(chat_db_t *db, int64_t order_id, chat_settle_e how,
    const char *provider_id, const char *code, const char *last4,
    int claims, chat_events_t *events, cJSON **order);

/*
 * In a transaction of its own: the provider confirmed refund attempt
 * attempt_id (refund id): its lines' refunded quantities and the order's
 * refunded_cents grow, the copies go back to stock when the order had
 * not shipped, an order_refunds row records it, the order becomes
 * refunded once every line is (not a late charge's: that order stays
 * cancelled), and the order event is queued.  1; 0 when the attempt was
 * settled already (never twice); -1.
 */
int chat_order_settle_refund(chat_db_t *db, int64_t attempt_id,
    const char *refund_id, int64_t actor, chat_events_t *events);

/*
 * The provider charged payment_id for order_id, which is not paid
 * (cancelled when its reservation lapsed, or failed): queues a refund
 * attempt of the whole charge (reason late_charge, due at once), which
 * the reconciler carries out.  1 when queued now, 0 when there was
 * nothing to do (the order is paid by it, or already queued), -1.
 */
int chat_order_late_charge(chat_db_t *db, int64_t order_id,
    const char *payment_id);

/*
 * Marks a shipped order delivered, with the order row locked (inside the
 * caller's transaction).  1 when delivered now; 0 when not changed, with
 * the status it has in was ("" when there is no such order); -1.
 */
int chat_order_deliver(chat_db_t *db, int64_t order_id, char *was,
    size_t size);

#endif /* CHAT_ORDERS_H */
