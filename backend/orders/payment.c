/*
 * payment.c: calls to the payment provider, over backend/engine/http_client.c.
 *
 * The provider speaks HTTP in the shape of a card processor (see
 * payments/README.md): POST /v1/payments creates and confirms a payment
 * under an Idempotency-Key, GET /v1/payments?idempotency_key= and
 * GET /v1/payments/{id} look one up, POST /v1/payments/{id}/refunds
 * refunds it.  Every call has the deadline --payment-timeout-ms.
 *
 * Each call is two functions: one makes the request (an http_client.c
 * call object), the other reads the answer.  Between them the caller
 * performs the call or, in a worker, starts it and serves other commands
 * until it has finished (suspend.c); this file does not care which.
 *
 * The one rule here: an answer is only believed when it says something
 * definite.  201 with status "succeeded" is a charge, 402 "declined" or a
 * 400 (the provider refused the request and recorded nothing) is a
 * refusal; a timeout, a refused connection, a 5xx or anything odd is
 * CHAT_PAY_UNKNOWN: the caller must not guess, it keeps the payment
 * pending and asks again later (reconcile.c).  Asking again is safe
 * because the provider keys payments by our idempotency key.
 *
 * No card reaches us: the browser tokenized it with the provider
 * (payments/README.md) and a charge names the token, which pays once.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "http_client.h"
#include "log.h"
#include "payment.h"


static void
chat_pay_unknown(chat_pay_result_t *out, const char *fmt, const char *a,
    long b)
{
    out->state = CHAT_PAY_UNKNOWN;
    snprintf(out->error, sizeof(out->error), fmt, a, b);
}


/* Reads a payment object's status and id into out. */
static void
chat_pay_parse_payment(const cJSON *p, chat_pay_result_t *out)
{
    const cJSON  *status, *id, *code, *last4;

    status = cJSON_GetObjectItemCaseSensitive(p, "status");
    id = cJSON_GetObjectItemCaseSensitive(p, "id");
    code = cJSON_GetObjectItemCaseSensitive(p, "decline_code");
    last4 = cJSON_GetObjectItemCaseSensitive(p, "last4");

    if (cJSON_IsString(last4) && strlen(last4->valuestring) == 4
        && strspn(last4->valuestring, "0123456789") == 4)
    {
        memcpy(out->last4, last4->valuestring, 5);
    }

    if (!cJSON_IsString(status) || !cJSON_IsString(id)) {
        chat_pay_unknown(out, "provider: a payment without status or id%s%ld",
                         "", 0);
        return;
    }

    snprintf(out->id, sizeof(out->id), "%s", id->valuestring);

    if (cJSON_IsString(code)) {
        snprintf(out->code, sizeof(out->code), "%s", code->valuestring);
    }

    if (strcmp(status->valuestring, "succeeded") == 0) {
        out->state = CHAT_PAY_SUCCEEDED;

    } else if (strcmp(status->valuestring, "declined") == 0) {
        out->state = CHAT_PAY_DECLINED;
        if (out->code[0] == '\0') {
            strcpy(out->code, "declined");
        }

    } else if (strcmp(status->valuestring, "processing") == 0) {
        out->state = CHAT_PAY_PROCESSING;

    } else if (strcmp(status->valuestring, "refunded") == 0) {
        out->state = CHAT_PAY_REFUNDED;

    } else {
        chat_pay_unknown(out, "provider: unknown payment status \"%s\"%ld",
                         status->valuestring, 0);
    }
}


/* A call of method to the provider's path, with key as Idempotency-Key
 * when not NULL.  NULL when memory ran out. */
static chat_http_call_t *
chat_pay_request(const chat_config_t *cfg, const char *method,
    const char *path, const char *key, const char *body)
{
    char         url[1024], header[400];
    const char  *headers[2];

    snprintf(url, sizeof(url), "%s%s", cfg->payment_url, path);

    headers[0] = NULL;
    headers[1] = NULL;

    if (key != NULL) {
        snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
        headers[0] = header;
    }

    return chat_http_call_new(method, url, headers, body,
                              cfg->payment_timeout_ms);
}


