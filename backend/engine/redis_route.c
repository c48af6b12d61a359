/*
 * redis_route.c: the backend's one Redis client, routed by slot when
 * Redis is a cluster.
 *
 * hiredis 0.14 has no cluster support and Debian packages no cluster
 * client, so the routing is written here, once, and every backend caller
 * (the bus, fan-out, caches, presence, the notifier) goes through it.
 * The rules themselves (key to slot, a command's first key, the slot map,
 * MOVED/ASK) are protocol/chat_cluster.c's.
 *
 * On connect the start address answers CLUSTER NODES: an error means a
 * single server (one connection, and every call below is the plain
 * hiredis call on it: no extra round trip, no copy); a map means a
 * cluster, and every master gets a connection.  That is the only
 * difference callers see: the same hiredis semantics on either.
 *
 * On a cluster:
 *   - a command is formatted once (hiredis' own formatter), its first key
 *     read back from the RESP, and it is appended to its slot's master;
 *     a keyless one (SCRIPT LOAD after a NOSCRIPT, EXEC, CONFIG) follows
 *     the last keyed command to the same node, and MULTI waits for the
 *     command after it and goes where that one goes;
 *   - replies come back in the order commands were appended, whatever
 *     node each went to: a queue remembers the order, and every node's
 *     output is flushed before the first reply is read, so a pipeline
 *     over three masters costs one round trip, not three;
 *   - MOVED: the map is read again (CLUSTER NODES) and the command sent
 *     once more to its new master; ASK: ASKING and the command to the
 *     node named, once, map unchanged.  Before that extra round trip
 *     every reply still due on any connection is read and kept, so the
 *     connections are idle and no reply is taken for another's.  A
 *     command inside MULTI is not resent (the transaction is already
 *     refused): its error goes to the caller and the map is refreshed
 *     with the next command;
 *   - the bus's blocking read over a lane's shards (XREADGROUP cannot
 *     name keys of two slots) becomes one read per slot, each on a
 *     connection of its own to the slot's master so a blocked read never
 *     holds up the replies and acks sent meanwhile; the first answer ends
 *     the wait, a read still blocked is collected by the next call;
 *   - a lost connection to any node takes the route down, as on a single
 *     server; the caller's reconnect (chat_bus_connect, with backoff)
 *     starts over from the start address or, if that one is dead (the
 *     master that failed over), from any master of an earlier map, and
 *     waits until the map covers every slot again (a replica promoted).
 *
 * What it does not do: split a command whose keys span slots (Redis
 * answers CROSSSLOT, the caller logs it: such commands are the key names'
 * business, protocol/README.md), read from replicas, or pool connections.
 */

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <hiredis/sds.h>

#include "log.h"
#include "redis_route.h"


#define CHAT_ROUTE_MAX_ARGS     64      /* looked at to find the key */
#define CHAT_ROUTE_UNSENT       (-2)    /* a MULTI waiting for its node */

struct chat_router_node_s {
    redisContext         *ctx;          /* commands */
    chat_cluster_addr_t   addr;
};

/* A connection of its own for the blocking reads of one slot's streams:
 * XREADGROUP must name keys of one slot, and a blocked read must not hold
 * up the commands the worker sends meanwhile. */
struct chat_router_reader_s {
    redisContext         *ctx;
    int                   reading;      /* a read in flight */
    chat_cluster_addr_t   addr;         /* the master it reads from */
};

struct chat_router_pending_s {
    int           node;                 /* or CHAT_ROUTE_UNSENT */
    char         *cmd;                  /* kept for a redirect, or NULL */
    size_t        len;
    redisReply   *reply;                /* read ahead of its turn */
};


/* ------------------------------------------------------------------------
 * Connections
 * --------------------------------------------------------------------- */

void
chat_router_init(chat_router_t *rt, const char *host, int port,
    const char *user, const char *password)
{
    memset(rt, 0, sizeof(*rt));
    rt->host = host;
    rt->port = port;
    rt->user = user;
    rt->password = password;
}


static void
chat_router_fail(chat_router_t *rt, const char *why, const char *detail)
{
    snprintf(rt->errstr, sizeof(rt->errstr), "%s%s%s", why,
             detail ? ": " : "", detail ? detail : "");
    rt->up = 0;
}


/* A lost connection: the route is down until the caller reconnects. */
static void
chat_router_lost(chat_router_t *rt, const redisContext *c)
{
    chat_router_fail(rt, "connection lost",
                    c != NULL && c->errstr[0] ? c->errstr : "unknown error");
}


/*
 * A connection to host:port, AUTHed with the route's user and password
 * (binary-safe, never logged).  NULL with rt->errstr set.
 */
