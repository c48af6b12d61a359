/*
 * ngx_chat_metrics.c: GET /metrics in the Prometheus text format.
 *
 * Counters live in one shared-memory zone ("chat_metrics", a few KB), so
 * a scrape answered by any nginx worker reports the whole edge; they are
 * plain atomic adds, cheap enough for every frame.  The zone is reused
 * across `nginx -s reload`, so counters only ever grow, as Prometheus
 * expects (a restart of nginx starts them from zero, which Prometheus
 * handles as a counter reset).
 *
 * Besides the counters, a scrape asks Redis (one EVAL) for what only
 * Redis knows: the length and pending count of each command stream, the
 * dead-letter stream's length and how many entries it ever had, and the
 * backend workers' heartbeats.  When
 * Redis is down the counters are still served, with chat_redis_up 0.
 *
 * HTTP answers are counted by status in a log-phase handler, for requests
 * served by chat_api and chat_websocket locations only (not static files).
 *
 * Access: the directive only installs the handler; restricting it to
 * configured addresses is nginx's own allow/deny, as for stub_status:
 *
 *     location = /metrics { allow 127.0.0.1; deny all; chat_metrics; }
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_protocol.h"
#include "chat_version.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_lanes.h"
#include "ngx_chat_metrics.h"
#include "ngx_chat_module.h"


#define NGX_CHAT_METRICS_ZONE_SIZE  (8 * ngx_pagesize)
#define NGX_CHAT_METRICS_MAX_STREAMS 320   /* command streams reported */

ngx_chat_metrics_t  *ngx_chat_metrics;

static ngx_str_t  ngx_chat_metrics_name = ngx_string("chat_metrics");
static ngx_str_t  ngx_chat_metrics_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");

static const ngx_uint_t  ngx_chat_http_statuses[] = { NGX_CHAT_HTTP_STATUSES };

#define NGX_CHAT_NSTATUSES                                                  \
    (sizeof(ngx_chat_http_statuses) / sizeof(ngx_chat_http_statuses[0]))

/* KEYS: the command streams, the dead-letter stream, the heartbeats hash;
 * ARGV[1]: the consumer group.  XPENDING fails (pcall) before the group
 * exists: 0 pending then.  The dead letters ever added are the stream's
 * entries-added, which trimming keeps (Redis 7.0; before it, and before
 * the stream exists, the length stands in). */
static const char  ngx_chat_metrics_script[] =
    "local out = {} "
    "local n = #KEYS - 2 "
    "for i = 1, n do "
    "  out[#out + 1] = redis.call('XLEN', KEYS[i]) "
    "  local p = redis.pcall('XPENDING', KEYS[i], ARGV[1]) "
    "  if type(p) == 'table' and type(p[1]) == 'number' then "
    "    out[#out + 1] = p[1] else out[#out + 1] = 0 end "
    "end "
    "local dlq = redis.call('XLEN', KEYS[n + 1]) "
    "local added = dlq "
    "if redis.call('EXISTS', KEYS[n + 1]) == 1 then "
    "  local info = redis.call('XINFO', 'STREAM', KEYS[n + 1]) "
    "  for i = 1, #info - 1, 2 do "
    "    if info[i] == 'entries-added' then added = info[i + 1] end "
    "  end "
    "end "
    "out[#out + 1] = dlq "
    "out[#out + 1] = added "
    "out[#out + 1] = redis.call('HGETALL', KEYS[n + 2]) "
    "return out";


static ngx_int_t ngx_chat_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_chat_metrics_log(ngx_http_request_t *r);
static void ngx_chat_metrics_redis(redisAsyncContext *ac, void *reply,
    void *privdata);
static const char *ngx_chat_metrics_stream(ngx_uint_t i);
static u_char *ngx_chat_metrics_lanes(u_char *last);
static ngx_int_t ngx_chat_metrics_send(ngx_http_request_t *r,
    redisReply *rr);


