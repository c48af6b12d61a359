/*
 * checkout_reserve.c: a checkout's tx 1, the stock side of
 * order.checkout (op_checkout.c tells the whole flow): the cart's lines
 * priced from books, the warehouses chosen (allocate.c), the copies
 * reserved with their ledger rows, the order, its lines and its payment
 * attempt written in one statement, then COMMIT; and the group lock of
 * the checkouts a worker starts together, taken before any of them
 * reserves.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocate.h"
#include "checkout.h"
#include "log.h"
#include "ops.h"
#include "orders.h"


#define CHAT_CHECKOUT_MAX_LINES      100

typedef struct {
    int64_t  book_id;
    int64_t  quantity;
    int64_t  price;
} chat_line_t;


/* In tx 1: a final refusal, stored under the key, committed. */
static int
chat_checkout_refuse(chat_checkout_t *co, int status, const char *code,
    const char *message)
{
    char         st[24], *reply;
    PGresult    *res;
    const char  *values[3];

    if (chat_op_error(co->ctx, status, code, message) != 0) {
        return -1;
    }

    reply = cJSON_PrintUnformatted(co->ctx->reply);
    if (reply == NULL) {
        return -1;
    }

    values[0] = co->key;
    values[1] = chat_i64(st, status);
    values[2] = reply;

    res = chat_db_query(co->ctx->db,
              "UPDATE command_log SET status = $2, reply = $3"
              " WHERE key = $1",
              3, values, NULL, NULL);
    cJSON_free(reply);

    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    return chat_db_exec(co->ctx->db, "COMMIT");
}


/* Appends v to a PostgreSQL array literal being built in buf. */
static void
chat_array_add(char *buf, size_t *len, int64_t v)
{
    *len += (size_t) sprintf(buf + *len, "%s%lld", *len > 1 ? "," : "",
                             (long long) v);
}


/* tx 1's writes: the order, its lines, its reservations, the stock they
 * take and its ledger, the payment attempt; $1 user, $2 key, $3 total,
 * $4 currency, $5 address, $6 region, $7 card_last4, $8 reservation ms,
 * $9..$11 the lines (book, quantity, price), $12..$14 the takes (book,
 * warehouse, quantity), $15 the payment lease ms */
static const char  chat_sql_reserve[] =
    "WITH o AS ("
    "  INSERT INTO orders (user_id, status, checkout_key,"
    "      total_cents, currency, shipping_address, region,"
    "      card_last4, reserved_until)"
    "  VALUES ($1, 'pending_payment', $2, $3, $4, $5::jsonb, $6,"
    "      $7, now() + $8::int * interval '1 millisecond')"
    "  RETURNING id"
    "), i AS ("
    "  INSERT INTO order_items (order_id, book_id, title, quantity,"
    "      price_cents)"
    "  SELECT o.id, x.b, bk.title, x.q, x.p"
    "    FROM o, unnest($9::bigint[], $10::int[], $11::bigint[])"
    "         AS x(b, q, p) JOIN books bk ON bk.id = x.b"
    "), r AS ("
    "  INSERT INTO order_reservations (order_id, book_id,"
    "      warehouse_id, quantity)"
    "  SELECT o.id, y.b, y.w, y.q"
    "    FROM o, unnest($12::bigint[], $13::bigint[], $14::int[])"
    "         AS y(b, w, q)"
    "), s AS ("
    "  UPDATE stock SET reserved = stock.reserved + y.q,"
    "         updated_at = now()"
    "    FROM unnest($12::bigint[], $13::bigint[], $14::int[])"
    "         AS y(b, w, q)"
    "   WHERE stock.book_id = y.b AND stock.warehouse_id = y.w"
    "), l AS ("
    "  INSERT INTO stock_ledger (book_id, warehouse_id,"
    "      delta_reserved, reason, actor_id, order_id)"
    "  SELECT y.b, y.w, y.q, 'checkout: reserved', $1, o.id"
    "    FROM o, unnest($12::bigint[], $13::bigint[], $14::int[])"
    "         AS y(b, w, q)"
    "), p AS ("
    "  INSERT INTO payment_attempts (order_id, kind,"
    "      idempotency_key, amount_cents, lease_until)"
    "  SELECT o.id, 'charge', $2, $3,"
    "         now() + $15::int * interval '1 millisecond' FROM o"
    ") "
    "SELECT id FROM o";


/*
 * In the transaction chat_checkout_claim opened, with its cart rows:
 * reserves and records everything, commits.  1 with co->order_id set, 0
 * after a refusal (committed), -1 (rolled back).
 */
