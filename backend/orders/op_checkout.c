/*
 * op_checkout.c: order.checkout (POST /api/v1/orders): reserve the cart's
 * copies, charge the card behind the payment token, settle.  Never
 * oversells, never charges twice.
 *
 * Why it is not an ordinary logged op.  A logged op runs inside the
 * worker's transaction and its command_log row is written at the end.  A
 * checkout waits on the payment provider (up to --payment-timeout-ms),
 * and must not hold stock row locks, or a batch's, while it waits, nor
 * its worker.  So it is CHAT_OP_SUSPENDS without CHAT_OP_LOGGED (the
 * worker runs it outside any transaction, and it may suspend), and
 * manages its own transactions and its own idempotency, on the same
 * command_log table:
 *
 *   tx 1  INSERT INTO command_log (key, op, user_id, request_hash)
 *             ON CONFLICT (key) DO NOTHING      status NULL: "in flight"
 *         and the cart, in one statement (no rows: the key was not ours)
 *         lock its stock rows, ORDER BY book_id,
 *             warehouse_id FOR UPDATE           one fixed order: no deadlock
 *         choose warehouses (allocate.c: the shopper's region first, a
 *             line may be split), reserve, ledger rows, the order (pending_payment,
 *             prices frozen), its lines and reservations, the payment
 *             attempt                           one statement
 *         COMMIT
 *   call  POST /v1/payments, Idempotency-Key = the command's key: the
 *         handler returns chat_op_suspend() with the call, and the
 *         worker serves other commands until the provider answers
 *         (suspend.c); then the resume step, chat_checkout_paid:
 *   tx 2  chat_order_settle (orders.c): paid, or payment_failed and the
 *         stock released; command_log completed with the final reply
 *
 * A business refusal (empty cart, out of stock) completes the log row in
 * tx 1 itself, so a retry gets the same refusal.
 *
 * Checkouts started together.  The tx 1s of the checkouts a worker
 * starts together (one read) are one transaction, one COMMIT
 * (suspend.c, chat_suspend_group): each tx 1 above is a savepoint of it
 * (its BEGIN and COMMIT mapped, db_group.c), and before any of them runs,
 * chat_op_order_checkout_lock locks the stock rows of all their carts in
 * one statement, in the same order; after that the group waits on no lock
 * (a checkout that meets one runs again alone after the COMMIT), so two
 * groups never wait on each other in a circle.  The call is made only
 * after the group's COMMIT.
 *
 * The same key again.  A finished key (status set) is answered from the
 * log: the same reply, or 409 idempotency_key_reused when the request
 * hash differs.  A key in flight (tx 1 committed, not settled yet: the
 * first attempt is still waiting on the provider, or its worker died)
 * is resumed: the order is still pending, so this attempt calls the
 * provider with the same key and settles.  The provider answers every
 * call with one key from one payment (a call that arrives while the
 * first is processing waits for it), and settling is first-wins under
 * the order's row lock, so twenty concurrent retries make one order and
 * one charge and all get the same answer.  Two attempts cannot both pass
 * tx 1: the primary key of command_log makes the second wait and then
 * find the first's row.
 *
 * Unknown outcomes.  A timeout, a refused connection or a 5xx from the
 * provider settles nothing: the reply is 201 with the order still
 * pending_payment (not stored: a retry resumes), and the reconciler
 * (reconcile.c) asks the provider after the attempt's lease and settles
 * from its record.
 *
 * A worker killed while the call is out loses nothing: the entry is still
 * pending, another worker reclaims it and finds the key in flight, and
 * resumes as above.
 *
 * The card.  It never reaches us: the browser tokenized it with the
 * payment processor, and payment is {token}; raw card fields are refused
 * (400 card_data_not_accepted) at the edge, and here again for a command
 * that did not come through it.  The token pays once (the processor
 * refuses it for another key), so one left in a log or in Redis buys
 * nothing.  The order learns the card's last four digits from the
 * processor's answer, when it settles.
 *
 * The request hash is an HMAC-SHA256 keyed with the token secret, not a
 * bare SHA-256: nothing of the body should be guessable from the log.
 *
 * Warehouses: a line takes what each warehouse has, those of the
 * shopper's region (shipping_address.region, else .country) first, then
 * the others, each group by warehouse id; so it is split only when it
 * must be.
 *
 * What it does not do: reserve anything for a cart before checkout, or
 * trust a price from the client (prices come from books, read in tx 1).
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "allocate.h"
#include "chat_protocol.h"
#include "chat_utf8.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"
#include "orders.h"
#include "payment.h"


#define CHAT_CHECKOUT_MAX_LINES      100
#define CHAT_ADDRESS_MAX             2000
#define CHAT_ADDRESS_FIELD_MAX       300
#define CHAT_ADDRESS_FIELDS_MAX      20

/* how long after a call begins nobody else asks the provider about it */
#define CHAT_PAYMENT_LEASE_MARGIN_MS  2000

