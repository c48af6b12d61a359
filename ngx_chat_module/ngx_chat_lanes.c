/*
 * ngx_chat_lanes.c: load shedding per lane at the edge.
 *
 * Each nginx worker asks each of its Redis endpoints (one view per
 * gateway: each Redis has its own backend and lanes), a few times a
 * second, how deep every lane's queue is (pending + unread entries of the
 * workers' consumer group, summed over the lane's shards) and what limits the
 * lane's pool published (chat_lanes.h: queue bound, timeout,
 * Retry-After): one script per command stream (chat_script_stream_depth:
 * each shard's stream is a slot of its own in a Redis Cluster) and an
 * HGETALL of the limits, pipelined on the gateway's commands connection,
 * summed when the last is in.  Between two answers the worker adds the
 * commands it sent itself, so a burst arriving within one interval is
 * counted before Redis has seen it.
 *
 * A command whose lane is at its bound is not sent: the caller answers
 * 503 overloaded with Retry-After at once (ngx_chat_bus.c).  That is the
 * point of a bound: a queue that cannot drain within the command timeout
 * only turns every request behind it into a late 504.  There are two: a
 * depth in commands (queue) and a wait in ms (wait: how long the lane's
 * oldest unread command has waited, the longest over its shards).  The
 * depth alone assumes the pool drains at its usual rate; when the pool
 * slows down, a queue under its depth bound can hold more than a
 * timeout's worth of work (the benchmark once saw a chat lane, never at
 * its depth bound, answer 15,000 commands 504 after such a stall), and
 * the wait bound refuses new commands before that.
 *
 * Agreement.  With its limits a lane's pool publishes its shard count and
 * its secret's fingerprint (chat_lane_limits_agree).  When they differ
 * from this edge's (the secret of the locations using that Redis), the
 * edge logs why (once per change) and refuses the
 * lane's commands at once with 503 misconfigured: a command on a shard
 * nobody reads, or for a worker that cannot open its sealed fields, would
 * only wait for its timeout, and a token it signs would fail here.
 * /metrics shows chat_lane_misconfigured{lane}.
 *
 * The presence TTL is compared too, but a mismatch only warns (once per
 * change, and chat_presence_ttl_mismatch 1 in /metrics): it makes
 * presence flap or lag, which is worth an operator's attention, not
 * worth refusing every message of the chat lane over.
 *
 * What this cannot see: other edges' sends within the last interval (each
 * edge counts its own), so a bound may be passed by up to one interval's
 * worth of commands from the other edges.  A lane whose pool has not
 * published limits (no worker of that lane has ever run) is not bounded:
 * its commands wait for the timeout as before.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "chat_lanes.h"
#include "chat_protocol.h"
#include "chat_token.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_lanes.h"
#include "ngx_chat_metrics.h"


#define NGX_CHAT_LANES_POLL_MS      200
#define NGX_CHAT_LANES_STREAM_LEN   64

typedef struct {
    chat_lane_limits_t  limits;
    unsigned            known:1;        /* limits published */
    unsigned            disagrees:1;    /* chat_lane_limits_agree failed */
    int64_t             depth;          /* as Redis last told */
    int64_t             waited;         /* the oldest unread one, ms */
    int64_t             sent;           /* sent by us since that poll */
    int64_t             sent_at_ask;    /* sent when the poll was asked */
} ngx_chat_lane_state_t;

/* what a stream's depth answer adds to: its view and its lane */
typedef struct {
    ngx_chat_lanes_t       *l;
    ngx_uint_t              lane;
} ngx_chat_lanes_depth_t;