/*
 * The parsed answer body of a finished call (the caller deletes it) with
 * *status set, or NULL with out set to UNKNOWN.  A NULL call (it could
 * not be made) is unknown too.
 */
static cJSON *
chat_pay_answer(const chat_http_call_t *call, long *status,
    chat_pay_result_t *out)
{
    cJSON  *json;

    if (call == NULL) {
        chat_pay_unknown(out, "out of memory%s%ld", "", 0);
        return NULL;
    }

    if (call->result != CHAT_HTTP_OK) {
        chat_pay_unknown(out, "provider: %s (%ld)", call->resp.error,
                         (long) call->result);
        chat_log_warn("payment provider %s %s: %s: %s", call->method,
                      call->url, chat_http_result_text(call->result),
                      call->resp.error);
        return NULL;
    }

    *status = call->resp.status;
    json = cJSON_ParseWithLength(call->resp.body, call->resp.body_len);

    if (json == NULL) {
        chat_pay_unknown(out, "provider: %s answered %ld without JSON",
                         call->url, *status);
        return NULL;
    }

    return json;
}


int
chat_payment_token_valid(const char *token)
{
    size_t  n;

    n = strlen(token);

    return n > 4 && n <= CHAT_PAY_TOKEN_MAX && strncmp(token, "tok_", 4) == 0
           && strspn(token, "abcdefghijklmnopqrstuvwxyz"
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}


chat_http_call_t *
chat_payment_charge_call(const chat_config_t *cfg, const char *key,
    int64_t amount_cents, const char *currency, const char *token,
    int64_t order_id)
{
    char              *body;
    cJSON             *req;
    chat_http_call_t  *call;

    req = cJSON_CreateObject();

    if (req == NULL
        || cJSON_AddNumberToObject(req, "amount_cents",
                                   (double) amount_cents) == NULL
        || cJSON_AddStringToObject(req, "currency", currency) == NULL
        || cJSON_AddNumberToObject(req, "order_id", (double) order_id) == NULL
        || cJSON_AddStringToObject(req, "token", token) == NULL)
    {
        cJSON_Delete(req);
        return NULL;
    }

    body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);

    if (body == NULL) {
        return NULL;
    }

    call = chat_pay_request(cfg, "POST", "/v1/payments", key, body);
    cJSON_free(body);

    return call;
}


void
chat_payment_charge_result(const chat_http_call_t *call,
    chat_pay_result_t *out)
{
    long    status;
    cJSON  *json, *err, *code;

    memset(out, 0, sizeof(*out));

    json = chat_pay_answer(call, &status, out);
    if (json == NULL) {
        return;
    }

    if (status == 201 || status == 200 || status == 402) {
        chat_pay_parse_payment(json, out);

        if (out->state != CHAT_PAY_SUCCEEDED
            && out->state != CHAT_PAY_DECLINED)
        {
            chat_pay_unknown(out, "provider: a charge answered %s (%ld)",
                             chat_pay_state_text(out->state), status);
        }

    } else if (status == 400) {
        /* refused as a request: recorded nothing, charged nothing */
        err = cJSON_GetObjectItemCaseSensitive(json, "error");
        code = cJSON_GetObjectItemCaseSensitive(err, "code");
        out->state = CHAT_PAY_DECLINED;
        snprintf(out->code, sizeof(out->code), "%s",
                 cJSON_IsString(code) ? code->valuestring : "invalid_request");

    } else {
        chat_pay_unknown(out, "provider: %s answered %ld", "a charge", status);
    }

    cJSON_Delete(json);
}


/* A call of GET to fmt with arg escaped into it. */
static chat_http_call_t *
chat_pay_get_escaped(const chat_config_t *cfg, const char *fmt,
    const char *arg)
{
    char              *esc, path[600];
    chat_http_call_t  *call;

    esc = curl_easy_escape(NULL, arg, 0);
    if (esc == NULL) {
        return NULL;
    }

    snprintf(path, sizeof(path), fmt, esc);
    curl_free(esc);

    call = chat_pay_request(cfg, "GET", path, NULL, NULL);

    return call;
}


