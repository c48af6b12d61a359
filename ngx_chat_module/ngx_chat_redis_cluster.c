/*
 * ngx_chat_redis_cluster.c: the edge's Redis connections on a Redis
 * Cluster, routed by slot.
 *
 * hiredis 0.14 has no cluster support and Debian packages no cluster
 * client.  The rules (key to slot, a command's first key, the slot map
 * from CLUSTER NODES, MOVED/ASK) are protocol/chat_cluster.c's, the same
 * the backend's router follows (backend/engine/redis_route.c); this file
 * is what the edge's asynchronous client does with them.
 *
 * An owner (the gateway's commands or replies, the long-poll watcher, the
 * revocations feed) keeps one ngx_chat_redis_t, the parent.  When its
 * endpoint's first answer to CLUSTER NODES is a map, the parent keeps its
 * own connection (to chat_redis, the seed) for the map's refreshes and
 * keyless commands, and opens one link per master: an ngx_chat_redis_t
 * of its own (ngx_chat_redis.c keeps it alive the same way: connect
 * timeout, AUTH, stall watchdog) whose owner data is the parent's.
 *
 *   - A command goes to the master of its first key's slot, copied so it
 *     can go again: MOVED sends it once more to the node named and reads
 *     the map again; ASK sends ASKING and the command there, map
 *     unchanged.  A keyless command (PING) goes on the parent's own
 *     connection.  Commands to one slot go on one connection, so they
 *     stay in order (XADD then EXPIRE of one stream, SCRIPT LOAD then
 *     EVALSHA on the node that said NOSCRIPT).
 *   - The owner sees one connection: on_connect runs when every master of
 *     a map covering all 16384 slots is connected; a link lost (a master
 *     died) or stalled takes the parent and its other links down, every
 *     outstanding callback gets NULL as on a single server, and the
 *     parent's reconnect (the same back-off and logs) starts over from
 *     chat_redis or, that one dead (the master that failed over), from
 *     each master of the last map in turn, until the map is whole again
 *     (its replica promoted).  So the owners' loops (a blocking XREAD
 *     restarted from on_connect) need nothing new.
 *
 * What it does not do: split a command whose keys span slots (Redis
 * answers CROSSSLOT; the long-poll watcher reads per slot itself), read
 * from replicas, or keep a master's slots working while another master
 * is down (the whole parent waits for the failover: simpler, and a
 * client retries what failed meanwhile).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_chat_redis.h"


#define NGX_CHAT_REDIS_MAX_REDIRECTS  2


struct ngx_chat_redis_cluster_s {
    chat_cluster_map_t   *map;          /* the last map covering all slots */
    chat_cluster_map_t   *next;         /* CLUSTER NODES parses into it */
    ngx_chat_redis_t     *link[CHAT_CLUSTER_MAX_NODES];
    ngx_uint_t            nlinks;
    ngx_chat_redis_t     *owner[CHAT_CLUSTER_MAX_NODES]; /* map->node[i] */
    ngx_uint_t            seed;         /* connects since the last ready */
    unsigned              closing:1;    /* the links are being closed */
    unsigned              refreshing:1; /* CLUSTER NODES in flight */
};


/* one routed command: where to send it again after MOVED or ASK, and
 * whom to give the final answer; argv and its bytes follow it */
typedef struct {
    ngx_chat_redis_t  *rc;
    redisCallbackFn   *fn;
    void              *privdata;
    int                argc;
    const char       **argv;
    size_t            *argvlen;
    ngx_uint_t         redirects;
} ngx_chat_redis_routed_t;


static void ngx_chat_redis_cluster_nodes(redisAsyncContext *ac, void *reply,
    void *privdata);
static ngx_int_t ngx_chat_redis_cluster_start(ngx_chat_redis_t *rc);
static ngx_int_t ngx_chat_redis_cluster_links(ngx_chat_redis_t *rc);
static ngx_chat_redis_t *ngx_chat_redis_cluster_link(ngx_chat_redis_t *rc,
    const chat_cluster_addr_t *addr);
static void ngx_chat_redis_cluster_maybe_ready(ngx_chat_redis_t *rc);
static void ngx_chat_redis_cluster_refresh(ngx_chat_redis_t *rc);
static void ngx_chat_redis_routed_done(redisAsyncContext *ac, void *reply,
    void *privdata);


static const char  *ngx_chat_redis_cluster_nodes_argv[] = {
    "CLUSTER", "NODES"
};


/* ------------------------------------------------------------------------
 * Learning the map
 * --------------------------------------------------------------------- */

