/*
 * ngx_chat_revoked.c: the sign-in sessions that were signed out, as every
 * worker of an edge sees them.
 *
 * A logout (ngx_chat_revocations.c) records its session in Redis: a sorted
 * set (member "<sid>:<uid>", score the session's end in ms, so it trims
 * itself by score) and a stream every nginx worker of every edge follows
 * with a blocking XREAD on a connection of its own ("sessions").  On each
 * (re)connect the worker loads the whole set and the stream's last id in
 * one script (a consistent snapshot), then follows the stream from that
 * id: nothing revoked meanwhile is missed.  What it learns goes into a
 * shared-memory table (chat_revocation_zone), so the check on each request
 * is a local lookup, and a logout answered by one worker is seen by every
 * worker of that edge before its 204 leaves; other edges learn it from
 * the stream within a Redis round trip.  A WebSocket or held long poll of
 * the session is closed (1008 "signed out") or answered (401) when the
 * stream brings its revocation.
 *
 * Each Redis endpoint (ngx_chat_module.h) has its own sorted set and
 * stream, written by its own backend, and each worker's gateway on it a
 * follower of its own ("sessions" connection); they all feed the one
 * table (session ids are random, so applications cannot collide in it),
 * and a request's token is only honoured while its own Redis's
 * revocations are followed.
 *
 * Failing closed: while no worker of the edge follows the stream (their
 * Redis connections are down, or none has loaded the set since it
 * connected; each notes in the table when it last heard from Redis), or
 * after the table ran out of room, the edge cannot tell a revoked token
 * from a good one, and answers authenticated requests 503 "unavailable"
 * rather than honour one that may have been signed out.  Everything those
 * requests would do needs Redis anyway.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_protocol.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"
#include "ngx_chat_registry.h"


#define NGX_CHAT_REVOKED_BLOCK_MS    "5000"
#define NGX_CHAT_REVOKED_BLOCK       5000
#define NGX_CHAT_REVOKED_COUNT       "256"
#define NGX_CHAT_REVOKED_SWEEP       30000
#define NGX_CHAT_REVOKED_ID_LEN      48


/* entries removed per pass of a sweep */
#define NGX_CHAT_REVOKED_SWEEP_BATCH 1024


/* a follower heard from Redis this recently (ms): it is following */
#define NGX_CHAT_REVOKED_FRESH       (2 * NGX_CHAT_REVOKED_BLOCK + 1000)


/*
 * The shared table of revoked sessions.  following[] says, per process
 * slot, when that worker's followers last heard from Redis (0: none is
 * following), and followed[] which endpoints' streams (bit = endpoint
 * index) it follows: the table is current for an endpoint while any
 * worker of the edge follows that endpoint's stream, since they all feed
 * the same table.  (A follower whose connection hangs is dropped by its
 * watchdog, which clears its bit.)
 */
typedef struct {
    ngx_rbtree_t            rbtree;
    ngx_rbtree_node_t       sentinel;
    ngx_uint_t              count;
    ngx_uint_t              overflow;   /* one did not fit: fail closed */
    int64_t                 following[NGX_MAX_PROCESSES];
    uint64_t                followed[NGX_MAX_PROCESSES];
} ngx_chat_revoked_sh_t;


typedef struct {
    ngx_str_node_t          sn;         /* key: crc32 of the sid */
    int64_t                 until;      /* ms since 1970: the session's end */
    u_char                  sid[CHAT_TOKEN_SID_MAX];
} ngx_chat_revoked_t;


/* per worker: its view of the table */
typedef struct {
    ngx_chat_main_conf_t   *cmcf;
    ngx_slab_pool_t        *shpool;
    ngx_chat_revoked_sh_t  *sh;
    ngx_event_t             sweep;
    ngx_uint_t              reloading;  /* endpoints' reloads in flight */
    ngx_uint_t              reload_failed;
} ngx_chat_revoked_table_t;


