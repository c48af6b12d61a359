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


#define NGX_CHAT_METRICS_ZONE_SIZE                                          \
    (ngx_align(sizeof(ngx_chat_metrics_t), ngx_pagesize) + 8 * ngx_pagesize)
#define NGX_CHAT_METRICS_MAX_STREAMS 320   /* command streams reported */

ngx_chat_metrics_t  *ngx_chat_metrics;

static ngx_str_t  ngx_chat_metrics_name = ngx_string("chat_metrics");
static ngx_str_t  ngx_chat_metrics_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");

static const ngx_uint_t  ngx_chat_http_statuses[] = { NGX_CHAT_HTTP_STATUSES };
static const ngx_msec_t  ngx_chat_latency_bounds[] = { CHAT_LATENCY_BOUNDS_MS };

#define NGX_CHAT_NSTATUSES                                                  \
    (sizeof(ngx_chat_http_statuses) / sizeof(ngx_chat_http_statuses[0]))

/*
 * A cluster scrape asks Redis one key per command: a stream depth script
 * per command stream (protocol/chat_scripts.c: every shard's stream is a
 * slot of its own in a Redis Cluster, so one script over all of them is
 * refused there), the dead letters' script, HGETALL of the heartbeats and
 * of the workers' figures, all pipelined.  The answers are gathered, as
 * copies, into one array laid out as the page is written:
 *   [2i] length, [2i + 1] pending of stream i (n streams),
 *   [2n] dead letters stored, [2n + 1] ever added,
 *   [2n + 2] heartbeats hash, [2n + 3] figures hash.
 */
typedef struct {
    uint64_t     pending;       /* the parked request's id */
    ngx_uint_t   left;          /* answers still to come */
    ngx_uint_t   n;             /* command streams */
    unsigned     failed:1;
    redisReply  *all;
} ngx_chat_metrics_gather_t;

/* an answer's place in the gather: its first slot, and what it is */
typedef struct {
    ngx_chat_metrics_gather_t  *g;
    ngx_uint_t                  at;
    ngx_uint_t                  pair;  /* two integers from a script */
} ngx_chat_metrics_slot_t;


static ngx_int_t ngx_chat_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_chat_metrics_log(ngx_http_request_t *r);
static ngx_int_t ngx_chat_metrics_send_cluster(ngx_http_request_t *r,
    redisReply *rr);
static void ngx_chat_metrics_redis(redisAsyncContext *ac, void *reply,
    void *privdata);
static redisReply *ngx_chat_metrics_copy(const redisReply *r);
static const char *ngx_chat_metrics_stream(ngx_uint_t i);
static u_char *ngx_chat_metrics_lanes(u_char *last, ngx_chat_lanes_t *lanes);
static ngx_int_t ngx_chat_metrics_send(ngx_http_request_t *r);


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


/* The op's histogram slot: found by name, or taken on its first answer.
 * Ops are a few dozen fixed names, so a linear scan of the named slots is
 * cheaper than it looks and needs no lock. */
static ngx_chat_op_latency_t *
ngx_chat_metrics_op_slot(const char *op)
{
    size_t                  len;
    ngx_uint_t              i;
    ngx_chat_op_latency_t  *o;

    len = ngx_strlen(op);
    if (len == 0 || len >= NGX_CHAT_OP_NAME_LEN) {
        return NULL;
    }

    for (i = 0; i < NGX_CHAT_OP_SLOTS; i++) {
        o = &ngx_chat_metrics->ops[i];

        if (o->state == 2) {
            if (ngx_strcmp(o->op, op) == 0) {
                return o;
            }
            continue;
        }

        if (o->state == 0 && ngx_atomic_cmp_set(&o->state, 0, 1)) {
            ngx_memcpy(o->op, op, len + 1);
            ngx_memory_barrier();
            o->state = 2;
            return o;
        }

        /* state 1: another worker is naming it; it may be this op, which
         * then takes a second slot for a moment: rendering merges them */
    }

    return NULL;
}