static redisContext *
chat_router_open(chat_router_t *rt, const char *host, int port)
{
    struct timeval   tv;
    redisContext    *c;
    redisReply      *r;
    char             where[96];

    snprintf(where, sizeof(where), "%s:%d", host, port);

    tv.tv_sec = 2;
    tv.tv_usec = 0;
    c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err != 0) {
        snprintf(rt->errstr, sizeof(rt->errstr), "connect to %s failed: %s",
                 where, c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }

    tv.tv_sec = 5;
    redisSetTimeout(c, tv);
    redisEnableKeepAlive(c);

    if (rt->password == NULL) {
        return c;
    }

    if (rt->user != NULL) {
        r = redisCommand(c, "AUTH %s %b", rt->user, rt->password,
                         strlen(rt->password));
    } else {
        r = redisCommand(c, "AUTH %b", rt->password, strlen(rt->password));
    }

    if (r == NULL || r->type != REDIS_REPLY_STATUS) {
        snprintf(rt->errstr, sizeof(rt->errstr), "%s: AUTH as %s refused: %s",
                 where, rt->user ? rt->user : "default",
                 r ? (r->str ? r->str : "unexpected reply") : c->errstr);
        freeReplyObject(r);
        redisFree(c);
        return NULL;
    }

    freeReplyObject(r);
    return c;
}


static void
chat_router_remember(chat_router_t *rt, const chat_cluster_map_t *map)
{
    int  i, k;

    for (i = 0; i < map->nodes; i++) {
        for (k = 0; k < rt->nknown; k++) {
            if (rt->known[k].port == map->node[i].port
                && strcmp(rt->known[k].host, map->node[i].host) == 0)
            {
                break;
            }
        }
        if (k == rt->nknown && rt->nknown < CHAT_CLUSTER_MAX_NODES) {
            rt->known[rt->nknown++] = map->node[i];
        }
    }
}


/*
 * The map from CLUSTER NODES on c, into a new allocation.  NULL when c
 * is not a cluster (*single set), the map does not cover every slot, or
 * the connection failed (rt->errstr says which).
 */
static chat_cluster_map_t *
chat_router_read_map(chat_router_t *rt, redisContext *c, int *single)
{
    int                  served;
    redisReply          *r;
    chat_cluster_map_t  *map;

    *single = 0;

    r = redisCommand(c, "CLUSTER NODES");
    if (r == NULL) {
        chat_router_lost(rt, c);
        return NULL;
    }

    /* "ERR ... cluster support disabled", or NOPERM: not a cluster (or
     * not one we may see); anything else (LOADING after a restart) is a
     * node not ready yet, tried again later */
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "ERR", 3) == 0
            || strncmp(r->str, "NOPERM", 6) == 0)
        {
            *single = 1;
        } else {
            chat_router_fail(rt, "CLUSTER NODES", r->str);
        }
        freeReplyObject(r);
        return NULL;
    }

    map = NULL;
    if (r->type == REDIS_REPLY_STRING) {
        map = malloc(sizeof(*map));
    }

    if (map == NULL) {
        chat_router_fail(rt, "CLUSTER NODES", "unexpected reply");
        freeReplyObject(r);
        return NULL;
    }

    served = chat_cluster_map_parse(map, r->str, r->len);
    freeReplyObject(r);

    if (served != CHAT_CLUSTER_SLOTS) {
        snprintf(rt->errstr, sizeof(rt->errstr),
                 "the cluster serves %d of %d slots (a failover under way?)",
                 served < 0 ? 0 : served, CHAT_CLUSTER_SLOTS);
        free(map);
        return NULL;
    }

    return map;
}


/*
 * Makes map the route's: a node per master, keeping the connections of
 * masters already known (c, the one the map came from, included; c is
 * the route's afterwards either way).  0, or -1 (rt->errstr set).
 */
