/*
 * bus_liveness.c: worker heartbeats and the group's housekeeping.
 *
 * Every worker HSETs chat:workers <consumer> "<unix_ms>:<pg>" about once a
 * second; the edge's health endpoint reads the hash (a heartbeat older
 * than CHAT_WORKER_STALE_MS counts as a dead worker).  A worker that stops
 * cleanly HDELs its own field; fields of workers that died are HDELed by
 * any worker once they are older than 60 s.
 *
 * Consumers of dead workers stay in the consumer group forever unless
 * removed, and XINFO CONSUMERS keeps growing.  A consumer is removed
 * (XGROUP DELCONSUMER) only when all of these hold: nothing pending (a
 * deleted consumer's pending entries would be dropped from the group and
 * never redelivered), idle for at least 60 s, not ourselves, and no
 * heartbeat in the last 60 s.  A live worker heartbeats before every read,
 * so it is never a candidate.
 *
 * Consumed entries leave the command streams here too.  The edge's XADD
 * caps a stream only loosely (a memory safety valve), so trimming is the
 * workers' job, and only of what the group is done with: everything below
 * the oldest pending entry, or below the last delivered one when nothing
 * is pending (XTRIM MINID, exact, with every heartbeat: the edge's lane
 * bound leans on the length, see chat_bus_trim).  An entry no worker has
 * read yet, or one a worker still holds, is never trimmed, however long
 * the backlog.
 *
 * What it does not do: judge health (the edge does) or restart anything
 * (the supervisor does).
 */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "chat_lanes.h"
#include "chat_protocol.h"
#include "log.h"
#include "stats.h"


#define CHAT_BUS_HEARTBEAT_TTL    60000     /* ms */
#define CHAT_BUS_CONSUMER_IDLE    60000     /* ms */


/* Checks *r, the reply to what, an earlier command of the heartbeat's
 * pipeline, frees it and reads the next reply into *r.  0, or -1 when
 * *r was an error reply (logged; the next one is freed too) or the
 * connection is lost. */
static int
chat_bus_heartbeat_next(chat_bus_t *bus, redisReply **r, const char *what)
{
    int  rc;

    rc = chat_bus_check(*r, what);
    freeReplyObject(*r);

    if (chat_router_get_reply(&bus->route, (void **) r) != REDIS_OK) {
        chat_bus_lost(bus);
        return -1;
    }

    if (rc != 0) {
        freeReplyObject(*r);
        return -1;
    }

    return 0;
}


int
chat_bus_heartbeat(chat_bus_t *bus, int pg_ok)
{
    int          rc, stats;
    char         value[32], figures[1024];
    redisReply  *r;

    if (!chat_bus_ok(bus)) {
        return -1;
    }

    snprintf(value, sizeof(value), "%lld:%d", (long long) chat_time_ms(),
             pg_ok ? 1 : 0);

    /* a command worker also tells the edge its lane's limits
     * (chat_lanes.h), in the same round trip */
    if (bus->lane_limits[0] != '\0') {
        if (chat_router_appendf(&bus->route, "HSET %s %s %s", CHAT_LANES_KEY,
                                chat_lane_name(bus->cfg->lane),
                                bus->lane_limits)
            != REDIS_OK)
        {
            chat_bus_lost(bus);
            return -1;
        }
    }

    /* and its figures (stats.c), also in the same round trip */
    stats = bus->lane_limits[0] != '\0'
            && chat_stats_format(figures, sizeof(figures),
                                 chat_lane_name(bus->cfg->lane)) > 0;
    if (stats
        && chat_router_appendf(&bus->route, "HSET %s %s %s", CHAT_STATS_KEY,
                               bus->consumer, figures) != REDIS_OK)
    {
        chat_bus_lost(bus);
        return -1;
    }

    r = chat_router_commandf(&bus->route, "HSET %s %s %s", CHAT_WORKERS_KEY,
                             bus->consumer, value);
    if (r == NULL) {
        chat_bus_lost(bus);
        return -1;
    }

    /* that was the lanes' reply; the figures' or the heartbeat's comes
     * next */
    if (bus->lane_limits[0] != '\0'
        && chat_bus_heartbeat_next(bus, &r, "HSET " CHAT_LANES_KEY) != 0)
    {
        return -1;
    }

    /* that was the figures' reply (after the lanes') */
    if (stats && chat_bus_heartbeat_next(bus, &r, "HSET " CHAT_STATS_KEY) != 0)
    {
        return -1;
    }

    rc = chat_bus_check(r, "HSET " CHAT_WORKERS_KEY);
    freeReplyObject(r);

    return rc;
}


