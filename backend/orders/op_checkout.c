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
 * command_log table (tx 1's reservation and the group lock are in
 * checkout_reserve.c):
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

#include "chat_protocol.h"
#include "chat_utf8.h"
#include "checkout.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"
#include "orders.h"
#include "payment.h"


#define CHAT_ADDRESS_MAX             2000
#define CHAT_ADDRESS_FIELD_MAX       300
#define CHAT_ADDRESS_FIELDS_MAX      20

#define CHAT_CLAIM_NEW        1
#define CHAT_CLAIM_ANSWERED   2
#define CHAT_CLAIM_IN_FLIGHT  3

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
