/*
 * redis_route.h: the backend's one Redis client, on a single server or a
 * Redis Cluster alike.  See redis_route.c (routing, the pipeline),
 * redis_route_nodes.c (connections, the slot map) and redis_route_read.c
 * (the blocking stream reads).
 *
 * Every backend caller speaks Redis through these calls, with hiredis'
 * own semantics: chat_router_command* is redisCommand* (append, then the
 * reply at the head of the pipeline), chat_router_append* is
 * redisAppendCommand*, chat_router_get_reply is redisGetReply.  On a
 * cluster each command goes to the master of its first key's slot
 * (protocol/chat_cluster.h) and MOVED/ASK are followed; on a single
 * server it is hiredis on one connection, nothing added.
 */

#ifndef CHAT_REDIS_ROUTE_H
#define CHAT_REDIS_ROUTE_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "chat_cluster.h"

typedef struct chat_router_node_s     chat_router_node_t;
typedef struct chat_router_pending_s  chat_router_pending_t;
typedef struct chat_router_reader_s   chat_router_reader_t;

typedef struct {
    /* where to start, and who we are (borrowed) */
    const char            *host;
    int                    port;
    const char            *user;        /* NULL: the default user */
    const char            *password;    /* NULL: no AUTH */

    int                    up;          /* 0 before connect, after a loss */
    int                    cluster;     /* the server said it is one */
    chat_router_node_t     *node;        /* [nodes]: map->node's order */
    int                    nodes;
    chat_cluster_map_t    *map;         /* cluster only */
    int                    last;        /* node of the last keyed command:
                                           keyless ones follow it */
    int                    stale;       /* a MOVED was seen: refresh */

    /* cluster pipeline: what was appended, in order, and to which node */
    chat_router_pending_t  *queue;
    size_t                 head, tail, cap;
    int                    multi;       /* a MULTI waiting for the command
                                           after it: its queue index + 1 */
    int                    in_multi;    /* between MULTI and EXEC */

    /* cluster: the blocking reads, one connection per slot read */
    chat_router_reader_t  *reader;
    int                    nreaders;

    /* masters seen in earlier maps: where to look when the start
     * address is down (a failover) */
    chat_cluster_addr_t    known[CHAT_CLUSTER_MAX_NODES];
    int                    nknown;

    char                   errstr[384];
} chat_router_t;

/* Sets where to connect; connects nothing. */
void chat_router_init(chat_router_t *rt, const char *host, int port,
    const char *user, const char *password);

/*
 * Connects: to the start address, else to any master of an earlier map.
 * CLUSTER NODES tells a cluster (then every master gets a connection,
 * and the map must cover every slot) from a single server (an error
 * reply: one connection, no routing).  0, or -1 with rt->errstr set.
 */
int chat_router_connect(chat_router_t *rt);

/* Frees every connection and whatever the pipeline held. */
void chat_router_close(chat_router_t *rt);

/* 1 while connected (a lost connection clears it until a reconnect). */
int chat_router_ok(const chat_router_t *rt);

/* Why the last call failed (a lost connection, no node for a slot). */
const char *chat_router_error(const chat_router_t *rt);

/* redisCommand / redisCommandArgv: NULL when a connection is lost (the
 * route is then down, chat_router_ok says 0). */
redisReply *chat_router_commandf(chat_router_t *rt, const char *fmt, ...);
redisReply *chat_router_command_argv(chat_router_t *rt, int argc,
    const char **argv, const size_t *argvlen);

/* redisAppendCommand / redisAppendCommandArgv: REDIS_OK or REDIS_ERR. */
int chat_router_appendf(chat_router_t *rt, const char *fmt, ...);
int chat_router_append_argv(chat_router_t *rt, int argc, const char **argv,
    const size_t *argvlen);

/* redisGetReply: the reply of the oldest command appended.  REDIS_OK or
 * REDIS_ERR (the route is then down). */
int chat_router_get_reply(chat_router_t *rt, void **reply);

/*
 * XREADGROUP ... BLOCK <ms> STREAMS <keys> <ids> over streams that may
 * live on several masters.  argv is the whole command, its keys from
 * argv[keys_at] (nkeys of them, then their ids).  On a single server it
 * is the command.  On a cluster each slot's streams get the command on a
 * connection of their own to the slot's master (XREADGROUP cannot span
 * slots, and a blocked read must not hold up the replies the worker
 * publishes meanwhile); the call returns as soon as any of them answers,
 * with every answer in, merged into one [[stream, entries]...] array
 * (nil when none had entries).  A read still blocked stays in flight and
 * is collected by the next call.
 * NULL when a connection is lost.
 */
redisReply *chat_router_read_streams(chat_router_t *rt, int argc,
    const char **argv, const size_t *argvlen, int keys_at, int nkeys,
    int block_ms);

#endif /* CHAT_REDIS_ROUTE_H */