/* The heartbeat time of consumer in an HGETALL reply, or 0. */
static long long
chat_bus_heartbeat_of(const redisReply *all, const char *consumer)
{
    size_t  i;

    for (i = 0; i + 1 < all->elements; i += 2) {
        if (strcmp(all->element[i]->str, consumer) == 0) {
            return strtoll(all->element[i + 1]->str, NULL, 10);
        }
    }

    return 0;
}


static void
chat_bus_prune_consumers(chat_bus_t *bus, int shard, const redisReply *all,
    long long now)
{
    size_t        i, k;
    long long     pending, idle;
    const char   *name;
    redisReply   *r, *c, *d;

    r = chat_router_commandf(&bus->route, "XINFO CONSUMERS %s %s",
                             bus->streams[shard], CHAT_CMD_GROUP);
    if (r == NULL) {
        chat_bus_lost(bus);
        return;
    }

    if (chat_bus_check(r, "XINFO CONSUMERS") != 0
        || r->type != REDIS_REPLY_ARRAY)
    {
        freeReplyObject(r);
        return;
    }

    for (i = 0; i < r->elements && chat_bus_ok(bus); i++) {
        c = r->element[i];
        name = NULL;
        pending = -1;
        idle = -1;

        for (k = 0; c->type == REDIS_REPLY_ARRAY && k + 1 < c->elements;
             k += 2)
        {
            if (c->element[k]->type != REDIS_REPLY_STRING) {
                continue;
            }
            if (strcmp(c->element[k]->str, "name") == 0) {
                name = c->element[k + 1]->str;
            } else if (strcmp(c->element[k]->str, "pending") == 0) {
                pending = c->element[k + 1]->integer;
            } else if (strcmp(c->element[k]->str, "idle") == 0) {
                idle = c->element[k + 1]->integer;
            }
        }

        /* only consumers that hold nothing: deleting one drops its
         * pending entries from the group for good */
        if (name == NULL || pending != 0 || idle < CHAT_BUS_CONSUMER_IDLE
            || strcmp(name, bus->consumer) == 0
            || now - chat_bus_heartbeat_of(all, name)
               < CHAT_BUS_HEARTBEAT_TTL)
        {
            continue;
        }

        d = chat_router_commandf(&bus->route, "XGROUP DELCONSUMER %s %s %s",
                                 bus->streams[shard], CHAT_CMD_GROUP, name);
        if (d == NULL) {
            chat_bus_lost(bus);
            break;
        }

        if (chat_bus_check(d, "XGROUP DELCONSUMER") == 0) {
            chat_log_info("removed idle consumer %s from %s", name,
                          bus->streams[shard]);
        }

        freeReplyObject(d);
    }

    freeReplyObject(r);
}


/*
 * XTRIM what the group has finished with on one shard.  XPENDING is asked
 * before XINFO GROUPS: an entry delivered between the two answers is
 * above the older threshold, so the race can only trim less.
 */
/* "<ms>-<seq>" in id becomes the id right after it.  0, or -1 when id is
 * not a stream id. */
static int
chat_bus_next_id(char *id, size_t size)
{
    char                *dash, *end;
    unsigned long long   ms, seq;

    dash = strchr(id, '-');
    if (dash == NULL) {
        return -1;
    }

    ms = strtoull(id, &end, 10);
    if (end != dash) {
        return -1;
    }

    seq = strtoull(dash + 1, &end, 10);
    if (*end != '\0') {
        return -1;
    }

    if (seq == ULLONG_MAX) {
        ms++;
        seq = 0;
    } else {
        seq++;
    }

    snprintf(id, size, "%llu-%llu", ms, seq);
    return 0;
}


