/*
 * op_admin_stock.c: the admin's warehouses and per-warehouse stock.
 *
 *   admin.warehouse.create  {code, name, region}                     -> 201 {warehouse}
 *   admin.warehouse.list    {}                                       -> {warehouses}
 *   admin.inventory.set     {book_id, warehouse_id, on_hand, reason?} -> {stock, ...}
 *   admin.inventory.adjust  {book_id, warehouse_id, delta, reason}   -> {stock, ...}
 *
 * Every change of on_hand writes a stock_ledger row (who, delta, why) in
 * the same transaction; the CHECKs of the stock table
 * (sql/003_catalog.sql) are the last word, but a change that would take
 * on_hand below reserved or zero is refused first with 409
 * insufficient_stock.  The
 * role is checked here again (the edge checked it first).  A change that
 * moves the book's stock_status says so in its reply, and the worker then
 * bumps the book's cache generation (catalog_cache.c).
 *
 * Books themselves are op_admin_catalog.c's.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_event.h"
#include "catalog.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"


/* ------------------------------------------------------------------------
 * Warehouses
 * --------------------------------------------------------------------- */

int
chat_op_admin_warehouse_create(chat_op_ctx_t *ctx)
{
    int          rc;
    size_t       i, n;
    cJSON       *w;
    PGresult    *res;
    const char  *code, *name, *region, *params[3];

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    code = chat_op_string(ctx, "code");
    name = code ? chat_op_string(ctx, "name") : NULL;
    region = name ? chat_op_string(ctx, "region") : NULL;
    if (region == NULL) {
        return ctx->reply ? 0 : -1;
    }

    n = strlen(code);
    for (i = 0; i < n; i++) {
        if (!((code[i] >= 'a' && code[i] <= 'z')
              || (code[i] >= 'A' && code[i] <= 'Z')
              || (code[i] >= '0' && code[i] <= '9')
              || code[i] == '_' || code[i] == '-'))
        {
            break;
        }
    }

    if (n < 1 || n > 32 || i != n) {
        return chat_op_invalid(ctx, "code must be 1 to 32 of A-Z a-z 0-9 _ -");
    }

    if (chat_catalog_text_chars(name) < 1 || chat_catalog_text_chars(name) > 200) {
        return chat_op_invalid(ctx, "name must be text of 1 to 200 "
                                    "characters");
    }

    if (chat_catalog_text_chars(region) < 1 || chat_catalog_text_chars(region) > 64) {
        return chat_op_invalid(ctx, "region must be text of 1 to 64 "
                                    "characters");
    }

    params[0] = code;
    params[1] = name;
    params[2] = region;

    res = chat_db_query(ctx->db,
        "INSERT INTO warehouses (code, name, region) VALUES ($1, $2, $3)"
        " ON CONFLICT (code) DO NOTHING"
        " RETURNING json_build_object('id', id, 'code', code, 'name', name,"
        "  'region', region, 'created_at', created_at)::text",
        3, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_error(ctx, 409, "duplicate_code",
                             "a warehouse with this code exists");
    }

    w = cJSON_Parse(PQgetvalue(res, 0, 0));
    PQclear(res);

    ctx->reply = cJSON_CreateObject();
    if (w == NULL || ctx->reply == NULL) {
        cJSON_Delete(w);
        return -1;
    }

    cJSON_AddItemToObject(ctx->reply, "warehouse", w);
    ctx->status = 201;

    return 0;
}


