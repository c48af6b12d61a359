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
 * slot, when that worker's follower last heard from Redis (0: it is not
 * following): the table is current while any worker of the edge follows
 * the stream, since they all feed the same table.
 */
typedef struct {
    ngx_rbtree_t            rbtree;
    ngx_rbtree_node_t       sentinel;
    ngx_uint_t              count;
    ngx_uint_t              overflow;   /* one did not fit: fail closed */
    int64_t                 following[NGX_MAX_PROCESSES];
} ngx_chat_revoked_sh_t;


typedef struct {
    ngx_str_node_t          sn;         /* key: crc32 of the sid */
    int64_t                 until;      /* ms since 1970: the session's end */
    u_char                  sid[CHAT_TOKEN_SID_MAX];
} ngx_chat_revoked_t;


/* per worker */
typedef struct {
    ngx_chat_redis_t        feed;
    ngx_chat_main_conf_t   *cmcf;
    ngx_slab_pool_t        *shpool;
    ngx_chat_revoked_sh_t  *sh;
    char                    last_id[NGX_CHAT_REVOKED_ID_LEN];
    ngx_event_t             sweep;
    ngx_event_t             reread;
    unsigned                current:1;  /* loaded and followed */
    unsigned                reloading:1;
} ngx_chat_revocations_t;



static ngx_int_t ngx_chat_revoked_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_chat_revoked_sweep_locked(int64_t now);
static void ngx_chat_revoked_sweep(ngx_event_t *ev);
static int64_t ngx_chat_revoked_now(void);

static void ngx_chat_revoked_connected(ngx_chat_redis_t *rc);
static void ngx_chat_revoked_disconnected(ngx_chat_redis_t *rc);
static ngx_int_t ngx_chat_revoked_load(ngx_chat_redis_t *rc,
    redisCallbackFn *fn);
static ngx_int_t ngx_chat_revoked_load_reply(redisReply *rr, ngx_log_t *log,
    ngx_uint_t end_local);
