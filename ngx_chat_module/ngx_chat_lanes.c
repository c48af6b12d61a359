/*
 * ngx_chat_lanes.c: load shedding per lane at the edge.
 *
 * Each nginx worker asks each of its Redis endpoints (one view per
 * gateway: each Redis has its own backend and lanes), a few times a
 * second, how deep every lane's queue is (pending + lag of the workers'
 * consumer group, summed over the lane's shards) and what limits the
 * lane's pool published (chat_lanes.h: queue bound, timeout,
 * Retry-After).  One EVAL on the gateway's commands connection does both.  Between two answers the worker adds the
 * commands it sent itself, so a burst arriving within one interval is
 * counted before Redis has seen it.
 *
 * A command whose lane is at its bound is not sent: the caller answers
 * 503 overloaded with Retry-After at once (ngx_chat_bus.c).  That is the
 * point of a bound: a queue that cannot drain within the command timeout
 * only turns every request behind it into a late 504.
 *
 * Agreement.  With its limits a lane's pool publishes its shard count and
 * its secret's fingerprint (chat_lane_limits_agree).  When they differ
 * from this edge's (the secret of the locations using that Redis), the edge logs why (once per change) and refuses the
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
    int64_t             sent;           /* sent by us since that poll */
    int64_t             sent_at_ask;    /* sent when the poll was asked */
} ngx_chat_lane_state_t;

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
    unsigned                asking:1;
};


/* KEYS: every lane's streams, lane by lane, then CHAT_LANES_KEY.
 * ARGV: the group, the shards per lane.  Returns each lane's depth, then
 * the published limits (HGETALL).  A stream or group that does not exist
 * yet counts 0; a lag Redis cannot tell (entries trimmed before they were
 * read) counts 0, leaving only the pending ones.  A lag is never taken
 * above the stream's length: after an XDEL of unread entries (an operator
 * removing a poison command by hand) Redis keeps counting them as lag,
 * and the length is an upper bound that workers' trimming keeps honest
 * (they never trim an unread entry). */
static chat_script_t  ngx_chat_lanes_script = {
    "lane depths",
    "local shards = tonumber(ARGV[2]) "
    "local out = {} "
    "local k = 1 "
    "for lane = 1, (#KEYS - 1) / shards do "
    "  local depth = 0 "
    "  for s = 1, shards do "
    "    local groups = redis.pcall('XINFO', 'GROUPS', KEYS[k]) "
    "    if type(groups) == 'table' and groups.err == nil then "
    "      for _, g in ipairs(groups) do "
    "        local f = {} "
    "        for i = 1, #g, 2 do f[g[i]] = g[i + 1] end "
    "        if f['name'] == ARGV[1] then "
    "          local lag = tonumber(f['lag']) or 0 "
    "          local len = redis.call('XLEN', KEYS[k]) "
    "          if lag > len then lag = len end "
    "          depth = depth + (tonumber(f['pending']) or 0) + lag "
    "        end "
    "      end "
    "    end "
    "    k = k + 1 "
    "  end "
    "  out[lane] = depth "
    "end "
    "out[#out + 1] = redis.call('HGETALL', KEYS[#KEYS]) "
    "return out",
    ""
};


static void ngx_chat_lanes_ask(ngx_event_t *ev);
static void ngx_chat_lanes_told(redisAsyncContext *ac, void *reply,
    void *privdata);


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

    if (s->known && s->limits.queue > 0
        && s->depth + s->sent >= s->limits.queue)
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
    int64_t *queue)
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

    return NGX_OK;
}


static void
ngx_chat_lanes_ask(ngx_event_t *ev)
{
    size_t             *argvlen;
    ngx_uint_t          i, n, argc, lane;
    const char        **argv;
    ngx_chat_lanes_t   *l = ev->data;
    ngx_chat_redis_t   *rc;
    static char         shards[NGX_INT_T_LEN + 1];
    static char         nkeys[NGX_INT_T_LEN + 1];

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(&l->poll, NGX_CHAT_LANES_POLL_MS);

    rc = ngx_chat_bus_redis(l->gw);

    if (l->asking || rc == NULL || !rc->connected) {
        return;
    }

    n = CHAT_LANE_COUNT * l->shards;
    argc = 3 + n + 1 + 2;

    argv = ngx_alloc(argc * sizeof(char *), ev->log);
    argvlen = ngx_alloc(argc * sizeof(size_t), ev->log);
    if (argv == NULL || argvlen == NULL) {
        ngx_free(argv);
        ngx_free(argvlen);
        return;
    }

    *ngx_sprintf((u_char *) nkeys, "%ui", n + 1) = '\0';
    *ngx_sprintf((u_char *) shards, "%ui", l->shards) = '\0';

    /* argv[0..1]: EVALSHA <sha>, the runner's */
    argv[0] = NULL;
    argv[1] = NULL;
    argv[2] = nkeys;
    for (i = 0; i < n; i++) {
        argv[3 + i] = l->streams[i];
    }
    argv[3 + n] = CHAT_LANES_KEY;
    argv[4 + n] = CHAT_CMD_GROUP;
    argv[5 + n] = shards;

    for (i = 2; i < argc; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        l->lanes[lane].sent_at_ask = l->lanes[lane].sent;
    }

    /* the runner copies the arguments */
    if (ngx_chat_redis_script(rc, &ngx_chat_lanes_script, ngx_chat_lanes_told,
                              l, (int) argc - 2, argv + 2, argvlen + 2)
        == NGX_OK)
    {
        l->asking = 1;
    }

    ngx_free(argv);
    ngx_free(argvlen);
}


static void
ngx_chat_lanes_told(redisAsyncContext *ac, void *reply, void *privdata)
{
    int                     agree, ttl_agree;
    char                    why[256], ttl_why[256];
    size_t                  i;
    ngx_int_t               lane;
    redisReply             *rr = reply, *e, *h;
    chat_lane_limits_t      limits;
    ngx_chat_lanes_t       *l = privdata;
    ngx_chat_lane_state_t  *s;

    /* l lives in the cycle's pool: valid even for the NULL replies of
     * the connection's end at exit */
    l->asking = 0;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY
        || rr->elements != CHAT_LANE_COUNT + 1)
    {
        if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_WARN, l->poll.log, 0,
                          "chat lanes: redis %V: %s", &l->gw->endpoint->name,
                          rr->str);
        }
        return;
    }

    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        e = rr->element[lane];
        s = &l->lanes[lane];

        if (e->type == REDIS_REPLY_INTEGER) {
            s->depth = e->integer;
            /* what we sent after asking was not counted yet */
            s->sent -= s->sent_at_ask;
            s->sent_at_ask = 0;
        }
    }

    h = rr->element[CHAT_LANE_COUNT];
    if (h->type != REDIS_REPLY_ARRAY) {
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