/* one per gateway: the lanes of one Redis, with its own backend */
struct ngx_chat_lanes_s {
    ngx_chat_gateway_t     *gw;
    ngx_uint_t              shards;
    int64_t                 key_id;     /* chat_token_key_id of ours */
    int64_t                 presence_ttl;       /* chat_presence_ttl, ms */
    unsigned                ttl_disagrees:1;    /* some lane's pool's */
    char                  (*streams)[NGX_CHAT_LANES_STREAM_LEN];
    ngx_chat_lane_state_t   lanes[CHAT_LANE_COUNT];
    ngx_event_t             poll;
    ngx_uint_t              asking;     /* answers still to come */
    unsigned                failed:1;   /* in this round */
    int64_t                 depths[CHAT_LANE_COUNT];    /* this round's */
    int64_t                 waited[CHAT_LANE_COUNT];    /* this round's */
    ngx_chat_lanes_depth_t  who[CHAT_LANE_COUNT];
};


static void ngx_chat_lanes_ask(ngx_event_t *ev);
static void ngx_chat_lanes_depth(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_lanes_limits(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_lanes_answered(ngx_chat_lanes_t *l);


ngx_chat_lanes_t *
ngx_chat_lanes_create(ngx_cycle_t *cycle, ngx_chat_gateway_t *gw)
{
    ngx_uint_t             lane, shard;
    ngx_chat_lanes_t      *l;
    ngx_chat_main_conf_t  *cmcf = gw->cmcf;

    l = ngx_pcalloc(cycle->pool, sizeof(ngx_chat_lanes_t));
    if (l == NULL) {
        return NULL;
    }

    /* the backend on this Redis is checked against the secret of the
     * locations using it (one backend, one secret per Redis); a Redis
     * only chat_metrics locations use has no secret to check (0) */
    l->gw = gw;
    l->shards = cmcf->stream_shards;
    l->key_id = gw->endpoint->token_secret.len
                ? chat_token_key_id(gw->endpoint->token_secret.data,
                                    gw->endpoint->token_secret.len)
                : 0;
    l->presence_ttl = (int64_t) cmcf->presence_ttl;
    l->streams = ngx_pcalloc(cycle->pool, CHAT_LANE_COUNT * l->shards
                                          * NGX_CHAT_LANES_STREAM_LEN);
    if (l->streams == NULL) {
        return NULL;
    }

    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        for (shard = 0; shard < l->shards; shard++) {
            if (chat_lane_stream(l->streams[lane * l->shards + shard],
                                 NGX_CHAT_LANES_STREAM_LEN, lane, shard)
                == 0)
            {
                return NULL;
            }
        }
    }

    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        l->who[lane].l = l;
        l->who[lane].lane = lane;
    }

    l->poll.handler = ngx_chat_lanes_ask;
    l->poll.data = l;
    l->poll.log = cycle->log;
    l->poll.cancelable = 1;
    ngx_add_timer(&l->poll, NGX_CHAT_LANES_POLL_MS);

    return l;
}


void
ngx_chat_lanes_stop(ngx_chat_lanes_t *l)
{
    if (l != NULL && l->poll.timer_set) {
        ngx_del_timer(&l->poll);
    }
}


const char *
ngx_chat_lanes_stream(ngx_chat_lanes_t *l, chat_lane_t lane,
    ngx_uint_t shard)
{
    if (l == NULL || (ngx_uint_t) lane >= CHAT_LANE_COUNT
        || shard >= l->shards)
    {
        return NULL;
    }

    return l->streams[lane * l->shards + shard];
}


ngx_int_t
ngx_chat_lanes_admit(ngx_chat_lanes_t *l, chat_lane_t lane,
    ngx_msec_t *timeout, time_t *retry_after)
{
    ngx_chat_lane_state_t  *s;

    if (l == NULL || (ngx_uint_t) lane >= CHAT_LANE_COUNT) {
        return NGX_OK;
    }

    s = &l->lanes[lane];

    if (s->disagrees) {
        *retry_after = 5;
        return NGX_ABORT;
    }

    if (s->known
        && ((s->limits.queue > 0 && s->depth + s->sent >= s->limits.queue)
            || (s->limits.wait_ms > 0 && s->waited >= s->limits.wait_ms)))
    {
        *retry_after = s->limits.retry_s > 0 ? (time_t) s->limits.retry_s : 1;
        return NGX_BUSY;
    }

    if (s->known && s->limits.timeout_ms > 0) {
        *timeout = (ngx_msec_t) s->limits.timeout_ms;
    }

    s->sent++;

    return NGX_OK;
}


