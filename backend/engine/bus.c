/*
 * bus.c: the worker's Redis connection, and how it takes entries off the
 * command bus (stream and key names in chat_protocol.h).
 *
 * A worker uses hiredis' blocking API: it has nothing else to do while it
 * waits, and a blocking XREADGROUP ... BLOCK 1000 gives the loop a beat of
 * about a second for heartbeats and signals.  All shard streams of the
 * worker's lane (chat_lanes.h) are read with one XREADGROUP, as consumer
 * "<hostname>:<pid>" of group "workers" (on a Redis Cluster, one per
 * master for the shards it owns, at once: redis_route.c, which every
 * call here goes through).
 *
 * Entries a worker read but never acked (it crashed, or PostgreSQL failed)
 * stay in the group's pending list.  chat_bus_autoclaim takes over those
 * idle longer than claim-idle-ms, a page at a time per shard with a saved
 * cursor; chat_bus_deliveries reads how often an entry was delivered, so
 * the worker can stop retrying a poison command; chat_bus_refresh keeps
 * entries a slow worker still holds from looking abandoned.
 *
 * Failure handling: any command that finds the connection broken (or a
 * reply not arriving within 5 s) frees the context and returns failure;
 * the worker then calls chat_bus_connect, which retries with backoff and
 * jitter and recreates the consumer groups (a Redis restart without
 * persistence loses them).  Error replies are logged and returned as
 * failures without dropping the connection.
 *
 * The rest of the bus is in bus_reply.c (answers, acks, dead letters) and
 * bus_liveness.c (heartbeats, housekeeping).
 *
 * What it does not do: decide anything.  Which entry to ack, answer or
 * dead-letter is worker.c's business; these files only speak Redis.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "chat_lanes.h"
#include "chat_protocol.h"
#include "log.h"


#define CHAT_BUS_BACKOFF_MIN_MS   100
#define CHAT_BUS_BACKOFF_MAX_MS   5000

/* XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS <keys> <ids> */
#define CHAT_BUS_READ_FIXED       9
#define CHAT_BUS_READ_COUNT_ARG   5
#define CHAT_BUS_READ_BLOCK_ARG   7

#define CHAT_BUS_STREAM_LEN       64


/* ------------------------------------------------------------------------
 * Connection
 * --------------------------------------------------------------------- */

void
chat_bus_lost(chat_bus_t *bus)
{
    chat_log_error("redis: %s", chat_router_error(&bus->route));
    chat_router_close(&bus->route);
}


/* Sends a command; NULL when the connection is gone (and now freed). */
redisReply *
chat_bus_command(chat_bus_t *bus, int argc, const char **argv,
    const size_t *argvlen)
{
    redisReply  *r;

    if (!chat_router_ok(&bus->route)) {
        return NULL;
    }

    r = chat_router_command_argv(&bus->route, argc, argv, argvlen);
    if (r == NULL) {
        chat_bus_lost(bus);
    }

    return r;
}


redisReply *
chat_bus_script(chat_bus_t *bus, chat_script_t *script, int argc,
    const char **argv, const size_t *argvlen)
{
    int           i, n;
    size_t       *lens;
    redisReply   *r;
    const char  **args, *load[3];

    args = malloc((argc + 2) * sizeof(char *));
    lens = malloc((argc + 2) * sizeof(size_t));
    if (args == NULL || lens == NULL) {
        free(args);
        free(lens);
        return NULL;
    }

    args[0] = "EVALSHA";
    args[1] = chat_script_sha(script);
    for (i = 0; i < 2; i++) {
        lens[i] = strlen(args[i]);
    }
    for (i = 0; i < argc; i++) {
        args[i + 2] = argv[i];
        lens[i + 2] = argvlen ? argvlen[i] : strlen(argv[i]);
    }

    r = NULL;
    for (n = 0; n < 2; n++) {
        r = chat_bus_command(bus, argc + 2, args, lens);

        if (n > 0 || r == NULL || r->type != REDIS_REPLY_ERROR
            || !chat_script_noscript(r->str, r->len))
        {
            break;
        }

        /* not in Redis' cache: load it, run it again */
        freeReplyObject(r);
        chat_log_info("redis: loading the %s script", script->name);
        load[0] = "SCRIPT";
        load[1] = "LOAD";
        load[2] = script->text;
        r = chat_bus_command(bus, 3, load, NULL);
        if (chat_bus_check(r, "SCRIPT LOAD") != 0) {
            break;
        }
        freeReplyObject(r);
        r = NULL;
    }

    free(args);
    free(lens);

    return r;
}


