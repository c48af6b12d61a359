/*
 * ngx_chat_bus.h: the edge's side of the command bus: send a command,
 * park the HTTP request, answer it when the worker's reply arrives.
 */

#ifndef NGX_CHAT_BUS_H
#define NGX_CHAT_BUS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_module.h"
#include "ngx_chat_redis.h"


/* A request parked until Redis or a worker answers, or its timer fires. */
typedef struct ngx_chat_pending_s  ngx_chat_pending_t;

struct ngx_chat_pending_s {
    ngx_rbtree_node_t     node;         /* key: id; zeroed when unparked */
    uint64_t              id;           /* the request id sent to Redis */
    ngx_http_request_t   *r;
    ngx_event_t           timer;
    unsigned              parked:1;
};


ngx_int_t ngx_chat_bus_init_process(ngx_cycle_t *cycle,
    ngx_chat_main_conf_t *cmcf);
void ngx_chat_bus_exit_process(void);

/*
 * Puts op on a command stream for the caller and parks r.  Returns NGX_DONE
 * when the request is parked (it is answered and finalized later), or an
 * HTTP status after answering nothing: 503 if Redis is down, 500 on failure.
 */
ngx_int_t ngx_chat_bus_send(ngx_http_request_t *r, const char *op,
    ngx_chat_caller_t *caller, ngx_str_t *client_key, ngx_str_t *body);

/* The command connection, for edge-local Redis reads (health). */
ngx_chat_redis_t *ngx_chat_bus_redis(void);

/*
 * Parks r under a fresh request id with a timeout that answers 504.
 * The entry leaves the table when the request's pool goes away.
 */
ngx_chat_pending_t *ngx_chat_bus_park(ngx_http_request_t *r);

/* Finds a parked request by the id that was handed to Redis, and unparks it;
 * NULL if it is gone (answered, timed out, or the client left). */
ngx_chat_pending_t *ngx_chat_bus_unpark(uint64_t id);

#endif /* NGX_CHAT_BUS_H */
