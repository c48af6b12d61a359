/*
 * ngx_chat_bus.c: the edge's end of the Redis Streams command bus.
 *
 * Each nginx worker process is one gateway per Redis endpoint (the
 * applications' chat_redis, ngx_chat_module.h; one when every location
 * shares the http-level one).  At start each makes up an identity (host,
 * pid, random) and opens two Redis connections:
 *   - "commands": XADDs commands to the sharded command streams and serves
 *     edge-local reads such as the health check;
 *   - "replies": loops on XREAD BLOCK over this gateway's own reply stream.
 * Two connections because a blocking XREAD holds its connection until it
 * returns, and commands must not wait behind it.
 *
 * A request that sends a command is parked in a red-black tree keyed by a
 * per-worker request id (one tree for all the worker's gateways: the ids
 * are the worker's, whichever Redis the command went to), with an nginx
 * timer that answers 504 when the worker pool is too slow.  The reply
 * entry carries the id back; the request is looked up, unparked and
 * answered with the worker's status and body.  A reply for a request that
 * is gone (timed out, client left) finds nothing and is dropped.  Parked
 * entries live in the request's pool and unpark themselves from a pool
 * cleanup, so no path can leave a dangling pointer in the tree.
 *
 * The reply reader keeps the last stream id it has seen, so after a Redis
 * restart (AOF on) it resumes exactly where it stopped.  Nothing reads an
 * entry before that id again (the stream has one reader), so at most
 * once a second the reader trims them (XTRIM MINID ~): XADD's MAXLEN ~
 * 10000 alone kept the newest 10,000 replies, and a search's is about
 * 8 KB, so Redis held up to 80 MB per gateway, which every AOF rewrite
 * copied again (4 s of a core about once a minute under the search mix).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <cjson/cJSON.h>

#include "chat_envelope.h"
#include "chat_lanes.h"
#include "chat_protocol.h"
#include "chat_seal.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_lanes.h"
#include "ngx_chat_metrics.h"
#include "ngx_chat_registry.h"


#define NGX_CHAT_REPLY_BLOCK_MS   "5000"
#define NGX_CHAT_REPLY_BLOCK      5000
#define NGX_CHAT_REPLY_COUNT      "256"
#define NGX_CHAT_REPLY_TRIM_MS    1000


/* per worker: the parked commands of all its gateways */
typedef struct {
    ngx_chat_main_conf_t  *cmcf;
    ngx_chat_gateway_t    *gateways;      /* one per endpoint, by index */
    ngx_uint_t             ngateways;

    uint64_t               next_id;
    ngx_rbtree_t           parked;
    ngx_rbtree_node_t      sentinel;
} ngx_chat_bus_t;


static ngx_chat_bus_t  *ngx_chat_bus;


static ngx_int_t ngx_chat_bus_gateway_init(ngx_cycle_t *cycle,
    ngx_chat_gateway_t *gw, ngx_chat_endpoint_t *ep);