/* 0 when r is a reply and not an error reply; logs the error. */
int
chat_bus_check(redisReply *r, const char *what)
{
    if (r == NULL) {
        return -1;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        chat_log_error("redis: %s: %s", what, r->str);
        return -1;
    }

    return 0;
}


int
chat_bus_replies(chat_bus_t *bus, size_t n, const char *what)
{
    int     failed;
    size_t  i;
    void   *reply;

    failed = 0;

    for (i = 0; i < n; i++) {
        if (chat_router_get_reply(&bus->route, &reply) != REDIS_OK) {
            chat_bus_lost(bus);
            return -1;
        }

        if (chat_bus_check(reply, what) != 0) {
            failed++;
        }

        freeReplyObject(reply);
    }

    return failed;
}


int
chat_bus_init(chat_bus_t *bus, const chat_config_t *cfg,
    const char *consumer)
{
    int  i, n;

    memset(bus, 0, sizeof(*bus));
    bus->cfg = cfg;
    bus->consumer = consumer;
    chat_router_init(&bus->route, cfg->redis_host, cfg->redis_port,
                    cfg->redis_user, cfg->redis_password);

    n = cfg->shards;

    bus->streams = calloc(n, sizeof(char *));
    bus->cursors = calloc(n, sizeof(*bus->cursors));
    bus->read_argc = CHAT_BUS_READ_FIXED + 2 * n;
    bus->read_argv = calloc(bus->read_argc, sizeof(char *));
    bus->read_argvlen = calloc(bus->read_argc, sizeof(size_t));

    if (bus->streams == NULL || bus->cursors == NULL
        || bus->read_argv == NULL || bus->read_argvlen == NULL)
    {
        goto err;
    }

    for (i = 0; i < n; i++) {
        bus->streams[i] = malloc(CHAT_BUS_STREAM_LEN);
        if (bus->streams[i] == NULL
            || chat_lane_stream(bus->streams[i], CHAT_BUS_STREAM_LEN,
                                cfg->lane, (unsigned) i) == 0)
        {
            goto err;
        }

        strcpy(bus->cursors[i], "0-0");
    }

    strcpy(bus->read_count, "1");   /* both set by chat_bus_read */
    strcpy(bus->read_block, "1000");

    bus->read_argv[0] = "XREADGROUP";
    bus->read_argv[1] = "GROUP";
    bus->read_argv[2] = CHAT_CMD_GROUP;
    bus->read_argv[3] = consumer;
    bus->read_argv[4] = "COUNT";
    bus->read_argv[5] = bus->read_count;
    bus->read_argv[6] = "BLOCK";
    bus->read_argv[7] = bus->read_block;
    bus->read_argv[8] = "STREAMS";

    for (i = 0; i < n; i++) {
        bus->read_argv[CHAT_BUS_READ_FIXED + i] = bus->streams[i];
        bus->read_argv[CHAT_BUS_READ_FIXED + n + i] = ">";
    }

    for (i = 0; i < bus->read_argc; i++) {
        bus->read_argvlen[i] = strlen(bus->read_argv[i]);
    }

    return 0;

err:

    chat_bus_free(bus);
    return -1;
}


void
chat_bus_free(chat_bus_t *bus)
{
    int  i;

    chat_router_close(&bus->route);

    for (i = 0; bus->streams != NULL && i < bus->cfg->shards; i++) {
        free(bus->streams[i]);
    }

    free(bus->streams);
    free(bus->cursors);
    free(bus->read_argv);
    free(bus->read_argvlen);

    bus->streams = NULL;
    bus->cursors = NULL;
    bus->read_argv = NULL;
    bus->read_argvlen = NULL;
}


