/*
 * ngx_chat_api_input.c: the checks a chat_api request's target, headers
 * and body pass before anything reaches Redis: the target is text
 * (chat_query.c), the body one strict JSON object (chat_json.c) with the
 * route's fields, the path ids and query parameters added to it, the
 * Idempotency-Key well-formed (and present where an op requires it), no
 * card data, the secret fields sealed.  Each fills a problem (status,
 * code, message) for the handler to send; none sends anything itself.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <cjson/cJSON.h>

#include "chat_json.h"
#include "chat_protocol.h"
#include "chat_query.h"
#include "chat_utf8.h"
#include "ngx_chat_api.h"
#include "ngx_chat_module.h"


/*
 * Card details are refused before anything reaches Redis (400
 * card_data_not_accepted): the browser tokenizes the card with the
 * payment processor and a checkout carries payment: {token}, so no card
 * number or cvc ever crosses our servers, the bus or its files.
 */
static const char  *ngx_chat_card_fields[] = { CHAT_CARD_FIELDS, NULL };

/* ops that refuse to run without the client's Idempotency-Key (400): a
 * retry without it could charge twice */
static const char  *ngx_chat_key_required_ops[] = {
    "order.checkout",
    NULL
};


/*
 * The request target is text: the path (as nginx decoded it) is UTF-8, and
 * every query parameter decodes to UTF-8 without NUL or control
 * characters.  A byte PostgreSQL would refuse is a 400 here, at once, not
 * a command retried into the dead-letter stream.
 */
ngx_int_t
ngx_chat_api_check_target(ngx_http_request_t *r, ngx_chat_problem_t *problem)
{
    size_t           where;
    u_char          *message;
    chat_query_rc_t  rc;

    if (!chat_utf8_valid(r->uri.data, r->uri.len)) {
        return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST, "invalid_utf8",
                                "the path is not valid UTF-8");
    }

    rc = chat_query_check((const char *) r->args.data, r->args.len, &where);
    if (rc == CHAT_QUERY_OK) {
        return NGX_OK;
    }

    message = ngx_pnalloc(r->pool, 128);
    if (message == NULL) {
        return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
    }

    ngx_sprintf(message, "%s (parameter at byte %uz of the query)%Z",
                chat_query_reason(rc), where);

    return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                            chat_query_code(rc), (const char *) message);
}


/*
 * One JSON object carrying the route's required fields with their types.
 * Returns the parsed object (the caller deletes it), or NULL with problem.
 */
cJSON *
ngx_chat_api_parse_body(ngx_http_request_t *r, const ngx_chat_route_t *route,
    ngx_str_t *body, ngx_chat_problem_t *problem)
{
    size_t                   where;
    u_char                  *message;
    cJSON                   *json, *item;
    chat_json_rc_t           rc;
    const ngx_chat_field_t  *f;

    /* a POST without a body, where nothing is required (ship, refund) */
    if (body->len == 0 && route->fields == NULL) {
        json = cJSON_CreateObject();
        if (json == NULL) {
            (void) ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NULL, NULL);
        }
        return json;
    }

    /* strictly first: what passes reads the same to cJSON, the workers
     * and PostgreSQL */
    rc = chat_json_check((const char *) body->data, body->len,
                         CHAT_JSON_OBJECT | CHAT_JSON_INTEGERS, &where);

    if (rc == CHAT_JSON_NOMEM) {
        (void) ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
        return NULL;
    }

    if (rc != CHAT_JSON_OK) {
        message = ngx_pnalloc(r->pool, 160);
        if (message == NULL) {
            (void) ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NULL, NULL);
            return NULL;
        }

        ngx_sprintf(message, "%s (byte %uz of the body)%Z",
                    chat_json_reason(rc), where);

        (void) ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                chat_json_code(rc), (const char *) message);
        return NULL;
    }

    json = cJSON_ParseWithLength((const char *) body->data, body->len);

    if (json == NULL) {
        /* the text is valid: only memory can have failed */
        (void) ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
        return NULL;
    }

    for (f = route->fields; f && f->name; f++) {
        item = cJSON_GetObjectItemCaseSensitive(json, f->name);

        if (item != NULL && (item->type & 0xff) == f->type) {
            continue;
        }

        cJSON_Delete(json);

        message = ngx_pnalloc(r->pool, ngx_strlen(f->name) + 64);
        if (message == NULL) {
            (void) ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NULL, NULL);
            return NULL;
        }

        ngx_sprintf(message, "\"%s\" is %s%Z", f->name,
                    item ? "of the wrong type" : "required");

        (void) ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                item ? "invalid_field" : "missing_field",
                                (const char *) message);
        return NULL;
    }

    return json;
}