/* per worker and gateway: the follower of one Redis's revocations */
struct ngx_chat_revocations_s {
    ngx_chat_redis_t        feed;
    ngx_chat_gateway_t     *gw;
    char                    last_id[NGX_CHAT_REVOKED_ID_LEN];
    ngx_event_t             reread;
    unsigned                current:1;  /* loaded and followed */
};



static ngx_int_t ngx_chat_revoked_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_chat_revoked_sweep_locked(int64_t now);
static void ngx_chat_revoked_sweep(ngx_event_t *ev);
static int64_t ngx_chat_revoked_now(void);

static void ngx_chat_revoked_connected(ngx_chat_redis_t *rc);
static void ngx_chat_revoked_disconnected(ngx_chat_redis_t *rc);
static ngx_int_t ngx_chat_revoked_load(ngx_chat_redis_t *rc,
    redisCallbackFn *fn, void *data);
static ngx_int_t ngx_chat_revoked_load_reply(redisReply *rr, ngx_log_t *log,
    ngx_chat_revocations_t *end_local);
static void ngx_chat_revoked_loaded(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_revoked_reloaded(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_revoked_follow_stream(ngx_chat_revocations_t *f);
static void ngx_chat_revoked_followed(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_revoked_reread(ngx_event_t *ev);
static void ngx_chat_revoked_revocation(redisReply *fields, void *data);
static void ngx_chat_revoked_end_local(ngx_chat_revocations_t *f,
    int64_t uid, u_char *sid, size_t len);
static void ngx_chat_revoked_following(ngx_chat_revocations_t *f,
    ngx_uint_t on);
static void ngx_chat_revoked_slot_follows_none(void);



static ngx_chat_revoked_table_t  *ngx_chat_revoked_table;

static ngx_str_t  ngx_chat_revoked_zone_name = ngx_string("chat_revocations");




/* ------------------------------------------------------------------------
 * The shared table
 * --------------------------------------------------------------------- */

/* From init_main_conf: the zone of revoked sessions. */
ngx_int_t
ngx_chat_revoked_zone(ngx_conf_t *cf, ngx_chat_main_conf_t *cmcf)
{
    cmcf->revocation_zone = ngx_shared_memory_add(cf,
                                                  &ngx_chat_revoked_zone_name,
                                                  cmcf->revocation_zone_size,
                                                  &ngx_chat_module);
    if (cmcf->revocation_zone == NULL) {
        return NGX_ERROR;
    }

    cmcf->revocation_zone->init = ngx_chat_revoked_init_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_revoked_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t        *shpool;
    ngx_chat_revoked_sh_t  *sh;

    if (data) {
        /* a reload with the same size: the revocations stay */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_chat_revoked_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, ngx_str_rbtree_insert_value);

    shpool->data = sh;
    shm_zone->data = sh;

    /* a full zone is reported once, by us, with what to do about it */
    shpool->log_nomem = 0;

    return NGX_OK;
}


static int64_t
ngx_chat_revoked_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


/* Notes for every worker of the edge whether this one follows (on) the
 * revocations of f's endpoint. */
static void
ngx_chat_revoked_following(ngx_chat_revocations_t *f, ngx_uint_t on)
{
    uint64_t                bit;
    ngx_chat_revoked_sh_t  *sh;

    if (ngx_chat_revoked_table == NULL || ngx_process_slot < 0
        || ngx_process_slot >= NGX_MAX_PROCESSES)
    {
        return;
    }

    sh = ngx_chat_revoked_table->sh;
    bit = (uint64_t) 1 << f->gw->endpoint->index;

    if (on) {
        sh->followed[ngx_process_slot] |= bit;
        sh->following[ngx_process_slot] = ngx_chat_revoked_now();
        return;
    }

    sh->followed[ngx_process_slot] &= ~bit;

    if (sh->followed[ngx_process_slot] == 0) {
        sh->following[ngx_process_slot] = 0;
    }
}


/* This worker's slot follows no endpoint (at start: a killed predecessor
 * in it follows no more; at exit). */
static void
ngx_chat_revoked_slot_follows_none(void)
{
    ngx_chat_revoked_sh_t  *sh = ngx_chat_revoked_table->sh;

    if (ngx_process_slot >= 0 && ngx_process_slot < NGX_MAX_PROCESSES) {
        sh->following[ngx_process_slot] = 0;
        sh->followed[ngx_process_slot] = 0;
    }
}


/*
 * Whether the table is current for f's endpoint: this worker follows its
 * stream, or another worker of the edge does (a worker that has just
 * started, after a reload say, need not refuse anyone while it loads).
 */
static ngx_uint_t
ngx_chat_revoked_current(ngx_chat_revocations_t *f)
{
    int64_t                 now;
    uint64_t                bit;
    ngx_uint_t              i;
    ngx_chat_revoked_sh_t  *sh = ngx_chat_revoked_table->sh;

    if (f->current) {
        return 1;
    }

    now = ngx_chat_revoked_now();
    bit = (uint64_t) 1 << f->gw->endpoint->index;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        if (sh->following[i] != 0 && (sh->followed[i] & bit)
            && now - sh->following[i] < NGX_CHAT_REVOKED_FRESH)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Whether the session sid (len bytes) may be used: NGX_OK; NGX_DECLINED
 * when it was signed out; NGX_BUSY when the edge cannot tell (none of its
 * workers follows the revocations, or the table overflowed).
 */
ngx_int_t
ngx_chat_revoked_check(ngx_chat_gateway_t *gw, u_char *sid, size_t len)
{
    uint32_t                   hash;
    ngx_int_t                  rc;
    ngx_str_t                  key;
    ngx_chat_revoked_t        *node;
    ngx_chat_revoked_table_t  *ses = ngx_chat_revoked_table;

    if (ses == NULL || gw == NULL || gw->revocations == NULL
        || ses->sh->overflow || !ngx_chat_revoked_current(gw->revocations))
    {
        return NGX_BUSY;
    }

    key.data = sid;
    key.len = len;
    hash = ngx_crc32_short(sid, len);

    ngx_shmtx_lock(&ses->shpool->mutex);

    node = (ngx_chat_revoked_t *) ngx_str_rbtree_lookup(&ses->sh->rbtree,
                                                        &key, hash);
    rc = (node != NULL && node->until > ngx_chat_revoked_now())
         ? NGX_DECLINED : NGX_OK;

    ngx_shmtx_unlock(&ses->shpool->mutex);

    return rc;
}


/*
 * Records sid as revoked until `until` (ms).  NGX_OK; NGX_DECLINED for a
 * sid no token could carry; NGX_ERROR when the zone is full even after
 * a sweep: then the edge fails closed until a reload of the whole list
 * fits again (ngx_chat_revoked_sweep).
 */
ngx_int_t
ngx_chat_revoked_add(u_char *sid, size_t len, int64_t until, ngx_log_t *log)
{
    int64_t                    now;
    uint32_t                   hash;
    ngx_str_t                  key;
    ngx_chat_revoked_t        *node;
    ngx_chat_revoked_table_t  *ses = ngx_chat_revoked_table;

    if (ses == NULL) {
        return NGX_ERROR;
    }

    if (!chat_token_sid_valid((const char *) sid, len)) {
        return NGX_DECLINED;
    }

    now = ngx_chat_revoked_now();
    if (until <= now) {
        return NGX_OK;          /* every token of it has expired anyway */
    }

    key.data = sid;
    key.len = len;
    hash = ngx_crc32_short(sid, len);

    ngx_shmtx_lock(&ses->shpool->mutex);

    node = (ngx_chat_revoked_t *) ngx_str_rbtree_lookup(&ses->sh->rbtree,
                                                        &key, hash);
    if (node != NULL) {
        node->until = ngx_max(node->until, until);
        ngx_shmtx_unlock(&ses->shpool->mutex);
        return NGX_OK;
    }

    node = ngx_slab_alloc_locked(ses->shpool, sizeof(ngx_chat_revoked_t));

    if (node == NULL && ngx_chat_revoked_sweep_locked(now) > 0) {
        node = ngx_slab_alloc_locked(ses->shpool, sizeof(ngx_chat_revoked_t));
    }

    if (node == NULL) {
        ses->sh->overflow = 1;
        ngx_shmtx_unlock(&ses->shpool->mutex);

        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "chat: chat_revocation_zone is full (%ui revoked "
                      "sessions): authenticated requests are refused "
                      "until it has room; make it larger",
                      ses->sh->count);
        return NGX_ERROR;
    }

    ngx_memcpy(node->sid, sid, len);
    node->sn.str.data = node->sid;
    node->sn.str.len = len;
    node->sn.node.key = hash;
    node->until = until;

    ngx_rbtree_insert(&ses->sh->rbtree, &node->sn.node);
    ses->sh->count++;

    ngx_shmtx_unlock(&ses->shpool->mutex);

    return NGX_OK;
}


/*
 * Drops up to NGX_CHAT_REVOKED_SWEEP_BATCH sessions that ended; returns
 * how many (the batch size: call again).
 */
static ngx_uint_t
ngx_chat_revoked_sweep_locked(int64_t now)
{
    ngx_uint_t               n, i;
    ngx_rbtree_t            *tree;
    ngx_rbtree_node_t       *node;
    ngx_chat_revoked_t        *r, *gone[NGX_CHAT_REVOKED_SWEEP_BATCH];
    ngx_chat_revoked_table_t  *ses = ngx_chat_revoked_table;

    tree = &ses->sh->rbtree;
    n = 0;

    if (tree->root == tree->sentinel) {
        return 0;
    }

    /* collected first, then deleted: deleting rebalances the tree */
    for (node = ngx_rbtree_min(tree->root, tree->sentinel);
         node != NULL && n < NGX_CHAT_REVOKED_SWEEP_BATCH;
         node = ngx_rbtree_next(tree, node))
    {
        r = (ngx_chat_revoked_t *) node;
        if (r->until <= now) {
            gone[n++] = r;
        }
    }

    for (i = 0; i < n; i++) {
        ngx_rbtree_delete(tree, &gone[i]->sn.node);
        ngx_slab_free_locked(ses->shpool, gone[i]);
        ses->sh->count--;
    }

    return n;
}


/*
 * Every NGX_CHAT_REVOKED_SWEEP: drop the ended sessions; after an
 * overflow, reload the whole list from every gateway's Redis and stop
 * failing closed once all of it fits.
 */
static void
ngx_chat_revoked_sweep(ngx_event_t *ev)
{
    ngx_uint_t                 n, i;
    ngx_chat_gateway_t        *gws;
    ngx_chat_revoked_table_t  *ses = ngx_chat_revoked_table;

    ngx_shmtx_lock(&ses->shpool->mutex);

    do {
        n = ngx_chat_revoked_sweep_locked(ngx_chat_revoked_now());
    } while (n == NGX_CHAT_REVOKED_SWEEP_BATCH);

    ngx_shmtx_unlock(&ses->shpool->mutex);

    if (ses->sh->overflow && ses->reloading == 0) {
        ses->reload_failed = 0;
        gws = ngx_chat_bus_gateways(&n);

        for (i = 0; i < n; i++) {
            if (ngx_chat_revoked_load(ngx_chat_bus_redis(&gws[i]),
                                      ngx_chat_revoked_reloaded, NULL)
                == NGX_OK)
            {
                ses->reloading++;

            } else {
                ses->reload_failed = 1;
            }
        }
    }

    if (!ngx_exiting) {
        ngx_add_timer(&ses->sweep, NGX_CHAT_REVOKED_SWEEP);
    }
}


/* ------------------------------------------------------------------------
 * Following the revocations
 * --------------------------------------------------------------------- */

ngx_int_t
ngx_chat_revoked_init_process(ngx_cycle_t *cycle, ngx_chat_main_conf_t *cmcf)
{
    ngx_chat_revoked_table_t  *ses;

    ses = ngx_pcalloc(cycle->pool, sizeof(ngx_chat_revoked_table_t));
    if (ses == NULL) {
        return NGX_ERROR;
    }

    ses->cmcf = cmcf;
    ses->shpool = (ngx_slab_pool_t *) cmcf->revocation_zone->shm.addr;
    ses->sh = cmcf->revocation_zone->data;

    ses->sweep.handler = ngx_chat_revoked_sweep;
    ses->sweep.log = cycle->log;
    ses->sweep.cancelable = 1;

    ngx_chat_revoked_table = ses;

    /* a predecessor in this slot (killed, say) follows no more */
    ngx_chat_revoked_slot_follows_none();

    ngx_add_timer(&ses->sweep, NGX_CHAT_REVOKED_SWEEP);

    return NGX_OK;
}


void
ngx_chat_revoked_exit_process(void)
{
    ngx_chat_revoked_table_t  *ses = ngx_chat_revoked_table;

    if (ses == NULL) {
        return;
    }

    if (ses->sweep.timer_set) {
        ngx_del_timer(&ses->sweep);
    }

    ngx_chat_revoked_slot_follows_none();

    ngx_chat_revoked_table = NULL;
}


/* A gateway's follower of its Redis's revocations; NULL when out of
 * memory. */
ngx_chat_revocations_t *
ngx_chat_revoked_follow(ngx_cycle_t *cycle, ngx_chat_gateway_t *gw)
{
    ngx_chat_revocations_t  *f;

    f = ngx_pcalloc(cycle->pool, sizeof(ngx_chat_revocations_t));
    if (f == NULL) {
        return NULL;
    }

    f->gw = gw;

    f->reread.handler = ngx_chat_revoked_reread;
    f->reread.data = f;
    f->reread.log = cycle->log;
    f->reread.cancelable = 1;

    ngx_chat_redis_use_endpoint(&f->feed, "sessions", gw->endpoint,
                                cycle->log);
    f->feed.stall_timeout = NGX_CHAT_REVOKED_BLOCK + gw->endpoint->timeout;
    f->feed.on_connect = ngx_chat_revoked_connected;
    f->feed.on_disconnect = ngx_chat_revoked_disconnected;
    f->feed.data = f;

    ngx_chat_redis_start(&f->feed);

    return f;
}


void
ngx_chat_revoked_unfollow(ngx_chat_revocations_t *f)
{
    if (f == NULL) {
        return;
    }

    if (f->reread.timer_set) {
        ngx_del_timer(&f->reread);
    }

    ngx_chat_revoked_following(f, 0);
    f->current = 0;
    ngx_chat_redis_stop(&f->feed);
}


/* A (re)connected follower first loads everything revoked so far. */
static void
ngx_chat_revoked_connected(ngx_chat_redis_t *rc)
{
    ngx_chat_revocations_t  *f = rc->data;

    f->current = 0;
    ngx_chat_revoked_following(f, 0);

    if (ngx_chat_revoked_load(rc, ngx_chat_revoked_loaded, f) != NGX_OK) {
        ngx_add_timer(&f->reread, 1000);
    }
}


static void
ngx_chat_revoked_disconnected(ngx_chat_redis_t *rc)
{
    ngx_chat_revocations_t  *f = rc->data;

    if (f->current) {
        ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                      "chat: not following revoked sessions of redis %V "
                      "(connection lost): authenticated requests of its "
                      "locations get 503 unless another worker of this "
                      "edge follows them", &f->gw->endpoint->name);
    }

    f->current = 0;
    ngx_chat_revoked_following(f, 0);
}


static ngx_int_t
ngx_chat_revoked_load(ngx_chat_redis_t *rc, redisCallbackFn *fn, void *data)
{
    u_char       now[NGX_INT64_LEN];
    size_t       argvlen[4];
    const char  *argv[4];

    if (rc == NULL || !ngx_chat_redis_usable(rc)) {
        return NGX_ERROR;
    }

    argv[0] = "2";
    argv[1] = CHAT_REVOKED_KEY;
    argv[2] = CHAT_REVOCATIONS_KEY;
    argv[3] = (const char *) now;

    argvlen[0] = 1;
    argvlen[1] = sizeof(CHAT_REVOKED_KEY) - 1;
    argvlen[2] = sizeof(CHAT_REVOCATIONS_KEY) - 1;
    argvlen[3] = ngx_sprintf(now, "%L", ngx_chat_revoked_now()) - now;

    return ngx_chat_redis_script(rc, &chat_script_revocations_load, fn, data,
                                 4, argv, argvlen);
}


/*
 * Takes the load script's answer into the table (and, with a follower in
 * end_local, ends this worker's clients of those sessions on its
 * gateway).  Returns NGX_OK when everything fit, NGX_ABORT for an answer
 * it cannot read.
 */
static ngx_int_t
ngx_chat_revoked_load_reply(redisReply *rr, ngx_log_t *log,
    ngx_chat_revocations_t *end_local)
{
    u_char      *colon;
    size_t       i;
    int64_t      until;
    ngx_int_t    uid, rc;
    redisReply  *all, *member, *score;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements != 2
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[0]->len >= NGX_CHAT_REVOKED_ID_LEN
        || rr->element[1]->type != REDIS_REPLY_ARRAY)
    {
        if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "chat: loading revoked sessions failed: %*s",
                          (size_t) rr->len, rr->str);
        }
        return NGX_ABORT;
    }

    rc = NGX_OK;
    all = rr->element[1];

    for (i = 0; i + 1 < all->elements; i += 2) {
        member = all->element[i];
        score = all->element[i + 1];

        if (member->type != REDIS_REPLY_STRING
            || score->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        colon = ngx_strlchr((u_char *) member->str,
                            (u_char *) member->str + member->len, ':');
        until = ngx_atoi((u_char *) score->str, score->len);

        if (colon == NULL || until == NGX_ERROR) {
            continue;
        }

        if (ngx_chat_revoked_add((u_char *) member->str,
                                 colon - (u_char *) member->str, until, log)
            == NGX_ERROR)
        {
            rc = NGX_ERROR;
            continue;
        }

        uid = ngx_atoi(colon + 1,
                       (u_char *) member->str + member->len - colon - 1);

        if (end_local && uid > 0) {
            ngx_chat_revoked_end_local(end_local, uid, (u_char *) member->str,
                                       colon - (u_char *) member->str);
        }
    }

    return rc;
}


