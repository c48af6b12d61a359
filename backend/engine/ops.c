/*
 * ops.c: the operation table and the code every operation shares.
 *
 * An operation is a name on the bus ("auth.register"), a handler that does
 * the work inside the worker's transaction, an optional present hook that
 * shapes the stored reply into the one sent, flags: CHAT_OP_LOGGED (it
 * writes: it runs under the idempotency log), CHAT_OP_ALONE (it is
 * expensive: it gets a transaction of its own instead of sharing a
 * batch's) and CHAT_OP_SUSPENDS (it waits on an outbound call: it may
 * suspend with chat_op_suspend and be resumed when the call finished,
 * while its worker serves other commands; suspend.c), an optional touches
 * hook (what it changed of the edge's read cache) and an optional batch
 * handler (several of its commands in one go; command.c).  Adding an
 * operation is one line in its area's table (area_<name>.c, see area.h)
 * plus its handler, and its lane in protocol/chat_lanes.c if it
 * writes.
 *
 * How it works: the worker looks the name up with chat_op_find (a linear
 * scan over the areas' tables; they are short and the scan is nothing
 * next to a round trip to
 * PostgreSQL), command.c parses the body once (chat_op_parse_body), opens
 * the transaction, the savepoint and the idempotency log entry, and
 * chat_op_run calls the handler.  Handlers build replies with cJSON,
 * report business errors through chat_op_error so every error has the one
 * shape of API.md ({"error":{"code","message"}}), read fields through
 * chat_op_integer / chat_op_string (400 invalid_field naming the field),
 * and queue what others must hear through chat_op_event.
 *
 * What it does not do: authorise by role (handlers check what they need,
 * with the uid and role the edge took from a verified token), or touch
 * Redis.  Handlers never see the bus; their events are fanned out by the
 * worker after the commit.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "area.h"
#include "chat_json.h"
#include "chat_seal.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"


static int chat_op_unknown(chat_op_ctx_t *ctx);

/* stored like any business error, so a replay answers the same */
static const chat_op_t  chat_op_unknown_entry = {
    "unknown", chat_op_unknown, NULL, CHAT_OP_LOGGED, NULL, NULL
};


const chat_op_t *
chat_op_find(const char *name, size_t len)
{
    size_t              i, k;
    const chat_area_t  *a;

    for (i = 0; chat_areas[i] != NULL; i++) {
        a = chat_areas[i];

        for (k = 0; k < a->nops; k++) {
            if (strlen(a->ops[k].name) == len
                && memcmp(a->ops[k].name, name, len) == 0)
            {
                return &a->ops[k];
            }
        }
    }

    return &chat_op_unknown_entry;
}


static int
chat_op_unknown(chat_op_ctx_t *ctx)
{
    return chat_op_error(ctx, 404, "unknown_operation",
                         "the backend has no such operation");
}


cJSON *
chat_op_parse_body(const chat_cmd_t *cmd, const char **why)
{
    chat_json_rc_t  rc;

    *why = NULL;

    if (cmd->body_len == 0) {
        return cJSON_CreateObject();
    }

    /*
     * The edge checked the body already; checking again costs a pass over
     * a few hundred bytes and means a body from anywhere else that cJSON
     * would read differently (a string cut at \u0000, the first of two
     * equal keys) or PostgreSQL would refuse (invalid UTF-8, which would
     * be retried into the dead-letter stream) is a 400 instead.  Numbers
     * are not held to the edge's plain-integer spelling: cJSON prints an
     * integer such as 10^15 as 1e+15, and handlers judge their numbers
     * with chat_op_integer.
     */
    rc = chat_json_check(cmd->body, cmd->body_len, CHAT_JSON_OBJECT, NULL);

    if (rc == CHAT_JSON_NOMEM) {
        return NULL;
    }

    if (rc != CHAT_JSON_OK) {
        *why = chat_json_reason(rc);
        return NULL;
    }

    /* one object, as checked: NULL now means memory ran out */
    return cJSON_ParseWithLength(cmd->body, cmd->body_len);
}


/* What a handler or resume step left in ctx, checked: 0, or -1. */
static int
chat_op_outcome(const chat_op_t *op, chat_op_ctx_t *ctx, int rc)
{
    if (rc == 0 && ctx->wait != NULL && ctx->reply == NULL
        && (op->flags & CHAT_OP_SUSPENDS))
    {
        return 0;                       /* suspended */
    }

    if (ctx->wait != NULL) {
        if (rc == 0) {
            chat_log_error("op %s: suspended with a reply, or without "
                           "CHAT_OP_SUSPENDS", op->name);
        }
        chat_http_call_free(ctx->wait);
        ctx->wait = NULL;
        ctx->resume = NULL;
        rc = -1;
    }

    if (rc != 0) {
        cJSON_Delete(ctx->reply);
        ctx->reply = NULL;
        return -1;
    }

    if (ctx->reply == NULL || ctx->status < 200 || ctx->status > 599) {
        chat_log_error("op %s: handler returned no reply or status %d",
                       op->name, ctx->status);
        cJSON_Delete(ctx->reply);
        ctx->reply = NULL;
        return -1;
    }

    return 0;
}


int
chat_op_run(const chat_op_t *op, chat_op_ctx_t *ctx)
{
    ctx->status = 0;
    ctx->reply = NULL;
    ctx->wait = NULL;
    ctx->resume = NULL;

    if (ctx->body == NULL) {
        return chat_op_error(ctx, 400, "invalid_json",
                             ctx->body_invalid ? ctx->body_invalid
                             : "the request body must be a JSON object");
    }

    return chat_op_outcome(op, ctx, op->handler(ctx));
}


