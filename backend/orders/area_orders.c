/*
 * area_orders.c: the orders area: cart, checkout, order history and the
 * back office's shipping, delivery and refunds and the carrier's
 * delivery webhook (op_cart.c, op_checkout.c, op_order.c), and the reconciler that settles payments whose outcome was
 * not known (reconcile.c), a periodic task of the orders lane's workers.
 *
 * The checkout and the refund wait on the payment provider, so they run
 * alone, keep their own idempotency (op_checkout.c) and suspend while
 * the provider answers (CHAT_OP_SUSPENDS: many wait per worker, up to the
 * lane's concurrency); a checkout touches the cached pages of the books
 * it bought (catalog_cache.c).  The reconciler's lookups run on the
 * worker's loop too.
 */

#include "area.h"
#include "catalog_cache.h"
#include "reconcile.h"


static const chat_op_t  chat_orders_ops[] = {
    { "cart.get", chat_op_cart_get, NULL, 0, NULL, NULL },
    { "cart.item.put", chat_op_cart_item_put, NULL, CHAT_OP_LOGGED, NULL,
      NULL },
    { "cart.item.delete", chat_op_cart_item_delete, NULL, CHAT_OP_LOGGED,
      NULL, NULL },
    /* the checkouts a worker starts together reserve in one transaction
     * (the batch hook of a suspending op is its group lock, ops.h) */
    { "order.checkout", chat_op_order_checkout, NULL,
      CHAT_OP_ALONE | CHAT_OP_SUSPENDS, chat_catalog_touches_order,
      chat_op_order_checkout_lock },
    { "order.list", chat_op_order_list, NULL, 0, NULL, NULL },
    { "order.get", chat_op_order_get, NULL, 0, NULL, NULL },
    { "admin.order.list", chat_op_admin_order_list, NULL, 0, NULL, NULL },
    { "admin.order.ship", chat_op_admin_order_ship, NULL, CHAT_OP_LOGGED,
      NULL, NULL },
    { "admin.order.deliver", chat_op_admin_order_deliver, NULL,
      CHAT_OP_LOGGED, NULL, NULL },
    { "carrier.delivery", chat_op_carrier_delivery, NULL, CHAT_OP_LOGGED,
      NULL, NULL },
    { "admin.order.refund", chat_op_admin_order_refund, NULL,
      CHAT_OP_ALONE | CHAT_OP_SUSPENDS, NULL, NULL },
};


static int
chat_orders_reconcile_interval(const chat_config_t *cfg)
{
    return cfg->reconcile_interval_ms;
}


static void
chat_orders_reconcile(chat_db_t *db, const chat_config_t *cfg,
    chat_events_t *events, chat_suspend_t *calls)
{
    (void) chat_reconcile(db, cfg, events, calls);
}


static const chat_task_t  chat_orders_tasks[] = {
    { "reconcile", CHAT_LANE_ORDERS, chat_orders_reconcile_interval,
      chat_orders_reconcile },
};


const chat_area_t  chat_area_orders = {
    "orders", CHAT_AREA_OPS(chat_orders_ops),
    NULL, NULL, NULL,
    chat_orders_tasks, sizeof(chat_orders_tasks) / sizeof(chat_orders_tasks[0])
};