static int
chat_router_adopt(chat_router_t *rt, chat_cluster_map_t *map, redisContext *c)
{
    int                 i, k;
    chat_router_node_t  *node;

    node = calloc(map->nodes, sizeof(*node));
    if (node == NULL) {
        redisFree(c);
        free(map);
        chat_router_fail(rt, "out of memory", NULL);
        return -1;
    }

    for (i = 0; i < map->nodes; i++) {
        node[i].addr = map->node[i];

        for (k = 0; k < rt->nodes; k++) {
            if (rt->node[k].ctx != NULL
                && rt->node[k].addr.port == map->node[i].port
                && strcmp(rt->node[k].addr.host, map->node[i].host) == 0)
            {
                node[i].ctx = rt->node[k].ctx;
                memset(&rt->node[k], 0, sizeof(rt->node[k]));
                break;
            }
        }

        if (node[i].ctx == NULL && c != NULL
            && c->tcp.port == map->node[i].port
            && c->tcp.host != NULL
            && strcmp(c->tcp.host, map->node[i].host) == 0)
        {
            node[i].ctx = c;
            c = NULL;
        }
    }

    /* what the new map does not have goes */
    for (k = 0; k < rt->nodes; k++) {
        redisFree(rt->node[k].ctx);
    }
    free(rt->node);
    free(rt->map);
    redisFree(c);

    rt->node = node;
    rt->nodes = map->nodes;
    rt->map = map;
    rt->last = 0;
    rt->stale = 0;
    chat_router_remember(rt, map);

    for (i = 0; i < rt->nodes; i++) {
        if (node[i].ctx == NULL) {
            node[i].ctx = chat_router_open(rt, node[i].addr.host,
                                          node[i].addr.port);
            if (node[i].ctx == NULL) {
                rt->up = 0;
                return -1;
            }
        }
    }

    return 0;
}


int
chat_router_connect(chat_router_t *rt)
{
    int                  i, single;
    const char          *host;
    redisContext        *c;
    chat_cluster_map_t  *map;
    chat_cluster_addr_t  known[CHAT_CLUSTER_MAX_NODES];
    int                  nknown;

    chat_router_close(rt);

    /* a copy: a map adopted below may change the list */
    nknown = rt->nknown;
    memcpy(known, rt->known, sizeof(known[0]) * (size_t) nknown);

    for (i = -1; i < nknown; i++) {
        host = i < 0 ? rt->host : known[i].host;

        c = chat_router_open(rt, host, i < 0 ? rt->port : known[i].port);
        if (c == NULL) {
            continue;
        }

        map = chat_router_read_map(rt, c, &single);

        if (single) {
            rt->node = calloc(1, sizeof(*rt->node));
            if (rt->node == NULL) {
                redisFree(c);
                chat_router_fail(rt, "out of memory", NULL);
                return -1;
            }
            rt->node[0].ctx = c;
            rt->nodes = 1;
            rt->cluster = 0;
            rt->up = 1;
            return 0;
        }

        if (map == NULL) {
            redisFree(c);
            continue;
        }

        if (chat_router_adopt(rt, map, c) != 0) {
            chat_router_close(rt);
            return -1;
        }

        rt->cluster = 1;
        rt->up = 1;
        chat_log_info("redis: a cluster of %d masters (map from %s:%d)",
                      rt->nodes, host, i < 0 ? rt->port : known[i].port);
        return 0;
    }

    rt->up = 0;
    return -1;
}


/* Forgets the pipeline: its saved commands and early replies. */
static void
chat_router_queue_clear(chat_router_t *rt)
{
    size_t  i;

    for (i = rt->head; i < rt->tail; i++) {
        free(rt->queue[i].cmd);
        freeReplyObject(rt->queue[i].reply);
    }

    rt->head = rt->tail = 0;
    rt->multi = 0;
    rt->in_multi = 0;
}


void
chat_router_close(chat_router_t *rt)
{
    int  i;

    for (i = 0; i < rt->nodes; i++) {
        redisFree(rt->node[i].ctx);
    }

    for (i = 0; i < rt->nreaders; i++) {
        redisFree(rt->reader[i].ctx);
    }

    free(rt->reader);
    rt->reader = NULL;
    rt->nreaders = 0;
    free(rt->node);
    free(rt->map);
    chat_router_queue_clear(rt);
    free(rt->queue);

    rt->node = NULL;
    rt->nodes = 0;
    rt->map = NULL;
    rt->queue = NULL;
    rt->cap = 0;
    rt->up = 0;
    rt->cluster = 0;
    rt->last = 0;
    rt->stale = 0;
}


int
chat_router_ok(const chat_router_t *rt)
{
    return rt->up;
}


const char *
chat_router_error(const chat_router_t *rt)
{
    return rt->errstr[0] ? rt->errstr : "unknown error";
}


/* Reads the map again and adopts it (MOVED).  A map that does not cover
 * every slot yet keeps the old one (the next MOVED tries again). */
static int
chat_router_refresh(chat_router_t *rt)
{
    int                  i, single;
    chat_cluster_map_t  *map;

    for (i = 0; i < rt->nodes; i++) {
        map = chat_router_read_map(rt, rt->node[i].ctx, &single);
        if (!rt->up) {
            return -1;
        }
        if (map != NULL) {
            chat_log_info("redis: cluster map refreshed");
            return chat_router_adopt(rt, map, NULL);
        }
    }

    rt->stale = 1;
    return 0;
}