chat_http_call_t *
chat_payment_lookup_call(const chat_config_t *cfg, const char *key)
{
    return chat_pay_get_escaped(cfg, "/v1/payments?idempotency_key=%s", key);
}


void
chat_payment_lookup_result(const chat_http_call_t *call,
    chat_pay_result_t *out)
{
    long    status;
    cJSON  *json, *list;

    memset(out, 0, sizeof(*out));

    json = chat_pay_answer(call, &status, out);
    if (json == NULL) {
        return;
    }

    list = cJSON_GetObjectItemCaseSensitive(json, "payments");

    if (status != 200 || !cJSON_IsArray(list)) {
        chat_pay_unknown(out, "provider: a lookup answered %s%ld", "",
                         status);

    } else if (cJSON_GetArraySize(list) == 0) {
        out->state = CHAT_PAY_NOT_FOUND;

    } else {
        chat_pay_parse_payment(cJSON_GetArrayItem(list, 0), out);
    }

    cJSON_Delete(json);
}


chat_http_call_t *
chat_payment_get_call(const chat_config_t *cfg, const char *id)
{
    return chat_pay_get_escaped(cfg, "/v1/payments/%s", id);
}


void
chat_payment_get_result(const chat_http_call_t *call, chat_pay_result_t *out)
{
    long    status;
    cJSON  *json;

    memset(out, 0, sizeof(*out));

    json = chat_pay_answer(call, &status, out);
    if (json == NULL) {
        return;
    }

    if (status == 200) {
        chat_pay_parse_payment(json, out);
    } else if (status == 404) {
        out->state = CHAT_PAY_NOT_FOUND;
    } else {
        chat_pay_unknown(out, "provider: a payment lookup answered %s%ld", "",
                         status);
    }

    cJSON_Delete(json);
}


chat_http_call_t *
chat_payment_refund_call(const chat_config_t *cfg, const char *id,
    const char *key, int64_t amount_cents)
{
    char  *esc, path[300], body[64];

    esc = curl_easy_escape(NULL, id, 0);
    if (esc == NULL) {
        return NULL;
    }

    snprintf(path, sizeof(path), "/v1/payments/%s/refunds", esc);
    curl_free(esc);

    snprintf(body, sizeof(body), "{\"amount_cents\":%lld}",
             (long long) amount_cents);

    return chat_pay_request(cfg, "POST", path, key, body);
}


void
chat_payment_refund_result(const chat_http_call_t *call,
    chat_pay_result_t *out)
{
    long    status;
    cJSON  *json, *rid, *err, *code;

    memset(out, 0, sizeof(*out));

    json = chat_pay_answer(call, &status, out);
    if (json == NULL) {
        return;
    }

    rid = cJSON_GetObjectItemCaseSensitive(json, "id");

    if ((status == 201 || status == 200) && cJSON_IsString(rid)) {
        out->state = CHAT_PAY_REFUNDED;
        snprintf(out->id, sizeof(out->id), "%s", rid->valuestring);

    } else if (status == 404 || status == 409) {
        err = cJSON_GetObjectItemCaseSensitive(json, "error");
        code = cJSON_GetObjectItemCaseSensitive(err, "code");
        out->state = CHAT_PAY_DECLINED;
        snprintf(out->code, sizeof(out->code), "%s",
                 cJSON_IsString(code) ? code->valuestring : "refused");

    } else {
        chat_pay_unknown(out, "provider: a refund answered %s%ld", "",
                         status);
    }

    cJSON_Delete(json);
}


const char *
chat_pay_state_text(chat_pay_state_t state)
{
    switch (state) {
    case CHAT_PAY_SUCCEEDED:  return "succeeded";
    case CHAT_PAY_DECLINED:   return "declined";
    case CHAT_PAY_PROCESSING: return "processing";
    case CHAT_PAY_REFUNDED:   return "refunded";
    case CHAT_PAY_NOT_FOUND:  return "not found";
    default:                  return "unknown";
    }
}