/* From init_main_conf: the shared zone, whether or not /metrics is served
 * (the counters cost nothing worth saving). */
ngx_int_t
ngx_chat_metrics_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_chat_metrics_name,
                                     NGX_CHAT_METRICS_ZONE_SIZE,
                                     &ngx_chat_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_chat_metrics_init_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t     *shpool;
    ngx_chat_metrics_t  *m;

    if (data) {
        /* a reload: keep counting where the old cycle was */
        shm_zone->data = data;
        ngx_chat_metrics = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    m = ngx_slab_calloc(shpool, sizeof(ngx_chat_metrics_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    shm_zone->data = m;
    ngx_chat_metrics = m;

    return NGX_OK;
}


/* A new worker owns its slot's gauge (a dead predecessor's sessions are
 * gone with it). */
void
ngx_chat_metrics_init_process(void)
{
    if (ngx_chat_metrics && ngx_process_slot >= 0
        && ngx_process_slot < NGX_MAX_PROCESSES)
    {
        ngx_chat_metrics->ws_open[ngx_process_slot] = 0;
        ngx_chat_metrics->poll_held[ngx_process_slot] = 0;
    }
}


/* postconfiguration: count answers by status */
ngx_int_t
ngx_chat_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_chat_metrics_log;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t                 i, status;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (ngx_chat_metrics == NULL
        || (clcf->handler != ngx_chat_api_handler
            && clcf->handler != ngx_chat_ws_handler))
    {
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;

    for (i = 0; i < NGX_CHAT_NSTATUSES; i++) {
        if (ngx_chat_http_statuses[i] == status) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&ngx_chat_metrics->http[i], 1);

    return NGX_OK;
}


ngx_int_t
ngx_chat_metrics_handler(ngx_http_request_t *r)
{
    size_t                 *argvlen;
    ngx_int_t               rc;
    ngx_uint_t              i, n, argc;
    const char            **argv;
    ngx_chat_redis_t       *rc_redis;
    ngx_chat_pending_t     *p;
    ngx_chat_main_conf_t   *cmcf;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rc_redis = ngx_chat_bus_redis();

    if (rc_redis == NULL || !ngx_chat_redis_usable(rc_redis)) {
        return ngx_chat_metrics_send(r, NULL);
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);
    n = ngx_min(CHAT_LANE_COUNT * cmcf->stream_shards,
                NGX_CHAT_METRICS_MAX_STREAMS);

    /* EVAL script numkeys shard... dlq workers group */
    argc = 3 + n + 2 + 1;
    argv = ngx_palloc(r->pool, argc * sizeof(char *));
    argvlen = ngx_palloc(r->pool, argc * sizeof(size_t));
    if (argv == NULL || argvlen == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "EVAL";
    argv[1] = ngx_chat_metrics_script;
    argv[2] = (char *) ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
    if (argv[2] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    *ngx_sprintf((u_char *) argv[2], "%ui", n + 2) = '\0';

    for (i = 0; i < n; i++) {
        argv[3 + i] = ngx_chat_metrics_stream(i);
        if (argv[3 + i] == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    argv[3 + n] = CHAT_DLQ_STREAM;
    argv[4 + n] = CHAT_WORKERS_KEY;
    argv[5 + n] = CHAT_CMD_GROUP;

    for (i = 0; i < argc; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    p = ngx_chat_http_pending(r);
    if (p == NULL || ngx_chat_bus_park(p, r->connection->log) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_chat_redis_command(rc_redis, ngx_chat_metrics_redis,
                               (void *) (uintptr_t) p->id, argc, argv,
                               argvlen)
        != NGX_OK)
    {
        ngx_chat_bus_cancel(p);
        return ngx_chat_metrics_send(r, NULL);
    }

    r->main->count++;
    return NGX_DONE;
}


/* The i-th command stream: lane by lane, shard by shard. */
static const char *
ngx_chat_metrics_stream(ngx_uint_t i)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_chat_module);

    return ngx_chat_lanes_stream(i / cmcf->stream_shards,
                                 i % cmcf->stream_shards);
}


static void
ngx_chat_metrics_redis(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply          *rr = reply;
    ngx_chat_pending_t  *p;

    p = ngx_chat_bus_unpark((uint64_t) (uintptr_t) privdata);
    if (p == NULL) {
        return;
    }

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ((ngx_http_request_t *) p->data)
                      ->connection->log, 0, "chat metrics: redis: %s",
                      rr->str);
        rr = NULL;
    }

    ngx_http_finalize_request(p->data, ngx_chat_metrics_send(p->data, rr));
}


#define ngx_chat_metrics_family(b, name, type, help)                        \
    ngx_sprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type)

#define NGX_CHAT_METRIC_PRINT(f, name, type, help)                          \
    last = ngx_chat_metrics_family(last, name, type, help);                 \
    last = ngx_sprintf(last, "%s %A\n", name,                               \
                       ngx_chat_metrics ? ngx_chat_metrics->f : 0);


/* Each lane's depth and bound as the answering worker last saw them
 * (ngx_chat_lanes.c): what the edge's admission decides on. */
static u_char *
ngx_chat_metrics_lanes(u_char *last)
{
    int64_t     depth, queue;
    ngx_uint_t  lane;

    last = ngx_chat_metrics_family(last, "chat_lane_depth", "gauge",
                                   "commands waiting or running per lane, "
                                   "as this edge's admission sees them");
    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        if (ngx_chat_lanes_view(lane, &depth, &queue) == NGX_OK) {
            last = ngx_sprintf(last, "chat_lane_depth{lane=\"%s\"} %L\n",
                               chat_lane_name(lane), depth);
        }
    }

    last = ngx_chat_metrics_family(last, "chat_lane_queue_limit", "gauge",
                                   "the depth at which a lane's commands "
                                   "are refused 503 overloaded (0: none)");
    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        if (ngx_chat_lanes_view(lane, &depth, &queue) == NGX_OK) {
            last = ngx_sprintf(last, "chat_lane_queue_limit{lane=\"%s\"} "
                               "%L\n", chat_lane_name(lane), queue);
        }
    }

    return last;
}


