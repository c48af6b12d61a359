/*
 * ops.h: the operation table (op name -> handler) and what a handler may
 * do.  See ops.c.
 */

#ifndef CHAT_OPS_H
#define CHAT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "db.h"
#include "envelope.h"
#include "event.h"
#include "http_client.h"

/* The op changes rows: it runs under the idempotency log (command_log),
 * and a replay of its key gets the stored reply.  Ops without the flag
 * only read and simply run again. */
#define CHAT_OP_LOGGED  0x1

/* The op is expensive (scrypt): it runs in a transaction of its own, never
 * in a worker's batch, so it holds no locks of other commands while it
 * works.  See command.c. */
#define CHAT_OP_ALONE   0x2

/*
 * The op waits on an outbound call (the payment provider) and must not
 * hold its worker while it does: it runs outside any transaction (it
 * commits its own) and may suspend with chat_op_suspend.  The worker
 * then goes on with other commands, keeps the entry pending (its delivery
 * stays with this worker) and, once the call has finished, runs the
 * op's resume step, which answers like a handler (suspend.c).  Only the
 * worker's engine runs such ops; they are never batched.  Up to the
 * lane's concurrency of them wait per process.
 */
#define CHAT_OP_SUSPENDS  0x4

/*
 * The op only reads, and may read a streaming replica (--pg-replica):
 * what it answers may be a moment old, except that its user's own last
 * writes are always in it (replica.c waits for them or reads the
 * primary).  Never with CHAT_OP_LOGGED.
 */
#define CHAT_OP_REPLICA   0x8

/*
 * Also for a replica read whose answer the edge caches under the
 * catalog's generations (catalog_cache.c): it waits for the last write
 * that bumped them too, whoever made it, so no stale page is cached
 * under a new generation.  Implies nothing without CHAT_OP_REPLICA.
 */
#define CHAT_OP_REPLICA_CACHED  0x10

/*
 * What a finished write changed of what the edge's read cache holds (the
 * catalog's pages, ngx_chat_module/ngx_chat_cache.c): the books whose
 * pages and whether the list pages.  An op with a touches hook fills one
 * from its body, status and final reply, so a replay touches the same;
 * the catalog area bumps the generations before anyone is answered
 * (catalog_cache.c).
 */
#define CHAT_TOUCHED_BOOKS_MAX  128

typedef struct {
    int       lists;
    size_t    nbooks;
    int64_t   books[CHAT_TOUCHED_BOOKS_MAX];
} chat_touched_t;

typedef void (*chat_op_touches_pt)(const cJSON *body, int status,
    const char *reply, chat_touched_t *t);

typedef struct chat_op_ctx_s  chat_op_ctx_t;

/*
 * The step of a suspended op that runs once its call has finished
 * (call->result and call->resp say how): ctx is the same command's, with
 * the same body, events and connection, and the op's own state is
 * call->data.  Same return contract as a handler; it may suspend again.
 * The engine frees the call afterwards (running call->cleanup on data).
 */
typedef int (*chat_op_resume_pt)(chat_op_ctx_t *ctx, chat_http_call_t *call);

struct chat_op_ctx_s {
    const chat_config_t  *cfg;
    chat_db_t            *db;
    const chat_cmd_t     *cmd;
    const cJSON          *body;     /* request body, a JSON object; NULL
                                       when it was refused (body_invalid
                                       says why) */
    const char           *body_invalid;
    chat_events_t        *events;   /* where chat_op_event adds; NULL: none
                                       wanted */
    int                   status;   /* out: HTTP status */
    cJSON                *reply;    /* out: reply body, owned by the caller */
    chat_http_call_t     *wait;     /* out: the call a suspended op waits
                                       on (chat_op_suspend), owned by the
                                       caller */
    chat_op_resume_pt     resume;   /* out: what runs when it finished */
};