void
ngx_chat_metrics_command(const char *op, ngx_msec_t ms)
{
    ngx_uint_t              b;
    ngx_chat_op_latency_t  *o;

    if (ngx_chat_metrics == NULL) {
        return;
    }

    o = ngx_chat_metrics_op_slot(op);
    if (o == NULL) {
        (void) ngx_atomic_fetch_add(&ngx_chat_metrics->ops_dropped, 1);
        return;
    }

    for (b = 0; b < CHAT_LATENCY_NBOUNDS; b++) {
        if (ms <= ngx_chat_latency_bounds[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&o->bucket[b], 1);
    (void) ngx_atomic_fetch_add(&o->sum_ms, ms);
    (void) ngx_atomic_fetch_add(&o->count, 1);
}


/* One histogram's _bucket, _sum and _count lines from non-cumulative
 * counts in milliseconds; labels is `name="value",...` or empty. */
static u_char *
ngx_chat_metrics_histogram(u_char *last, const char *name, ngx_str_t *labels,
    const ngx_atomic_uint_t *buckets, ngx_atomic_uint_t sum_ms,
    ngx_atomic_uint_t count)
{
    ngx_uint_t         b;
    ngx_atomic_uint_t  cum;

    cum = 0;
    for (b = 0; b <= CHAT_LATENCY_NBOUNDS; b++) {
        cum += buckets[b];
        if (b < CHAT_LATENCY_NBOUNDS) {
            last = ngx_sprintf(last, "%s_bucket{%V%sle=\"%ui.%03ui\"} %uA\n",
                               name, labels, labels->len ? "," : "",
                               ngx_chat_latency_bounds[b] / 1000,
                               ngx_chat_latency_bounds[b] % 1000, cum);
        } else {
            last = ngx_sprintf(last, "%s_bucket{%V%sle=\"+Inf\"} %uA\n",
                               name, labels, labels->len ? "," : "", cum);
        }
    }

    last = ngx_sprintf(last, "%s_sum{%V} %uA.%03uA\n", name, labels,
                       sum_ms / 1000, sum_ms % 1000);
    return ngx_sprintf(last, "%s_count{%V} %uA\n", name, labels, count);
}


ngx_int_t
ngx_chat_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_chat_metrics_send(r);
}


ngx_int_t
ngx_chat_metrics_cluster_handler(ngx_http_request_t *r)
{
    size_t                      argvlen[3];
    ngx_int_t                   rc;
    ngx_uint_t                  i, n, sent;
    const char                 *argv[3];
    ngx_chat_redis_t           *rc_redis;
    ngx_chat_gateway_t         *gw;
    ngx_chat_pending_t         *p;
    ngx_chat_main_conf_t       *cmcf;
    ngx_chat_metrics_slot_t    *slots;
    ngx_chat_metrics_gather_t  *g;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* the figures of this location's Redis (chat_redis) */
    gw = ngx_chat_gateway(r);
    rc_redis = ngx_chat_bus_redis(gw);

    if (rc_redis == NULL || !ngx_chat_redis_usable(rc_redis)) {
        return ngx_chat_metrics_send_cluster(r, NULL);
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);
    n = ngx_min(CHAT_LANE_COUNT * cmcf->stream_shards,
                NGX_CHAT_METRICS_MAX_STREAMS);

    /* outlives the request if the client goes: freed by the last answer */
    g = ngx_calloc(sizeof(ngx_chat_metrics_gather_t)
                   + (n + 3) * sizeof(ngx_chat_metrics_slot_t),
                   r->connection->log);
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    slots = (ngx_chat_metrics_slot_t *) (g + 1);

    g->n = n;
    g->all = calloc(1, sizeof(redisReply));
    if (g->all != NULL) {
        g->all->type = REDIS_REPLY_ARRAY;
        g->all->element = calloc(2 * n + 4, sizeof(redisReply *));
        g->all->elements = 2 * n + 4;
    }

    p = ngx_chat_http_pending(r);
    if (g->all == NULL || g->all->element == NULL || p == NULL
        || ngx_chat_bus_park(p, r->connection->log) != NGX_OK)
    {
        freeReplyObject(g->all);
        ngx_free(g);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    g->pending = p->id;
    sent = 0;

    for (i = 0; i < n + 3; i++) {
        slots[i].g = g;

        if (i < n) {
            argv[0] = "1";
            argv[1] = ngx_chat_metrics_stream(i);
            argv[2] = CHAT_CMD_GROUP;
            slots[i].at = 2 * i;
            slots[i].pair = 1;

        } else if (i == n) {
            argv[0] = "1";
            argv[1] = CHAT_DLQ_STREAM;
            slots[i].at = 2 * n;
            slots[i].pair = 1;

        } else {
            argv[0] = "HGETALL";
            argv[1] = (i == n + 1) ? CHAT_WORKERS_KEY : CHAT_STATS_KEY;
            slots[i].at = (i == n + 1) ? 2 * n + 2 : 2 * n + 3;
        }

        if (argv[1] == NULL) {
            break;
        }

        argvlen[0] = ngx_strlen(argv[0]);
        argvlen[1] = ngx_strlen(argv[1]);
        argvlen[2] = sizeof(CHAT_CMD_GROUP) - 1;

        rc = (i < n) ? ngx_chat_redis_script(rc_redis,
                                             &chat_script_stream_depth,
                                             ngx_chat_metrics_redis,
                                             &slots[i], 3, argv, argvlen)
           : (i == n) ? ngx_chat_redis_script(rc_redis,
                                              &chat_script_dead_letters,
                                              ngx_chat_metrics_redis,
                                              &slots[i], 2, argv, argvlen)
           : ngx_chat_redis_command(rc_redis, ngx_chat_metrics_redis,
                                    &slots[i], 2, argv, argvlen);
        if (rc != NGX_OK) {
            break;
        }

        sent++;
    }

    if (sent < n + 3) {
        g->failed = 1;
    }

    if (sent == 0) {
        ngx_chat_bus_cancel(p);
        freeReplyObject(g->all);
        ngx_free(g);
        return ngx_chat_metrics_send_cluster(r, NULL);
    }

    g->left = sent;

    r->main->count++;
    return NGX_DONE;
}


/* The i-th command stream: lane by lane, shard by shard (the same names in
 * every Redis, so any gateway's lanes have them). */
static const char *
ngx_chat_metrics_stream(ngx_uint_t i)
{
    ngx_uint_t             n;
    ngx_chat_gateway_t    *gws;
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_chat_module);
    gws = ngx_chat_bus_gateways(&n);

    if (n == 0) {
        return NULL;
    }

    return ngx_chat_lanes_stream(gws[0].lanes, i / cmcf->stream_shards,
                                 i % cmcf->stream_shards);
}


/* One answer into the gather; the page after the last. */
static void
ngx_chat_metrics_redis(redisAsyncContext *ac, void *reply, void *privdata)
{
    ngx_uint_t                  k;
    redisReply                 *rr = reply;
    ngx_chat_pending_t         *p;
    ngx_chat_metrics_slot_t    *slot = privdata;
    ngx_chat_metrics_gather_t  *g = slot->g;

    if (rr == NULL || rr->type == REDIS_REPLY_ERROR
        || rr->type != REDIS_REPLY_ARRAY
        || (slot->pair && rr->elements < 2))
    {
        if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "chat metrics: redis: %s", rr->str);
        }
        g->failed = 1;

    } else if (slot->pair) {
        for (k = 0; k < 2; k++) {
            g->all->element[slot->at + k] = ngx_chat_metrics_copy(
                                                rr->element[k]);
            g->failed |= g->all->element[slot->at + k] == NULL;
        }

    } else {
        g->all->element[slot->at] = ngx_chat_metrics_copy(rr);
        g->failed |= g->all->element[slot->at] == NULL;
    }

    if (--g->left > 0) {
        return;
    }

    p = ngx_chat_bus_unpark(g->pending);
    if (p != NULL) {
        ngx_http_finalize_request(p->data, ngx_chat_metrics_send_cluster(
                                      p->data, g->failed ? NULL : g->all));
    }

    freeReplyObject(g->all);
    ngx_free(g);
}


