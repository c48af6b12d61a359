/*
 * orders.h: what the order operations and the reconciler share: the
 * order object, stock release, and settling a payment's outcome.  See
 * orders.c.
 */

#ifndef CHAT_ORDERS_H
#define CHAT_ORDERS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "event.h"

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
 * In a transaction of its own: the refund of order_id succeeded at the
 * provider (refund id): refunded, its stock released when it had not
 * shipped, the refund attempt closed, the event queued.  1, 0 (not
 * refundable any more: nothing done), or -1.
 */
int chat_order_settle_refund(chat_db_t *db, int64_t order_id,
    const char *refund_id, int64_t actor, chat_events_t *events);

#endif /* CHAT_ORDERS_H */