/*
 * A handler either answers, returning 0 with ctx->status and ctx->reply
 * set (2xx for success, 4xx for a business error: both are final, and for
 * a logged op both are stored), or fails, returning -1 on an
 * infrastructure problem (a statement failed, memory ran out).  After a
 * 4xx the caller rolls back whatever the handler wrote; after -1 it rolls
 * back the whole transaction and the command is retried later.  A
 * CHAT_OP_SUSPENDS handler may instead return chat_op_suspend(): 0 with
 * no reply and ctx->wait set.
 */
typedef int (*chat_op_handler_pt)(chat_op_ctx_t *ctx);

/*
 * Turns the stored reply of a finished command into the reply sent, on
 * the first run and on every replay alike; used to add what must never
 * be stored (tokens).  Returns 0 with out->body malloc'd, or -1.
 */
typedef int (*chat_op_present_pt)(const chat_config_t *cfg, int status,
    const char *stored, chat_reply_t *out);

/*
 * An op's batch handler runs n of its commands at once (command.c hands
 * over the op's commands that are next to each other in a batch), in the
 * order given,
 * in the caller's transaction and without savepoints, so a command it
 * answers 4xx must have changed nothing.  Each ctx is as for the handler
 * (its body is never NULL here) and is answered as by the handler.
 * Returns 0 with every ctx answered, or -1 (infrastructure): the caller
 * rolls the whole transaction back.  Lets an op take a constant number of
 * round trips for a batch instead of a few per command.
 *
 * For a CHAT_OP_SUSPENDS op the same hook is its group lock instead: the
 * commands of the op that a worker starts together run their handlers'
 * first transactions as one group commit (suspend.c,
 * chat_suspend_group), and before any of them runs, batch takes, in one
 * statement and in the one order every transaction of the kind uses, the
 * row locks all of them will need (ctxs are the handlers' to be, nothing
 * answered).  0, or -1: the group is given up and each runs on its own.
 */
typedef int (*chat_op_batch_pt)(chat_op_ctx_t *ctxs, size_t n);

typedef struct {
    const char          *name;
    chat_op_handler_pt   handler;
    chat_op_present_pt   present;   /* NULL: the stored reply as it is */
    unsigned             flags;
    chat_op_touches_pt   touches;   /* NULL: touches no cached read */
    chat_op_batch_pt     batch;     /* NULL: one command at a time */
} chat_op_t;

/* The entry for name (len bytes), from the areas' tables (area.h).
 * Never NULL: an unknown name gets a logged entry whose handler answers
 * 404 unknown_operation. */
const chat_op_t *chat_op_find(const char *name, size_t len);

/*
 * Parses cmd's body: returns a JSON object (an empty body counts as {}),
 * or NULL with *why set when the body is refused (anything chat_json.c
 * refuses without CHAT_JSON_INTEGERS: not one JSON object, not UTF-8, a
 * NUL, a raw control character, a repeated key), or NULL with *why NULL
 * when memory ran out.
 */
cJSON *chat_op_parse_body(const chat_cmd_t *cmd, const char **why);

/*
 * Runs the handler on ctx->body.  A refused body (ctx->body NULL) is
 * answered 400 invalid_json without calling the handler.  Same return
 * contract as a handler; on 0 ctx->reply is never NULL.
 */
int chat_op_run(const chat_op_t *op, chat_op_ctx_t *ctx);

/*
 * Runs resume, the step of a suspended op whose call finished (see
 * chat_op_resume_pt), on a fresh ctx (status, reply and wait cleared
 * first).  Same return contract as chat_op_run.
 */
int chat_op_resume(const chat_op_t *op, chat_op_ctx_t *ctx,
    chat_op_resume_pt resume, chat_http_call_t *call);

/*
 * For a CHAT_OP_SUSPENDS handler or resume step: "answer when call has
 * finished, by running resume".  The caller starts the call and owns it
 * from now on (state the op needs afterwards goes in call->data, freed by
 * call->cleanup).  Returns 0, for "return chat_op_suspend(...)"; a NULL
 * call (memory ran out) returns -1.
 */