/* A deep copy of a reply that freeReplyObject can free (hiredis frees
 * its own after the callback), or NULL. */
static redisReply *
ngx_chat_metrics_copy(const redisReply *r)
{
    size_t       i;
    redisReply  *c;

    c = calloc(1, sizeof(redisReply));
    if (c == NULL) {
        return NULL;
    }

    c->type = r->type;
    c->integer = r->integer;

    if (r->str != NULL) {
        c->str = malloc(r->len + 1);
        if (c->str == NULL) {
            free(c);
            return NULL;
        }
        ngx_memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
    }

    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        c->element = calloc(r->elements, sizeof(redisReply *));
        if (c->element == NULL) {
            freeReplyObject(c);
            return NULL;
        }
        c->elements = r->elements;

        for (i = 0; i < r->elements; i++) {
            c->element[i] = ngx_chat_metrics_copy(r->element[i]);
            if (c->element[i] == NULL) {
                freeReplyObject(c);
                return NULL;
            }
        }
    }

    return c;
}


#define ngx_chat_metrics_family(b, name, type, help)                        \
    ngx_sprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type)

#define NGX_CHAT_METRIC_PRINT(f, name, type, help)                          \
    last = ngx_chat_metrics_family(last, name, type, help);                 \
    last = ngx_sprintf(last, "%s %A\n", name,                               \
                       ngx_chat_metrics ? ngx_chat_metrics->f : 0);


