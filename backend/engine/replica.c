/*
 * replica.c: reads on a PostgreSQL streaming replica, with read-your-
 * writes for the writer.
 *
 * With --pg-replica, each worker keeps a second connection, to a hot
 * standby, beside its primary one.  A batch of reads whose every op says
 * it may read there (CHAT_OP_REPLICA in its area's table: history, sync,
 * the catalog's reads, search) runs on the replica; everything else
 * (writes, checkout, reads that are not marked) stays on the primary.
 *
 * Read-your-writes.  A replica replays the primary's WAL a little later,
 * so a user who has just sent a message could read history without it.
 * So every worker that commits a write, before it answers anyone, reads
 * the primary's WAL position (pg_current_wal_lsn(): our commit is
 * flushed, so it is at or past the commit record) and keeps it in Redis
 * under the writer's key, CHAT_LSN_USER_FMT, for CHAT_LSN_TTL_MS (a
 * script keeps the highest of concurrent writers' positions).  Writes the
 * edge's catalog cache depends on (ops with a touches hook) also raise
 * CHAT_LSN_CATALOG_KEY: catalog_cache.c promises that a read started
 * after a write's cache bump sees the write, and a reader that is not the
 * writer would otherwise store a stale page under the new generation.
 * Before a batch runs on the replica, the worker GETs the keys of the
 * batch's users (and the catalog's, for CHAT_OP_REPLICA_CACHED ops) in
 * one round trip and asks the replica, every few milliseconds for up to
 * CHAT_REPLICA_WAIT_MS, whether it has replayed the highest of them.  If
 * it has not, the batch reads the primary: a slow replica costs a little
 * latency, never a stale read of one's own write.
 *
 * Lag and failure.  The same query says whether the replica is fresh:
 * it has replayed all it received, or its last replayed commit is less
 * than CHAT_REPLICA_LAG_MS old (the usual way to measure standby lag
 * without asking the primary).  A replica that is not fresh, or is no
 * longer in recovery (it was promoted: it is a primary of its own now),
 * is avoided for CHAT_REPLICA_AVOID_MS, then asked again.  A replica
 * that is down is reconnected with db.c's backoff; meanwhile reads go to
 * the primary.  A batch that fails on the replica (the connection died
 * under it, a conflict with recovery cancelled it) runs again on the
 * primary at once (worker.c), so nothing is left unanswered.
 *
 * Counting.  Where reads went (replica, or the primary because the
 * replica was lagging, behind a reader's write, or down) is added up per
 * worker and HINCRBY'd into CHAT_REPLICA_KEY with the heartbeat: the
 * operator's view, and the tests'.
 *
 * What it does not do: know which ops read (their area's table says),
 * balance over several replicas, or notice a replica whose WAL receiver
 * has lost the primary while it has replayed all it received: that one
 * looks fresh, and only the writers' own keys (for CHAT_LSN_TTL_MS) keep
 * their reads current.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "chat_protocol.h"
#include "log.h"
#include "ops.h"
#include "replica.h"


#define CHAT_REPLICA_WAIT_MS   100      /* for a reader's own write */
#define CHAT_REPLICA_POLL_MS   3
#define CHAT_REPLICA_LAG_MS    "1000"   /* fresh: behind by less */
#define CHAT_REPLICA_AVOID_MS  1000     /* lagging: primary only, this long */
#define CHAT_REPLICA_USERS_MAX 64       /* distinct users asked per batch */

/* the highest of the stored and the new position, for CHAT_LSN_TTL_MS */
#define CHAT_REPLICA_KEEP_MAX_LUA                                            \
    "local c = redis.call('GET', KEYS[1]) "                                  \
    "if not c or c < ARGV[1] then "                                          \
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "                    \
    "else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "                      \
    "return 1"


