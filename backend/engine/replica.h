/*
 * replica.h: reads on a PostgreSQL streaming replica, with read-your-
 * writes for the writer.  See replica.c.
 */

#ifndef CHAT_REPLICA_H
#define CHAT_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "command.h"
#include "config.h"
#include "db.h"

typedef struct {
    chat_db_t   db;             /* the replica's connection */
    int         configured;     /* --pg-replica was given */
    int64_t     avoid_until;    /* lagging or not a replica: reads go to
                                   the primary until then (monotonic) */
    const char *state;          /* where reads went last, for logging a
                                   change once */

    /* reads routed since the last heartbeat, by where and why */
    uint64_t    to_replica;
    uint64_t    lagging;        /* behind the primary past the bound */
    uint64_t    behind;         /* not at a reader's own write in time */
    uint64_t    down;           /* no connection, or not a replica */

    char        app_name[64];   /* the worker's, with " (replica)" */
} chat_replica_t;

/* app_name: the worker's session name; the replica's adds " (replica)" */
void chat_replica_init(chat_replica_t *r, const chat_config_t *cfg,
    const char *app_name);

void chat_replica_close(chat_replica_t *r);

/*
 * The connection jobs[0..n) should run on: the replica when every job's
 * op may read there (CHAT_OP_REPLICA, ops.h), the replica is up, fresh,
 * and has replayed the last write of every job's user (and the last
 * write that touched the edge's cache, for CHAT_OP_REPLICA_CACHED ops),
 * waiting a short bound for it; else primary.  Never fails: any doubt
 * reads the primary.
 */
chat_db_t *chat_replica_route(chat_replica_t *r, chat_db_t *primary,
    chat_bus_t *bus, chat_job_t **jobs, size_t n);

/*
 * After jobs[0..n) committed on primary and before anyone is answered:
 * the primary's WAL position goes under each writer's key (and the
 * catalog's, for writes with a touches hook), so their next reads wait
 * for it on a replica.  Does nothing unless a replica is configured.
 * 0, or -1 when PostgreSQL or Redis failed (then nobody is answered:
 * the replays do it again).
 */
int chat_replica_note_writes(const chat_config_t *cfg, chat_db_t *primary,
    chat_bus_t *bus, chat_job_t **jobs, size_t n);

/* Adds the routing counts since the last call to CHAT_REPLICA_KEY. */
void chat_replica_publish(chat_replica_t *r, chat_bus_t *bus);

#endif /* CHAT_REPLICA_H */