int
chat_checkout_reserve(chat_checkout_t *co)
{
    int                i, j, n, rows, rc, grouped;
    long               short_line;
    char               uid[24], ttl[24], lease[24], total[24], msg[200];
    char              *books, *qtys, *prices, *rb, *rw, *rq;
    size_t             lb, lq, lp, lrb, lrw, lrq, k, ntakes;
    int64_t            avail;
    PGresult          *res, *st;
    chat_line_t       *lines;
    chat_want_t       *wants;
    chat_take_t       *takes;
    chat_stock_row_t  *stock;
    const char        *values[16];
    chat_db_t         *db;
    chat_db_stmt_t     ins[2];

    db = co->ctx->db;
    res = NULL;
    st = NULL;
    lines = NULL;
    wants = NULL;
    takes = NULL;
    stock = NULL;
    books = qtys = prices = rb = rw = rq = NULL;
    rc = -1;

    res = co->cart;
    co->cart = NULL;

    n = PQntuples(res);
    if (n == 1 && PQgetisnull(res, 0, 0)) {
        n = 0;                          /* claimed, but the cart is empty */
    }

    if (n == 0) {
        rc = chat_checkout_refuse(co, 400, "cart_empty",
                                  "the cart is empty") == 0 ? 0 : -1;
        goto done;
    }

    if (n > CHAT_CHECKOUT_MAX_LINES) {
        rc = chat_checkout_refuse(co, 400, "cart_full",
                                  "a cart holds at most 100 different books")
             == 0 ? 0 : -1;
        goto done;
    }

    lines = calloc((size_t) n, sizeof(chat_line_t));
    books = malloc((size_t) n * 24 + 3);
    qtys = malloc((size_t) n * 24 + 3);
    prices = malloc((size_t) n * 24 + 3);
    if (lines == NULL || books == NULL || qtys == NULL || prices == NULL) {
        goto done;
    }

    strcpy(books, "{");
    strcpy(qtys, "{");
    strcpy(prices, "{");
    lb = lq = lp = 1;
    co->total = 0;
    snprintf(co->currency, sizeof(co->currency), "%s", PQgetvalue(res, 0, 3));

    for (i = 0; i < n; i++) {
        lines[i].book_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        lines[i].quantity = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        lines[i].price = strtoll(PQgetvalue(res, i, 2), NULL, 10);

        if (strcmp(PQgetvalue(res, i, 4), "t") != 0) {
            snprintf(msg, sizeof(msg), "book %lld is no longer for sale",
                     (long long) lines[i].book_id);
            rc = chat_checkout_refuse(co, 409, "out_of_stock", msg) == 0
                 ? 0 : -1;
            goto done;
        }

        if (strcmp(PQgetvalue(res, i, 3), co->currency) != 0) {
            rc = chat_checkout_refuse(co, 400, "mixed_currency",
                                      "the cart mixes currencies") == 0
                 ? 0 : -1;
            goto done;
        }

        co->total += lines[i].price * lines[i].quantity;
        chat_array_add(books, &lb, lines[i].book_id);
        chat_array_add(qtys, &lq, lines[i].quantity);
        chat_array_add(prices, &lp, lines[i].price);
    }

    strcpy(books + lb, "}");
    strcpy(qtys + lq, "}");
    strcpy(prices + lp, "}");

    /* every stock row of these books with copies to spare, locked in the
     * one order all transactions use */
    values[0] = books;
    values[1] = co->region;

    st = chat_db_query_prepared(db,
             "SELECT s.book_id, s.warehouse_id, s.on_hand - s.reserved,"
             "       lower(w.region) = $2"
             "  FROM stock s JOIN warehouses w ON w.id = s.warehouse_id"
             " WHERE s.book_id = ANY($1::bigint[]) AND s.on_hand > s.reserved"
             " ORDER BY s.book_id, s.warehouse_id FOR UPDATE OF s",
             2, values, NULL, NULL);
    if (st == NULL) {
        goto done;
    }

    rows = PQntuples(st);

    stock = calloc((size_t) rows + 1, sizeof(chat_stock_row_t));
    takes = calloc((size_t) rows + 1, sizeof(chat_take_t));
    wants = calloc((size_t) n, sizeof(chat_want_t));
    rb = malloc((size_t) rows * 24 + 3);
    rw = malloc((size_t) rows * 24 + 3);
    rq = malloc((size_t) rows * 24 + 3);
    if (stock == NULL || takes == NULL || wants == NULL || rb == NULL
        || rw == NULL || rq == NULL)
    {
        goto done;
    }

    for (j = 0; j < rows; j++) {
        stock[j].book_id = strtoll(PQgetvalue(st, j, 0), NULL, 10);
        stock[j].warehouse_id = strtoll(PQgetvalue(st, j, 1), NULL, 10);
        stock[j].available = strtoll(PQgetvalue(st, j, 2), NULL, 10);
        stock[j].in_region = strcmp(PQgetvalue(st, j, 3), "t") == 0;
    }

    for (i = 0; i < n; i++) {
        wants[i].book_id = lines[i].book_id;
        wants[i].quantity = lines[i].quantity;
    }

    short_line = chat_allocate(wants, (size_t) n, stock, (size_t) rows,
                               takes, &ntakes, &avail);

    if (short_line >= 0) {
        snprintf(msg, sizeof(msg), "not enough copies of book %lld "
                 "(%lld wanted, %lld available)",
                 (long long) lines[short_line].book_id,
                 (long long) lines[short_line].quantity, (long long) avail);
        rc = chat_checkout_refuse(co, 409, "out_of_stock", msg) == 0 ? 0 : -1;
        goto done;
    }

    strcpy(rb, "{");
    strcpy(rw, "{");
    strcpy(rq, "{");
    lrb = lrw = lrq = 1;

    for (k = 0; k < ntakes; k++) {
        chat_array_add(rb, &lrb, takes[k].book_id);
        chat_array_add(rw, &lrw, takes[k].warehouse_id);
        chat_array_add(rq, &lrq, takes[k].quantity);
    }

    strcpy(rb + lrb, "}");
    strcpy(rw + lrw, "}");
    strcpy(rq + lrq, "}");

    values[0] = chat_i64(uid, co->ctx->cmd->uid);
    values[1] = co->key;
    values[2] = chat_i64(total, co->total);
    values[3] = co->currency;
    values[4] = co->address;
    values[5] = co->region[0] ? co->region : NULL;
    values[6] = NULL;                   /* card_last4: from the charge */
    values[7] = chat_i64(ttl, co->ctx->cfg->reservation_ttl_ms);
    values[8] = books;
    values[9] = qtys;
    values[10] = prices;
    values[11] = rb;
    values[12] = rw;
    values[13] = rq;
    values[14] = chat_i64(lease, co->ctx->cfg->payment_timeout_ms
                                 + CHAT_PAYMENT_LEASE_MARGIN_MS);

    PQclear(res);
    res = NULL;

    /* the rows and their COMMIT in one round trip (a failure skips the
     * COMMIT, and the transaction is rolled back below); in a group the
     * COMMIT is the step's (only its savepoint ends, db_group.c) */
    memset(ins, 0, sizeof(ins));
    ins[0].sql = chat_sql_reserve;
    ins[0].prepared = 1;
    ins[0].nparams = 15;
    ins[0].values = values;
    ins[1].sql = "COMMIT";
    grouped = chat_db_grouped(db);

    if (chat_db_pipeline(db, ins, grouped ? 1 : 2) != 0) {
        goto done;
    }

    res = ins[0].res;
    PQclear(ins[1].res);

    if (grouped && chat_db_exec(db, "COMMIT") != 0) {
        goto done;
    }

    if (PQntuples(res) != 1) {
        chat_log_error("checkout %s: the reservation returned %d rows",
                       co->key, PQntuples(res));
        goto done;
    }

    co->order_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);

    chat_log_debug("order %lld: reserved for user %lld, %lld %s",
                   (long long) co->order_id, (long long) co->ctx->cmd->uid,
                   (long long) co->total, co->currency);
    rc = 1;