/*
 * Warns when Redis keeps no append-only file.  Commands and replies only
 * pass through Redis (PostgreSQL is the record), but without AOF a Redis
 * restart forgets commands not yet consumed, and their senders then wait
 * for answers that never come (they retry with the same key, so nothing is
 * doubled, but the restart is not invisible).  A warning, not a refusal:
 * some operators accept that on purpose.  A CONFIG command disabled by the
 * operator (rename-command, ACL) only means we cannot tell.
 */
static void
chat_bus_check_persistence(chat_bus_t *bus)
{
    redisReply  *r;

    r = chat_router_commandf(&bus->route, "CONFIG GET appendonly");

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2
        || r->element[1]->type != REDIS_REPLY_STRING)
    {
        chat_log_info("redis: could not read appendonly (CONFIG disabled?); "
                      "cannot tell whether commands survive a restart");

    } else if (strcmp(r->element[1]->str, "yes") != 0) {
        chat_log_warn("redis: appendonly is off: commands not yet consumed "
                      "are lost if Redis restarts (set appendonly yes)");
    }

    freeReplyObject(r);
}


int
chat_bus_connect(chat_bus_t *bus, volatile sig_atomic_t *stop)
{
    int64_t  delay, until;

    while (!*stop) {
        if (chat_router_connect(&bus->route) == 0) {
            if (chat_bus_ensure_groups(bus) == 0) {
                chat_log_info("redis: connected to %s %s:%d, consumer %s",
                              bus->route.cluster ? "the cluster of"
                                                 : "the server at",
                              bus->cfg->redis_host, bus->cfg->redis_port,
                              bus->consumer);
                chat_bus_check_persistence(bus);
                bus->backoff_ms = 0;
                return 0;
            }

            chat_router_close(&bus->route);

        } else {
            chat_log_error("redis: %s", chat_router_error(&bus->route));
        }

        bus->backoff_ms = bus->backoff_ms ? bus->backoff_ms * 2
                                          : CHAT_BUS_BACKOFF_MIN_MS;
        if (bus->backoff_ms > CHAT_BUS_BACKOFF_MAX_MS) {
            bus->backoff_ms = CHAT_BUS_BACKOFF_MAX_MS;
        }

        /* 7/8 to 9/8 of the backoff, so workers do not reconnect in step */
        delay = bus->backoff_ms - bus->backoff_ms / 8
                + random() % (bus->backoff_ms / 4 + 1);

        chat_log_warn("redis: retrying in %lld ms", (long long) delay);

        until = chat_mono_ms() + delay;
        while (!*stop && chat_mono_ms() < until) {
            chat_sleep_ms(until - chat_mono_ms() < 200
                          ? until - chat_mono_ms() : 200);
        }
    }

    return -1;
}


int
chat_bus_ok(const chat_bus_t *bus)
{
    return chat_router_ok(&bus->route);
}


int
chat_bus_ensure_groups(chat_bus_t *bus)
{
    int          i, rc;
    const char  *argv[6];
    redisReply  *r;

    argv[0] = "XGROUP";
    argv[1] = "CREATE";
    argv[3] = CHAT_CMD_GROUP;
    argv[4] = "0";
    argv[5] = "MKSTREAM";

    for (i = 0; i < bus->cfg->shards; i++) {
        argv[2] = bus->streams[i];

        r = chat_bus_command(bus, 6, argv, NULL);
        if (r == NULL) {
            return -1;
        }

        rc = 0;
        if (r->type == REDIS_REPLY_ERROR
            && strncmp(r->str, "BUSYGROUP", 9) != 0)
        {
            chat_log_error("redis: XGROUP CREATE %s: %s", argv[2], r->str);
            rc = -1;
        }

        freeReplyObject(r);

        if (rc != 0) {
            return -1;
        }
    }

    return 0;
}


/* ------------------------------------------------------------------------
 * Reading and reclaiming
 * --------------------------------------------------------------------- */

