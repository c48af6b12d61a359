/*
 * ngx_chat_bus.h: the edge's side of the command bus: send a command,
 * park whoever asked, answer them when the worker's reply arrives.
 */

#ifndef NGX_CHAT_BUS_H
#define NGX_CHAT_BUS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_module.h"
#include "ngx_chat_redis.h"


typedef struct ngx_chat_pending_s  ngx_chat_pending_t;

/*
 * Called exactly once per parked entry, after it left the table: with the
 * worker's status and JSON body, or with 504 when the timer fired first,
 * or 503 when the Redis connection was lost or the lane was full (then
 * p->retry_after is set).  The body is only valid
 * during the call.
 */
typedef void (*ngx_chat_answer_pt)(ngx_chat_pending_t *p, ngx_uint_t status,
    u_char *body, size_t len);


/* A command waiting for its answer.  The owner allocates it and sets
 * answer and data; the bus sets the rest. */
struct ngx_chat_pending_s {
    ngx_rbtree_node_t     node;         /* key: id; zeroed when unparked */
    uint64_t              id;           /* the request id sent to Redis */
    ngx_event_t           timer;
    ngx_chat_answer_pt    answer;
    void                 *data;
    const char           *op;           /* the command's op (a static
                                           name): which reply fields
                                           come sealed (chat_seal.c) */
    time_t                retry_after;  /* seconds, with 503 overloaded */
    ngx_msec_t            sent;         /* when it went on the bus, for
                                           the latency histogram */
    ngx_str_t             rid;          /* $request_id for the backend's
                                           logs (ngx_chat_request_id);
                                           empty: none */
    unsigned              parked:1;
    unsigned              misconfigured:1;  /* refused: see
                                               ngx_chat_lanes_admit */
};


ngx_int_t ngx_chat_bus_init_process(ngx_cycle_t *cycle,
    ngx_chat_main_conf_t *cmcf);
void ngx_chat_bus_exit_process(void);

/* The command connection, for edge-local Redis commands. */
ngx_chat_redis_t *ngx_chat_bus_redis(void);

/* This gateway's reply stream key, where workers send replies and events. */
ngx_str_t *ngx_chat_bus_reply_stream(void);

/*
 * Parks p under a fresh id with the command timeout; p->answer gets 504 if
 * nothing else answers first.  Returns NGX_ERROR if the bus is not running.
 */
ngx_int_t ngx_chat_bus_park(ngx_chat_pending_t *p, ngx_log_t *log);

/* Takes p out of the table without answering it (its owner is going away). */
void ngx_chat_bus_cancel(ngx_chat_pending_t *p);

/* Finds and unparks the entry with this id; NULL if it is gone. */
ngx_chat_pending_t *ngx_chat_bus_unpark(uint64_t id);

/*
 * Parks p and puts op on its lane's command stream (chat_lanes.h) for the
 * caller.  Returns NGX_OK (p->answer will be called: also, at once with
 * 503 overloaded and p->retry_after set, when the lane is full),
 * NGX_DECLINED when Redis is unavailable, or NGX_ERROR; in both failure
 * cases p is not parked and never answered.
 */
ngx_int_t ngx_chat_bus_send(ngx_chat_pending_t *p, ngx_log_t *log,
    const char *op, ngx_chat_caller_t *caller, ngx_str_t *client_key,
    ngx_str_t *body);

/* ngx_chat_http.c: a pending entry that answers HTTP request r */
ngx_chat_pending_t *ngx_chat_http_pending(ngx_http_request_t *r);

/*
 * ngx_chat_cache.c: answers a cacheable catalog read (op with body; id is
 * the book id of the path, or 0) from Redis, or sends it on the bus with
 * p and caches the worker's answer.  Returns NGX_DECLINED when op is not
 * cacheable (nothing done), NGX_DONE when p is parked, or what to
 * finalize r with.
 */
ngx_int_t ngx_chat_cache_handle(ngx_http_request_t *r, ngx_chat_pending_t *p,
    const char *op, ngx_chat_caller_t *caller, ngx_str_t *body, int64_t id);

#endif /* NGX_CHAT_BUS_H */
