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
 * The client is three files, one concern each (redis_route_internal.h
 * is what they share): this one routes a command and keeps the cluster
 * pipeline in order, MOVED/ASK included; redis_route_nodes.c holds the
 * connections and the slot map (connect, a map read and adopted, the
 * fallback addresses after a failover); redis_route_read.c spreads the
 * bus's blocking reads over the masters.
 *
 * What it does not do: split a command whose keys span slots (Redis
 * answers CROSSSLOT, the caller logs it: such commands are the key names'
 * business, protocol/README.md), read from replicas, or pool connections.
 */

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/sds.h>

#include "log.h"
#include "redis_route.h"
#include "redis_route_internal.h"


#define CHAT_ROUTE_MAX_ARGS     64      /* looked at to find the key */
#define CHAT_ROUTE_UNSENT       (-2)    /* a MULTI waiting for its node */

/* A command of the cluster pipeline, in the order it was appended. */
struct chat_router_pending_s {
    int           node;                 /* or CHAT_ROUTE_UNSENT */
    char         *cmd;                  /* kept for a redirect, or NULL */
    size_t        len;
    redisReply   *reply;                /* read ahead of its turn */
};


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

/* Forgets the queue (chat_router_close). */
void
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