/* ------------------------------------------------------------------------
 * Which node a command goes to
 * --------------------------------------------------------------------- */

/* The arguments of a RESP command array (hiredis' formatting), up to max:
 * pointers into cmd.  The count, or -1 when it is not one. */
static int
chat_router_args(const char *cmd, size_t len, const char **argv,
    size_t *argvlen, int max)
{
    int          argc;
    long         n, l;
    char        *end;
    const char  *p, *stop;

    stop = cmd + len;
    if (len < 4 || cmd[0] != '*') {
        return -1;
    }

    n = strtol(cmd + 1, &end, 10);
    p = end + 2;

    for (argc = 0; argc < n && argc < max; argc++) {
        if (p >= stop || *p != '$') {
            return -1;
        }
        l = strtol(p + 1, &end, 10);
        p = end + 2;
        if (l < 0 || p + l > stop) {
            return -1;
        }
        argv[argc] = p;
        argvlen[argc] = (size_t) l;
        p += l + 2;
    }

    return argc;
}


/*
 * The node for a formatted command: its first key's master, or the last
 * keyed command's node for a keyless one (*keyed 0).  *name is the
 * command's name.  -1 when no master serves the slot.
 */
static int
chat_router_node_of(chat_router_t *rt, const char *cmd, size_t len,
    int *keyed, const char **name, size_t *name_len)
{
    int          argc, k;
    size_t       lens[CHAT_ROUTE_MAX_ARGS];
    unsigned     slot;
    const char  *argv[CHAT_ROUTE_MAX_ARGS];

    *keyed = 0;
    *name = "";
    *name_len = 0;

    argc = chat_router_args(cmd, len, argv, lens, CHAT_ROUTE_MAX_ARGS);
    if (argc < 1) {
        return rt->last;
    }

    *name = argv[0];
    *name_len = lens[0];

    k = chat_cluster_key_index(argc, argv, lens);
    if (k < 0) {
        return rt->last;
    }

    *keyed = 1;
    slot = chat_cluster_slot(argv[k], lens[k]);

    if (rt->map->owner[slot] == CHAT_CLUSTER_NO_NODE) {
        return -1;
    }

    return rt->map->owner[slot];
}


static int
chat_router_is(const char *name, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(name, word, len) == 0;
}


/* ------------------------------------------------------------------------
 * The cluster pipeline
 * --------------------------------------------------------------------- */

static chat_router_pending_t *
chat_router_enqueue(chat_router_t *rt)
{
    size_t                 cap;
    chat_router_pending_t  *q;

    if (rt->head == rt->tail) {
        rt->head = rt->tail = 0;
    }

    if (rt->tail == rt->cap) {
        cap = rt->cap ? rt->cap * 2 : 16;
        q = realloc(rt->queue, cap * sizeof(*q));
        if (q == NULL) {
            return NULL;
        }
        rt->queue = q;
        rt->cap = cap;
    }

    q = &rt->queue[rt->tail++];
    memset(q, 0, sizeof(*q));

    return q;
}


/* Sends what every node has buffered, so they all work at once. */
static int
chat_router_flush(chat_router_t *rt)
{
    int            i, done;
    redisContext  *c;

    for (i = 0; i < rt->nodes; i++) {
        c = rt->node[i].ctx;
        if (c == NULL || sdslen(c->obuf) == 0) {
            continue;
        }

        do {
            if (redisBufferWrite(c, &done) != REDIS_OK) {
                chat_router_lost(rt, c);
                return -1;
            }
        } while (!done);
    }

    return 0;
}