static void ngx_chat_revoked_loaded(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_revoked_reloaded(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_revoked_follow(ngx_chat_redis_t *rc);
static void ngx_chat_revoked_followed(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_revoked_reread(ngx_event_t *ev);
static void ngx_chat_revoked_revocation(redisReply *fields, void *data);
static void ngx_chat_revoked_end_local(int64_t uid, u_char *sid, size_t len);



static ngx_chat_revocations_t  *ngx_chat_revocations;

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


/* Notes for every worker of the edge whether this one follows (on). */
static void
ngx_chat_revoked_following(ngx_uint_t on)
{
    if (ngx_chat_revocations && ngx_process_slot >= 0
        && ngx_process_slot < NGX_MAX_PROCESSES)
    {
        ngx_chat_revocations->sh->following[ngx_process_slot] =
            on ? ngx_chat_revoked_now() : 0;
    }
}


/*
 * Whether the table is current: this worker follows the stream, or
 * another worker of the edge does (a worker that has just started, after
 * a reload say, need not refuse anyone while it loads).
 */
static ngx_uint_t
ngx_chat_revoked_current(void)
{
    int64_t                  now;
    ngx_uint_t               i;
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;

    if (ses->current) {
        return 1;
    }

    now = ngx_chat_revoked_now();

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        if (ses->sh->following[i] != 0
            && now - ses->sh->following[i] < NGX_CHAT_REVOKED_FRESH)
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
ngx_chat_revoked_check(u_char *sid, size_t len)
{
    uint32_t                 hash;
    ngx_int_t                rc;
    ngx_str_t                key;
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;
    ngx_chat_revoked_t      *node;

    if (ses == NULL || ses->sh->overflow || !ngx_chat_revoked_current()) {
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
    int64_t                  now;
    uint32_t                 hash;
    ngx_str_t                key;
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;
    ngx_chat_revoked_t      *node;

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
    ngx_chat_revoked_t      *r, *gone[NGX_CHAT_REVOKED_SWEEP_BATCH];
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;

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
 * overflow, reload the whole list from Redis and stop failing closed
 * once it fits.
 */
static void
ngx_chat_revoked_sweep(ngx_event_t *ev)
{
    ngx_uint_t               n;
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;

    ngx_shmtx_lock(&ses->shpool->mutex);

    do {
        n = ngx_chat_revoked_sweep_locked(ngx_chat_revoked_now());
    } while (n == NGX_CHAT_REVOKED_SWEEP_BATCH);

    ngx_shmtx_unlock(&ses->shpool->mutex);

    if (ses->sh->overflow && !ses->reloading
        && ngx_chat_revoked_load(ngx_chat_bus_redis(),
                                 ngx_chat_revoked_reloaded)
           == NGX_OK)
    {
        ses->reloading = 1;
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
    ngx_chat_revocations_t  *ses;

    ses = ngx_pcalloc(cycle->pool, sizeof(ngx_chat_revocations_t));
    if (ses == NULL) {
        return NGX_ERROR;
    }

    ses->cmcf = cmcf;
    ses->shpool = (ngx_slab_pool_t *) cmcf->revocation_zone->shm.addr;
    ses->sh = cmcf->revocation_zone->data;

    ses->sweep.handler = ngx_chat_revoked_sweep;
    ses->sweep.log = cycle->log;
    ses->sweep.cancelable = 1;

    ses->reread.handler = ngx_chat_revoked_reread;
    ses->reread.log = cycle->log;
    ses->reread.cancelable = 1;

    ngx_chat_redis_use_conf(&ses->feed, "sessions", cmcf, cycle->log);
    ses->feed.stall_timeout = NGX_CHAT_REVOKED_BLOCK + cmcf->redis_timeout;
    ses->feed.on_connect = ngx_chat_revoked_connected;
    ses->feed.on_disconnect = ngx_chat_revoked_disconnected;

    ngx_chat_revocations = ses;

    /* a predecessor in this slot (killed, say) follows no more */
    ngx_chat_revoked_following(0);

    ngx_add_timer(&ses->sweep, NGX_CHAT_REVOKED_SWEEP);
    ngx_chat_redis_start(&ses->feed);

    return NGX_OK;
}


void
ngx_chat_revoked_exit_process(void)
{
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;

    if (ses == NULL) {
        return;
    }

    if (ses->sweep.timer_set) {
        ngx_del_timer(&ses->sweep);
    }

    if (ses->reread.timer_set) {
        ngx_del_timer(&ses->reread);
    }

    ngx_chat_revoked_following(0);
    ngx_chat_redis_stop(&ses->feed);
    ngx_chat_revocations = NULL;
}


/* A (re)connected follower first loads everything revoked so far. */
static void
ngx_chat_revoked_connected(ngx_chat_redis_t *rc)
{
    ngx_chat_revocations->current = 0;
    ngx_chat_revoked_following(0);

    if (ngx_chat_revoked_load(rc, ngx_chat_revoked_loaded) != NGX_OK) {
        ngx_add_timer(&ngx_chat_revocations->reread, 1000);
    }
}


static void
ngx_chat_revoked_disconnected(ngx_chat_redis_t *rc)
{
    if (ngx_chat_revocations->current) {
        ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                      "chat: not following revoked sessions (redis "
                      "connection lost): authenticated requests get 503 "
                      "unless another worker of this edge follows them");
    }

    ngx_chat_revocations->current = 0;
    ngx_chat_revoked_following(0);
}


static ngx_int_t
ngx_chat_revoked_load(ngx_chat_redis_t *rc, redisCallbackFn *fn)
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

    return ngx_chat_redis_script(rc, &chat_script_revocations_load, fn, NULL,
                                 4, argv, argvlen);
}


/*
 * Takes the load script's answer into the table (and, with end_local,
 * ends this worker's clients of those sessions).  Returns NGX_OK when
 * everything fit, NGX_ABORT for an answer it cannot read.
 */
static ngx_int_t
ngx_chat_revoked_load_reply(redisReply *rr, ngx_log_t *log,
    ngx_uint_t end_local)
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
            ngx_chat_revoked_end_local(uid, (u_char *) member->str,
                                       colon - (u_char *) member->str);
        }
    }

    return rc;
}


static void
ngx_chat_revoked_loaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply              *rr = reply;
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;

    if (ses == NULL || rr == NULL) {
        return;                 /* the connection dropped: it loads again */
    }

    if (ngx_chat_revoked_load_reply(rr, ses->feed.log, 1) == NGX_ABORT) {
        ngx_add_timer(&ses->reread, 1000);
        return;
    }

    ngx_memcpy(ses->last_id, rr->element[0]->str, rr->element[0]->len);
    ses->last_id[rr->element[0]->len] = '\0';
    ses->current = 1;
    ngx_chat_revoked_following(1);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ses->feed.log, 0,
                   "chat: revoked sessions loaded, following from %s",
                   ses->last_id);

    ngx_chat_revoked_follow(&ses->feed);
}


