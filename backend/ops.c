/*
 * ops.c: the operation table and the code every operation shares.
 *
 * An operation is a name on the bus ("auth.register"), a handler that does
 * the work inside the worker's transaction, an optional present hook that
 * shapes the stored reply into the one sent, and flags.  Adding an
 * operation is one line in chat_ops[] plus its handler in an op_<area>.c.
 *
 * How it works: the worker looks the name up with chat_op_find (a linear
 * scan; the table is short and the scan is nothing next to a round trip to
 * PostgreSQL), db.c opens the transaction and the idempotency log entry,
 * and chat_op_run parses the JSON body and calls the handler.  Handlers
 * build replies with cJSON and report business errors through
 * chat_op_error so every error has the one shape of API.md:
 * {"error":{"code","message"}}.
 *
 * What it does not do: authorise by role (handlers check what they need,
 * with the uid and role the edge took from a verified token), or touch
 * Redis.  Handlers never see the bus.
 */

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ops.h"


static int chat_op_unknown(chat_op_ctx_t *ctx);

static const chat_op_t  chat_ops[] = {
    { "auth.register", chat_op_auth_register, chat_op_auth_present,
      CHAT_OP_LOGGED },
    { "auth.login", chat_op_auth_login, chat_op_auth_present, 0 },
    { "user.me", chat_op_user_me, NULL, 0 },
};

/* stored like any business error, so a replay answers the same */
static const chat_op_t  chat_op_unknown_entry = {
    "unknown", chat_op_unknown, NULL, CHAT_OP_LOGGED
};


int
chat_ops_init(void)
{
    return chat_op_auth_init();
}


const chat_op_t *
chat_op_find(const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < sizeof(chat_ops) / sizeof(chat_ops[0]); i++) {
        if (strlen(chat_ops[i].name) == len
            && memcmp(chat_ops[i].name, name, len) == 0)
        {
            return &chat_ops[i];
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


int
chat_op_run(const chat_op_t *op, chat_op_ctx_t *ctx)
{
    int     rc;
    cJSON  *body;

    ctx->status = 0;
    ctx->reply = NULL;

    if (ctx->cmd->body_len == 0) {
        body = cJSON_CreateObject();
        if (body == NULL) {
            return -1;
        }

    } else {
        body = cJSON_ParseWithLength(ctx->cmd->body, ctx->cmd->body_len);
        if (body == NULL || !cJSON_IsObject(body)) {
            cJSON_Delete(body);
            return chat_op_error(ctx, 400, "invalid_json",
                                 "the request body must be a JSON object");
        }
    }

    ctx->body = body;
    rc = op->handler(ctx);
    ctx->body = NULL;
    cJSON_Delete(body);

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
chat_op_present(const chat_op_t *op, const chat_config_t *cfg, int status,
    const char *stored, chat_reply_t *out)
{
    out->status = status;
    out->body = NULL;

    if (op->present != NULL) {
        return op->present(cfg, status, stored, out);
    }

    out->body = strdup(stored);

    return out->body == NULL ? -1 : 0;
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
