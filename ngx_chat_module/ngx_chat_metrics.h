/*
 * ngx_chat_metrics.h: counters in shared memory, read by GET /metrics.
 * See ngx_chat_metrics.c.
 */

#ifndef NGX_CHAT_METRICS_H
#define NGX_CHAT_METRICS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_protocol.h"
#include "ngx_chat_redis.h"


/* X(field, prometheus name, type, help) */
#define NGX_CHAT_METRICS(X)                                                   \
    X(ws_total, "chat_ws_connections_total", "counter",                      \
      "WebSocket sessions opened")                                            \
    X(ws_in, "chat_ws_messages_received_total", "counter",                   \
      "WebSocket messages received from clients")                             \
    X(ws_out, "chat_ws_messages_sent_total", "counter",                      \
      "WebSocket messages queued to clients")                                 \
    X(ws_slow, "chat_ws_slow_closed_total", "counter",                       \
      "WebSockets closed with 1008 for falling behind")                       \
    X(bus_sent, "chat_bus_commands_total", "counter",                        \
      "commands written to the command streams")                              \
    X(bus_replies, "chat_bus_replies_total", "counter",                      \
      "replies from workers matched to a waiting request")                    \
    X(bus_timeouts, "chat_bus_timeouts_total", "counter",                    \
      "commands answered 504 after chat_command_timeout")                     \
    X(bus_overloaded, "chat_bus_overloaded_total", "counter",                \
      "commands refused 503 overloaded: their lane was full")                 \
    X(bus_events, "chat_bus_events_total", "counter",                        \
      "events from workers received by this edge")                            \
    X(redis_connects, "chat_redis_connects_total", "counter",                \
      "successful connections to Redis (reconnects included)")               \
    X(redis_failures, "chat_redis_failures_total", "counter",                \
      "failed or lost Redis connections")                                     \
    X(poll_requests, "chat_poll_requests_total", "counter",                  \
      "long-poll requests")                                                   \
    X(poll_sessions_total, "chat_poll_sessions_total", "counter",            \
      "long-poll sessions taken up by a worker")

#define NGX_CHAT_HTTP_STATUSES                                                \
    200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 413, 429, 500, 502,     \
    503, 504

#define NGX_CHAT_METRIC_FIELD(f, name, type, help)  ngx_atomic_t  f;

/* the command latency histogram's buckets: CHAT_LATENCY_BOUNDS_MS
 * (chat_protocol.h), then +Inf */
#define NGX_CHAT_OP_SLOTS         128
#define NGX_CHAT_OP_NAME_LEN      32

/* one op's histogram; a slot is taken by the first answer of its op
 * (state 0 free, 1 being named, 2 named) */
typedef struct {
    ngx_atomic_t  state;
    u_char        op[NGX_CHAT_OP_NAME_LEN];
    ngx_atomic_t  bucket[CHAT_LATENCY_NBOUNDS + 1];
    ngx_atomic_t  sum_ms;
    ngx_atomic_t  count;
} ngx_chat_op_latency_t;

typedef struct {
    NGX_CHAT_METRICS(NGX_CHAT_METRIC_FIELD)
    ngx_atomic_t  http[17];     /* by NGX_CHAT_HTTP_STATUSES, then other */

    /* open WebSockets per nginx process slot, summed when scraped: a
     * worker killed with sessions open cannot take them back, but the
     * worker respawned into its slot starts it from zero */
    ngx_atomic_t  ws_open[NGX_MAX_PROCESSES];
    ngx_atomic_t  poll_held[NGX_MAX_PROCESSES];     /* the same for polls */

    ngx_chat_op_latency_t  ops[NGX_CHAT_OP_SLOTS];
    ngx_atomic_t           ops_dropped;    /* ops past the slots */
} ngx_chat_metrics_t;


/* NULL until the shared zone exists (and in processes without one) */
extern ngx_chat_metrics_t  *ngx_chat_metrics;

#define ngx_chat_metric_add(f, n)                                           \
    do {                                                                    \
        if (ngx_chat_metrics) {                                             \
            (void) ngx_atomic_fetch_add(&ngx_chat_metrics->f, (n));         \
        }                                                                   \
    } while (0)

#define ngx_chat_metric_inc(f)  ngx_chat_metric_add(f, 1)
#define ngx_chat_metric_dec(f)  ngx_chat_metric_add(f, (ngx_atomic_int_t) -1)

/* this process's open WebSockets */
#define ngx_chat_metric_ws_open(n)                                          \
    ngx_chat_metric_add(ws_open[ngx_process_slot], (n))


/* A command of op answered after ms on the bus (reply, 503 or 504). */
void ngx_chat_metrics_command(const char *op, ngx_msec_t ms);

ngx_int_t ngx_chat_metrics_zone(ngx_conf_t *cf);
ngx_int_t ngx_chat_metrics_init(ngx_conf_t *cf);
ngx_int_t ngx_chat_metrics_handler(ngx_http_request_t *r);
ngx_int_t ngx_chat_metrics_cluster_handler(ngx_http_request_t *r);
void ngx_chat_metrics_init_process(void);

/* ngx_chat_health.c: live backend workers in an HGETALL of their
 * heartbeats, shared by /api/v1/health and /metrics */
ngx_uint_t ngx_chat_health_live_workers(redisReply *hgetall,
    ngx_uint_t *pg_ok);

#endif /* NGX_CHAT_METRICS_H */