/* Appends a formatted command (cmd is the route's from here on). */
static int
chat_router_append_formatted(chat_router_t *rt, char *cmd, size_t len)
{
    int                    node, keyed, is_multi, is_exec;
    size_t                 name_len;
    const char            *name;
    chat_router_pending_t  *e, *m;

    if (rt->stale && rt->head == rt->tail && chat_router_refresh(rt) != 0) {
        free(cmd);
        return REDIS_ERR;
    }

    node = chat_router_node_of(rt, cmd, len, &keyed, &name, &name_len);
    if (node < 0) {
        chat_router_fail(rt, "no master serves the slot", NULL);
        free(cmd);
        return REDIS_ERR;
    }

    is_multi = chat_router_is(name, name_len, "MULTI");
    is_exec = chat_router_is(name, name_len, "EXEC")
              || chat_router_is(name, name_len, "DISCARD");

    e = chat_router_enqueue(rt);
    if (e == NULL) {
        free(cmd);
        chat_router_fail(rt, "out of memory", NULL);
        return REDIS_ERR;
    }

    if (is_multi) {
        /* sent with the first keyed command after it, to that node */
        e->node = CHAT_ROUTE_UNSENT;
        e->cmd = cmd;
        e->len = len;
        rt->multi = (int) rt->tail;     /* its index + 1: the queue is not
                                           empty, so indices stay */
        rt->in_multi = 1;
        return REDIS_OK;
    }

    /* a MULTI goes first, to wherever the command after it goes */
    if (rt->multi) {
        m = &rt->queue[rt->multi - 1];
        if (redisAppendFormattedCommand(rt->node[node].ctx, m->cmd, m->len)
            != REDIS_OK)
        {
            free(cmd);
            chat_router_lost(rt, rt->node[node].ctx);
            return REDIS_ERR;
        }
        m->node = node;
        free(m->cmd);
        m->cmd = NULL;
        rt->multi = 0;
    }

    e->node = node;
    e->len = len;

    if (redisAppendFormattedCommand(rt->node[node].ctx, cmd, len)
        != REDIS_OK)
    {
        free(cmd);
        chat_router_lost(rt, rt->node[node].ctx);
        return REDIS_ERR;
    }

    /* kept for a redirect, unless inside a transaction */
    if (keyed && !rt->in_multi) {
        e->cmd = cmd;
    } else {
        free(cmd);
    }

    if (is_exec) {
        rt->in_multi = 0;
    }

    if (keyed) {
        rt->last = node;
    }

    return REDIS_OK;
}


/* A MULTI never followed by a key goes where the last command went. */
static int
chat_router_send_unsent(chat_router_t *rt, chat_router_pending_t *e)
{
    if (e->node != CHAT_ROUTE_UNSENT) {
        return 0;
    }

    e->node = rt->last;
    rt->multi = 0;

    if (redisAppendFormattedCommand(rt->node[e->node].ctx, e->cmd, e->len)
        != REDIS_OK)
    {
        chat_router_lost(rt, rt->node[e->node].ctx);
        return -1;
    }

    free(e->cmd);
    e->cmd = NULL;

    return 0;
}


/* Reads every reply still due into the queue, so every connection is
 * idle (before a command is sent again elsewhere). */
static int
chat_router_drain(chat_router_t *rt)
{
    size_t                 i;
    void                  *reply;
    chat_router_pending_t  *e;

    for (i = rt->head; i < rt->tail; i++) {
        e = &rt->queue[i];
        if (e->reply != NULL || e->node == CHAT_ROUTE_UNSENT) {
            continue;
        }

        if (redisGetReply(rt->node[e->node].ctx, &reply) != REDIS_OK) {
            chat_router_lost(rt, rt->node[e->node].ctx);
            return -1;
        }
        e->reply = reply;
    }

    return 0;
}


/* Sends cmd to node now (connections idle), after ASKING when asked.
 * The reply, or NULL when the connection is lost. */
static redisReply *
chat_router_send_now(chat_router_t *rt, int node, const char *cmd, size_t len,
    int asking)
{
    void          *reply;
    redisContext  *c;

    c = rt->node[node].ctx;

    if (asking) {
        reply = redisCommand(c, "ASKING");
        if (reply == NULL) {
            chat_router_lost(rt, c);
            return NULL;
        }
        freeReplyObject(reply);
    }

    if (redisAppendFormattedCommand(c, cmd, len) != REDIS_OK
        || redisGetReply(c, &reply) != REDIS_OK)
    {
        chat_router_lost(rt, c);
        return NULL;
    }

    return reply;
}


/*
 * r is a redirect for cmd: MOVED refreshes the map and sends cmd to its
 * slot's master now; ASK sends it to the node named, after ASKING.  Once:
 * a second redirect is the caller's answer.  Takes r; NULL when a
 * connection is lost.
 */
static redisReply *
chat_router_follow(chat_router_t *rt, redisReply *r, const char *cmd,
    size_t len)
{
    int                      node, keyed;
    size_t                   name_len;
    unsigned                 slot;
    const char              *name;
    chat_cluster_addr_t      addr;
    chat_cluster_redirect_t  kind;

    kind = chat_cluster_redirect_parse(r->str, r->len, &slot, &addr);
    if (kind == CHAT_CLUSTER_NOT_REDIRECT) {
        return r;
    }

    if (chat_router_drain(rt) != 0) {
        freeReplyObject(r);
        return NULL;
    }

    if (kind == CHAT_CLUSTER_MOVED) {
        chat_log_info("redis: %.*s: the map has changed", (int) r->len,
                      r->str);
        if (chat_router_refresh(rt) != 0) {
            freeReplyObject(r);
            return NULL;
        }
        node = chat_router_node_of(rt, cmd, len, &keyed, &name, &name_len);

    } else {
        node = chat_cluster_map_find(rt->map, addr.host, addr.port);
    }

    if (node < 0) {
        return r;                       /* nowhere better to go */
    }

    freeReplyObject(r);
    return chat_router_send_now(rt, node, cmd, len, kind == CHAT_CLUSTER_ASK);
}