static void
ngx_chat_revoked_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply              *rr = reply;
    ngx_chat_revocations_t  *f = privdata;

    if (ngx_chat_revoked_table == NULL || rr == NULL) {
        return;                 /* the connection dropped: it loads again */
    }

    if (ngx_chat_revoked_load_reply(rr, f->feed.log, f) == NGX_ABORT) {
        ngx_add_timer(&f->reread, 1000);
        return;
    }

    ngx_memcpy(f->last_id, rr->element[0]->str, rr->element[0]->len);
    f->last_id[rr->element[0]->len] = '\0';
    f->current = 1;
    ngx_chat_revoked_following(f, 1);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, f->feed.log, 0,
                   "chat: revoked sessions of redis %V loaded, following "
                   "from %s", &f->gw->endpoint->name, f->last_id);

    ngx_chat_revoked_follow_stream(f);
}


/* After an overflow: the whole list again, through each gateway's command
 * connection; the table stops failing closed when all of them fit. */
static void
ngx_chat_revoked_reloaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    ngx_chat_revoked_table_t  *ses = ngx_chat_revoked_table;

    if (ses == NULL) {
        return;
    }

    if (ses->reloading) {
        ses->reloading--;
    }

    if (reply == NULL
        || ngx_chat_revoked_load_reply(reply, ngx_cycle->log, NULL) != NGX_OK)
    {
        ses->reload_failed = 1;
    }

    if (ses->reloading == 0 && !ses->reload_failed) {
        /* whatever was refused while full is in the table now */
        ses->sh->overflow = 0;

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "chat: revoked sessions fit again (%ui)",
                      ses->sh->count);
    }
}