void
chat_replica_init(chat_replica_t *r, const chat_config_t *cfg,
    const char *app_name)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->app_name, sizeof(r->app_name), "%s (replica)", app_name);
    chat_db_init(&r->db, cfg->pg_replica != NULL ? cfg->pg_replica : "",
                 r->app_name);
    r->db.pooled = 0;           /* --pg-pooler is --pg's: this one is direct */
    r->configured = cfg->pg_replica != NULL;
    r->state = "replica";
}


void
chat_replica_close(chat_replica_t *r)
{
    chat_db_close(&r->db);
}


/* Logs where reads go when that changes; counts the batch. */
static chat_db_t *
chat_replica_use(chat_replica_t *r, chat_db_t *primary, const char *state,
    uint64_t *count)
{
    (*count)++;

    if (strcmp(r->state, state) != 0) {
        if (strcmp(state, "replica") == 0) {
            chat_log_info("postgres replica: reads go to the replica again");
        } else {
            chat_log_warn("postgres replica: %s; reads go to the primary",
                          state);
        }
        r->state = state;
    }

    return strcmp(state, "replica") == 0 ? &r->db : primary;
}


/* ------------------------------------------------------------------------
 * Positions: "X/Y" (pg_lsn's text) and 16 hex digits (Redis' text)
 * --------------------------------------------------------------------- */

static int
chat_replica_lsn_parse(const char *text, uint64_t *lsn)
{
    unsigned  hi, lo;
    char      end;

    if (sscanf(text, "%X/%X%c", &hi, &lo, &end) != 2) {
        return -1;
    }

    *lsn = ((uint64_t) hi << 32) | lo;
    return 0;
}


static void
chat_replica_lsn_text(uint64_t lsn, char *buf, size_t size)
{
    snprintf(buf, size, "%X/%X", (unsigned) (lsn >> 32),
             (unsigned) (lsn & 0xffffffffu));
}


/*
 * Reads the n replies of the commands appended on the bus: 0 when none
 * failed, with *max the highest position among the string replies (GETs
 * of CHAT_LSN_* keys); -1 when one was an error (logged as what) or the
 * connection broke (then it is freed).
 */
static int
chat_replica_replies(chat_bus_t *bus, size_t n, const char *what,
    uint64_t *max)
{
    int          rc;
    size_t       i;
    uint64_t     lsn;
    redisReply  *reply;

    rc = 0;

    for (i = 0; i < n; i++) {
        if (!chat_bus_ok(bus)
            || chat_router_get_reply(&bus->route, (void **) &reply) != REDIS_OK)
        {
            if (chat_bus_ok(bus)) {
                chat_bus_lost(bus);
            }
            return -1;
        }

        if (chat_bus_check(reply, what) != 0) {
            rc = -1;

        } else if (reply->type == REDIS_REPLY_STRING) {
            lsn = strtoull(reply->str, NULL, 16);
            if (lsn > *max) {
                *max = lsn;
            }
        }

        freeReplyObject(reply);
    }

    return rc;
}


/* ------------------------------------------------------------------------
 * Routing reads
 * --------------------------------------------------------------------- */

/*
 * The highest position the batch's readers must see: their own last
 * writes and, for cached reads, the catalog's.  0 when none is known.
 * -1 when Redis failed (then the caller reads the primary).
 */