/* Path ids and accepted query parameters become fields of the command. */
ngx_int_t
ngx_chat_api_add_params(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx,
    cJSON *json, ngx_chat_problem_t *problem)
{
    char                    *value;
    size_t                   len;
    u_char                  *message;
    int64_t                  n;
    ngx_uint_t               i;
    chat_query_rc_t          rc;
    const ngx_chat_field_t  *q;

    for (i = 0; i < NGX_CHAT_MAX_PATH_IDS && ctx->route->ids[i]; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(json, ctx->route->ids[i]);

        if (cJSON_AddNumberToObject(json, ctx->route->ids[i],
                                    (double) ctx->ids[i])
            == NULL)
        {
            return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NULL, NULL);
        }
    }

    if (ctx->route->query == NULL || r->args.len == 0) {
        return NGX_OK;
    }

    /* a decoded value is never longer than the query string */
    value = ngx_pnalloc(r->pool, r->args.len + 1);
    if (value == NULL) {
        return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
    }

    for (q = ctx->route->query; q->name; q++) {
        n = 0;
        rc = chat_query_get((const char *) r->args.data, r->args.len,
                            q->name, ngx_strlen(q->name), value, &len);

        if (rc == CHAT_QUERY_ABSENT) {
            continue;
        }

        if (rc == CHAT_QUERY_OK && q->type == cJSON_Number
            && (chat_json_integer_text(value, len, &n) != 0 || n < 0))
        {
            message = ngx_pnalloc(r->pool, ngx_strlen(q->name) + 64);
            if (message == NULL) {
                return ngx_chat_problem(problem,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        NULL, NULL);
            }

            ngx_sprintf(message, "\"%s\" must be a non-negative integer%Z",
                        q->name);

            return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                    "invalid_query", (const char *) message);
        }

        if (rc != CHAT_QUERY_OK) {
            message = ngx_pnalloc(r->pool, ngx_strlen(q->name) + 128);
            if (message == NULL) {
                return ngx_chat_problem(problem,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        NULL, NULL);
            }

            ngx_sprintf(message, "\"%s\": %s%Z", q->name,
                        chat_query_reason(rc));

            return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                    chat_query_code(rc),
                                    (const char *) message);
        }

        cJSON_DeleteItemFromObjectCaseSensitive(json, q->name);

        if (q->type == cJSON_Number) {
            if (cJSON_AddNumberToObject(json, q->name, (double) n) == NULL) {
                return ngx_chat_problem(problem,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        NULL, NULL);
            }

            continue;
        }

        /* chat_query_get refused NUL: the C string is the whole value */
        value[len] = '\0';

        if (cJSON_AddStringToObject(json, q->name, value) == NULL) {
            return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NULL, NULL);
        }
    }

    return NGX_OK;
}


/* The optional Idempotency-Key header: 1..128 visible ASCII characters. */
ngx_int_t
ngx_chat_api_idempotency_key(ngx_http_request_t *r, ngx_str_t *key,
    ngx_chat_problem_t *problem)
{
    ngx_uint_t        j;
    ngx_table_elt_t  *h;

    ngx_str_null(key);

    h = ngx_chat_http_header(r, "Idempotency-Key");
    if (h == NULL) {
        return NGX_OK;
    }

    if (h->value.len == 0 || h->value.len > NGX_CHAT_IDEMPOTENCY_KEY_MAX) {
        goto invalid;
    }

    for (j = 0; j < h->value.len; j++) {
        if (h->value.data[j] <= 0x20 || h->value.data[j] >= 0x7f) {
            goto invalid;
        }
    }

    *key = h->value;
    return NGX_OK;

invalid:

    return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST, "invalid_header",
                            "Idempotency-Key must be 1 to 128 visible "
                            "ASCII characters");
}


/* 400 when the route's op needs the client's Idempotency-Key and the
 * request has none. */
ngx_int_t
ngx_chat_api_key_required(const ngx_chat_route_t *route, ngx_str_t *key,
    ngx_chat_problem_t *problem)
{
    const char  **op;

    if (key->len > 0) {
        return NGX_OK;
    }

    for (op = ngx_chat_key_required_ops; *op; op++) {
        if (ngx_strcmp(*op, route->op) == 0) {
            return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                    "missing_idempotency_key",
                                    "this request needs an Idempotency-Key "
                                    "header");
        }
    }

    return NGX_OK;
}


/*
 * The op's secret fields (a password: chat_seal.c) sealed in json, so
 * that Redis and its append-only file never hold them in clear.
 */
ngx_int_t
ngx_chat_api_seal(ngx_http_request_t *r, const char *op, cJSON *json,
    ngx_chat_problem_t *problem)
{
    const cJSON           *item;
    chat_seal_ad_t         ad;
    const char *const     *fields, *const *f;
    ngx_chat_loc_conf_t   *clcf;

    fields = chat_seal_command_fields(op, ngx_strlen(op));
    if (fields == NULL) {
        return NGX_OK;
    }

    for (f = fields; *f; f++) {
        item = cJSON_GetObjectItemCaseSensitive(json, *f);

        if (cJSON_IsString(item)
            && ngx_strlen(item->valuestring) > CHAT_SEAL_MAX_PLAIN)
        {
            return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                    "invalid_field",
                                    "a secret field is too long");
        }
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    if (clcf->endpoint == NULL) {
        return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                "internal_error", "no redis here");
    }

    ad.dir = "cmd";
    ad.op = op;
    ad.op_len = ngx_strlen(op);
    ad.gw = "";
    ad.gw_len = 0;
    ad.req = "";
    ad.req_len = 0;

    if (chat_seal_json(clcf->endpoint->seal_key, &ad, fields, json) != 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "chat: sealing the secret fields of \"%s\" failed",
                      op);
        return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
    }

    return NGX_OK;
}


/* 400 card_data_not_accepted when a checkout's payment carries card
 * details instead of the processor's token. */
ngx_int_t
ngx_chat_api_no_card(const ngx_chat_route_t *route, cJSON *json,
    ngx_chat_problem_t *problem)
{
    const char   **f;
    const cJSON   *payment;

    if (ngx_strcmp(route->op, "order.checkout") != 0) {
        return NGX_OK;
    }

    payment = cJSON_GetObjectItemCaseSensitive(json, "payment");

    for (f = ngx_chat_card_fields; *f; f++) {
        if (cJSON_GetObjectItemCaseSensitive(payment, *f) != NULL) {
            return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                    CHAT_CARD_REFUSED_CODE,
                                    CHAT_CARD_REFUSED_TEXT);
        }
    }

    return NGX_OK;
}