/* The gauge families of the lanes' views, one per column of a lane's
 * view and in its order (ngx_chat_lanes_view: depth, queue, waited,
 * wait), and whether the column holds milliseconds (printed as seconds). */
static const struct {
    const char  *name;
    const char  *help;
    ngx_uint_t   ms;
} ngx_chat_metrics_lane_gauges[4] = {
    { "chat_lane_depth", "commands waiting or running per lane, as this "
      "edge's admission sees them", 0 },
    { "chat_lane_queue_limit", "the depth at which a lane's commands are "
      "refused 503 overloaded (0: none)", 0 },
    { "chat_lane_waited_seconds", "how long the lane's oldest unread "
      "command had waited, as this edge's admission sees it", 1 },
    { "chat_lane_wait_limit_seconds", "the wait at which a lane's commands "
      "are refused 503 overloaded (0: none)", 1 },
};


/* Each lane's depth and wait, and their bounds, as the answering worker
 * last saw them (ngx_chat_lanes.c): what the edge's admission decides
 * on. */
static u_char *
ngx_chat_metrics_lanes(u_char *last, ngx_chat_lanes_t *lanes)
{
    int64_t      v, view[CHAT_LANE_COUNT][4];
    ngx_uint_t   g, lane, known[CHAT_LANE_COUNT];
    const char  *name;

    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        known[lane] = ngx_chat_lanes_view(lanes, lane, &view[lane][0],
                                          &view[lane][1], &view[lane][2],
                                          &view[lane][3])
                      == NGX_OK;
    }

    for (g = 0; g < 4; g++) {
        name = ngx_chat_metrics_lane_gauges[g].name;
        last = ngx_chat_metrics_family(last, name, "gauge",
                                       ngx_chat_metrics_lane_gauges[g].help);

        for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
            if (!known[lane]) {
                continue;
            }

            v = view[lane][g];
            last = ngx_chat_metrics_lane_gauges[g].ms
                   ? ngx_sprintf(last, "%s{lane=\"%s\"} %L.%03L\n", name,
                                 chat_lane_name(lane), v / 1000, v % 1000)
                   : ngx_sprintf(last, "%s{lane=\"%s\"} %L\n", name,
                                 chat_lane_name(lane), v);
        }
    }

    last = ngx_chat_metrics_family(last, "chat_lane_misconfigured", "gauge",
                                   "1 while the lane's pool disagrees with "
                                   "this edge on shards or the secret (its "
                                   "commands are refused 503)");
    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        last = ngx_sprintf(last, "chat_lane_misconfigured{lane=\"%s\"} %ui\n",
                           chat_lane_name(lane),
                           ngx_chat_lanes_disagree(lanes, lane));
    }

    last = ngx_chat_metrics_family(last, "chat_presence_ttl_mismatch",
                                   "gauge",
                                   "1 while the backend's presence TTL is "
                                   "not this edge's chat_presence_ttl "
                                   "(presence flaps or lags)");
    last = ngx_sprintf(last, "chat_presence_ttl_mismatch %ui\n",
                       ngx_chat_lanes_presence_ttl_disagrees(lanes));

    return last;
}