int chat_op_suspend(chat_op_ctx_t *ctx, chat_http_call_t *call,
    chat_op_resume_pt resume);

/* Applies op->present (or copies stored) into out, then seals the
 * reply's secret fields (chat_seal.c) for cmd's gateway and request. */
int chat_op_present(const chat_op_t *op, const chat_config_t *cfg,
    const chat_cmd_t *cmd, int status, const char *stored,
    chat_reply_t *out);

/* Sets ctx->status and ctx->reply to an error object; returns 0 so a
 * handler can "return chat_op_error(...)", or -1 if memory ran out. */
int chat_op_error(chat_op_ctx_t *ctx, int status, const char *code,
    const char *message);

/* Answers 401 unauthorized unless the command carries a user; returns 1
 * when it does, 0 when the 401 was set, -1 if memory ran out. */
int chat_op_require_user(chat_op_ctx_t *ctx);

/* {"error":{"code":...,"message":...}} as a malloc'd string, or NULL. */
char *chat_error_body(const char *code, const char *message);

/* 400 invalid_field with message why; returns like chat_op_error. */
int chat_op_invalid(chat_op_ctx_t *ctx, const char *why);

/* 404 not_found "no such conversation": what a caller who is not a
 * member hears about a conversation, whether or not it exists. */
int chat_op_no_conversation(chat_op_ctx_t *ctx);

/*
 * ctx->body[name] as an integer in [min, 2^53 - 1].  Returns 1 with *out
 * set.  Returns 0 when the field is absent and not required (ctx->reply
 * stays NULL), or after setting a 400 invalid_field reply (absent but
 * required, or not such an integer).  -1 when memory ran out.
 */
int chat_op_integer(chat_op_ctx_t *ctx, const char *name, int64_t min,
    int required, int64_t *out);

/* ctx->body[name] as a string, or NULL after setting a 400 invalid_field
 * reply (or when memory ran out: ctx->reply NULL). */
const char *chat_op_string(chat_op_ctx_t *ctx, const char *name);

/* Queues event for the users in uids, to be fanned out after the commit
 * (dropped if the command fails or answers 4xx).  0, or -1. */
int chat_op_event(chat_op_ctx_t *ctx, const cJSON *event,
    const int64_t *uids, size_t n);

/* Decimal text of v in buf (at least 24 bytes), for a query parameter. */
const char *chat_i64(char *buf, int64_t v);

/* the auth operations, op_auth.c */
int chat_op_auth_init(void);
int chat_op_auth_register(chat_op_ctx_t *ctx);
int chat_op_auth_login(chat_op_ctx_t *ctx);
int chat_op_user_me(chat_op_ctx_t *ctx);
int chat_op_auth_present(const chat_config_t *cfg, int status,
    const char *stored, chat_reply_t *out);

/* auth.refresh, session.c */
int chat_op_auth_refresh(chat_op_ctx_t *ctx);

/* conversations, op_conv.c */
int chat_op_conv_create(chat_op_ctx_t *ctx);
int chat_op_conv_list(chat_op_ctx_t *ctx);
int chat_op_conv_member_add(chat_op_ctx_t *ctx);
int chat_op_conv_member_remove(chat_op_ctx_t *ctx);
int chat_op_conv_accept(chat_op_ctx_t *ctx);
int chat_op_user_block(chat_op_ctx_t *ctx);
int chat_op_user_unblock(chat_op_ctx_t *ctx);

/* {"type":"conversation",...} for cid's members, no reply (a member
 * accepted it by answering, op_msg.c).  0, or -1. */
int chat_conv_event(chat_op_ctx_t *ctx, int64_t cid);

/* Queues {"type": type, "message": msg} (a copy) for the members in csv
 * (PostgreSQL's string_agg of their ids): "message" for a new one,
 * "message_update" for one edited or deleted (op_msg.c).  0, or -1. */
int chat_msg_event(chat_op_ctx_t *ctx, const char *type, const cJSON *msg,
    const char *csv);