static int
chat_replica_needed(chat_bus_t *bus, chat_job_t **jobs, size_t n,
    uint64_t *need)
{
    char         keys[CHAT_REPLICA_USERS_MAX + 1][48];
    size_t       i, j, k;
    int64_t      uids[CHAT_REPLICA_USERS_MAX];

    *need = 0;
    k = 0;

    for (i = 0; i < n; i++) {
        if (jobs[i]->cmd->uid <= 0) {
            continue;
        }

        for (j = 0; j < k && uids[j] != jobs[i]->cmd->uid; j++) {
            /* seen? */
        }

        if (j < k) {
            continue;
        }

        if (k == CHAT_REPLICA_USERS_MAX) {
            return -1;                  /* too many to ask: the primary */
        }

        uids[k] = jobs[i]->cmd->uid;
        snprintf(keys[k], sizeof(keys[k]), CHAT_LSN_USER_FMT,
                 (long long) uids[k]);
        k++;
    }

    for (i = 0; i < n; i++) {
        if (jobs[i]->op->flags & CHAT_OP_REPLICA_CACHED) {
            snprintf(keys[k++], sizeof(keys[0]), "%s", CHAT_LSN_CATALOG_KEY);
            break;
        }
    }

    if (k == 0) {
        return 0;
    }

    if (!chat_bus_ok(bus)) {
        return -1;
    }

    /* one GET each (not MGET: the keys live in different cluster slots),
     * in one round trip */
    for (i = 0; i < k; i++) {
        if (chat_router_appendf(&bus->route, "GET %s", keys[i]) != REDIS_OK) {
            chat_bus_lost(bus);
            return -1;
        }
    }

    return chat_replica_replies(bus, k, "GET chat:lsn", need);
}


/*
 * Asks the replica about need: 1 when it has replayed it, 0 when not
 * yet, CHAT_REPLICA_LAGGING when it is behind the primary past the bound
 * or is no replica, -1 when the query failed (the connection is closed
 * if it broke).
 */
#define CHAT_REPLICA_LAGGING  2

static int
chat_replica_ask(chat_replica_t *r, const char *need)
{
    int          rc;
    PGresult    *res;
    const char  *values[1];

    values[0] = need;

    res = chat_db_query(&r->db,
        "SELECT pg_is_in_recovery(),"
        " coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false),"
        " coalesce(pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"
        "   OR clock_timestamp() - pg_last_xact_replay_timestamp()"
        "      < interval '" CHAT_REPLICA_LAG_MS " ms', false)",
        1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0
        || strcmp(PQgetvalue(res, 0, 2), "t") != 0)
    {
        rc = CHAT_REPLICA_LAGGING;
    } else {
        rc = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    }

    PQclear(res);
    return rc;
}


static void
chat_replica_sleep_ms(int ms)
{
    struct timespec  ts;

    ts.tv_sec = 0;
    ts.tv_nsec = (long) ms * 1000000L;
    nanosleep(&ts, NULL);
}


chat_db_t *
chat_replica_route(chat_replica_t *r, chat_db_t *primary, chat_bus_t *bus,
    chat_job_t **jobs, size_t n)
{
    int       rc;
    char      text[24];
    size_t    i;
    int64_t   now, until;
    uint64_t  need;

    if (!r->configured || n == 0) {
        return primary;
    }

    for (i = 0; i < n; i++) {
        if (!(jobs[i]->op->flags & CHAT_OP_REPLICA)
            || (jobs[i]->op->flags & CHAT_OP_LOGGED))
        {
            return primary;             /* not a read the replica may do */
        }
    }

    now = chat_mono_ms();

    if (now < r->avoid_until) {
        return chat_replica_use(r, primary, "the replica is lagging",
                                &r->lagging);
    }

    if (chat_db_reconnect(&r->db) != 0) {
        return chat_replica_use(r, primary, "the replica is down",
                                &r->down);
    }

    if (chat_replica_needed(bus, jobs, n, &need) != 0) {
        /* not knowing what the readers wrote, do not guess */
        return chat_replica_use(r, primary,
                                "the readers' last writes are unknown",
                                &r->behind);
    }

    chat_replica_lsn_text(need, text, sizeof(text));
    until = now + CHAT_REPLICA_WAIT_MS;

    for ( ;; ) {
        rc = chat_replica_ask(r, text);

        if (rc == 1) {
            return chat_replica_use(r, primary, "replica", &r->to_replica);
        }

        if (rc == -1) {
            return chat_replica_use(r, primary, "the replica is down",
                                    &r->down);
        }

        if (rc == CHAT_REPLICA_LAGGING) {
            r->avoid_until = chat_mono_ms() + CHAT_REPLICA_AVOID_MS;
            return chat_replica_use(r, primary, "the replica is lagging",
                                    &r->lagging);
        }

        if (chat_mono_ms() >= until) {
            return chat_replica_use(r, primary,
                                    "the replica is behind a reader's write",
                                    &r->behind);
        }

        chat_replica_sleep_ms(CHAT_REPLICA_POLL_MS);
    }
}