static void ngx_chat_bus_commands_ready(ngx_chat_redis_t *rc);
static void ngx_chat_bus_read_replies(ngx_chat_redis_t *rc);
static void ngx_chat_bus_replies_arrived(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_bus_trim_replies(ngx_chat_gateway_t *gw);
static void ngx_chat_bus_trimmed(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_bus_deliver(redisReply *fields, void *data);
static void ngx_chat_bus_answer_sealed(ngx_chat_gateway_t *gw,
    ngx_chat_pending_t *p, ngx_uint_t status, redisReply *body,
    const char *const *fields);
static void ngx_chat_bus_reread(ngx_event_t *ev);
static void ngx_chat_bus_command_sent(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_bus_timeout(ngx_event_t *ev);
static void ngx_chat_bus_overloaded(ngx_event_t *ev);


ngx_int_t
ngx_chat_bus_init_process(ngx_cycle_t *cycle, ngx_chat_main_conf_t *cmcf)
{
    ngx_uint_t             i;
    ngx_chat_bus_t        *bus;
    ngx_chat_endpoint_t  **eps;

    bus = ngx_pcalloc(cycle->pool, sizeof(ngx_chat_bus_t));
    if (bus == NULL) {
        return NGX_ERROR;
    }

    bus->cmcf = cmcf;
    bus->next_id = 1;
    ngx_rbtree_init(&bus->parked, &bus->sentinel, ngx_rbtree_insert_value);

    bus->ngateways = cmcf->endpoints.nelts;
    bus->gateways = ngx_pcalloc(cycle->pool,
                                bus->ngateways * sizeof(ngx_chat_gateway_t));
    if (bus->gateways == NULL) {
        return NGX_ERROR;
    }

    ngx_chat_bus = bus;

    eps = cmcf->endpoints.elts;

    for (i = 0; i < bus->ngateways; i++) {
        if (ngx_chat_bus_gateway_init(cycle, &bus->gateways[i], eps[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* One endpoint's gateway: its identity, its connections and what it
 * feeds (the registry of its users, its lanes, its revocations, its
 * polls). */
static ngx_int_t
ngx_chat_bus_gateway_init(ngx_cycle_t *cycle, ngx_chat_gateway_t *gw,
    ngx_chat_endpoint_t *ep)
{
    u_char                *p;
    ngx_chat_main_conf_t  *cmcf = ngx_chat_bus->cmcf;

    gw->endpoint = ep;
    gw->cmcf = cmcf;

    /* the gateway id must be unique across hosts, pids and restarts */
    p = ngx_pnalloc(cycle->pool, cycle->hostname.len + 2 * NGX_INT_T_LEN + 3);
    if (p == NULL) {
        return NGX_ERROR;
    }
    gw->gateway.data = p;
    gw->gateway.len = ngx_sprintf(p, "%V:%P:%08xD", &cycle->hostname, ngx_pid,
                                  (uint32_t) ngx_random()) - p;

    p = ngx_pnalloc(cycle->pool, sizeof(CHAT_GW_STREAM_PREFIX) + gw->gateway.len
                                 + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }
    gw->reply_stream.data = p;
    gw->reply_stream.len = ngx_sprintf(p, CHAT_GW_STREAM_PREFIX "%V}%Z",
                                       &gw->gateway) - p - 1;

    /* a new gateway's stream is empty or absent: read it from the start */
    ngx_cpystrn((u_char *) gw->last_id, (u_char *) "0-0",
                sizeof(gw->last_id));
    ngx_cpystrn((u_char *) gw->trimmed_id, (u_char *) "0-0",
                sizeof(gw->trimmed_id));

    ngx_sprintf((u_char *) gw->maxlen, "%ui%Z", cmcf->stream_maxlen);

    gw->reread.handler = ngx_chat_bus_reread;
    gw->reread.data = gw;
    gw->reread.log = cycle->log;
    gw->reread.cancelable = 1;

    ngx_chat_redis_use_endpoint(&gw->commands, "commands", ep, cycle->log);
    gw->commands.stall_timeout = ep->timeout;
    gw->commands.idle_ping = ep->timeout;
    gw->commands.on_connect = ngx_chat_bus_commands_ready;
    gw->commands.data = gw;

    ngx_chat_redis_use_endpoint(&gw->replies, "replies", ep, cycle->log);
    gw->replies.stall_timeout = NGX_CHAT_REPLY_BLOCK + ep->timeout;
    gw->replies.on_connect = ngx_chat_bus_read_replies;
    gw->replies.data = gw;

    gw->registry = ngx_chat_registry_create(cycle, gw);
    gw->lanes = ngx_chat_lanes_create(cycle, gw);
    gw->revocations = ngx_chat_revoked_follow(cycle, gw);
    gw->poll = ngx_chat_poll_create(cycle, gw);

    if (gw->registry == NULL || gw->lanes == NULL || gw->revocations == NULL
        || gw->poll == NULL)
    {
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "chat gateway %V started on redis %V, replies on \"%V\"",
                  &gw->gateway, &ep->name, &gw->reply_stream);

    ngx_chat_redis_start(&gw->commands);
    ngx_chat_redis_start(&gw->replies);

    return NGX_OK;
}


void
ngx_chat_bus_exit_process(void)
{
    ngx_uint_t           i;
    ngx_chat_gateway_t  *gw;

    if (ngx_chat_bus == NULL) {
        return;
    }

    for (i = 0; i < ngx_chat_bus->ngateways; i++) {
        gw = &ngx_chat_bus->gateways[i];

        if (gw->reread.timer_set) {
            ngx_del_timer(&gw->reread);
        }

        ngx_chat_poll_stop(gw->poll);
        ngx_chat_revoked_unfollow(gw->revocations);
        ngx_chat_lanes_stop(gw->lanes);
        ngx_chat_registry_stop(gw->registry);

        ngx_chat_redis_stop(&gw->replies);
        ngx_chat_redis_stop(&gw->commands);
    }

    ngx_chat_bus = NULL;
}


ngx_chat_gateway_t *
ngx_chat_gateway(ngx_http_request_t *r)
{
    ngx_chat_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    if (ngx_chat_bus == NULL || clcf->endpoint == NULL
        || clcf->endpoint->index >= ngx_chat_bus->ngateways)
    {
        return NULL;
    }

    return &ngx_chat_bus->gateways[clcf->endpoint->index];
}


ngx_chat_gateway_t *
ngx_chat_bus_gateways(ngx_uint_t *n)
{
    if (ngx_chat_bus == NULL) {
        *n = 0;
        return NULL;
    }

    *n = ngx_chat_bus->ngateways;
    return ngx_chat_bus->gateways;
}


ngx_chat_redis_t *
ngx_chat_bus_redis(ngx_chat_gateway_t *gw)
{
    return gw ? &gw->commands : NULL;
}


/* parking */

ngx_int_t
ngx_chat_bus_park(ngx_chat_pending_t *p, ngx_log_t *log)
{
    if (ngx_chat_bus == NULL) {
        return NGX_ERROR;
    }

    p->id = ngx_chat_bus->next_id++;
    p->node.key = (ngx_rbtree_key_t) p->id;
    ngx_rbtree_insert(&ngx_chat_bus->parked, &p->node);
    p->parked = 1;

    p->timer.handler = ngx_chat_bus_timeout;
    p->timer.data = p;
    p->timer.log = log;
    p->retry_after = 0;
    ngx_add_timer(&p->timer, ngx_chat_bus->cmcf->command_timeout);

    return NGX_OK;
}


void
ngx_chat_bus_cancel(ngx_chat_pending_t *p)
{
    if (p->parked && ngx_chat_bus != NULL) {
        ngx_rbtree_delete(&ngx_chat_bus->parked, &p->node);
        p->parked = 0;
    }

    if (p->timer.timer_set) {
        ngx_del_timer(&p->timer);
    }
}


ngx_chat_pending_t *
ngx_chat_bus_unpark(uint64_t id)
{
    ngx_rbtree_node_t  *node, *sentinel;
    ngx_chat_pending_t *p;

    if (ngx_chat_bus == NULL) {
        return NULL;
    }

    node = ngx_chat_bus->parked.root;
    sentinel = ngx_chat_bus->parked.sentinel;

    while (node != sentinel) {
        if ((ngx_rbtree_key_t) id < node->key) {
            node = node->left;
            continue;
        }

        if ((ngx_rbtree_key_t) id > node->key) {
            node = node->right;
            continue;
        }

        p = (ngx_chat_pending_t *) node;
        ngx_chat_bus_cancel(p);
        return p;
    }

    return NULL;
}


/* Every answer to a command goes through here: its time on the bus goes
 * into the latency histogram of its op (the commands of /metrics and
 * /health, which have no op, do not). */
static void
ngx_chat_bus_answer(ngx_chat_pending_t *p, ngx_uint_t status, u_char *body,
    size_t len)
{
    if (p->op != NULL) {
        ngx_chat_metrics_command(p->op, ngx_current_msec - p->sent);
    }

    p->answer(p, status, body, len);
}


static void
ngx_chat_bus_answer_error(ngx_chat_pending_t *p, ngx_uint_t status,
    const char *code, const char *message)
{
    u_char  buf[256], *last;

    last = ngx_snprintf(buf, sizeof(buf),
                        "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                        code, message);

    ngx_chat_bus_answer(p, status, buf, last - buf);
}


static void
ngx_chat_bus_timeout(ngx_event_t *ev)
{
    ngx_chat_pending_t  *p = ev->data;

    if (ngx_chat_bus_unpark(p->id) == NULL) {
        return;
    }

    ngx_chat_metric_inc(bus_timeouts);

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "chat: no reply to request %uL in time", p->id);

    ngx_chat_bus_answer_error(p, NGX_HTTP_GATEWAY_TIME_OUT, "timeout",
                              "the backend did not answer in time");
}


/* A lane at its bound, or one whose pool disagrees with this edge:
 * answered from a zero timer, so that p->answer is never called from
 * inside ngx_chat_bus_send. */
static void
ngx_chat_bus_overloaded(ngx_event_t *ev)
{
    ngx_chat_pending_t  *p = ev->data;

    if (ngx_chat_bus_unpark(p->id) == NULL) {
        return;
    }

    if (p->misconfigured) {
        ngx_chat_bus_answer_error(p, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "misconfigured",
                                  "this part of the service is "
                                  "misconfigured (the edge and the backend "
                                  "disagree; see the error log)");
        return;
    }

    ngx_chat_metric_inc(bus_overloaded);

    ngx_chat_bus_answer_error(p, NGX_HTTP_SERVICE_UNAVAILABLE, "overloaded",
                              "busy right now; try again in a few "
                              "seconds (Retry-After)");
}


/* sending */

ngx_int_t
ngx_chat_bus_send(ngx_chat_gateway_t *gw, ngx_chat_pending_t *p,
    ngx_log_t *log, const char *op, ngx_chat_caller_t *caller,
    ngx_str_t *client_key, ngx_str_t *body)
{
    int                       argc;
    u_char                    key[CHAT_MAX_KEY_LEN + 1], *last;
    ngx_int_t                 rc;
    size_t                    argvlen[CHAT_ENVELOPE_ARGC];
    time_t                    retry_after;
    unsigned                  shard;
    ngx_msec_t                timeout;
    ngx_time_t               *tp;
    const char               *stream;
    chat_lane_t               lane;
    const char               *argv[CHAT_ENVELOPE_ARGC];
    ngx_chat_bus_t           *bus;
    chat_envelope_t           env;
    chat_envelope_numbers_t   numbers;

    bus = ngx_chat_bus;

    if (bus == NULL || gw == NULL || !ngx_chat_redis_usable(&gw->commands)) {
        return NGX_DECLINED;
    }

    if (ngx_chat_bus_park(p, log) != NGX_OK) {
        return NGX_ERROR;
    }

    p->op = op;
    p->gw = gw;
    p->sent = ngx_current_msec;

    lane = chat_lane_of_op(op, ngx_strlen(op));
    timeout = bus->cmcf->command_timeout;

    rc = ngx_chat_lanes_admit(gw->lanes, lane, &timeout, &retry_after);

    if (rc == NGX_BUSY || rc == NGX_ABORT) {
        p->misconfigured = (rc == NGX_ABORT);
        if (!p->misconfigured) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "chat: lane \"%s\" is full, op \"%s\" refused",
                          chat_lane_name(lane), op);
        }
        p->retry_after = retry_after;
        p->timer.handler = ngx_chat_bus_overloaded;
        ngx_add_timer(&p->timer, 0);
        return NGX_OK;
    }

    if (timeout != bus->cmcf->command_timeout) {
        ngx_add_timer(&p->timer, timeout);
    }

    /*
     * A client's own Idempotency-Key is scoped to its user so users cannot
     * collide; without one, every request is its own command.
     */
    if (client_key != NULL && client_key->len && caller->uid > 0) {
        last = ngx_snprintf(key, CHAT_MAX_KEY_LEN, "u%L:%V", caller->uid,
                            client_key);
    } else {
        last = ngx_snprintf(key, CHAT_MAX_KEY_LEN, "g%V:%uL", &gw->gateway,
                            p->id);
    }

    tp = ngx_timeofday();

    env.key.data = (const char *) key;
    env.key.len = last - key;
    env.op.data = op;
    env.op.len = ngx_strlen(op);
    env.role.data = (const char *) caller->role.data;
    env.role.len = caller->role.len;
    env.gw.data = (const char *) gw->reply_stream.data;
    env.gw.len = gw->reply_stream.len;
    env.body.data = (const char *) body->data;
    env.body.len = body->len;
    env.rid.data = (const char *) p->rid.data;
    env.rid.len = p->rid.len;
    env.uid = caller->uid;
    env.req = p->id;
    env.ts = (int64_t) tp->sec * 1000 + tp->msec;

    shard = chat_envelope_shard(env.key.data, env.key.len,
                                (unsigned) bus->cmcf->stream_shards);

    stream = ngx_chat_lanes_stream(gw->lanes, lane, shard);
    if (stream == NULL) {
        ngx_chat_bus_cancel(p);
        return NGX_ERROR;
    }

    argc = chat_envelope_argv(&env, stream, gw->maxlen,
                              &numbers, argv, argvlen);
    if (argc < 0) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "chat: invalid command envelope for op \"%s\"", op);
        ngx_chat_bus_cancel(p);
        return NGX_ERROR;
    }

    if (ngx_chat_redis_command(&gw->commands, ngx_chat_bus_command_sent,
                               (void *) (uintptr_t) p->id, argc, argv,
                               argvlen)
        != NGX_OK)
    {
        ngx_chat_bus_cancel(p);
        return NGX_DECLINED;
    }

    ngx_chat_metric_inc(bus_sent);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                   "chat: request %uL op \"%s\" to \"%s\"", p->id, op,
                   stream);

    return NGX_OK;
}


/* The XADD's own answer: only failures matter, success waits for the reply. */
static void
ngx_chat_bus_command_sent(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply          *rr = reply;
    ngx_chat_pending_t  *p;

    if (rr != NULL && rr->type != REDIS_REPLY_ERROR) {
        return;
    }

    p = ngx_chat_bus_unpark((uint64_t) (uintptr_t) privdata);
    if (p == NULL) {
        return;
    }

    if (rr == NULL) {
        ngx_chat_bus_answer_error(p, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "unavailable", "redis connection lost");
        return;
    }

    ngx_log_error(NGX_LOG_ERR, p->timer.log, 0,
                  "chat: XADD refused: %*s", (size_t) rr->len, rr->str);

    ngx_chat_bus_answer_error(p, NGX_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                              "the command bus refused the command");
}


/* A (re)connected Redis may have lost the online registry: refill it. */
static void
ngx_chat_bus_commands_ready(ngx_chat_redis_t *rc)
{
    ngx_chat_gateway_t  *gw = rc->data;

    ngx_chat_registry_announce_all(gw->registry);
}


/* receiving */

static void
ngx_chat_bus_read_replies(ngx_chat_redis_t *rc)
{
    ngx_chat_gateway_t  *gw = rc->data;

    if (ngx_chat_bus == NULL || gw->reread.timer_set) {
        return;
    }

    /* reply_stream is NUL-terminated */
    (void) ngx_chat_redis_xread(rc, ngx_chat_bus_replies_arrived,
                                NGX_CHAT_REPLY_COUNT,
                                NGX_CHAT_REPLY_BLOCK_MS,
                                (const char *) gw->reply_stream.data,
                                gw->last_id);
}


static void
ngx_chat_bus_replies_arrived(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply          *rr = reply;
    ngx_chat_redis_t    *rc = ac->data;
    ngx_chat_gateway_t  *gw;

    if (rr == NULL || ngx_chat_bus == NULL) {
        /* connection gone: on_connect restarts the loop */
        return;
    }

    gw = rc->data;

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, gw->replies.log, 0,
                      "chat: XREAD on \"%V\" (redis %V) failed: %*s",
                      &gw->reply_stream, &gw->endpoint->name,
                      (size_t) rr->len, rr->str);
        ngx_add_timer(&gw->reread, 1000);
        return;
    }

    ngx_chat_redis_xread_entries(rr, gw->last_id, sizeof(gw->last_id),
                                 ngx_chat_bus_deliver, gw);

    ngx_chat_bus_read_replies(&gw->replies);
    ngx_chat_bus_trim_replies(gw);
}


/* The entries before last_id go, at most every NGX_CHAT_REPLY_TRIM_MS
 * (see the top of this file).  On the commands connection: the replies
 * one is blocked in its XREAD.  Approximate (~): Redis frees whole nodes
 * only, so an entry or a node's worth of read ones may stay until the
 * next time. */
static void
ngx_chat_bus_trim_replies(ngx_chat_gateway_t *gw)
{
    const char  *argv[5];

    if (ngx_current_msec - gw->trimmed_at < NGX_CHAT_REPLY_TRIM_MS
        || ngx_strcmp(gw->last_id, gw->trimmed_id) == 0)
    {
        return;
    }

    argv[0] = "XTRIM";
    argv[1] = (const char *) gw->reply_stream.data;
    argv[2] = "MINID";
    argv[3] = "~";
    argv[4] = gw->last_id;

    if (ngx_chat_redis_command(&gw->commands, ngx_chat_bus_trimmed, gw, 5,
                               argv, NULL)
        == NGX_OK)
    {
        gw->trimmed_at = ngx_current_msec;
        ngx_cpystrn((u_char *) gw->trimmed_id, (u_char *) gw->last_id,
                    sizeof(gw->trimmed_id));
    }
}


static void
ngx_chat_bus_trimmed(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply          *rr = reply;
    ngx_chat_gateway_t  *gw = privdata;

    (void) ac;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        /* harmless (MAXLEN still bounds the stream), but worth a line */
        ngx_log_error(NGX_LOG_WARN, gw->commands.log, 0,
                      "chat: XTRIM of \"%V\" (redis %V) failed: %*s",
                      &gw->reply_stream, &gw->endpoint->name,
                      (size_t) rr->len, rr->str);
    }
}