static int
chat_router_get_reply_cluster(chat_router_t *rt, void **reply)
{
    char                  *cmd;
    size_t                 len;
    redisReply            *r;
    chat_router_pending_t  *e;

    if (rt->head == rt->tail) {
        chat_router_fail(rt, "a reply read with no command sent", NULL);
        return REDIS_ERR;
    }

    e = &rt->queue[rt->head];

    if (chat_router_send_unsent(rt, e) != 0 || chat_router_flush(rt) != 0) {
        return REDIS_ERR;
    }

    r = e->reply;
    if (r == NULL && redisGetReply(rt->node[e->node].ctx, (void **) &r)
                     != REDIS_OK)
    {
        chat_router_lost(rt, rt->node[e->node].ctx);
        return REDIS_ERR;
    }

    cmd = e->cmd;
    len = e->len;
    rt->head++;

    if (r->type == REDIS_REPLY_ERROR) {
        if (cmd != NULL) {
            r = chat_router_follow(rt, r, cmd, len);

        } else if (strncmp(r->str, "MOVED ", 6) == 0) {
            rt->stale = 1;              /* in a transaction: not resent */
        }
    }

    free(cmd);

    if (r == NULL) {
        return REDIS_ERR;
    }

    *reply = r;
    return REDIS_OK;
}


/* ------------------------------------------------------------------------
 * The calls
 * --------------------------------------------------------------------- */

int
chat_router_get_reply(chat_router_t *rt, void **reply)
{
    if (!rt->up) {
        return REDIS_ERR;
    }

    if (rt->cluster) {
        return chat_router_get_reply_cluster(rt, reply);
    }

    if (redisGetReply(rt->node[0].ctx, reply) != REDIS_OK) {
        chat_router_lost(rt, rt->node[0].ctx);
        return REDIS_ERR;
    }

    return REDIS_OK;
}


static int
chat_router_vappendf(chat_router_t *rt, const char *fmt, va_list ap)
{
    int    len;
    char  *cmd;

    if (!rt->up) {
        return REDIS_ERR;
    }

    if (!rt->cluster) {
        if (redisvAppendCommand(rt->node[0].ctx, fmt, ap) != REDIS_OK) {
            chat_router_lost(rt, rt->node[0].ctx);
            return REDIS_ERR;
        }
        return REDIS_OK;
    }

    len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0) {
        chat_router_fail(rt, "cannot format a command", NULL);
        return REDIS_ERR;
    }

    return chat_router_append_formatted(rt, cmd, (size_t) len);
}


int
chat_router_appendf(chat_router_t *rt, const char *fmt, ...)
{
    int      rc;
    va_list  ap;

    va_start(ap, fmt);
    rc = chat_router_vappendf(rt, fmt, ap);
    va_end(ap);

    return rc;
}


int
chat_router_append_argv(chat_router_t *rt, int argc, const char **argv,
    const size_t *argvlen)
{
    int    len;
    char  *cmd;

    if (!rt->up) {
        return REDIS_ERR;
    }

    if (!rt->cluster) {
        if (redisAppendCommandArgv(rt->node[0].ctx, argc, argv, argvlen)
            != REDIS_OK)
        {
            chat_router_lost(rt, rt->node[0].ctx);
            return REDIS_ERR;
        }
        return REDIS_OK;
    }

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        chat_router_fail(rt, "cannot format a command", NULL);
        return REDIS_ERR;
    }

    return chat_router_append_formatted(rt, cmd, (size_t) len);
}


redisReply *
chat_router_commandf(chat_router_t *rt, const char *fmt, ...)
{
    void     *reply;
    va_list   ap;

    va_start(ap, fmt);
    if (chat_router_vappendf(rt, fmt, ap) != REDIS_OK) {
        va_end(ap);
        return NULL;
    }
    va_end(ap);

    return chat_router_get_reply(rt, &reply) == REDIS_OK ? reply : NULL;
}


