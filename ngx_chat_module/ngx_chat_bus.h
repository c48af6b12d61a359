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
 * This worker on one Redis endpoint: one per endpoint (ngx_chat_module.h),
 * made at process start.  Two connections: "commands" (XADDs, scripts,
 * edge-local reads) and "replies" (a loop of XREAD BLOCK on this
 * gateway's reply stream, which a blocking read holds).  Everything a
 * request does in Redis goes through the gateway of its location
 * (ngx_chat_gateway), so one application's commands, events, presence
 * and revocations never reach another's Redis.
 */
struct ngx_chat_gateway_s {
    ngx_chat_endpoint_t      *endpoint;
    ngx_chat_main_conf_t     *cmcf;
    ngx_chat_redis_t          commands;
    ngx_chat_redis_t          replies;

    ngx_str_t                 gateway;       /* "<host>:<pid>:<random>" */
    ngx_str_t                 reply_stream;  /* "chat:gw:{<gateway>}" */
    char                      last_id[48];   /* the last reply read */
    char                      trimmed_id[48];  /* read entries before it
                                                  trimmed (XTRIM MINID) */
    ngx_msec_t                trimmed_at;
    ngx_event_t               reread;        /* retry after an XREAD error */
    char                      maxlen[NGX_INT_T_LEN + 1];

    ngx_chat_lanes_t         *lanes;
    ngx_chat_registry_t      *registry;
    ngx_chat_poll_t          *poll;
    ngx_chat_revocations_t   *revocations;
};

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
    ngx_chat_gateway_t   *gw;           /* whose Redis it went to (set by
                                           ngx_chat_bus_send) */
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

/* The gateway of r's location (its chat_redis); NULL when the location
 * talks to no Redis or the worker has no gateways (not started). */
ngx_chat_gateway_t *ngx_chat_gateway(ngx_http_request_t *r);

/* This worker's gateways, one per endpoint, for what concerns them all. */
ngx_chat_gateway_t *ngx_chat_bus_gateways(ngx_uint_t *n);

/* The command connection of gw, for edge-local Redis commands; NULL for
 * no gateway. */
ngx_chat_redis_t *ngx_chat_bus_redis(ngx_chat_gateway_t *gw);

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
 * Parks p and puts op on its lane's command stream (chat_lanes.h) in gw's
 * Redis for the caller; the reply comes on gw's reply stream.  Returns NGX_OK (p->answer will be called: also, at once with
 * 503 overloaded and p->retry_after set, when the lane is full),
 * NGX_DECLINED when Redis is unavailable, or NGX_ERROR; in both failure
 * cases p is not parked and never answered.
 */
ngx_int_t ngx_chat_bus_send(ngx_chat_gateway_t *gw, ngx_chat_pending_t *p,
    ngx_log_t *log, const char *op, ngx_chat_caller_t *caller, ngx_str_t *client_key,
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
