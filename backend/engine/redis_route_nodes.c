/*
 * redis_route_nodes.c: the Redis client's connections and, on a cluster,
 * its slot map (see redis_route.c for the whole client).
 *
 * A connection is opened with a timeout, kept alive, and AUTHed as the
 * route's user.  chat_router_connect asks the start address CLUSTER
 * NODES: an error reply makes the route a single server on that one
 * connection; a map that covers every slot makes it a cluster, with a
 * connection per master.  A map read again (a MOVED) keeps the
 * connections of the masters it still names and drops the rest.
 *
 * Every master ever seen is remembered, so that a reconnect whose start
 * address is dead (the master that failed over) starts from another one;
 * a map that does not cover every slot (a replica not promoted yet) is
 * not adopted, and the caller's reconnect tries again later.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "redis_route.h"
#include "redis_route_internal.h"


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


void
chat_router_fail(chat_router_t *rt, const char *why, const char *detail)
{
    snprintf(rt->errstr, sizeof(rt->errstr), "%s%s%s", why,
             detail ? ": " : "", detail ? detail : "");
    rt->up = 0;
}


/* A lost connection: the route is down until the caller reconnects. */
void
chat_router_lost(chat_router_t *rt, const redisContext *c)
{
    chat_router_fail(rt, "connection lost",
                    c != NULL && c->errstr[0] ? c->errstr : "unknown error");
}


/*
 * A connection to host:port, AUTHed with the route's user and password
 * (binary-safe, never logged).  NULL with rt->errstr set.
 */
redisContext *
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
int
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
