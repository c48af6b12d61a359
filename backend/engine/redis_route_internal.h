/*
 * redis_route_internal.h: what the Redis client's own files share
 * (redis_route.c, redis_route_nodes.c, redis_route_read.c), and no
 * caller uses: callers include redis_route.h.
 */

#ifndef CHAT_REDIS_ROUTE_INTERNAL_H
#define CHAT_REDIS_ROUTE_INTERNAL_H

#include <hiredis/hiredis.h>

#include "chat_cluster.h"
#include "redis_route.h"

/* A master: the connection its commands go on. */
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

/* redis_route_nodes.c */

/* Sets rt->errstr ("why: detail") and takes the route down. */
void chat_router_fail(chat_router_t *rt, const char *why,
    const char *detail);

/* A lost connection c: the route is down until the caller reconnects. */
void chat_router_lost(chat_router_t *rt, const redisContext *c);

/* A connection to host:port, AUTHed as the route's user.  NULL with
 * rt->errstr set. */
redisContext *chat_router_open(chat_router_t *rt, const char *host,
    int port);

/* Reads the map again and adopts it (a MOVED).  0, or -1 when a
 * connection is lost; a map not covering every slot yet leaves the old
 * one and rt->stale set. */
int chat_router_refresh(chat_router_t *rt);

/* redis_route.c */

/* Forgets the cluster pipeline: its saved commands and early replies. */
void chat_router_queue_clear(chat_router_t *rt);

#endif /* CHAT_REDIS_ROUTE_INTERNAL_H */