static void
ngx_chat_bus_reread(ngx_event_t *ev)
{
    ngx_chat_gateway_t  *gw = ev->data;

    if (ngx_chat_bus && gw->replies.connected) {
        ngx_chat_bus_read_replies(&gw->replies);
    }
}


/* One entry of gw's reply stream (data): a reply (req, status, body) or
 * an event (ev, uids) for gw's users. */
static void
ngx_chat_bus_deliver(redisReply *fields, void *data)
{
    ngx_chat_gateway_t  *gw = data;

    size_t               i;
    ngx_int_t            req, status;
    redisReply          *name, *value, *body, *event, *uids;
    const char *const   *sealed;
    ngx_chat_pending_t  *p;

    if (fields->type != REDIS_REPLY_ARRAY) {
        return;
    }

    req = NGX_ERROR;
    status = NGX_ERROR;
    body = NULL;
    event = NULL;
    uids = NULL;

    for (i = 0; i + 1 < fields->elements; i += 2) {
        name = fields->element[i];
        value = fields->element[i + 1];

        if (name->type != REDIS_REPLY_STRING
            || value->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        if (ngx_strcmp(name->str, CHAT_F_REQ) == 0) {
            req = ngx_atoi((u_char *) value->str, value->len);

        } else if (ngx_strcmp(name->str, CHAT_F_STATUS) == 0) {
            status = ngx_atoi((u_char *) value->str, value->len);

        } else if (ngx_strcmp(name->str, CHAT_F_BODY) == 0) {
            body = value;

        } else if (ngx_strcmp(name->str, CHAT_F_EVENT) == 0) {
            event = value;

        } else if (ngx_strcmp(name->str, CHAT_F_UIDS) == 0) {
            uids = value;
        }
    }

    if (event != NULL && uids != NULL) {
        ngx_chat_metric_inc(bus_events);
        ngx_chat_registry_deliver(gw->registry,
                                  (u_char *) uids->str, uids->len,
                                  (u_char *) event->str, event->len);
        return;
    }

    if (req == NGX_ERROR || status < 200 || status > 599 || body == NULL) {
        ngx_log_error(NGX_LOG_ERR, gw->replies.log, 0,
                      "chat: malformed reply entry on \"%V\"",
                      &gw->reply_stream);
        return;
    }

    p = ngx_chat_bus_unpark((uint64_t) req);
    if (p == NULL) {
        /* answered already, timed out, or the client left */
        return;
    }

    if (p->gw != gw) {
        /* an id this worker gave a command on another Redis: a reply
         * stream written by someone else; never answer with it */
        ngx_log_error(NGX_LOG_ERR, gw->replies.log, 0,
                      "chat: reply to request %uL on \"%V\", which was "
                      "sent to another redis", p->id, &gw->reply_stream);
        ngx_chat_bus_answer_error(p, NGX_HTTP_BAD_GATEWAY, "internal_error",
                                  "the backend's answer came from the "
                                  "wrong place");
        return;
    }

    ngx_chat_metric_inc(bus_replies);

    sealed = p->op ? chat_seal_reply_fields(p->op, ngx_strlen(p->op)) : NULL;

    if (sealed != NULL && status >= 200 && status < 300) {
        ngx_chat_bus_answer_sealed(gw, p, (ngx_uint_t) status, body, sealed);
        return;
    }

    ngx_chat_bus_answer(p, (ngx_uint_t) status, (u_char *) body->str,
                        body->len);
}


/*
 * A reply whose secret fields (a token: chat_seal.c) came sealed for this
 * gateway and request: opened here, on their way out to the client.  A
 * reply that does not open (another secret, a worker that did not seal)
 * is not passed on: the client gets 500 and the log says why.
 */
static void
ngx_chat_bus_answer_sealed(ngx_chat_gateway_t *gw, ngx_chat_pending_t *p,
    ngx_uint_t status, redisReply *body, const char *const *fields)
{
    char            *text, req[NGX_INT64_LEN + 1];
    cJSON           *json;
    chat_seal_ad_t   ad;

    ad.dir = "reply";
    ad.op = p->op;
    ad.op_len = ngx_strlen(p->op);
    ad.gw = (const char *) gw->reply_stream.data;
    ad.gw_len = gw->reply_stream.len;
    ad.req = req;
    ad.req_len = ngx_sprintf((u_char *) req, "%uL", p->id) - (u_char *) req;

    text = NULL;
    json = cJSON_ParseWithLength(body->str, body->len);

    if (json == NULL
        || chat_seal_open_json(gw->endpoint->seal_key, &ad, fields, json) != 0
        || (text = cJSON_PrintUnformatted(json)) == NULL)
    {
        cJSON_Delete(json);

        ngx_log_error(NGX_LOG_ALERT, p->timer.log, 0,
                      "chat: the reply to request %uL (op \"%s\") has a "
                      "secret field that does not open: do the edge and "
                      "the workers share the token secret?", p->id, p->op);

        ngx_chat_bus_answer_error(p, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "internal_error",
                                  "the backend's answer could not be read");
        return;
    }

    cJSON_Delete(json);

    ngx_chat_bus_answer(p, status, (u_char *) text, ngx_strlen(text));

    cJSON_free(text);
}
