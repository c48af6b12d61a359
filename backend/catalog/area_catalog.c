/*
 * area_catalog.c: the catalog area: reads, search and suggestions,
 * reviews and the back office's books, warehouses and stock, categories
 * and authors (op_catalog.c, op_search.c, op_review.c,
 * op_admin_catalog.c, op_admin_stock.c, op_admin_taxonomy.c).
 *
 * Writes name what they touched of the edge's read cache (their touches
 * hook, catalog_cache.c); before anyone is answered the area bumps those
 * generations for every finished job of the batch, whatever its area (a
 * checkout touches its books), so no reader gets an old page after the
 * writer's answer.
 *
 * Its periodic task, on the admin lane, brings search's set of dense
 * words up to date (search_dense_pairs_refresh(), sql/022): a catalog
 * that grows from empty gets them without an operator.
 */

#include <stdlib.h>

#include <libpq-fe.h>

#include "area.h"
#include "catalog_cache.h"
#include "log.h"


static const chat_op_t  chat_catalog_ops[] = {
    { "catalog.categories", chat_op_catalog_categories, NULL,
      CHAT_OP_REPLICA | CHAT_OP_REPLICA_CACHED, NULL, NULL },
    { "catalog.author", chat_op_catalog_author, NULL,
      CHAT_OP_REPLICA | CHAT_OP_REPLICA_CACHED, NULL, NULL },
    { "catalog.browse", chat_op_catalog_browse, NULL,
      CHAT_OP_REPLICA | CHAT_OP_REPLICA_CACHED, NULL, NULL },
    { "catalog.search", chat_op_catalog_search, NULL,
      CHAT_OP_REPLICA | CHAT_OP_REPLICA_CACHED, NULL, NULL },
    { "catalog.suggest", chat_op_catalog_suggest, NULL,
      CHAT_OP_REPLICA | CHAT_OP_REPLICA_CACHED, NULL, NULL },
    { "catalog.book", chat_op_catalog_book, NULL,
      CHAT_OP_REPLICA | CHAT_OP_REPLICA_CACHED, NULL, NULL },
    { "catalog.reviews", chat_op_catalog_reviews, NULL,
      CHAT_OP_REPLICA | CHAT_OP_REPLICA_CACHED, NULL, NULL },
    { "catalog.review.create", chat_op_catalog_review_create, NULL,
      CHAT_OP_LOGGED, chat_catalog_touches_book, NULL },
    { "admin.book.create", chat_op_admin_book_create, NULL,
      CHAT_OP_LOGGED, chat_catalog_touches_lists, NULL },
    { "admin.book.update", chat_op_admin_book_update, NULL,
      CHAT_OP_LOGGED, chat_catalog_touches_book, NULL },
    { "admin.book.delete", chat_op_admin_book_delete, NULL,
      CHAT_OP_LOGGED, chat_catalog_touches_book, NULL },
    { "admin.warehouse.create", chat_op_admin_warehouse_create, NULL,
      CHAT_OP_LOGGED, NULL, NULL },
    { "admin.warehouse.list", chat_op_admin_warehouse_list, NULL, 0, NULL,
      NULL },
    { "admin.inventory.set", chat_op_admin_inventory_set, NULL,
      CHAT_OP_LOGGED, chat_catalog_touches_stock, NULL },
    { "admin.inventory.adjust", chat_op_admin_inventory_adjust, NULL,
      CHAT_OP_LOGGED, chat_catalog_touches_stock, NULL },
    { "admin.inventory.book", chat_op_admin_inventory_book, NULL, 0, NULL,
      NULL },
    { "admin.category.create", chat_op_admin_category_create, NULL,
      CHAT_OP_LOGGED, chat_catalog_touches_lists, NULL },
    { "admin.category.update", chat_op_admin_category_update, NULL,
      CHAT_OP_LOGGED, chat_catalog_touches_named, NULL },
    { "admin.author.create", chat_op_admin_author_create, NULL,
      CHAT_OP_LOGGED, chat_catalog_touches_lists, NULL },
    { "admin.author.update", chat_op_admin_author_update, NULL,
      CHAT_OP_LOGGED, chat_catalog_touches_named, NULL },
};


/* Words cross the dense share slowly (a catalog grows by thousands of
 * books, not by the minute), and a word that joins is counted over every
 * title (24 s at a million books): every ten minutes is often enough. */
static int
chat_catalog_dense_interval(const chat_config_t *cfg)
{
    (void) cfg;
    return 10 * 60 * 1000;
}


/* When the set changes, counting a new word's pairs reads every title,
 * longer than a command's statement timeout: a transaction of its own
 * with a longer one. */
static void
chat_catalog_dense_refresh(chat_db_t *db, const chat_config_t *cfg,
    chat_events_t *events, chat_suspend_t *calls)
{
    PGresult  *res;

    (void) cfg;
    (void) events;
    (void) calls;

    if (chat_db_exec(db, "BEGIN; SET LOCAL statement_timeout = '10min'")
        != 0)
    {
        return;             /* logged; the next run tries again */
    }

    res = chat_db_query(db, "SELECT search_dense_pairs_refresh()",
                        0, NULL, NULL, NULL);
    if (res == NULL || chat_db_exec(db, "COMMIT") != 0) {
        if (res != NULL) {
            PQclear(res);
        }
        (void) chat_db_exec(db, "ROLLBACK");
        return;
    }

    if (PQntuples(res) == 1 && atoi(PQgetvalue(res, 0, 0)) > 0) {
        chat_log_info("catalog: search's dense words changed (%s joined or"
                      " left)", PQgetvalue(res, 0, 0));
    }

    PQclear(res);
}


static const chat_task_t  chat_catalog_tasks[] = {
    { "dense words", CHAT_LANE_ADMIN, chat_catalog_dense_interval,
      chat_catalog_dense_refresh },
};


const chat_area_t  chat_area_catalog = {
    "catalog", CHAT_AREA_OPS(chat_catalog_ops),
    NULL, chat_catalog_cache_bump, NULL,
    chat_catalog_tasks, sizeof(chat_catalog_tasks) / sizeof(chat_catalog_tasks[0])
};