ngx_uint_t
ngx_chat_lanes_disagree(ngx_chat_lanes_t *l, chat_lane_t lane)
{
    return l != NULL && (ngx_uint_t) lane < CHAT_LANE_COUNT
           && l->lanes[lane].disagrees;
}


ngx_uint_t
ngx_chat_lanes_presence_ttl_disagrees(ngx_chat_lanes_t *l)
{
    return l != NULL && l->ttl_disagrees;
}


ngx_int_t
ngx_chat_lanes_view(ngx_chat_lanes_t *l, chat_lane_t lane, int64_t *depth,
    int64_t *queue, int64_t *waited, int64_t *wait)
{
    ngx_chat_lane_state_t  *s;

    if (l == NULL || (ngx_uint_t) lane >= CHAT_LANE_COUNT
        || !l->lanes[lane].known)
    {
        return NGX_DECLINED;
    }

    s = &l->lanes[lane];
    *depth = s->depth + s->sent;
    *queue = s->limits.queue;
    *waited = s->waited;
    *wait = s->limits.wait_ms;

    return NGX_OK;
}


static void
ngx_chat_lanes_ask(ngx_event_t *ev)
{
    size_t              argvlen[3];
    ngx_uint_t          i, lane;
    const char         *argv[3];
    ngx_chat_lanes_t   *l = ev->data;
    ngx_chat_redis_t   *rc;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(&l->poll, NGX_CHAT_LANES_POLL_MS);

    rc = ngx_chat_bus_redis(l->gw);

    if (l->asking || rc == NULL || !rc->connected) {
        return;
    }

    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        l->lanes[lane].sent_at_ask = l->lanes[lane].sent;
        l->depths[lane] = 0;
        l->waited[lane] = 0;
    }
    l->failed = 0;

    argv[0] = "1";
    argvlen[0] = 1;
    argv[2] = CHAT_CMD_GROUP;
    argvlen[2] = sizeof(CHAT_CMD_GROUP) - 1;

    /* the runner copies the arguments; past the few unread entries the
     * script counts (its default), a shard's are Redis's lag
     * (chat_scripts.c says why) */
    for (i = 0; i < CHAT_LANE_COUNT * l->shards; i++) {
        argv[1] = l->streams[i];
        argvlen[1] = ngx_strlen(l->streams[i]);

        if (ngx_chat_redis_script(rc, &chat_script_stream_depth,
                                  ngx_chat_lanes_depth,
                                  &l->who[i / l->shards], 3, argv, argvlen)
            != NGX_OK)
        {
            /* a round with a stream missing would under-count */
            l->failed = 1;
            break;
        }

        l->asking++;
    }

    argv[0] = "HGETALL";
    argvlen[0] = 7;
    argv[1] = CHAT_LANES_KEY;
    argvlen[1] = sizeof(CHAT_LANES_KEY) - 1;

    if (ngx_chat_redis_command(rc, ngx_chat_lanes_limits, l, 2, argv,
                               argvlen)
        == NGX_OK)
    {
        l->asking++;
    }
}


/* one stream's depth, added to its lane's, and its oldest unread one's
 * wait, the lane's if the longest */