/* messages, op_msg.c; conv.read, op_receipt.c */
int chat_op_msg_send(chat_op_ctx_t *ctx);
int chat_op_msg_send_batch(chat_op_ctx_t *ctxs, size_t n);
int chat_op_msg_history(chat_op_ctx_t *ctx);
int chat_op_conv_read(chat_op_ctx_t *ctx);

/* a sender edits or deletes a message, op_msg_change.c; message search,
 * op_search.c; finding people, op_people.c */
int chat_op_msg_edit(chat_op_ctx_t *ctx);
int chat_op_msg_delete(chat_op_ctx_t *ctx);
int chat_op_msg_search(chat_op_ctx_t *ctx);
int chat_op_user_find(chat_op_ctx_t *ctx);

/* catching up after being away, op_sync.c */
int chat_op_sync(chat_op_ctx_t *ctx);

/* markers and receipts, op_receipt.c (conv.read is here too) */
int chat_op_conv_delivered(chat_op_ctx_t *ctx);
int chat_op_conv_receipts(chat_op_ctx_t *ctx);

/* presence and mutes, op_presence.c */
int chat_op_presence_get(chat_op_ctx_t *ctx);
int chat_op_conv_mute(chat_op_ctx_t *ctx);
/* the cart, op_cart.c */
int chat_op_cart_get(chat_op_ctx_t *ctx);
int chat_op_cart_item_put(chat_op_ctx_t *ctx);
int chat_op_cart_item_delete(chat_op_ctx_t *ctx);

/* checkout, op_checkout.c; orders, op_order.c */
int chat_op_order_checkout(chat_op_ctx_t *ctx);
int chat_op_order_checkout_lock(chat_op_ctx_t *ctxs, size_t n);
int chat_op_order_list(chat_op_ctx_t *ctx);
int chat_op_order_get(chat_op_ctx_t *ctx);
int chat_op_admin_order_list(chat_op_ctx_t *ctx);
int chat_op_admin_order_ship(chat_op_ctx_t *ctx);
int chat_op_admin_order_refund(chat_op_ctx_t *ctx);
int chat_op_admin_order_deliver(chat_op_ctx_t *ctx);
int chat_op_carrier_delivery(chat_op_ctx_t *ctx);
/* the catalog: reads, op_catalog.c; reviews, op_review.c; admin writes,
 * op_admin_catalog.c */
int chat_op_catalog_categories(chat_op_ctx_t *ctx);
int chat_op_catalog_author(chat_op_ctx_t *ctx);
int chat_op_catalog_browse(chat_op_ctx_t *ctx);
int chat_op_catalog_search(chat_op_ctx_t *ctx);      /* op_search.c */
int chat_op_catalog_suggest(chat_op_ctx_t *ctx);     /* op_search.c */
int chat_op_catalog_book(chat_op_ctx_t *ctx);
int chat_op_catalog_reviews(chat_op_ctx_t *ctx);
int chat_op_catalog_review_create(chat_op_ctx_t *ctx);
int chat_op_admin_book_create(chat_op_ctx_t *ctx);
int chat_op_admin_book_update(chat_op_ctx_t *ctx);
int chat_op_admin_book_delete(chat_op_ctx_t *ctx);
int chat_op_admin_warehouse_create(chat_op_ctx_t *ctx);
int chat_op_admin_warehouse_list(chat_op_ctx_t *ctx);
int chat_op_admin_inventory_set(chat_op_ctx_t *ctx);
int chat_op_admin_inventory_adjust(chat_op_ctx_t *ctx);

/* categories, authors and a book's stock grid, op_admin_taxonomy.c */
int chat_op_admin_category_create(chat_op_ctx_t *ctx);
int chat_op_admin_category_update(chat_op_ctx_t *ctx);
int chat_op_admin_author_create(chat_op_ctx_t *ctx);
int chat_op_admin_author_update(chat_op_ctx_t *ctx);
int chat_op_admin_inventory_book(chat_op_ctx_t *ctx);

#endif /* CHAT_OPS_H */