#define CHAT_CLAIM_NEW        1
#define CHAT_CLAIM_ANSWERED   2
#define CHAT_CLAIM_IN_FLIGHT  3

typedef struct {
    chat_op_ctx_t  *ctx;
    const char     *key;
    char            hash[65];           /* hex HMAC of op "\n" body */
    char            token[CHAT_PAY_TOKEN_MAX + 1];  /* the processor's */
    char           *address;            /* JSON text, malloc'd */
    char            region[65];         /* lowercased; "" none */
    int64_t         order_id;
    int64_t         total;
    char            currency[4];
    PGresult       *cart;               /* tx 1's cart rows, claimed */
} chat_checkout_t;

typedef struct {
    int64_t  book_id;
    int64_t  quantity;
    int64_t  price;
} chat_line_t;


/* ------------------------------------------------------------------------
 * Input
 * --------------------------------------------------------------------- */

/* 0 with co->address and co->region set, or 0 after a 400, or -1. */
static int
chat_checkout_address(chat_checkout_t *co)
{
    int           n;
    size_t        i, len;
    const cJSON  *a, *f, *region;

    a = cJSON_GetObjectItemCaseSensitive(co->ctx->body, "shipping_address");

    if (cJSON_IsString(a)) {
        len = strlen(a->valuestring);
        if (len == 0 || len > CHAT_ADDRESS_MAX) {
            return chat_op_invalid(co->ctx, "shipping_address must be 1 to "
                                   "2000 bytes");
        }

    } else if (cJSON_IsObject(a)) {
        n = 0;
        cJSON_ArrayForEach(f, a) {
            if (!cJSON_IsString(f) || strlen(f->valuestring)
                                      > CHAT_ADDRESS_FIELD_MAX
                || strlen(f->string) > 64)
            {
                return chat_op_invalid(co->ctx, "shipping_address fields "
                                       "must be strings of at most 300 "
                                       "bytes");
            }
            n++;
        }

        if (n == 0 || n > CHAT_ADDRESS_FIELDS_MAX) {
            return chat_op_invalid(co->ctx, "shipping_address must have 1 "
                                   "to 20 fields");
        }

        region = cJSON_GetObjectItemCaseSensitive(a, "region");
        if (region == NULL) {
            region = cJSON_GetObjectItemCaseSensitive(a, "country");
        }

        if (cJSON_IsString(region)) {
            for (i = 0; i < 64 && region->valuestring[i]; i++) {
                co->region[i] = (char) tolower(
                                    (unsigned char) region->valuestring[i]);
            }
            co->region[i] = '\0';
        }

    } else {
        return chat_op_invalid(co->ctx, "shipping_address is required: a "
                               "string or an object of strings");
    }

    co->address = cJSON_PrintUnformatted(a);
    if (co->address == NULL) {
        return -1;
    }

    if (!chat_utf8_valid((const unsigned char *) co->address,
                         strlen(co->address)))
    {
        return chat_op_invalid(co->ctx, "shipping_address must be UTF-8");
    }

    return 0;
}


/*
 * 0 with co->token set, or 0 after a 400: payment must be {token} (the
 * processor's, from the browser's tokenization), never the card itself.
 */
static int
chat_checkout_token(chat_checkout_t *co)
{
    size_t        i;
    const cJSON  *p, *token;

    static const char  *card_fields[] = { CHAT_CARD_FIELDS, NULL };

    p = cJSON_GetObjectItemCaseSensitive(co->ctx->body, "payment");

    for (i = 0; card_fields[i]; i++) {
        if (cJSON_GetObjectItemCaseSensitive(p, card_fields[i]) != NULL) {
            return chat_op_error(co->ctx, 400, CHAT_CARD_REFUSED_CODE,
                                 CHAT_CARD_REFUSED_TEXT);
        }
    }

    token = cJSON_GetObjectItemCaseSensitive(p, "token");

    if (!cJSON_IsObject(p) || !cJSON_IsString(token)
        || !chat_payment_token_valid(token->valuestring))
    {
        return chat_op_error(co->ctx, 400, "invalid_payment",
                             "payment.token is required: the token the "
                             "payment processor gave for the card "
                             "(tok_...)");
    }

    strcpy(co->token, token->valuestring);

    return 0;
}