int
chat_op_admin_warehouse_list(chat_op_ctx_t *ctx)
{
    int        rc;
    cJSON     *list;
    PGresult  *res;

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    res = chat_db_query(ctx->db,
        "SELECT coalesce(json_agg(json_build_object('id', id, 'code', code,"
        " 'name', name, 'region', region, 'created_at', created_at)"
        " ORDER BY id), '[]')::text FROM warehouses", 0, NULL, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    list = cJSON_Parse(PQgetvalue(res, 0, 0));
    PQclear(res);

    ctx->reply = cJSON_CreateObject();
    if (list == NULL || ctx->reply == NULL) {
        cJSON_Delete(list);
        return -1;
    }

    cJSON_AddItemToObject(ctx->reply, "warehouses", list);
    ctx->status = 200;

    return 0;
}


/* ------------------------------------------------------------------------
 * Inventory
 * --------------------------------------------------------------------- */

/*
 * Sets the stock of (book_id, warehouse_id) to on_hand (absolute) or
 * moves it by delta, with a ledger row, and answers the new row.
 */
static int
chat_admin_inventory(chat_op_ctx_t *ctx, int absolute)
{
    int          rc, bad;
    char         bbuf[24], wbuf[24], nbuf[24], dbuf[24], ubuf[24], msg[96];
    cJSON       *stock;
    int64_t      book_id, warehouse_id, value, on_hand, reserved, before;
    int64_t      delta;
    PGresult    *res;
    const char  *reason, *was, *now, *params[6];

    rc = chat_catalog_require_admin(ctx);
    if (rc <= 0) {
        return rc;
    }

    if ((rc = chat_op_integer(ctx, "book_id", 1, 1, &book_id)) <= 0
        || (rc = chat_op_integer(ctx, "warehouse_id", 1, 1, &warehouse_id))
           <= 0)
    {
        return rc;
    }

    if (absolute) {
        rc = chat_op_integer(ctx, "on_hand", 0, 1, &value);
        if (rc <= 0) {
            return rc;
        }

        if (value > 1000000000) {
            return chat_op_invalid(ctx, "on_hand must be at most 1000000000");
        }

        reason = chat_catalog_opt_string(ctx, "reason", &bad);
        if (bad) {
            return ctx->reply ? 0 : -1;
        }

        if (reason == NULL) {
            reason = "on_hand set by an admin";
        }

    } else {
        rc = chat_op_integer(ctx, "delta", -1000000000, 1, &value);
        if (rc <= 0) {
            return rc;
        }

        if (value == 0 || value > 1000000000) {
            return chat_op_invalid(ctx, "delta must be a non-zero integer "
                                        "of at most 1000000000 either way");
        }

        reason = chat_op_string(ctx, "reason");
        if (reason == NULL) {
            return ctx->reply ? 0 : -1;
        }
    }

    if (chat_catalog_text_chars(reason) < 1 || chat_catalog_text_chars(reason) > 500) {
        return chat_op_invalid(ctx, "reason must be text of 1 to 500 "
                                    "characters");
    }

    params[0] = chat_i64(bbuf, book_id);
    params[1] = chat_i64(wbuf, warehouse_id);

    res = chat_db_query_prepared(ctx->db,
        "SELECT EXISTS (SELECT 1 FROM books WHERE id = $1"
        "               AND deleted_at IS NULL),"
        " EXISTS (SELECT 1 FROM warehouses WHERE id = $2),"
        " coalesce((SELECT sum(on_hand - reserved) FROM stock"
        "           WHERE book_id = $1), 0)",
        2, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
         | (strcmp(PQgetvalue(res, 0, 1), "t") == 0) << 1;
    before = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);

    if (!(rc & 1)) {
        return chat_op_error(ctx, 404, "not_found", "no such book");
    }

    if (!(rc & 2)) {
        return chat_op_error(ctx, 404, "not_found", "no such warehouse");
    }

    /* the row, made if missing, then locked: changes to it serialise */
    res = chat_db_query_prepared(ctx->db,
        "WITH i AS (INSERT INTO stock (book_id, warehouse_id) VALUES ($1, $2)"
        "           ON CONFLICT DO NOTHING)"
        " SELECT 1",
        2, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }
    PQclear(res);

    res = chat_db_query_prepared(ctx->db,
        "SELECT on_hand, reserved FROM stock"
        " WHERE book_id = $1 AND warehouse_id = $2 FOR UPDATE",
        2, params, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    on_hand = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    reserved = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);

    delta = absolute ? value - on_hand : value;

    if (on_hand + delta < reserved || on_hand + delta < 0) {
        snprintf(msg, sizeof(msg), "on_hand would be %lld, below the %lld "
                 "copies reserved", (long long) (on_hand + delta),
                 (long long) reserved);
        return chat_op_error(ctx, 409, "insufficient_stock", msg);
    }

    if (on_hand + delta > 1000000000) {
        return chat_op_invalid(ctx, "on_hand would exceed 1000000000");
    }

    if (delta != 0) {
        params[2] = chat_i64(nbuf, on_hand + delta);
        params[3] = chat_i64(dbuf, delta);
        params[4] = reason;
        params[5] = chat_i64(ubuf, ctx->cmd->uid);

        res = chat_db_query_prepared(ctx->db,
            "WITH u AS (UPDATE stock SET on_hand = $3, updated_at = now()"
            "           WHERE book_id = $1 AND warehouse_id = $2)"
            " INSERT INTO stock_ledger (book_id, warehouse_id, delta_on_hand,"
            "  reason, actor_id) VALUES ($1, $2, $4, $5, $6)",
            6, params, NULL, NULL);
        if (res == NULL) {
            return -1;
        }
        PQclear(res);
    }

    was = chat_catalog_stock_status(before);
    now = chat_catalog_stock_status(before + delta);

    /* the other admins' open stock grids and lists fetch it again */
    if (chat_admin_event(ctx->db, ctx->events, "stock", book_id,
                         ctx->cmd->uid) != 0)
    {
        return -1;
    }

    ctx->reply = cJSON_CreateObject();
    stock = cJSON_AddObjectToObject(ctx->reply, "stock");

    if (stock == NULL
        || cJSON_AddNumberToObject(stock, "book_id", (double) book_id) == NULL
        || cJSON_AddNumberToObject(stock, "warehouse_id",
                                   (double) warehouse_id) == NULL
        || cJSON_AddNumberToObject(stock, "on_hand",
                                   (double) (on_hand + delta)) == NULL
        || cJSON_AddNumberToObject(stock, "reserved", (double) reserved)
           == NULL
        || cJSON_AddNumberToObject(ctx->reply, "delta", (double) delta)
           == NULL
        || cJSON_AddStringToObject(ctx->reply, "stock_status", now) == NULL
        || cJSON_AddBoolToObject(ctx->reply, "stock_status_changed",
                                 strcmp(was, now) != 0) == NULL)
    {
        return -1;
    }

    ctx->status = 200;
    return 0;
}


int
chat_op_admin_inventory_set(chat_op_ctx_t *ctx)
{
    return chat_admin_inventory(ctx, 1);
}


int
chat_op_admin_inventory_adjust(chat_op_ctx_t *ctx)
{
    return chat_admin_inventory(ctx, 0);
}