void
ngx_chat_redis_cluster_detect(ngx_chat_redis_t *rc)
{
    /* a refused send leaves the parent unready: the watchdog or the
     * connect timeout starts over */
    (void) ngx_chat_redis_send(rc, ngx_chat_redis_cluster_nodes, rc, 2,
                               ngx_chat_redis_cluster_nodes_argv, NULL);
}


static void
ngx_chat_redis_cluster_refresh(ngx_chat_redis_t *rc)
{
    ngx_chat_redis_cluster_t  *cl = rc->cluster;

    if (cl->refreshing || !rc->linked || rc->closing) {
        return;
    }

    if (ngx_chat_redis_send(rc, ngx_chat_redis_cluster_nodes, rc, 2,
                            ngx_chat_redis_cluster_nodes_argv, NULL)
        == NGX_OK)
    {
        cl->refreshing = 1;
    }
}


/*
 * CLUSTER NODES answered, on the parent's own connection: the first time
 * it says whether this is a cluster at all; then it is the map, on
 * connect (on_connect waits for it) or after a MOVED (the unit stays up).
 */
static void
ngx_chat_redis_cluster_nodes(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    int                        served;
    redisReply                *rr = reply;
    ngx_chat_redis_t          *rc = privdata;
    chat_cluster_map_t        *map;
    ngx_chat_redis_cluster_t  *cl;

    if (rc->cluster != NULL) {
        rc->cluster->refreshing = 0;
    }

    if (rr == NULL || rc->stopping || rc->closing) {
        return;                         /* the connection is going */
    }

    if (rc->cluster == NULL) {

        if (rr->type == REDIS_REPLY_ERROR
            && ngx_strncmp(rr->str, "NOPERM", 6) == 0)
        {
            /*
             * an ACL from before the edge asked: most likely a single
             * Redis, which works as it did; a cluster would answer every
             * other slot's command MOVED, so say how to let the edge know
             */
            ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                          "chat redis %s: %V:%d refused CLUSTER NODES (%s): "
                          "taken for a single Redis; on a Redis Cluster "
                          "allow the edge's user +cluster|nodes +asking",
                          rc->name, &rc->host, (int) rc->port, rr->str);
            rc->single = 1;
            ngx_chat_redis_ready(rc);
            return;
        }

        if (rr->type == REDIS_REPLY_ERROR
            && ngx_strstr(rr->str, "cluster support disabled") != NULL)
        {
            /* a single Redis: from now on the plain connection */
            rc->single = 1;
            ngx_chat_redis_ready(rc);
            return;
        }

        if (rr->type != REDIS_REPLY_STRING) {
            ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                          "chat redis %s: CLUSTER NODES: %s", rc->name,
                          rr->type == REDIS_REPLY_ERROR ? rr->str
                                                        : "unexpected reply");
            ngx_chat_redis_close(rc, "the endpoint's kind is unknown");
            return;
        }

        if (ngx_chat_redis_cluster_start(rc) != NGX_OK) {
            ngx_chat_redis_close(rc, "out of memory");
            return;
        }
    }

    cl = rc->cluster;

    served = -1;
    if (rr->type == REDIS_REPLY_STRING) {
        served = chat_cluster_map_parse(cl->next, rr->str, rr->len);
    }

    if (served != CHAT_CLUSTER_SLOTS) {
        ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                      "chat redis %s: the cluster serves %d of %d slots "
                      "(a master failing over?)",
                      rc->name, served, CHAT_CLUSTER_SLOTS);

        if (!rc->connected) {
            ngx_chat_redis_close(rc, "the cluster is not whole");
        }

        /* up: the last whole map stays; the next MOVED asks again */
        return;
    }

    map = cl->map;
    cl->map = cl->next;
    cl->next = map;

    if (ngx_chat_redis_cluster_links(rc) != NGX_OK) {
        return;                         /* a link failed: rc is closing */
    }

    ngx_chat_redis_cluster_maybe_ready(rc);
}


static ngx_int_t
ngx_chat_redis_cluster_start(ngx_chat_redis_t *rc)
{
    ngx_chat_redis_cluster_t  *cl;

    cl = ngx_calloc(sizeof(ngx_chat_redis_cluster_t), rc->log);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->map = ngx_calloc(sizeof(chat_cluster_map_t), rc->log);
    cl->next = ngx_calloc(sizeof(chat_cluster_map_t), rc->log);

    if (cl->map == NULL || cl->next == NULL) {
        ngx_free(cl->map);
        ngx_free(cl->next);
        ngx_free(cl);
        return NGX_ERROR;
    }

    rc->cluster = cl;

    ngx_log_error(NGX_LOG_NOTICE, rc->log, 0,
                  "chat redis %s: %V:%d is a Redis Cluster node: commands "
                  "go to their slot's master", rc->name, &rc->host,
                  (int) rc->port);

    return NGX_OK;
}