/* Every op's time on the bus, one histogram per op with its lane. */
static u_char *
ngx_chat_metrics_ops(u_char *last, u_char *end)
{
    u_char                 *l;
    ngx_str_t               labels;
    ngx_uint_t              i, j, b;
    ngx_atomic_uint_t       buckets[CHAT_LATENCY_NBOUNDS + 1], sum, count;
    ngx_chat_op_latency_t  *o, *q;
    u_char                  lbuf[NGX_CHAT_OP_NAME_LEN + 64];

    last = ngx_chat_metrics_family(last, "chat_command_duration_seconds",
                                   "histogram",
                                   "time from a command's XADD to its "
                                   "answer at this edge, by op and lane "
                                   "(503 overloaded and 504 included)");

    for (i = 0; ngx_chat_metrics && i < NGX_CHAT_OP_SLOTS; i++) {
        o = &ngx_chat_metrics->ops[i];
        if (o->state != 2) {
            continue;
        }

        /* an op named in two slots at once (a race) is rendered once,
         * from its first slot, with both slots' counts */
        for (j = 0; j < i; j++) {
            q = &ngx_chat_metrics->ops[j];
            if (q->state == 2 && ngx_strcmp(q->op, o->op) == 0) {
                break;
            }
        }
        if (j < i) {
            continue;
        }

        sum = 0;
        count = 0;
        ngx_memzero(buckets, sizeof(buckets));

        for (j = i; j < NGX_CHAT_OP_SLOTS; j++) {
            q = &ngx_chat_metrics->ops[j];
            if (q->state != 2 || ngx_strcmp(q->op, o->op) != 0) {
                continue;
            }
            for (b = 0; b <= CHAT_LATENCY_NBOUNDS; b++) {
                buckets[b] += q->bucket[b];
            }
            sum += q->sum_ms;
            count += q->count;
        }

        if (end - last < 2048) {
            break;
        }

        l = ngx_sprintf(lbuf, "lane=\"%s\",op=\"%s\"",
                        chat_lane_name(chat_lane_of_op((char *) o->op,
                                                   ngx_strlen(o->op))),
                        o->op);
        labels.data = lbuf;
        labels.len = l - lbuf;

        last = ngx_chat_metrics_histogram(last, "chat_command_duration_seconds",
                                          &labels, buckets, sum, count);
    }

    return last;
}


/* GET /metrics: this edge's own figures, no Redis round trip. */
static ngx_int_t
ngx_chat_metrics_send(ngx_http_request_t *r)
{
    u_char            *buf, *last, *end;
    size_t             size, i;
    ngx_chat_redis_t    *redis;
    ngx_chat_gateway_t  *gw;
    ngx_atomic_int_t     open;

    size = 16384 + NGX_CHAT_OP_SLOTS * 1536;
    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    last = buf;
    end = buf + size;

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

    /* of this location's Redis (chat_redis) */
    gw = ngx_chat_gateway(r);
    redis = ngx_chat_bus_redis(gw);
    last = ngx_chat_metrics_family(last, "chat_redis_up", "gauge",
                                   "1 when this nginx worker's Redis (this "
                                   "location's chat_redis) "
                                   "connection is usable");
    last = ngx_sprintf(last, "chat_redis_up %d\n",
                       redis != NULL && ngx_chat_redis_usable(redis));

    last = ngx_chat_metrics_lanes(last, gw ? gw->lanes : NULL);

    last = ngx_chat_metrics_family(last, "chat_command_ops_untracked_total",
                                   "counter", "answers of ops past the "
                                   "latency histogram's slots");
    last = ngx_sprintf(last, "chat_command_ops_untracked_total %A\n",
                       ngx_chat_metrics ? ngx_chat_metrics->ops_dropped : 0);

    last = ngx_chat_metrics_ops(last, end);

    return ngx_chat_send_body(r, NGX_HTTP_OK, &ngx_chat_metrics_type, buf,
                              last - buf);
}