static int
chat_checkout_hash(chat_checkout_t *co)
{
    size_t          n;
    unsigned        len, i;
    unsigned char  *data, mac[EVP_MAX_MD_SIZE];
    const chat_cmd_t  *cmd;

    cmd = co->ctx->cmd;
    n = cmd->op_len + 1 + cmd->body_len;

    data = malloc(n);
    if (data == NULL) {
        return -1;
    }

    memcpy(data, cmd->op, cmd->op_len);
    data[cmd->op_len] = '\n';
    memcpy(data + cmd->op_len + 1, cmd->body, cmd->body_len);

    len = 0;
    if (HMAC(EVP_sha256(), co->ctx->cfg->token_secret,
             (int) co->ctx->cfg->token_secret_len, data, n, mac, &len)
        == NULL || len != 32)
    {
        free(data);
        return -1;
    }

    memset(data, 0, n);
    free(data);

    for (i = 0; i < len; i++) {
        sprintf(co->hash + 2 * i, "%02x", mac[i]);
    }

    return 0;
}


/* ------------------------------------------------------------------------
 * The key
 * --------------------------------------------------------------------- */

/* Answers from a stored reply (status, reply). */
static int
chat_checkout_stored(chat_checkout_t *co, const char *status,
    const char *reply)
{
    co->ctx->reply = cJSON_Parse(reply);
    co->ctx->status = atoi(status);

    return co->ctx->reply != NULL ? 0 : -1;
}


/*
 * Claims the key.  CHAT_CLAIM_NEW: the row is ours, inside an open
 * transaction.  CHAT_CLAIM_ANSWERED: ctx->reply is set (a finished key,
 * or 409).  CHAT_CLAIM_IN_FLIGHT: co->order_id is the key's order.  -1.
 */
static int
chat_checkout_claim(chat_checkout_t *co)
{
    int          rc;
    char         uid[24];
    PGresult    *res;
    const char  *values[4];

    values[0] = co->key;
    values[1] = "order.checkout";
    values[2] = chat_i64(uid, co->ctx->cmd->uid);
    values[3] = co->hash;

    if (chat_db_exec(co->ctx->db, "BEGIN") != 0) {
        return -1;
    }

    /* the claim and, when it is ours, the cart: one row with a NULL book
     * for an empty cart, no row when the key was already there */
    res = chat_db_query_prepared(co->ctx->db,
              "WITH claim AS ("
              "  INSERT INTO command_log (key, op, user_id, request_hash)"
              "  VALUES ($1, $2, $3, decode($4, 'hex'))"
              "  ON CONFLICT (key) DO NOTHING RETURNING user_id"
              ") "
              "SELECT c.book_id, c.quantity, b.price_cents, b.currency,"
              "       b.deleted_at IS NULL, b.title"
              "  FROM claim LEFT JOIN (cart_items c"
              "       JOIN books b ON b.id = c.book_id)"
              "    ON c.user_id = claim.user_id"
              " ORDER BY c.book_id LIMIT 101",
              4, values, NULL, NULL);
    if (res == NULL) {
        goto failed;
    }

    if (PQntuples(res) > 0) {
        co->cart = res;
        return CHAT_CLAIM_NEW;
    }

    PQclear(res);

    if (chat_db_exec(co->ctx->db, "ROLLBACK") != 0) {
        return -1;
    }

    values[1] = co->hash;

    res = chat_db_query(co->ctx->db,
              "SELECT c.status, c.reply, c.request_hash = decode($2, 'hex'),"
              "       o.id"
              "  FROM command_log c LEFT JOIN orders o"
              "    ON o.checkout_key = c.key"
              " WHERE c.key = $1",
              2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        chat_log_error("key %s: command_log row vanished", co->key);
        return -1;
    }

    if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
        PQclear(res);
        chat_log_warn("key %s reused for a different checkout", co->key);
        rc = chat_op_error(co->ctx, 409, "idempotency_key_reused",
                           "this idempotency key was already used for a "
                           "different request");
        return rc == 0 ? CHAT_CLAIM_ANSWERED : -1;
    }

    if (!PQgetisnull(res, 0, 0)) {
        rc = chat_checkout_stored(co, PQgetvalue(res, 0, 0),
                                  PQgetvalue(res, 0, 1));
        PQclear(res);
        return rc == 0 ? CHAT_CLAIM_ANSWERED : -1;
    }

    if (PQgetisnull(res, 0, 3)) {
        PQclear(res);
        chat_log_error("key %s: in flight without an order", co->key);
        return -1;
    }

    co->order_id = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    PQclear(res);

    return CHAT_CLAIM_IN_FLIGHT;