static void
ngx_chat_revoked_follow_stream(ngx_chat_revocations_t *f)
{
    if (f->reread.timer_set) {
        return;
    }

    (void) ngx_chat_redis_xread(&f->feed, ngx_chat_revoked_followed,
                                NGX_CHAT_REVOKED_COUNT,
                                NGX_CHAT_REVOKED_BLOCK_MS,
                                CHAT_REVOCATIONS_KEY, f->last_id);
}


static void
ngx_chat_revoked_followed(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply              *rr = reply;
    ngx_chat_revocations_t  *f;

    if (rr == NULL || ngx_chat_revoked_table == NULL) {
        return;                 /* connection gone: on_connect reloads */
    }

    f = ((ngx_chat_redis_t *) ac->data)->data;

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, f->feed.log, 0,
                      "chat: XREAD of revoked sessions of redis %V "
                      "failed: %*s", &f->gw->endpoint->name,
                      (size_t) rr->len, rr->str);
        ngx_add_timer(&f->reread, 1000);
        return;
    }

    /* heard from Redis: still following */
    ngx_chat_revoked_following(f, 1);

    ngx_chat_redis_xread_entries(rr, f->last_id, sizeof(f->last_id),
                                 ngx_chat_revoked_revocation, f);

    ngx_chat_revoked_follow_stream(f);
}