redisReply *
chat_router_command_argv(chat_router_t *rt, int argc, const char **argv,
    const size_t *argvlen)
{
    void  *reply;

    if (chat_router_append_argv(rt, argc, argv, argvlen) != REDIS_OK) {
        return NULL;
    }

    return chat_router_get_reply(rt, &reply) == REDIS_OK ? reply : NULL;
}


/* ------------------------------------------------------------------------
 * Reading streams spread over masters
 * --------------------------------------------------------------------- */

/* The first of the nkeys keys with key k's slot: the keys of one slot
 * share a read (and a reader, at the leader's index). */
static int
chat_router_slot_leader(const char **keys, const size_t *lens, int k)
{
    int       j;
    unsigned  slot;

    slot = chat_cluster_slot(keys[k], lens[k]);

    for (j = 0; j < k; j++) {
        if (chat_cluster_slot(keys[j], lens[j]) == slot) {
            return j;
        }
    }

    return k;
}


/* Sends the read of leader's slot (its streams among argv's keys) on
 * that slot's reader, connected to the slot's master. */
static int
chat_router_read_send(chat_router_t *rt, int leader, int argc,
    const char **argv, const size_t *argvlen, int keys_at, int nkeys)
{
    int                   i, k, done, owner;
    size_t               *sublen;
    const char          **sub;
    chat_router_reader_t  *rd;
    const char          **keys;
    const size_t         *lens;

    rd = &rt->reader[leader];
    keys = argv + keys_at;
    lens = argvlen + keys_at;
    owner = rt->map->owner[chat_cluster_slot(keys[leader], lens[leader])];

    /* the slot moved (a failover, a MOVED): read from its new master */
    if (rd->ctx != NULL
        && (rd->addr.port != rt->node[owner].addr.port
            || strcmp(rd->addr.host, rt->node[owner].addr.host) != 0))
    {
        redisFree(rd->ctx);
        rd->ctx = NULL;
    }

    if (rd->ctx == NULL) {
        rd->addr = rt->node[owner].addr;
        rd->ctx = chat_router_open(rt, rd->addr.host, rd->addr.port);
        if (rd->ctx == NULL) {
            rt->up = 0;
            return -1;
        }
    }

    sub = malloc((size_t) argc * sizeof(char *));
    sublen = malloc((size_t) argc * sizeof(size_t));
    if (sub == NULL || sublen == NULL) {
        free(sub);
        free(sublen);
        chat_router_fail(rt, "out of memory", NULL);
        return -1;
    }

    for (k = 0; k < keys_at; k++) {
        sub[k] = argv[k];
        sublen[k] = argvlen[k];
    }

    for (i = 0; i < nkeys; i++) {               /* the keys, then ids */
        if (chat_router_slot_leader(keys, lens, i) == leader) {
            sub[k] = keys[i];
            sublen[k++] = lens[i];
        }
    }
    for (i = 0; i < nkeys; i++) {
        if (chat_router_slot_leader(keys, lens, i) == leader) {
            sub[k] = argv[keys_at + nkeys + i];
            sublen[k++] = argvlen[keys_at + nkeys + i];
        }
    }

    done = 0;
    if (redisAppendCommandArgv(rd->ctx, k, sub, sublen) == REDIS_OK) {
        do {
            if (redisBufferWrite(rd->ctx, &done) != REDIS_OK) {
                break;
            }
        } while (!done);
    }

    free(sub);
    free(sublen);

    if (!done) {
        chat_router_lost(rt, rd->ctx);
        return -1;
    }

    rd->reading = 1;
    return 0;
}


/* Appends the [stream, entries] pairs of one answer to m; takes r.  An
 * error answer is kept in *err (the first one) instead; a MOVED one
 * marks the map stale. */
static int
chat_router_read_merge(chat_router_t *rt, redisReply *m, redisReply *r,
    redisReply **err)
{
    size_t        i;
    redisReply  **el;

    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "MOVED ", 6) == 0) {
            rt->stale = 1;          /* read from the new master next time */
        }

        if (*err == NULL) {
            *err = r;
        } else {
            freeReplyObject(r);
        }
        return 0;
    }

    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        el = realloc(m->element,
                     (m->elements + r->elements) * sizeof(redisReply *));
        if (el == NULL) {
            freeReplyObject(r);
            return -1;
        }
        m->element = el;
        for (i = 0; i < r->elements; i++) {
            m->element[m->elements++] = r->element[i];
        }
        free(r->element);
        r->element = NULL;
        r->elements = 0;
    }

    freeReplyObject(r);
    return 0;
}


/* Collects the answers already in: merged into m, *got counted.  Fills
 * pfd with the readers still waiting; their count, or -1 when lost. */