int
chat_op_resume(const chat_op_t *op, chat_op_ctx_t *ctx,
    chat_op_resume_pt resume, chat_http_call_t *call)
{
    ctx->status = 0;
    ctx->reply = NULL;
    ctx->wait = NULL;
    ctx->resume = NULL;

    return chat_op_outcome(op, ctx, resume(ctx, call));
}


int
chat_op_suspend(chat_op_ctx_t *ctx, chat_http_call_t *call,
    chat_op_resume_pt resume)
{
    if (call == NULL) {
        return -1;
    }

    ctx->wait = call;
    ctx->resume = resume;

    return 0;
}


/*
 * Seals the secret fields of a 2xx reply (a token: chat_seal.c) for the
 * gateway and request that asked, so Redis never holds them in clear.
 * Replaces out->body; 0, or -1 (then out->body is freed and NULL).
 */
static int
chat_op_seal_reply(const chat_op_t *op, const chat_config_t *cfg,
    const chat_cmd_t *cmd, chat_reply_t *out)
{
    char               *text;
    cJSON              *json;
    chat_seal_ad_t      ad;
    const char *const  *fields;

    fields = chat_seal_reply_fields(op->name, strlen(op->name));

    if (fields == NULL || out->status < 200 || out->status > 299) {
        return 0;
    }

    ad.dir = "reply";
    ad.op = cmd->op;
    ad.op_len = cmd->op_len;
    ad.gw = cmd->gw;
    ad.gw_len = cmd->gw_len;
    ad.req = cmd->req;
    ad.req_len = cmd->req_len;

    text = NULL;
    json = cJSON_Parse(out->body);

    if (json != NULL && chat_seal_json(cfg->seal_key, &ad, fields, json) == 0)
    {
        text = cJSON_PrintUnformatted(json);
    }

    cJSON_Delete(json);

    /* the reply in clear is not kept, whatever happened */
    OPENSSL_cleanse(out->body, strlen(out->body));
    free(out->body);
    out->body = text;

    if (text == NULL) {
        chat_log_error("op %s: sealing the reply failed", op->name);
        return -1;
    }

    return 0;
}


int
chat_op_present(const chat_op_t *op, const chat_config_t *cfg,
    const chat_cmd_t *cmd, int status, const char *stored, chat_reply_t *out)
{
    out->status = status;
    out->body = NULL;

    if (op->present != NULL) {
        if (op->present(cfg, status, stored, out) != 0) {
            return -1;
        }

    } else {
        out->body = strdup(stored);
        if (out->body == NULL) {
            return -1;
        }
    }

    return chat_op_seal_reply(op, cfg, cmd, out);
}


static cJSON *
chat_error_json(const char *code, const char *message)
{
    cJSON  *root, *err;

    root = cJSON_CreateObject();
    err = cJSON_AddObjectToObject(root, "error");

    if (err == NULL
        || cJSON_AddStringToObject(err, "code", code) == NULL
        || cJSON_AddStringToObject(err, "message", message) == NULL)
    {
        cJSON_Delete(root);
        return NULL;
    }

    return root;
}


int
chat_op_error(chat_op_ctx_t *ctx, int status, const char *code,
    const char *message)
{
    cJSON_Delete(ctx->reply);

    ctx->reply = chat_error_json(code, message);
    ctx->status = status;

    return ctx->reply == NULL ? -1 : 0;
}


int
chat_op_require_user(chat_op_ctx_t *ctx)
{
    if (ctx->cmd->uid > 0) {
        return 1;
    }

    return chat_op_error(ctx, 401, "unauthorized",
                         "this operation needs a signed-in user");
}


char *
chat_error_body(const char *code, const char *message)
{
    char   *s;
    cJSON  *root;

    root = chat_error_json(code, message);
    if (root == NULL) {
        return NULL;
    }

    s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);

    return s;
}


int
chat_op_invalid(chat_op_ctx_t *ctx, const char *why)
{
    return chat_op_error(ctx, 400, "invalid_field", why);
}


int
chat_op_no_conversation(chat_op_ctx_t *ctx)
{
    return chat_op_error(ctx, 404, "not_found", "no such conversation");
}


int
chat_op_integer(chat_op_ctx_t *ctx, const char *name, int64_t min,
    int required, int64_t *out)
{
    char          msg[96];
    const cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, name);

    if (item == NULL || cJSON_IsNull(item)) {
        if (!required) {
            return 0;
        }

        snprintf(msg, sizeof(msg), "%s is required", name);
        return chat_op_invalid(ctx, msg) == 0 ? 0 : -1;
    }

    if (chat_json_integer(item, min, CHAT_INT_MAX, out) == 0) {
        return 1;
    }

    snprintf(msg, sizeof(msg), "%s must be an integer >= %lld", name,
             (long long) min);

    return chat_op_invalid(ctx, msg) == 0 ? 0 : -1;
}


const char *
chat_op_string(chat_op_ctx_t *ctx, const char *name)
{
    char          msg[96];
    const cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, name);

    if (cJSON_IsString(item) && item->valuestring != NULL) {
        return item->valuestring;
    }

    snprintf(msg, sizeof(msg), "%s is required and must be a string", name);
    (void) chat_op_invalid(ctx, msg);

    return NULL;
}


int
chat_op_event(chat_op_ctx_t *ctx, const cJSON *event, const int64_t *uids,
    size_t n)
{
    if (ctx->events == NULL || n == 0) {
        return 0;
    }

    return chat_events_add(ctx->events, event, uids, n);
}


const char *
chat_i64(char *buf, int64_t v)
{
    snprintf(buf, 24, "%lld", (long long) v);
    return buf;
}