/* ------------------------------------------------------------------------
 * Remembering writes
 * --------------------------------------------------------------------- */

/* EVAL the keep-the-highest script on key; appended, not yet read. */
static int
chat_replica_append_keep(chat_bus_t *bus, const char *key, const char *lsn)
{
    return chat_router_appendf(&bus->route, "EVAL %s 1 %s %s %s",
                               CHAT_REPLICA_KEEP_MAX_LUA, key, lsn,
                               CHAT_LSN_TTL_MS) == REDIS_OK ? 0 : -1;
}


int
chat_replica_note_writes(const chat_config_t *cfg, chat_db_t *primary,
    chat_bus_t *bus, chat_job_t **jobs, size_t n)
{
    int          rc;
    char         key[48], hex[24];
    size_t       i, sent;
    uint64_t     lsn;
    PGresult    *res;
    chat_job_t  *job;
    int          catalog;

    if (cfg->pg_replica == NULL) {
        return 0;
    }

    sent = 0;
    catalog = 0;

    for (i = 0; i < n; i++) {
        job = jobs[i];
        if (job->done && (job->op->flags & CHAT_OP_LOGGED)
            && job->status < 400
            && (job->cmd->uid > 0 || job->op->touches != NULL))
        {
            sent++;
            catalog |= job->op->touches != NULL;
        }
    }

    if (sent == 0) {
        return 0;
    }

    res = chat_db_query(primary, "SELECT pg_current_wal_lsn()", 0, NULL,
                        NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = chat_replica_lsn_parse(PQgetvalue(res, 0, 0), &lsn);
    PQclear(res);

    if (rc != 0 || !chat_bus_ok(bus)) {
        return -1;
    }

    snprintf(hex, sizeof(hex), "%016llX", (unsigned long long) lsn);
    sent = 0;

    for (i = 0; i < n; i++) {
        job = jobs[i];
        if (!job->done || !(job->op->flags & CHAT_OP_LOGGED)
            || job->status >= 400 || job->cmd->uid <= 0)
        {
            continue;
        }

        snprintf(key, sizeof(key), CHAT_LSN_USER_FMT,
                 (long long) job->cmd->uid);
        if (chat_replica_append_keep(bus, key, hex) != 0) {
            chat_bus_lost(bus);
            return -1;
        }
        sent++;
    }

    if (catalog) {
        if (chat_replica_append_keep(bus, CHAT_LSN_CATALOG_KEY, hex) != 0) {
            chat_bus_lost(bus);
            return -1;
        }
        sent++;
    }

    lsn = 0;
    return chat_replica_replies(bus, sent, "EVAL (keep the write's position)",
                                &lsn);
}


void
chat_replica_publish(chat_replica_t *r, chat_bus_t *bus)
{
    size_t       i;
    redisReply  *reply;
    char         num[24];
    const char  *argv[4];

    static const char *const  fields[] = {
        "replica", "lagging", "behind", "down"
    };
    uint64_t  *counts[] = {
        &r->to_replica, &r->lagging, &r->behind, &r->down
    };

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (*counts[i] == 0 || !chat_bus_ok(bus)) {
            continue;
        }

        snprintf(num, sizeof(num), "%llu", (unsigned long long) *counts[i]);
        argv[0] = "HINCRBY";
        argv[1] = CHAT_REPLICA_KEY;
        argv[2] = fields[i];
        argv[3] = num;

        reply = chat_bus_command(bus, 4, argv, NULL);
        if (chat_bus_check(reply, "HINCRBY " CHAT_REPLICA_KEY) == 0) {
            *counts[i] = 0;
        }
        freeReplyObject(reply);
    }
}