failed:

    if (chat_db_ok(co->ctx->db)) {
        (void) chat_db_exec(co->ctx->db, "ROLLBACK");
    }

    return -1;
}


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


/* ------------------------------------------------------------------------
 * Reservation (tx 1)
 * --------------------------------------------------------------------- */

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
static int
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


/* ------------------------------------------------------------------------
 * Payment and answer
 * --------------------------------------------------------------------- */

/* The answer: the stored reply once settled, else 201 with the order as
 * it stands (pending; not stored, a retry resumes). */
static int
chat_checkout_answer(chat_checkout_t *co)
{
    int          rc, missing;
    cJSON       *order;
    PGresult    *res;
    const char  *values[1];

    values[0] = co->key;

    res = chat_db_query(co->ctx->db,
              "SELECT status, reply FROM command_log WHERE key = $1",
              1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        rc = chat_checkout_stored(co, PQgetvalue(res, 0, 0),
                                  PQgetvalue(res, 0, 1));
        PQclear(res);
        return rc;
    }

    PQclear(res);

    order = chat_order_json(co->ctx->db, co->order_id, &missing);
    if (order == NULL) {
        return -1;
    }

    co->ctx->reply = cJSON_CreateObject();
    if (co->ctx->reply == NULL
        || !cJSON_AddItemToObject(co->ctx->reply, "order", order))
    {
        cJSON_Delete(order);
        return -1;
    }

    co->ctx->status = 201;
    return 0;
}


/*
 * A key in flight: if its order is still pending, takes a new claim on
 * the payment attempt (so a reconciler's verdict from before does not
 * count) and returns 1: the caller asks the provider.  0: it was settled
 * meanwhile.  -1.
 */
static int
chat_checkout_resume(chat_checkout_t *co)
{
    char         id[24], lease[24];
    PGresult    *res;
    const char  *values[2];

    values[0] = chat_i64(id, co->order_id);
    values[1] = chat_i64(lease, co->ctx->cfg->payment_timeout_ms
                                + CHAT_PAYMENT_LEASE_MARGIN_MS);

    if (chat_db_exec(co->ctx->db, "BEGIN") != 0) {
        return -1;
    }

    res = chat_db_query(co->ctx->db,
              "SELECT status, total_cents, currency FROM orders"
              " WHERE id = $1 FOR UPDATE",
              1, values, NULL, NULL);
    if (res == NULL) {
        goto failed;
    }

    if (PQntuples(res) != 1
        || strcmp(PQgetvalue(res, 0, 0), "pending_payment") != 0)
    {
        PQclear(res);
        return chat_db_exec(co->ctx->db, "ROLLBACK") == 0 ? 0 : -1;
    }

    co->total = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    snprintf(co->currency, sizeof(co->currency), "%s",
             PQgetvalue(res, 0, 2));
    PQclear(res);

    res = chat_db_query(co->ctx->db,
              "UPDATE payment_attempts SET claims = claims + 1,"
              "       lease_until = now()"
              "                     + $2::int * interval '1 millisecond',"
              "       updated_at = now()"
              " WHERE order_id = $1 AND kind = 'charge'",
              2, values, NULL, NULL);
    if (res == NULL) {
        goto failed;
    }

    PQclear(res);

    if (chat_db_exec(co->ctx->db, "COMMIT") != 0) {
        return -1;
    }

    chat_log_info("order %lld: resuming its payment (key %s)",
                  (long long) co->order_id, co->key);
    return 1;

failed:

    if (chat_db_ok(co->ctx->db)) {
        (void) chat_db_exec(co->ctx->db, "ROLLBACK");
    }

    return -1;
}


/* Settles what the provider said about the charge, and answers.  0, or
 * -1. */