static int
chat_router_read_collect(chat_router_t *rt, redisReply *m, redisReply **err,
    int *got, struct pollfd *pfd, int *who)
{
    int                    k, waiting;
    void                  *reply;
    chat_router_reader_t  *rd;

    waiting = 0;

    for (k = 0; k < rt->nreaders; k++) {
        rd = &rt->reader[k];
        if (!rd->reading) {
            continue;
        }

        if (redisGetReplyFromReader(rd->ctx, &reply) != REDIS_OK) {
            chat_router_lost(rt, rd->ctx);
            return -1;
        }

        if (reply != NULL) {
            rd->reading = 0;
            (*got)++;
            if (chat_router_read_merge(rt, m, reply, err) != 0) {
                chat_router_fail(rt, "out of memory", NULL);
                return -1;
            }
            continue;
        }

        pfd[waiting].fd = rd->ctx->fd;
        pfd[waiting].events = POLLIN;
        pfd[waiting].revents = 0;
        who[waiting++] = k;
    }

    return waiting;
}


redisReply *
chat_router_read_streams(chat_router_t *rt, int argc, const char **argv,
    const size_t *argvlen, int keys_at, int nkeys, int block_ms)
{
    int                    i, got, rc, waiting, *who;
    unsigned               slot;
    redisReply            *m, *err;
    struct pollfd         *pfd;

    if (!rt->up) {
        return NULL;
    }

    if (!rt->cluster) {
        return chat_router_command_argv(rt, argc, argv, argvlen);
    }

    err = NULL;

    /* a read answered MOVED: the streams' slots have new masters */
    if (rt->stale && rt->head == rt->tail && chat_router_refresh(rt) != 0) {
        return NULL;
    }

    /* a reader per slot, at its first key's index (the bus reads the
     * same streams every time) */
    if (rt->nreaders != nkeys) {
        for (i = 0; i < rt->nreaders; i++) {
            redisFree(rt->reader[i].ctx);
        }
        free(rt->reader);
        rt->reader = calloc((size_t) nkeys, sizeof(*rt->reader));
        rt->nreaders = rt->reader ? nkeys : 0;
        if (rt->reader == NULL) {
            chat_router_fail(rt, "out of memory", NULL);
            return NULL;
        }
    }

    /* a read for every slot, unless its last one is still in flight */
    for (i = 0; i < nkeys; i++) {
        slot = chat_cluster_slot(argv[keys_at + i], argvlen[keys_at + i]);
        if (rt->map->owner[slot] == CHAT_CLUSTER_NO_NODE) {
            chat_router_fail(rt, "no master serves a stream's slot", NULL);
            return NULL;
        }

        if (chat_router_slot_leader(argv + keys_at, argvlen + keys_at, i) == i
            && !rt->reader[i].reading
            && chat_router_read_send(rt, i, argc, argv, argvlen, keys_at,
                                     nkeys) != 0)
        {
            return NULL;
        }
    }

    m = calloc(1, sizeof(*m));
    pfd = calloc((size_t) nkeys, sizeof(*pfd));
    who = calloc((size_t) nkeys, sizeof(*who));
    if (m == NULL || pfd == NULL || who == NULL) {
        chat_router_fail(rt, "out of memory", NULL);
        goto failed;
    }

    m->type = REDIS_REPLY_ARRAY;
    got = 0;

    /* until the first answer: every read ends within its BLOCK, so past
     * that and a margin the connection is taken for lost */
    for ( ;; ) {
        waiting = chat_router_read_collect(rt, m, &err, &got, pfd, who);
        if (waiting < 0) {
            goto failed;
        }

        if (got > 0 || waiting == 0) {
            break;
        }

        rc = poll(pfd, (nfds_t) waiting, block_ms + 5000);
        if (rc < 0 && errno == EINTR) {
            break;                          /* a signal: answer nil */
        }
        if (rc <= 0) {
            chat_router_fail(rt, "a blocking read did not end", NULL);
            goto failed;
        }

        for (i = 0; i < waiting; i++) {
            if (pfd[i].revents != 0
                && redisBufferRead(rt->reader[who[i]].ctx) != REDIS_OK)
            {
                chat_router_lost(rt, rt->reader[who[i]].ctx);
                goto failed;
            }
        }
    }

    free(pfd);
    free(who);

    if (err != NULL) {
        freeReplyObject(m);
        return err;
    }

    if (m->elements == 0) {
        m->type = REDIS_REPLY_NIL;
    }

    return m;

failed:

    free(pfd);
    free(who);
    freeReplyObject(err);
    freeReplyObject(m);
    return NULL;
}
