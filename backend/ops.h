/*
 * ops.h: the operation table (op name -> handler) and what a handler may
 * do.  See ops.c.
 */

#ifndef CHAT_OPS_H
#define CHAT_OPS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "db.h"
#include "envelope.h"

/* The op changes rows: it runs under the idempotency log (command_log),
 * and a replay of its key gets the stored reply.  Ops without the flag
 * only read and simply run again. */
#define CHAT_OP_LOGGED  0x1

typedef struct {
    const chat_config_t  *cfg;
    chat_db_t            *db;
    const chat_cmd_t     *cmd;
    const cJSON          *body;     /* request body: always a JSON object */
    int                   status;   /* out: HTTP status */
    cJSON                *reply;    /* out: reply body, owned by the caller */
} chat_op_ctx_t;

/*
 * A handler either answers, returning 0 with ctx->status and ctx->reply
 * set (2xx for success, 4xx for a business error: both are final, and for
 * a logged op both are stored), or fails, returning -1 on an
 * infrastructure problem (a statement failed, memory ran out).  After a
 * 4xx the caller rolls back whatever the handler wrote; after -1 it rolls
 * back the whole transaction and the command is retried later.
 */
typedef int (*chat_op_handler_pt)(chat_op_ctx_t *ctx);

/*
 * Turns the stored reply of a finished command into the reply sent, on
 * the first run and on every replay alike; used to add what must never
 * be stored (tokens).  Returns 0 with out->body malloc'd, or -1.
 */
typedef int (*chat_op_present_pt)(const chat_config_t *cfg, int status,
    const char *stored, chat_reply_t *out);

typedef struct {
    const char          *name;
    chat_op_handler_pt   handler;
    chat_op_present_pt   present;   /* NULL: the stored reply as it is */
    unsigned             flags;
} chat_op_t;

/* Prepares what operations need once per process (e.g. the dummy hash
 * of auth.login).  0, or -1 (logged; the ops then prepare lazily). */
int chat_ops_init(void);

/* The entry for name (len bytes).  Never NULL: an unknown name gets a
 * logged entry whose handler answers 404 unknown_operation. */
const chat_op_t *chat_op_find(const char *name, size_t len);

/*
 * Parses ctx->cmd's body (an empty body counts as {}), then runs the
 * handler.  A body that is not a JSON object is answered 400 invalid_json
 * without calling the handler.  Same return contract as a handler; on 0
 * ctx->reply is never NULL.
 */
int chat_op_run(const chat_op_t *op, chat_op_ctx_t *ctx);

/* Applies op->present (or copies stored) into out. */
int chat_op_present(const chat_op_t *op, const chat_config_t *cfg,
    int status, const char *stored, chat_reply_t *out);

/* Sets ctx->status and ctx->reply to an error object; returns 0 so a
 * handler can "return chat_op_error(...)", or -1 if memory ran out. */
int chat_op_error(chat_op_ctx_t *ctx, int status, const char *code,
    const char *message);

/* Answers 401 unauthorized unless the command carries a user; returns 1
 * when it does, 0 when the 401 was set, -1 if memory ran out. */
int chat_op_require_user(chat_op_ctx_t *ctx);

/* {"error":{"code":...,"message":...}} as a malloc'd string, or NULL. */
char *chat_error_body(const char *code, const char *message);

/* the auth operations, op_auth.c */
int chat_op_auth_init(void);
int chat_op_auth_register(chat_op_ctx_t *ctx);
int chat_op_auth_login(chat_op_ctx_t *ctx);
int chat_op_user_me(chat_op_ctx_t *ctx);
int chat_op_auth_present(const chat_config_t *cfg, int status,
    const char *stored, chat_reply_t *out);

#endif /* CHAT_OPS_H */