static void
ngx_chat_lanes_depth(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply              *rr = reply;
    ngx_chat_lanes_depth_t  *who = privdata;
    ngx_chat_lanes_t        *l = who->l;

    /* l lives in the cycle's pool: valid even for the NULL replies of
     * the connection's end at exit */

    if (rr != NULL && rr->type == REDIS_REPLY_ARRAY && rr->elements == 4
        && rr->element[2]->type == REDIS_REPLY_INTEGER
        && rr->element[3]->type == REDIS_REPLY_INTEGER)
    {
        l->depths[who->lane] += rr->element[2]->integer;
        if (rr->element[3]->integer > l->waited[who->lane]) {
            l->waited[who->lane] = rr->element[3]->integer;
        }

    } else {
        if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_WARN, l->poll.log, 0,
                          "chat lanes: redis %V: %s", &l->gw->endpoint->name,
                          rr->str);
        }
        l->failed = 1;
    }

    ngx_chat_lanes_answered(l);
}


/* the last answer of a round: the depths, if every stream answered */
static void
ngx_chat_lanes_answered(ngx_chat_lanes_t *l)
{
    ngx_uint_t              lane;
    ngx_chat_lane_state_t  *s;

    if (--l->asking > 0 || l->failed) {
        return;
    }

    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        s = &l->lanes[lane];
        s->depth = l->depths[lane];
        s->waited = l->waited[lane];
        /* what we sent after asking was not counted yet */
        s->sent -= s->sent_at_ask;
        s->sent_at_ask = 0;
    }
}


/* the limits every lane's pool published (HGETALL chat:lanes) */
static void
ngx_chat_lanes_limits(redisAsyncContext *ac, void *reply, void *privdata)
{
    int                     agree, ttl_agree;
    char                    why[256], ttl_why[256];
    size_t                  i;
    ngx_int_t               lane;
    redisReply             *h = reply;
    chat_lane_limits_t      limits;
    ngx_chat_lanes_t       *l = privdata;

    ngx_chat_lanes_answered(l);

    if (h == NULL || h->type != REDIS_REPLY_ARRAY) {
        return;
    }

    /* every lane's pool runs with the same environment: one verdict */
    ttl_agree = 1;
    ttl_why[0] = '\0';

    for (i = 0; i + 1 < h->elements; i += 2) {
        if (h->element[i]->type != REDIS_REPLY_STRING
            || h->element[i + 1]->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        lane = chat_lane_by_name(h->element[i]->str, h->element[i]->len);
        if (lane < 0) {
            continue;
        }

        if (chat_lane_limits_parse(h->element[i + 1]->str,
                                   h->element[i + 1]->len, &limits)
            != 0)
        {
            continue;
        }

        l->lanes[lane].limits = limits;
        l->lanes[lane].known = 1;

        agree = chat_lane_limits_agree(&limits, (int64_t) l->shards,
                                       l->key_id ? l->key_id : limits.key_id,
                                       why, sizeof(why));

        if (!agree && !l->lanes[lane].disagrees) {
            ngx_log_error(NGX_LOG_ERR, l->poll.log, 0,
                          "chat: lane \"%s\" refused until the edge and the "
                          "backend agree: %s (redis %V)",
                          chat_lane_name(lane), why, &l->gw->endpoint->name);

        } else if (agree && l->lanes[lane].disagrees) {
            ngx_log_error(NGX_LOG_NOTICE, l->poll.log, 0,
                          "chat: lane \"%s\": the edge and the backend "
                          "agree again", chat_lane_name(lane));
        }

        l->lanes[lane].disagrees = !agree;

        if (ttl_agree
            && !chat_lane_presence_ttl_agree(&limits, l->presence_ttl,
                                             ttl_why, sizeof(ttl_why)))
        {
            ttl_agree = 0;
        }
    }

    if (!ttl_agree && !l->ttl_disagrees) {
        ngx_log_error(NGX_LOG_WARN, l->poll.log, 0,
                      "chat: the edge and the backend disagree on presence: "
                      "%s", ttl_why);

    } else if (ttl_agree && l->ttl_disagrees) {
        ngx_log_error(NGX_LOG_NOTICE, l->poll.log, 0,
                      "chat: the edge and the backend agree on the presence "
                      "TTL again");
    }

    l->ttl_disagrees = !ttl_agree;
}