/* After an overflow: the whole list again, through the command connection. */
static void
ngx_chat_revoked_reloaded(redisAsyncContext *ac, void *reply, void *privdata)
{
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;

    if (ses == NULL) {
        return;
    }

    ses->reloading = 0;

    if (reply != NULL
        && ngx_chat_revoked_load_reply(reply, ses->feed.log, 0) == NGX_OK)
    {
        /* whatever was refused while full is in the table now */
        ses->sh->overflow = 0;

        ngx_log_error(NGX_LOG_NOTICE, ses->feed.log, 0,
                      "chat: revoked sessions fit again (%ui)",
                      ses->sh->count);
    }
}


static void
ngx_chat_revoked_follow(ngx_chat_redis_t *rc)
{
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;

    if (ses == NULL || ses->reread.timer_set) {
        return;
    }

    (void) ngx_chat_redis_xread(rc, ngx_chat_revoked_followed,
                                NGX_CHAT_REVOKED_COUNT,
                                NGX_CHAT_REVOKED_BLOCK_MS,
                                CHAT_REVOCATIONS_KEY, ses->last_id);
}


static void
ngx_chat_revoked_followed(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply              *rr = reply;
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;

    if (rr == NULL || ses == NULL) {
        return;                 /* connection gone: on_connect reloads */
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ses->feed.log, 0,
                      "chat: XREAD of revoked sessions failed: %*s",
                      (size_t) rr->len, rr->str);
        ngx_add_timer(&ses->reread, 1000);
        return;
    }

    /* heard from Redis: still following */
    ngx_chat_revoked_following(1);

    ngx_chat_redis_xread_entries(rr, ses->last_id, sizeof(ses->last_id),
                                 ngx_chat_revoked_revocation, ses->feed.log);

    ngx_chat_revoked_follow(&ses->feed);
}


static void
ngx_chat_revoked_reread(ngx_event_t *ev)
{
    ngx_chat_revocations_t  *ses = ngx_chat_revocations;

    if (ses == NULL || !ses->feed.connected) {
        return;
    }

    if (!ses->current) {
        ngx_chat_revoked_connected(&ses->feed);
        return;
    }

    ngx_chat_revoked_follow(&ses->feed);
}


/* One stream entry {sid, uid, until}; data is the log. */
static void
ngx_chat_revoked_revocation(redisReply *fields, void *data)
{
    size_t       i;
    int64_t      until;
    ngx_int_t    uid;
    ngx_log_t   *log = data;
    redisReply  *name, *value, *sid;

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

    ngx_chat_revoked_end_local(uid, (u_char *) sid->str, sid->len);
}


/* This worker's WebSockets and held polls of a revoked session end. */
static void
ngx_chat_revoked_end_local(int64_t uid, u_char *sid, size_t len)
{
    ngx_chat_registry_revoke(uid, sid, len);
    ngx_chat_poll_revoke(uid, sid, len);
}