/* a link to every master of the map, connecting unless it is */
static ngx_int_t
ngx_chat_redis_cluster_links(ngx_chat_redis_t *rc)
{
    int                        i;
    ngx_chat_redis_t          *link;
    ngx_chat_redis_cluster_t  *cl = rc->cluster;

    for (i = 0; i < cl->map->nodes; i++) {
        link = ngx_chat_redis_cluster_link(rc, &cl->map->node[i]);
        if (link == NULL) {
            return NGX_ERROR;
        }

        cl->owner[i] = link;
    }

    return NGX_OK;
}


/*
 * The link to addr, made and connecting if need be; NULL when it could
 * not be (then the parent is closing).  Links live as long as the
 * worker: a master that left keeps an idle one, reused if it comes back.
 */
static ngx_chat_redis_t *
ngx_chat_redis_cluster_link(ngx_chat_redis_t *rc,
    const chat_cluster_addr_t *addr)
{
    ngx_uint_t                 i;
    ngx_chat_redis_t          *link;
    ngx_chat_redis_cluster_t  *cl = rc->cluster;

    link = NULL;

    for (i = 0; i < cl->nlinks; i++) {
        if (cl->link[i]->at.port == addr->port
            && ngx_strcmp(cl->link[i]->at.host, addr->host) == 0)
        {
            link = cl->link[i];
            break;
        }
    }

    if (link == NULL) {
        if (cl->nlinks == CHAT_CLUSTER_MAX_NODES) {
            ngx_chat_redis_close(rc, "too many cluster nodes");
            return NULL;
        }

        link = ngx_calloc(sizeof(ngx_chat_redis_t), rc->log);
        if (link == NULL) {
            ngx_chat_redis_close(rc, "out of memory");
            return NULL;
        }

        ngx_chat_redis_link_init(link, rc, addr);
        cl->link[cl->nlinks++] = link;
    }

    if (link->ac == NULL) {
        link->stopping = 0;
        ngx_chat_redis_open(link);     /* a failure closes rc */
    }

    return link->ac != NULL && !rc->closing ? link : NULL;
}


/* the owner's on_connect, once every master of a whole map is linked */
static void
ngx_chat_redis_cluster_maybe_ready(ngx_chat_redis_t *rc)
{
    int                        i;
    ngx_chat_redis_cluster_t  *cl = rc->cluster;

    if (rc->connected || !rc->linked || rc->closing || cl->map->nodes == 0)
    {
        return;
    }

    for (i = 0; i < cl->map->nodes; i++) {
        if (cl->owner[i] == NULL || !cl->owner[i]->linked) {
            return;
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, rc->log, 0,
                  "chat redis %s: routing by slot over %d masters",
                  rc->name, cl->map->nodes);

    cl->seed = 0;
    ngx_chat_redis_ready(rc);
}


void
ngx_chat_redis_cluster_link_up(ngx_chat_redis_t *link)
{
    if (link->parent->cluster != NULL) {
        ngx_chat_redis_cluster_maybe_ready(link->parent);
    }
}


/* ------------------------------------------------------------------------
 * Losing a master
 * --------------------------------------------------------------------- */

void
ngx_chat_redis_cluster_link_lost(ngx_chat_redis_t *link)
{
    ngx_chat_redis_t  *rc = link->parent;

    if (rc->stopping || rc->closing || rc->cluster->closing) {
        return;
    }

    ngx_chat_redis_close(rc, "a master's connection is down");
}


void
ngx_chat_redis_cluster_close_links(ngx_chat_redis_t *rc)
{
    ngx_uint_t                 i;
    ngx_chat_redis_cluster_t  *cl = rc->cluster;

    if (cl->closing) {
        return;
    }

    cl->closing = 1;

    for (i = 0; i < cl->nlinks; i++) {
        cl->link[i]->stopping = rc->stopping;
        ngx_chat_redis_close(cl->link[i], NULL);
    }

    cl->closing = 0;
}


/* the parent's watchdog over its links: a stalled one takes it down */
const char *
ngx_chat_redis_cluster_check(ngx_chat_redis_t *rc)
{
    ngx_uint_t                 i;
    const char                *why;
    ngx_chat_redis_cluster_t  *cl = rc->cluster;

    for (i = 0; i < cl->nlinks; i++) {
        why = ngx_chat_redis_check(cl->link[i]);

        if (why != NULL) {
            ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                          "chat redis %s: %s from the master %s:%d",
                          rc->name, why, cl->link[i]->at.host,
                          cl->link[i]->at.port);
            return "a master's reply overdue";
        }
    }

    return NULL;
}