/* Renders everything; rr is the script's answer, or NULL without Redis. */
static ngx_int_t
ngx_chat_metrics_send(ngx_http_request_t *r, redisReply *rr)
{
    u_char      *buf, *last;
    size_t       size, i, n;
    ngx_uint_t   ok, workers, pg_ok;
    long long    pending;
    ngx_atomic_int_t  open;
    redisReply  *e;

    /* 2 per command stream, the dead letters' length and count, workers */
    ok = rr != NULL && rr->type == REDIS_REPLY_ARRAY && rr->elements >= 3
         && (rr->elements - 3) % 2 == 0;
    n = ok ? (rr->elements - 3) / 2 : 0;

    size = 8192 + n * 256;
    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    last = buf;

    last = ngx_chat_metrics_family(last, "chat_build_info", "gauge",
                                   "the module's version, always 1");
    last = ngx_sprintf(last, "chat_build_info{version=\"%s\"} 1\n",
                       CHAT_VERSION);

    NGX_CHAT_METRICS(NGX_CHAT_METRIC_PRINT)

    open = 0;
    for (i = 0; ngx_chat_metrics && i < NGX_MAX_PROCESSES; i++) {
        open += (ngx_atomic_int_t) ngx_chat_metrics->ws_open[i];
    }
    /* not chat_ws_connections: with chat_ws_connections_total it would be
     * one OpenMetrics family of two types */
    last = ngx_chat_metrics_family(last, "chat_ws_open_connections", "gauge",
                                   "WebSocket sessions open now");
    last = ngx_sprintf(last, "chat_ws_open_connections %A\n", open);

    open = 0;
    for (i = 0; ngx_chat_metrics && i < NGX_MAX_PROCESSES; i++) {
        open += (ngx_atomic_int_t) ngx_chat_metrics->poll_held[i];
    }
    last = ngx_chat_metrics_family(last, "chat_poll_held", "gauge",
                                   "long-poll requests held now");
    last = ngx_sprintf(last, "chat_poll_held %A\n", open);

    last = ngx_chat_metrics_family(last, "chat_http_responses_total",
                                   "counter", "API and WebSocket handshake "
                                   "answers by status");
    for (i = 0; i <= NGX_CHAT_NSTATUSES; i++) {
        if (i < NGX_CHAT_NSTATUSES) {
            last = ngx_sprintf(last, "chat_http_responses_total{status=\"%ui\"}"
                               " %A\n", ngx_chat_http_statuses[i],
                               ngx_chat_metrics ? ngx_chat_metrics->http[i]
                                                : 0);
        } else {
            last = ngx_sprintf(last, "chat_http_responses_total"
                               "{status=\"other\"} %A\n",
                               ngx_chat_metrics ? ngx_chat_metrics->http[i]
                                                : 0);
        }
    }

    last = ngx_chat_metrics_family(last, "chat_redis_up", "gauge",
                                   "1 when this scrape could ask Redis");
    last = ngx_sprintf(last, "chat_redis_up %ui\n", ok);

    if (ok) {
        last = ngx_chat_metrics_family(last, "chat_stream_length", "gauge",
                                       "entries in a command stream "
                                       "(consumed ones are trimmed later)");
        for (i = 0; i < n; i++) {
            e = rr->element[2 * i];
            last = ngx_sprintf(last, "chat_stream_length{stream=\"%s\"}"
                               " %L\n", ngx_chat_metrics_stream(i),
                               e->type == REDIS_REPLY_INTEGER
                               ? (int64_t) e->integer : 0);
        }

        last = ngx_chat_metrics_family(last, "chat_stream_pending", "gauge",
                                       "commands delivered to a worker and "
                                       "not yet acknowledged");
        for (i = 0; i < n; i++) {
            e = rr->element[2 * i + 1];
            pending = e->type == REDIS_REPLY_INTEGER ? e->integer : 0;
            last = ngx_sprintf(last, "chat_stream_pending{stream=\"%s\"}"
                               " %L\n", ngx_chat_metrics_stream(i),
                               (int64_t) pending);
        }

        last = ngx_chat_metrics_lanes(last);

        e = rr->element[2 * n];
        last = ngx_chat_metrics_family(last, "chat_dead_letters_stored",
                                       "gauge",
                                       "entries in the dead-letter stream "
                                       "(trimmed to about "
                                       CHAT_DLQ_MAXLEN ")");
        last = ngx_sprintf(last, "chat_dead_letters_stored %L\n",
                           e->type == REDIS_REPLY_INTEGER
                           ? (int64_t) e->integer : 0);

        e = rr->element[2 * n + 1];
        last = ngx_chat_metrics_family(last, "chat_dead_letters_total",
                                       "counter",
                                       "commands ever dead-lettered "
                                       "(the stream's entries-added)");
        last = ngx_sprintf(last, "chat_dead_letters_total %L\n",
                           e->type == REDIS_REPLY_INTEGER
                           ? (int64_t) e->integer : 0);

        workers = ngx_chat_health_live_workers(rr->element[2 * n + 2],
                                               &pg_ok);
        last = ngx_chat_metrics_family(last, "chat_backend_workers", "gauge",
                                       "backend workers with a fresh "
                                       "heartbeat");
        last = ngx_sprintf(last, "chat_backend_workers %ui\n", workers);
        last = ngx_chat_metrics_family(last, "chat_postgres_up", "gauge",
                                       "1 when a live worker reports a "
                                       "working PostgreSQL connection");
        last = ngx_sprintf(last, "chat_postgres_up %ui\n", pg_ok);
    }

    return ngx_chat_send_body(r, NGX_HTTP_OK, &ngx_chat_metrics_type, buf,
                              last - buf);
}