static int
chat_checkout_settle(chat_checkout_t *co, const chat_pay_result_t *pay)
{
    int           rc;
    char          id[24];
    cJSON        *order;
    PGresult     *res;
    const char   *values[2];

    order = NULL;

    switch (pay->state) {

    case CHAT_PAY_SUCCEEDED:
        rc = chat_order_settle(co->ctx->db, co->order_id, CHAT_SETTLE_PAID,
                               pay->id, NULL, pay->last4, -1,
                               co->ctx->events, &order);
        if (rc == 0) {
            /* settled already: fine when paid (a concurrent retry got
             * there first); otherwise money was taken for an order that
             * is not paid, and it goes back (orders.c) */
            (void) chat_order_late_charge(co->ctx->db, co->order_id,
                                          pay->id);
        }
        break;

    case CHAT_PAY_DECLINED:
        rc = chat_order_settle(co->ctx->db, co->order_id,
                               CHAT_SETTLE_FAILED,
                               pay->id[0] ? pay->id : NULL, pay->code,
                               pay->last4, -1, co->ctx->events, &order);
        break;

    default:
        /* not known: leave it pending for the reconciler, say why */
        chat_log_warn("order %lld: payment outcome unknown (%s); left "
                      "pending for the reconciler", (long long) co->order_id,
                      pay->error);

        values[0] = chat_i64(id, co->order_id);
        values[1] = pay->error;

        res = chat_db_query(co->ctx->db,
                  "UPDATE payment_attempts SET last_error = $2,"
                  "       updated_at = now()"
                  " WHERE order_id = $1 AND kind = 'charge'"
                  "   AND status = 'pending'",
                  2, values, NULL, NULL);
        PQclear(res);
        rc = res != NULL ? 0 : -1;
        break;
    }

    if (rc < 0) {
        return -1;
    }

    if (order == NULL) {
        return chat_checkout_answer(co);    /* settled elsewhere, or not */
    }

    /* settled now: the reply it stored is {"order": order} */
    co->ctx->reply = cJSON_CreateObject();
    if (co->ctx->reply == NULL
        || !cJSON_AddItemToObject(co->ctx->reply, "order", order))
    {
        cJSON_Delete(order);
        return -1;
    }

    co->ctx->status = 201;
    return 0;
}


/* The resume step: the charge call has finished. */
static int
chat_checkout_paid(chat_op_ctx_t *ctx, chat_http_call_t *call)
{
    chat_checkout_t    *co = call->data;
    chat_pay_result_t   pay;

    /* the command was copied when it suspended: use this ctx's */
    co->ctx = ctx;
    co->key = ctx->cmd->key;

    chat_payment_charge_result(call, &pay);

    return chat_checkout_settle(co, &pay);
}


static void
chat_checkout_free(void *data)
{
    chat_checkout_t  *co = data;

    free(co->address);
    free(co);
}


/*
 * Makes the charge call and suspends on it: the worker answers once the
 * provider has, through chat_checkout_paid.  0, or -1.
 */
static int
chat_checkout_charge(chat_checkout_t *co)
{
    chat_checkout_t   *own;
    chat_http_call_t  *call;

    call = chat_payment_charge_call(co->ctx->cfg, co->key, co->total,
                                    co->currency, co->token, co->order_id);
    if (call == NULL) {
        return -1;
    }

    own = malloc(sizeof(chat_checkout_t));
    if (own == NULL) {
        chat_http_call_free(call);
        return -1;
    }

    /* what settling needs */
    *own = *co;
    co->address = NULL;

    call->data = own;
    call->cleanup = chat_checkout_free;

    return chat_op_suspend(co->ctx, call, chat_checkout_paid);
}


/* ------------------------------------------------------------------------
 * The operation
 * --------------------------------------------------------------------- */

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


int
chat_op_order_checkout(chat_op_ctx_t *ctx)
{
    int              rc;
    chat_checkout_t  co;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    /* the edge prefixes a client's key with "u<uid>:"; its own keys
     * (no header) start otherwise */
    if (ctx->cmd->key[0] != 'u') {
        return chat_op_error(ctx, 400, "missing_idempotency_key",
                             "a checkout needs an Idempotency-Key header");
    }

    memset(&co, 0, sizeof(co));
    co.ctx = ctx;
    co.key = ctx->cmd->key;

    rc = chat_checkout_token(&co);
    if (rc != 0 || ctx->reply != NULL) {
        goto done;
    }

    rc = chat_checkout_address(&co);
    if (rc != 0 || ctx->reply != NULL) {
        goto done;
    }

    if (chat_checkout_hash(&co) != 0) {
        rc = -1;
        goto done;
    }

    rc = chat_checkout_claim(&co);

    switch (rc) {

    case CHAT_CLAIM_ANSWERED:
        rc = 0;
        goto done;

    case CHAT_CLAIM_NEW:
        rc = chat_checkout_reserve(&co);
        break;

    case CHAT_CLAIM_IN_FLIGHT:
        rc = chat_checkout_resume(&co);
        if (rc == 0) {
            rc = chat_checkout_answer(&co);
            goto done;
        }
        break;

    default:
        rc = -1;
        goto done;
    }

    if (rc != 1) {
        goto done;              /* refused (answered) or failed */
    }

    rc = chat_checkout_charge(&co);

done:

    free(co.address);
    PQclear(co.cart);
    return rc;
}