redisReply *
chat_bus_read(chat_bus_t *bus, int count, int block_ms)
{
    redisReply  *r;

    snprintf(bus->read_count, sizeof(bus->read_count), "%d", count);
    snprintf(bus->read_block, sizeof(bus->read_block), "%d", block_ms);
    bus->read_argvlen[CHAT_BUS_READ_COUNT_ARG] = strlen(bus->read_count);
    bus->read_argvlen[CHAT_BUS_READ_BLOCK_ARG] = strlen(bus->read_block);

    if (!chat_router_ok(&bus->route)) {
        return NULL;
    }

    r = chat_router_read_streams(&bus->route, bus->read_argc, bus->read_argv,
                                bus->read_argvlen, CHAT_BUS_READ_FIXED,
                                bus->cfg->shards, block_ms);
    if (r == NULL) {
        chat_bus_lost(bus);
        return NULL;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        chat_log_error("redis: XREADGROUP: %s", r->str);

        if (strncmp(r->str, "NOGROUP", 7) == 0) {
            (void) chat_bus_ensure_groups(bus);
        }

        freeReplyObject(r);
        return NULL;
    }

    if (r->type != REDIS_REPLY_ARRAY && r->type != REDIS_REPLY_NIL) {
        chat_log_error("redis: XREADGROUP: unexpected reply type %d",
                       r->type);
        freeReplyObject(r);
        return NULL;
    }

    return r;
}


redisReply *
chat_bus_autoclaim(chat_bus_t *bus, int shard, int count_max)
{
    char         idle[16], count[16];
    const char  *argv[9];
    redisReply  *r;

    snprintf(idle, sizeof(idle), "%d", bus->cfg->claim_idle_ms);
    snprintf(count, sizeof(count), "%d", count_max);

    argv[0] = "XAUTOCLAIM";
    argv[1] = bus->streams[shard];
    argv[2] = CHAT_CMD_GROUP;
    argv[3] = bus->consumer;
    argv[4] = idle;
    argv[5] = bus->cursors[shard];
    argv[6] = "COUNT";
    argv[7] = count;

    r = chat_bus_command(bus, 8, argv, NULL);
    if (chat_bus_check(r, "XAUTOCLAIM") != 0) {
        if (r != NULL && strncmp(r->str, "NOGROUP", 7) == 0) {
            (void) chat_bus_ensure_groups(bus);
        }
        freeReplyObject(r);
        return NULL;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2
        || r->element[0]->type != REDIS_REPLY_STRING
        || r->element[0]->len >= sizeof(bus->cursors[shard])
        || r->element[1]->type != REDIS_REPLY_ARRAY)
    {
        chat_log_error("redis: XAUTOCLAIM: unexpected reply");
        freeReplyObject(r);
        return NULL;
    }

    memcpy(bus->cursors[shard], r->element[0]->str, r->element[0]->len + 1);

    return r;
}


long long
chat_bus_deliveries(chat_bus_t *bus, int shard, const char *id)
{
    long long    n;
    const char  *argv[6];
    redisReply  *r, *e;

    argv[0] = "XPENDING";
    argv[1] = bus->streams[shard];
    argv[2] = CHAT_CMD_GROUP;
    argv[3] = id;
    argv[4] = id;
    argv[5] = "1";

    r = chat_bus_command(bus, 6, argv, NULL);
    if (chat_bus_check(r, "XPENDING") != 0) {
        freeReplyObject(r);
        return -1;
    }

    n = -1;

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
        n = 0;

    } else if (r->type == REDIS_REPLY_ARRAY) {
        e = r->element[0];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 4
            && e->element[3]->type == REDIS_REPLY_INTEGER)
        {
            n = e->element[3]->integer;
        }
    }

    if (n < 0) {
        chat_log_error("redis: XPENDING: unexpected reply");
    }

    freeReplyObject(r);
    return n;
}


int
chat_bus_refresh(chat_bus_t *bus, int shard, const char **ids, size_t n)
{
    int           rc;
    size_t        i;
    const char  **argv;
    redisReply   *r;

    if (n == 0) {
        return 0;
    }

    argv = malloc((n + 6) * sizeof(char *));
    if (argv == NULL) {
        return -1;
    }

    argv[0] = "XCLAIM";
    argv[1] = bus->streams[shard];
    argv[2] = CHAT_CMD_GROUP;
    argv[3] = bus->consumer;
    argv[4] = "0";
    for (i = 0; i < n; i++) {
        argv[5 + i] = ids[i];
    }
    argv[5 + n] = "JUSTID";

    r = chat_bus_command(bus, (int) n + 6, argv, NULL);
    rc = chat_bus_check(r, "XCLAIM");

    freeReplyObject(r);
    free(argv);

    return rc;
}