static void
chat_bus_trim_consumed(chat_bus_t *bus, int shard)
{
    int          from_pending;
    char         threshold[64];
    size_t       i, j;
    redisReply  *pending, *groups, *g, *t;

    threshold[0] = '\0';
    from_pending = 0;

    pending = chat_router_commandf(&bus->route, "XPENDING %s %s",
                                   bus->streams[shard], CHAT_CMD_GROUP);
    if (pending == NULL) {
        chat_bus_lost(bus);
        return;
    }

    if (pending->type == REDIS_REPLY_ARRAY && pending->elements >= 2
        && pending->element[0]->type == REDIS_REPLY_INTEGER
        && pending->element[0]->integer > 0
        && pending->element[1]->type == REDIS_REPLY_STRING)
    {
        snprintf(threshold, sizeof(threshold), "%s", pending->element[1]->str);
        from_pending = 1;
    }

    freeReplyObject(pending);

    if (threshold[0] == '\0') {
        groups = chat_router_commandf(&bus->route, "XINFO GROUPS %s",
                                      bus->streams[shard]);
        if (groups == NULL) {
            chat_bus_lost(bus);
            return;
        }

        for (i = 0; groups->type == REDIS_REPLY_ARRAY && i < groups->elements;
             i++)
        {
            g = groups->element[i];
            if (g->type != REDIS_REPLY_ARRAY) {
                continue;
            }

            /* name ... last-delivered-id ... as field/value pairs */
            for (j = 0; j + 1 < g->elements; j += 2) {
                if (g->element[j]->type == REDIS_REPLY_STRING
                    && strcmp(g->element[j]->str, "name") == 0
                    && strcmp(g->element[j + 1]->str, CHAT_CMD_GROUP) != 0)
                {
                    break;
                }

                if (g->element[j]->type == REDIS_REPLY_STRING
                    && strcmp(g->element[j]->str, "last-delivered-id") == 0
                    && g->element[j + 1]->type == REDIS_REPLY_STRING)
                {
                    snprintf(threshold, sizeof(threshold), "%s",
                             g->element[j + 1]->str);
                }
            }
        }

        freeReplyObject(groups);
    }

    if (threshold[0] == '\0' || strcmp(threshold, "0-0") == 0) {
        return;
    }

    /* nothing pending: the last delivered entry is finished too, so the
     * threshold is the next id after it and an idle stream ends empty
     * (its length is then exactly what waits unread) */
    if (!from_pending && chat_bus_next_id(threshold, sizeof(threshold)) != 0)
    {
        return;
    }

    /* exact, not "~": the edge bounds a lane by its depth, and a stream
     * whose lag Redis overstates (an XDEL, an AOF rewrite before a crash)
     * is capped by its length, which must then not carry a node's worth
     * of finished entries */
    t = chat_router_commandf(&bus->route, "XTRIM %s MINID %s",
                             bus->streams[shard], threshold);
    if (t == NULL) {
        chat_bus_lost(bus);
        return;
    }

    if (t->type == REDIS_REPLY_INTEGER && t->integer > 0) {
        chat_log_debug("%s: trimmed %lld consumed entries",
                       bus->streams[shard], t->integer);
    }

    freeReplyObject(t);
}


void
chat_bus_prune(chat_bus_t *bus)
{
    int          shard;
    size_t       i;
    long long    now;
    redisReply  *all, *d;

    if (!chat_bus_ok(bus)) {
        return;
    }

    all = chat_router_commandf(&bus->route, "HGETALL %s", CHAT_WORKERS_KEY);
    if (all == NULL) {
        chat_bus_lost(bus);
        return;
    }

    if (chat_bus_check(all, "HGETALL") != 0 || all->type != REDIS_REPLY_ARRAY)
    {
        freeReplyObject(all);
        return;
    }

    now = chat_time_ms();

    for (i = 0; i + 1 < all->elements && chat_bus_ok(bus); i += 2) {
        if (now - strtoll(all->element[i + 1]->str, NULL, 10)
            < CHAT_BUS_HEARTBEAT_TTL)
        {
            continue;
        }

        /* a dead worker's figures go with its heartbeat */
        d = chat_router_commandf(&bus->route, "HDEL %s %s", CHAT_STATS_KEY,
                                 all->element[i]->str);
        if (d == NULL) {
            chat_bus_lost(bus);
            break;
        }
        freeReplyObject(d);

        d = chat_router_commandf(&bus->route, "HDEL %s %s", CHAT_WORKERS_KEY,
                                 all->element[i]->str);
        if (d == NULL) {
            chat_bus_lost(bus);
            break;
        }

        freeReplyObject(d);
    }

    for (shard = 0; shard < bus->cfg->shards && chat_bus_ok(bus); shard++) {
        chat_bus_prune_consumers(bus, shard, all, now);
    }

    freeReplyObject(all);
}


void
chat_bus_trim(chat_bus_t *bus)
{
    int  shard;

    for (shard = 0; shard < bus->cfg->shards && chat_bus_ok(bus); shard++) {
        chat_bus_trim_consumed(bus, shard);
    }
}