done:

    if (rc == -1 && chat_db_ok(db)) {
        (void) chat_db_exec(db, "ROLLBACK");
    }

    PQclear(res);
    PQclear(st);
    free(lines);
    free(wants);
    free(takes);
    free(stock);
    free(books);
    free(qtys);
    free(prices);
    free(rb);
    free(rw);
    free(rq);

    return rc;
}


/*
 * The group lock: the checkouts a worker starts together reserve in one
 * transaction (suspend.c, chat_suspend_group), so before any of them
 * does, the stock rows of every book in their shoppers' carts are locked
 * here in one statement, in the one order every checkout uses (book_id,
 * warehouse_id).  Each checkout then locks its own rows again, which it
 * holds already; and what it meets beyond them (a book put in the cart
 * meanwhile, a key another worker is claiming) it does not wait for in
 * the group (chat_db_group_nowait): it runs again on its own after the
 * group's COMMIT.  So two groups never wait on each other in a circle.
 */
static const char  chat_sql_group_lock[] =
    "SELECT count(*) FROM ("
    "  SELECT 1 FROM stock"
    "   WHERE book_id IN (SELECT book_id FROM cart_items"
    "                      WHERE user_id = ANY($1::bigint[]))"
    "   ORDER BY book_id, warehouse_id FOR UPDATE"
    ") locked";


int
chat_op_order_checkout_lock(chat_op_ctx_t *ctxs, size_t n)
{
    int          rc;
    char        *users;
    size_t       i, len;
    PGresult    *res;
    const char  *values[1];

    users = malloc(n * 24 + 3);
    if (users == NULL) {
        return -1;
    }

    strcpy(users, "{");
    len = 1;

    for (i = 0; i < n; i++) {
        if (ctxs[i].cmd->uid > 0) {
            chat_array_add(users, &len, ctxs[i].cmd->uid);
        }
    }

    strcpy(users + len, "}");
    values[0] = users;

    res = chat_db_query_prepared(ctxs[0].db, chat_sql_group_lock, 1, values,
                                 NULL, NULL);
    rc = res != NULL ? 0 : -1;

    PQclear(res);
    free(users);

    return rc;
}