/*
 * Where the parent connects: chat_redis first; after each failure the
 * next master of the last whole map, so a dead seed (the master that
 * failed over) does not keep the edge away from the rest.
 */
void
ngx_chat_redis_cluster_seed(ngx_chat_redis_t *rc)
{
    ngx_uint_t                 i;
    ngx_chat_redis_cluster_t  *cl = rc->cluster;

    i = cl->seed++ % (ngx_uint_t) (cl->map->nodes + 1);

    if (i == 0) {
        rc->at.port = 0;                /* chat_redis itself */
        return;
    }

    rc->at = cl->map->node[i - 1];
}


/* ------------------------------------------------------------------------
 * Sending
 * --------------------------------------------------------------------- */

ngx_int_t
ngx_chat_redis_cluster_command(ngx_chat_redis_t *rc, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen)
{
    int                        k;
    uint16_t                   node;
    unsigned                   slot;
    ngx_chat_redis_t          *conn;
    ngx_chat_redis_cluster_t  *cl = rc->cluster;

    if (!rc->connected || rc->closing) {
        return NGX_ERROR;
    }

    k = chat_cluster_key_index(argc, (const char *const *) argv, argvlen);

    if (k < 0) {
        conn = rc;

    } else {
        slot = chat_cluster_slot(argv[k], argvlen ? argvlen[k]
                                                  : ngx_strlen(argv[k]));
        node = cl->map->owner[slot];

        if (node == CHAT_CLUSTER_NO_NODE || cl->owner[node] == NULL) {
            return NGX_ERROR;
        }

        conn = cl->owner[node];
    }

    return ngx_chat_redis_routed(rc, conn, fn, privdata, argc, argv,
                                 argvlen);
}


ngx_int_t
ngx_chat_redis_routed(ngx_chat_redis_t *rc, ngx_chat_redis_t *conn,
    redisCallbackFn *fn, void *privdata, int argc, const char **argv,
    const size_t *argvlen)
{
    size_t                   *cargvlen;
    const char              **cargv;
    ngx_chat_redis_routed_t  *rt;

    rt = ngx_chat_redis_argv_copy(sizeof(ngx_chat_redis_routed_t), 0, argc,
                                  argv, argvlen, &cargv, &cargvlen, rc->log);
    if (rt == NULL) {
        return NGX_ERROR;
    }

    rt->rc = rc;
    rt->fn = fn;
    rt->privdata = privdata;
    rt->argc = argc;
    rt->argv = cargv;
    rt->argvlen = cargvlen;
    rt->redirects = 0;

    if (ngx_chat_redis_send(conn, ngx_chat_redis_routed_done, rt, argc,
                            rt->argv, rt->argvlen)
        != NGX_OK)
    {
        ngx_free(rt);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* A routed command's answer: a redirection is followed (a bounded number
 * of times), anything else goes to the caller. */
static void
ngx_chat_redis_routed_done(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    unsigned                  slot;
    redisReply               *rr = reply;
    ngx_chat_redis_t         *rc, *link;
    chat_cluster_addr_t       addr;
    chat_cluster_redirect_t   kind;
    ngx_chat_redis_routed_t  *rt = privdata;
    static const char        *asking[] = { "ASKING" };

    rc = rt->rc;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR
        && rt->redirects < NGX_CHAT_REDIS_MAX_REDIRECTS
        && rc->cluster != NULL && !rc->stopping && !rc->closing)
    {
        kind = chat_cluster_redirect_parse(rr->str, rr->len, &slot, &addr);

        if (kind != CHAT_CLUSTER_NOT_REDIRECT) {
            rt->redirects++;

            ngx_log_debug4(NGX_LOG_DEBUG_HTTP, rc->log, 0,
                           "chat redis %s: %s slot %ud to %s",
                           rc->name, kind == CHAT_CLUSTER_ASK ? "ASK"
                                                              : "MOVED",
                           slot, addr.host);

            if (kind == CHAT_CLUSTER_MOVED) {
                ngx_chat_redis_cluster_refresh(rc);
            }

            link = ngx_chat_redis_cluster_link(rc, &addr);

            if (link != NULL
                && (kind == CHAT_CLUSTER_MOVED
                    || ngx_chat_redis_send(link, NULL, NULL, 1, asking,
                                           NULL)
                       == NGX_OK)
                && ngx_chat_redis_send(link, ngx_chat_redis_routed_done, rt,
                                       rt->argc, rt->argv, rt->argvlen)
                   == NGX_OK)
            {
                return;
            }
        }
    }

    if (rt->fn != NULL) {
        rt->fn(ac, reply, rt->privdata);
    }

    ngx_free(rt);
}