/* one worker's CHAT_STATS_KEY value, parsed */
typedef struct {
    ngx_str_t          lane;
    ngx_atomic_uint_t  commands, failed, batches, batch_commands;
    ngx_atomic_uint_t  commit_count, commit_sum;
    ngx_atomic_uint_t  commit[CHAT_LATENCY_NBOUNDS + 1];
    ngx_atomic_uint_t  call_count, call_sum;
    ngx_atomic_uint_t  call[CHAT_LATENCY_NBOUNDS + 1];
} ngx_chat_worker_stats_t;


/* NGX_OK when value is a well-formed CHAT_STATS_VERSION line */
static ngx_int_t
ngx_chat_metrics_parse_stats(u_char *p, size_t len, ngx_chat_worker_stats_t *s)
{
    u_char             *end, *tok;
    ngx_int_t           v;
    ngx_uint_t          i, n;
    ngx_atomic_uint_t  *nums[8 + 2 * (CHAT_LATENCY_NBOUNDS + 1)];

    end = p + len;

    if (len < sizeof(CHAT_STATS_VERSION) + 1
        || ngx_strncmp(p, CHAT_STATS_VERSION " ",
                       sizeof(CHAT_STATS_VERSION)) != 0)
    {
        return NGX_ERROR;
    }
    p += sizeof(CHAT_STATS_VERSION);

    tok = p;
    while (p < end && *p != ' ') {
        if (!((*p >= 'a' && *p <= 'z') || *p == '_')) {
            return NGX_ERROR;
        }
        p++;
    }
    s->lane.data = tok;
    s->lane.len = p - tok;
    if (s->lane.len == 0) {
        return NGX_ERROR;
    }

    n = 0;
    nums[n++] = &s->commands;
    nums[n++] = &s->failed;
    nums[n++] = &s->batches;
    nums[n++] = &s->batch_commands;
    nums[n++] = &s->commit_count;
    nums[n++] = &s->commit_sum;
    for (i = 0; i <= CHAT_LATENCY_NBOUNDS; i++) {
        nums[n++] = &s->commit[i];
    }
    nums[n++] = &s->call_count;
    nums[n++] = &s->call_sum;
    for (i = 0; i <= CHAT_LATENCY_NBOUNDS; i++) {
        nums[n++] = &s->call[i];
    }

    for (i = 0; i < n; i++) {
        if (p >= end || *p != ' ') {
            return NGX_ERROR;
        }
        tok = ++p;
        while (p < end && *p != ' ') {
            p++;
        }
        v = ngx_atoi(tok, p - tok);
        if (v == NGX_ERROR) {
            return NGX_ERROR;
        }
        *nums[i] = (ngx_atomic_uint_t) v;
    }

    return p == end ? NGX_OK : NGX_ERROR;
}


/* label values come from Redis: only a consumer name's usual characters */
static ngx_uint_t
ngx_chat_metrics_label_safe(u_char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > 200) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == '"' || p[i] == '\\') {
            return 0;
        }
    }

    return 1;
}


