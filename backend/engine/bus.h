/*
 * bus.h: the worker's side of the Redis Streams command bus.  See bus.c,
 * bus_reply.c and bus_liveness.c.
 */

#ifndef CHAT_BUS_H
#define CHAT_BUS_H

#include <signal.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "chat_scripts.h"

#include "config.h"
#include "redis_route.h"

typedef struct {
    chat_router_t          route;        /* redis_route.c: one server or a
                                           cluster, down while disconnected */
    const chat_config_t  *cfg;
    const char           *consumer;     /* "<hostname>:<pid>", borrowed */
    char                **streams;      /* cfg->shards command stream keys */
    char                (*cursors)[64]; /* XAUTOCLAIM cursor per shard */
    const char          **read_argv;    /* prebuilt XREADGROUP */
    size_t               *read_argvlen;
    int                   read_argc;
    char                  read_count[16];
    char                  read_block[16];
    char                  lane_limits[160]; /* published with heartbeats
                                               by command workers, or "" */
    int64_t               backoff_ms;
} chat_bus_t;

/* Builds the stream names of cfg->lane and the XREADGROUP argv.  0, or
 * -1 without memory.  Does not connect. */
int chat_bus_init(chat_bus_t *bus, const chat_config_t *cfg,
    const char *consumer);

void chat_bus_free(chat_bus_t *bus);

/*
 * Connects, retrying with backoff (100 ms doubling to 5 s, with jitter)
 * until it succeeds or *stop becomes non-zero, then creates the consumer
 * group on every shard.  Returns 0 when connected, -1 when stopped.
 */
int chat_bus_connect(chat_bus_t *bus, volatile sig_atomic_t *stop);

/* 1 while the connection is up.  Any call below that loses the
 * connection frees it and returns failure; the caller reconnects. */
int chat_bus_ok(const chat_bus_t *bus);

/* XGROUP CREATE <stream> workers 0 MKSTREAM on every shard (BUSYGROUP is
 * success).  0 or -1. */
int chat_bus_ensure_groups(chat_bus_t *bus);

/*
 * XREADGROUP of up to count new entries per shard, blocking up to
 * block_ms.
 * Returns the reply (caller freeReplyObject()s): an array of
 * [stream, [[id, [field, value, ...]], ...]] or a nil reply on timeout.
 * NULL on failure (logged; a lost group is recreated).
 */
redisReply *chat_bus_read(chat_bus_t *bus, int count, int block_ms);

/*
 * XAUTOCLAIM of up to count entries of shard idle longer than
 * claim-idle-ms, from the shard's saved cursor (which is advanced).
 * Returns the reply (caller frees): [cursor, [[id, fields], ...], ...];
 * NULL on failure.
 */
redisReply *chat_bus_autoclaim(chat_bus_t *bus, int shard, int count);

/* The delivery count of a pending entry; 0 when it is no longer pending,
 * -1 on failure. */
long long chat_bus_deliveries(chat_bus_t *bus, int shard, const char *id);

/* XCLAIM <ids> to ourselves with JUSTID: resets their idle time so no
 * other worker reclaims entries we still hold.  0 or -1. */
int chat_bus_refresh(chat_bus_t *bus, int shard, const char **ids,
    size_t n);

/*
 * Publishes a reply: XACK of (shard, id) when id is not NULL, then
 * XADD <gw> MAXLEN ~ 10000 * req <req> status <status> body <body> and
 * EXPIRE <gw> 300, pipelined in one round trip.  0, or -1 if any failed.
 */
int chat_bus_finish(chat_bus_t *bus, int shard, const char *id,
    const char *gw, size_t gw_len, const char *req, size_t req_len,
    int status, const char *body);

/* One reply of chat_bus_finish_many, all strings borrowed. */
typedef struct {
    int          shard;
    const char  *id;            /* the entry to XACK, or NULL */
    const char  *gw;
    size_t       gw_len;
    const char  *req;
    size_t       req_len;
    int          status;
    const char  *body;
} chat_answer_t;

/* chat_bus_finish for n replies, all pipelined in one round trip.  0, or
 * -1 if any failed. */
int chat_bus_finish_many(chat_bus_t *bus, const chat_answer_t *a, size_t n);

int chat_bus_ack(chat_bus_t *bus, int shard, const char *id);

/*
 * XADD chat:dlq MAXLEN ~ CHAT_DLQ_MAXLEN * <the entry's own fields>
 * stream <key> orig_id <id>
 * deliveries <n> reason <reason>.  fields is the entry's field array as
 * hiredis returned it (may be NULL).  0 or -1.
 */
int chat_bus_dead_letter(chat_bus_t *bus, int shard, const char *id,
    const redisReply *fields, long long deliveries, const char *reason);

/* HSET chat:workers <consumer> "<unix_ms>:<pg_ok>", and HSET chat:lanes
 * <lane> <lane_limits> when lane_limits is set.  0 or -1. */
int chat_bus_heartbeat(chat_bus_t *bus, int pg_ok);

/* Housekeeping: HDEL heartbeats older than 60 s, and XGROUP DELCONSUMER
 * consumers with nothing pending that are idle and have no fresh
 * heartbeat.  Failures are logged and otherwise ignored. */
void chat_bus_prune(chat_bus_t *bus);

/* XTRIM MINID (exact) on every shard of the lane: what the group has
 * finished with (below the oldest pending entry, or up to the last
 * delivered one).  Run with every heartbeat, so a stream's length stays
 * close to the commands waiting or running (the edge's bound leans on it,
 * see ngx_chat_module/ngx_chat_lanes.c).  Failures are logged. */
void chat_bus_trim(chat_bus_t *bus);

/*
 * Reads the replies of the last n commands appended to the bus's
 * pipeline (chat_router_append*), in order, and checks each: an error
 * reply is logged with what (chat_bus_check).  The number of error
 * replies (every reply is read all the same), or -1 when the connection
 * was lost (chat_bus_lost: the bus is then disconnected).
 */
int chat_bus_replies(chat_bus_t *bus, size_t n, const char *what);


/* For bus*.c only. */

/* Logs why the connection was lost and closes it; the bus is then
 * disconnected. */
void chat_bus_lost(chat_bus_t *bus);

/* chat_router_command_argv on the bus; NULL when the connection is gone
 * (it is then closed).  argvlen may be NULL for C strings. */
redisReply *chat_bus_command(chat_bus_t *bus, int argc, const char **argv,
    const size_t *argvlen);

/* 0 when r is a reply and not an error reply (which is logged). */
int chat_bus_check(redisReply *r, const char *what);

/*
 * Runs a shared Lua script (protocol/chat_scripts.h) by its SHA1:
 * EVALSHA <sha> argv... (numkeys, keys, args; argvlen may be NULL for
 * NUL-terminated strings).  On NOSCRIPT (Redis' script cache is empty:
 * first use, a restart, a failover) the script is loaded with SCRIPT
 * LOAD and run again, once.  The reply as chat_bus_command's.
 */
redisReply *chat_bus_script(chat_bus_t *bus, chat_script_t *script,
    int argc, const char **argv, const size_t *argvlen);

#endif /* CHAT_BUS_H */