static void
ngx_chat_revoked_reread(ngx_event_t *ev)
{
    ngx_chat_revocations_t  *f = ev->data;

    if (ngx_chat_revoked_table == NULL || !f->feed.connected) {
        return;
    }

    if (!f->current) {
        ngx_chat_revoked_connected(&f->feed);
        return;
    }

    ngx_chat_revoked_follow_stream(f);
}


/* One stream entry {sid, uid, until}; data is the follower. */
static void
ngx_chat_revoked_revocation(redisReply *fields, void *data)
{
    size_t                   i;
    int64_t                  until;
    ngx_int_t                uid;
    ngx_log_t               *log;
    redisReply              *name, *value, *sid;
    ngx_chat_revocations_t  *f = data;

    log = f->feed.log;

    if (fields->type != REDIS_REPLY_ARRAY) {
        return;
    }

    sid = NULL;
    uid = NGX_ERROR;
    until = NGX_ERROR;

    for (i = 0; i + 1 < fields->elements; i += 2) {
        name = fields->element[i];
        value = fields->element[i + 1];

        if (name->type != REDIS_REPLY_STRING
            || value->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        if (ngx_strcmp(name->str, CHAT_F_REVOKED_SID) == 0) {
            sid = value;

        } else if (ngx_strcmp(name->str, CHAT_F_REVOKED_UID) == 0) {
            uid = ngx_atoi((u_char *) value->str, value->len);

        } else if (ngx_strcmp(name->str, CHAT_F_REVOKED_UNTIL) == 0) {
            until = ngx_atoi((u_char *) value->str, value->len);
        }
    }

    if (sid == NULL || uid <= 0 || until == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "chat: malformed entry on \"" CHAT_REVOCATIONS_KEY "\"");
        return;
    }

    (void) ngx_chat_revoked_add((u_char *) sid->str, sid->len, until, log);

    ngx_chat_revoked_end_local(f, uid, (u_char *) sid->str, sid->len);
}


/* This worker's WebSockets and held polls of a revoked session end (those
 * of the follower's gateway: the session is its application's). */
static void
ngx_chat_revoked_end_local(ngx_chat_revocations_t *f, int64_t uid,
    u_char *sid, size_t len)
{
    ngx_chat_registry_revoke(f->gw->registry, uid, sid, len);
    ngx_chat_poll_revoke(f->gw->poll, uid, sid, len);
}