/* The backend workers' own figures (CHAT_STATS_KEY), one series each. */
static u_char *
ngx_chat_metrics_workers(u_char *last, u_char *end, redisReply *all)
{
    size_t                    i, k;
    u_char                   *l, lbuf[320];
    ngx_str_t                 labels;
    redisReply               *name, *value;
    ngx_chat_worker_stats_t   s;

    static const struct { const char *name; const char *help; }  fam[] = {
        { "chat_backend_commands_total", "commands a worker answered" },
        { "chat_backend_failed_batches_total",
          "transactions rolled back by an infrastructure error (the "
          "commands come back through reclaim)" },
        { "chat_backend_batches_total", "transactions of cheap commands "
          "a worker committed" },
        { "chat_backend_batch_commands_total", "commands in those "
          "transactions (over batches_total: the mean batch size)" },
    };

    if (all == NULL || all->type != REDIS_REPLY_ARRAY) {
        return last;
    }

    for (k = 0; k < 6; k++) {
        if (k < 4) {
            last = ngx_chat_metrics_family(last, fam[k].name, "counter",
                                           fam[k].help);
        } else if (k == 4) {
            last = ngx_chat_metrics_family(last,
                       "chat_backend_commit_duration_seconds", "histogram",
                       "a batch's transaction, BEGIN to COMMIT");
        } else {
            last = ngx_chat_metrics_family(last,
                       "chat_backend_call_duration_seconds", "histogram",
                       "a call to the payment processor or a webhook, "
                       "start to answer");
        }

        for (i = 0; i + 1 < all->elements; i += 2) {
            name = all->element[i];
            value = all->element[i + 1];

            if (end - last < 2048) {
                return last;
            }

            if (name->type != REDIS_REPLY_STRING
                || value->type != REDIS_REPLY_STRING
                || !ngx_chat_metrics_label_safe((u_char *) name->str,
                                                name->len)
                || ngx_chat_metrics_parse_stats((u_char *) value->str,
                                                value->len, &s) != NGX_OK)
            {
                continue;
            }

            l = ngx_sprintf(lbuf, "lane=\"%V\",worker=\"%*s\"", &s.lane,
                            name->len, name->str);
            labels.data = lbuf;
            labels.len = l - lbuf;

            switch (k) {
            case 0:
                last = ngx_sprintf(last, "%s{%V} %uA\n", fam[k].name,
                                   &labels, s.commands);
                break;
            case 1:
                last = ngx_sprintf(last, "%s{%V} %uA\n", fam[k].name,
                                   &labels, s.failed);
                break;
            case 2:
                last = ngx_sprintf(last, "%s{%V} %uA\n", fam[k].name,
                                   &labels, s.batches);
                break;
            case 3:
                last = ngx_sprintf(last, "%s{%V} %uA\n", fam[k].name,
                                   &labels, s.batch_commands);
                break;
            case 4:
                last = ngx_chat_metrics_histogram(last,
                           "chat_backend_commit_duration_seconds", &labels,
                           s.commit, s.commit_sum, s.commit_count);
                break;
            default:
                last = ngx_chat_metrics_histogram(last,
                           "chat_backend_call_duration_seconds", &labels,
                           s.call, s.call_sum, s.call_count);
            }
        }
    }

    return last;
}


/*
 * GET /metrics/cluster: what every edge would report the same (the command
 * streams, dead letters, the backend workers and their figures), so that
 * it is scraped once rather than summed over edges.  rr is the script's
 * answer, or NULL without Redis.
 */
static ngx_int_t
ngx_chat_metrics_send_cluster(ngx_http_request_t *r, redisReply *rr)
{
    u_char      *buf, *last, *end;
    size_t       size, i, n;
    ngx_uint_t   ok, workers, pg_ok;
    long long    pending;
    redisReply  *e;

    /* 2 per command stream, the dead letters' length and count, workers,
     * worker figures */
    ok = rr != NULL && rr->type == REDIS_REPLY_ARRAY && rr->elements >= 4
         && (rr->elements - 4) % 2 == 0;
    n = ok ? (rr->elements - 4) / 2 : 0;

    size = 8192 + n * 256
           + (ok ? rr->element[2 * n + 3]->elements * 4096 : 0);
    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    last = buf;
    end = buf + size;

    last = ngx_chat_metrics_family(last, "chat_cluster_redis_up", "gauge",
                                   "1 when this scrape could ask Redis");
    last = ngx_sprintf(last, "chat_cluster_redis_up %ui\n", ok);

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

        last = ngx_chat_metrics_workers(last, end, rr->element[2 * n + 3]);
    }

    return ngx_chat_send_body(r, NGX_HTTP_OK, &ngx_chat_metrics_type, buf,
                              last - buf);
}
