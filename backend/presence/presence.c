/*
 * presence.c: the presence process (one, beside the workers).
 *
 * Presence is decided in Redis (ngx_chat_module/ngx_chat_presence.c has
 * the whole picture; every presence script is in protocol/chat_scripts.c); this process turns its transitions into what
 * people see and what PostgreSQL keeps.  It loops over four jobs:
 *
 *   1. Transitions.  XREADGROUP GROUP presence presence ... STREAMS
 *      chat:presence:changes: entries {uid, status online|offline, ts}
 *      written atomically by the edge (online) and by the sweeper below
 *      (offline).  For each, one statement records users.presence and
 *      last_seen and finds everyone who shares a conversation with the
 *      user; the event
 *        {"type":"presence","user_id","status","last_seen"}
 *      goes to them through the ordinary fan-out (fanout.c), and the
 *      entry is acked.  The consumer name is fixed, so a restarted
 *      process first re-reads what its predecessor left unacked ("0"),
 *      in order.  An entry that cannot be parsed is logged and acked.
 *   2. The sweeper, every CHAT_PRESENCE_TICK_MS: one Lua script takes the
 *      users in chat:presence:due whose due time has passed, and for each
 *      looks at chat:online:{uid}.  A gateway field refreshed within the
 *      TTL means still online: the due time moves to that refresh + TTL.
 *      None means offline: the user leaves the due set and
 *      chat:presence:on, the stale hash is deleted, and an offline
 *      transition with the last time seen is XADDed, all atomically, so a
 *      user is declared offline once, and an edge announcing them online
 *      at the same moment is ordered before or after, never between.
 *      This is how a crashed nginx worker's users go offline: nothing of
 *      theirs is refreshed any more, so their due time passes, at most
 *      CHAT_PRESENCE_TTL_MS after the last refresh.
 *   3. Group receipts, every tick: conversations in receipt_pending whose
 *      window has passed (op_receipt.c queued them) get their coalesced
 *      receipt, per kind, to the senders of the messages newly covered.
 *   4. The membership cache, every tick: rebuilt when Redis lost it
 *      (membership_cache.c).
 *
 * Failures: PostgreSQL or Redis down means nothing is acked and the loop
 * reconnects with the usual backoff; the stream keeps the transitions
 * meanwhile (MAXLEN ~ 100000).  A crash between the sweeper's script and
 * the processing loses nothing either: the transition is in the stream.
 * Group receipts taken from receipt_pending by a process that then dies
 * are not sent; the next marker move in that group queues them again, and
 * the per-member markers (conv.receipts) are never lost.
 *
 * What it does not do: decide who is online (Redis and the edges do), or
 * deliver to clients (the gateways do).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "chat_protocol.h"
#include "chat_scripts.h"
#include "conv.h"
#include "conv_input.h"
#include "db.h"
#include "event.h"
#include "fanout.h"
#include "log.h"
#include "membership_cache.h"
#include "roles.h"


#define CHAT_PRESENCE_CHANGES  CHAT_PRESENCE_CHANGES_KEY
#define CHAT_PRESENCE_GROUP    "presence"
#define CHAT_PRESENCE_DUE      CHAT_PRESENCE_DUE_KEY
#define CHAT_PRESENCE_ON       CHAT_PRESENCE_ON_KEY
#define CHAT_PRESENCE_TICK_MS  500
#define CHAT_PRESENCE_SWEEP    "1000"     /* users per sweep, at most */
#define CHAT_PRESENCE_READ     "100"      /* transitions per read */


typedef struct {
    chat_bus_t      bus;
    chat_db_t       db;
    char            consumer[300];
    chat_events_t   events;
    int             backlog;        /* still re-reading our pending ones */
    int64_t         next_tick;
} chat_presence_t;


static volatile sig_atomic_t  chat_presence_stop;


/* XGROUP CREATE chat:presence:changes presence 0 MKSTREAM.  0 or -1. */
static int
chat_presence_group(chat_presence_t *p)
{
    int          rc;
    redisReply  *r;
    const char  *argv[6] = {
        "XGROUP", "CREATE", CHAT_PRESENCE_CHANGES, CHAT_PRESENCE_GROUP, "0",
        "MKSTREAM"
    };

    r = chat_bus_command(&p->bus, 6, argv, NULL);
    if (r == NULL) {
        return -1;
    }

    rc = 0;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
    {
        chat_log_error("redis: XGROUP CREATE %s: %s", CHAT_PRESENCE_CHANGES,
                       r->str);
        rc = -1;
    }

    freeReplyObject(r);
    p->backlog = 1;

    return rc;
}


/* The sweeper: see the file comment.  0 or -1. */
static int
chat_presence_sweep(chat_presence_t *p)
{
    int          rc;
    char         ttl[24];
    redisReply  *r;
    const char  *argv[6];

    snprintf(ttl, sizeof(ttl), "%d", chat_roles.presence_ttl_ms);

    argv[0] = "3";
    argv[1] = CHAT_PRESENCE_DUE;
    argv[2] = CHAT_PRESENCE_ON;
    argv[3] = CHAT_PRESENCE_CHANGES;
    argv[4] = ttl;
    argv[5] = CHAT_PRESENCE_SWEEP;

    r = chat_bus_script(&p->bus, &chat_script_presence_sweep, 6, argv, NULL);
    rc = chat_bus_check(r, "presence sweep");

    if (rc == 0 && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        chat_log_debug("presence sweep: %lld users went offline",
                       (long long) r->integer);
    }

    freeReplyObject(r);
    return rc;
}


/* Queues the presence event of one transition.  0, 1 when the entry is
 * unusable (logged; ack it anyway), or -1 (PostgreSQL). */
static int
chat_presence_apply(chat_presence_t *p, const redisReply *fields)
{
    int           rc;
    long          n;
    char         *end;
    cJSON        *ev;
    size_t        i;
    int64_t      *ids, uid;
    PGresult     *res;
    const char   *status, *ts, *csv, *values[3];

    uid = 0;
    status = NULL;
    ts = NULL;

    for (i = 0; fields && i + 1 < fields->elements; i += 2) {
        if (strcmp(fields->element[i]->str, CHAT_F_PRESENCE_UID) == 0) {
            uid = strtoll(fields->element[i + 1]->str, &end, 10);
            values[0] = fields->element[i + 1]->str;
            if (*end != '\0') {
                uid = 0;
            }
        } else if (strcmp(fields->element[i]->str, CHAT_F_PRESENCE_STATUS)
                   == 0)
        {
            status = fields->element[i + 1]->str;
        } else if (strcmp(fields->element[i]->str, CHAT_F_PRESENCE_TS) == 0) {
            ts = fields->element[i + 1]->str;
        }
    }

    if (uid <= 0 || status == NULL || ts == NULL
        || (strcmp(status, "online") != 0 && strcmp(status, "offline") != 0)
        || strspn(ts, "0123456789") != strlen(ts) || ts[0] == '\0')
    {
        chat_log_error("presence: malformed transition, skipped");
        return 1;
    }

    values[1] = status;
    values[2] = ts;

    res = chat_db_query_prepared(&p->db,
        "WITH u AS ("
        "  UPDATE users SET presence = $2, "
        "    last_seen = GREATEST(COALESCE(last_seen, '-infinity'), "
        "                         to_timestamp($3::bigint / 1000.0)) "
        "  WHERE id = $1 RETURNING last_seen) "
        "SELECT " CHAT_SQL_TIME("u.last_seen") ", "
        "  (SELECT string_agg(DISTINCT b.user_id::text, ',') "
        "   FROM conversation_members a "
        "   JOIN conversation_members b "
        "     ON b.conversation_id = a.conversation_id "
        "   WHERE a.user_id = $1 AND b.user_id <> $1 AND a.accepted "
        "     AND NOT " CHAT_SQL_BLOCKED("a.user_id", "b.user_id") ") "
        "FROM u",
        3, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 1)) {
        /* no such user, or nobody to tell */
        PQclear(res);
        return 0;
    }

    csv = PQgetvalue(res, 0, 1);

    rc = -1;
    n = chat_csv_ids_alloc(csv, &ids);
    ev = cJSON_CreateObject();

    if (n > 0 && ev != NULL
        && cJSON_AddStringToObject(ev, "type", "presence") != NULL
        && cJSON_AddNumberToObject(ev, "user_id", (double) uid) != NULL
        && cJSON_AddStringToObject(ev, "status", status) != NULL
        && cJSON_AddStringToObject(ev, "last_seen", PQgetvalue(res, 0, 0))
           != NULL
        && chat_events_add(&p->events, ev, ids, (size_t) n) == 0)
    {
        rc = 0;
    }

    if (rc != 0) {
        chat_log_error("presence: out of memory building an event");
        rc = 1;
    }

    cJSON_Delete(ev);
    free(ids);
    PQclear(res);

    return rc;
}


/* One read of transitions, applied, fanned out and acked.  0 or -1. */
static int
chat_presence_changes(chat_presence_t *p, int block_ms)
{
    int              rc, argc;
    char             block[24];
    size_t           i, nacked;
    redisReply      *r, *entries, *a;
    chat_events_t   *list;
    const char     **ack;
    const char      *argv[11];

    snprintf(block, sizeof(block), "%d", block_ms);

    /* one consumer with a fixed name: after a restart, what the previous
     * process left pending is read first ("0"), without blocking */
    argc = 0;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = CHAT_PRESENCE_GROUP;
    argv[argc++] = CHAT_PRESENCE_GROUP;
    argv[argc++] = "COUNT";
    argv[argc++] = CHAT_PRESENCE_READ;
    if (!p->backlog) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = CHAT_PRESENCE_CHANGES;
    argv[argc++] = p->backlog ? "0" : ">";

    r = chat_bus_command(&p->bus, argc, argv, NULL);

    if (chat_bus_check(r, "XREADGROUP " CHAT_PRESENCE_CHANGES) != 0) {
        freeReplyObject(r);
        return -1;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1
        || r->element[0]->elements != 2)
    {
        /* nil: nothing arrived while blocking */
        freeReplyObject(r);
        return 0;
    }

    entries = r->element[0]->element[1];

    if (p->backlog && entries->elements == 0) {
        p->backlog = 0;
    }

    ack = malloc((entries->elements + 3) * sizeof(char *));
    if (ack == NULL) {
        freeReplyObject(r);
        return -1;
    }

    ack[0] = "XACK";
    ack[1] = CHAT_PRESENCE_CHANGES;
    ack[2] = CHAT_PRESENCE_GROUP;
    nacked = 3;
    rc = 0;

    for (i = 0; i < entries->elements; i++) {
        rc = chat_presence_apply(p, entries->element[i]->element[1]);
        if (rc < 0) {
            break;
        }
        ack[nacked++] = entries->element[i]->element[0]->str;
    }

    if (p->events.n > 0) {
        list = &p->events;
        (void) chat_fanout(&p->bus, &list, 1);
        chat_events_clear(&p->events);
    }

    if (nacked > 3 && chat_bus_ok(&p->bus)) {
        a = chat_bus_command(&p->bus, (int) nacked, ack, NULL);
        (void) chat_bus_check(a, "XACK " CHAT_PRESENCE_CHANGES);
        freeReplyObject(a);
    }

    free(ack);
    freeReplyObject(r);

    return rc < 0 ? -1 : 0;
}


/* The coalesced receipts of one kind for one group, if its "everyone has
 * reached" seq moved.  0 or -1 (memory). */
static int
chat_presence_receipt(chat_presence_t *p, const char *cid, const char *kind,
    const char *seq, const char *csv)
{
    int       rc;
    long      n;
    cJSON    *ev;
    int64_t  *ids;

    if (csv[0] == '\0') {
        return 0;
    }

    rc = -1;
    n = chat_csv_ids_alloc(csv, &ids);
    ev = cJSON_CreateObject();

    if (n > 0 && ev != NULL
        && cJSON_AddStringToObject(ev, "type", "receipt") != NULL
        && cJSON_AddNumberToObject(ev, "conversation_id", strtod(cid, NULL))
           != NULL
        && cJSON_AddNullToObject(ev, "user_id") != NULL
        && cJSON_AddStringToObject(ev, "kind", kind) != NULL
        && cJSON_AddNumberToObject(ev, "seq", strtod(seq, NULL)) != NULL
        && cJSON_AddTrueToObject(ev, "aggregate") != NULL
        && chat_events_add(&p->events, ev, ids, (size_t) n) == 0)
    {
        rc = 0;
    }

    cJSON_Delete(ev);
    free(ids);

    return rc;
}


/* Group receipts that are due: see the file comment.  0 or -1. */
static int
chat_presence_receipts(chat_presence_t *p)
{
    int             i, n, rc;
    PGresult       *due, *res;
    chat_events_t  *list;
    const char     *values[1];

    due = chat_db_query(&p->db,
        "DELETE FROM receipt_pending WHERE conversation_id IN ("
        "  SELECT conversation_id FROM receipt_pending "
        "  WHERE due_at <= clock_timestamp() ORDER BY due_at LIMIT 100) "
        "RETURNING conversation_id",
        0, NULL, NULL, NULL);
    if (due == NULL) {
        return -1;
    }

    n = PQntuples(due);
    rc = 0;

    for (i = 0; i < n && rc == 0; i++) {
        values[0] = PQgetvalue(due, i, 0);

        /* prev: what the last receipt covered; up: what is covered now */
        res = chat_db_query_prepared(&p->db,
            "WITH agg AS ("
            "  SELECT min(last_delivered_seq) AS d, min(last_read_seq) AS r "
            "  FROM conversation_members WHERE conversation_id = $1), "
            "prev AS ("
            "  SELECT delivered_all, read_all FROM group_receipts "
            "  WHERE conversation_id = $1), "
            "up AS ("
            "  INSERT INTO group_receipts (conversation_id, delivered_all, "
            "                              read_all) "
            "  SELECT $1, d, r FROM agg WHERE d IS NOT NULL "
            "  ON CONFLICT (conversation_id) DO UPDATE SET "
            "    delivered_all = GREATEST(group_receipts.delivered_all, "
            "                             EXCLUDED.delivered_all), "
            "    read_all = GREATEST(group_receipts.read_all, "
            "                        EXCLUDED.read_all) "
            "  RETURNING delivered_all, read_all), "
            "b AS ("
            "  SELECT COALESCE((SELECT delivered_all FROM prev), 0) AS pd, "
            "         COALESCE((SELECT read_all FROM prev), 0) AS pr, "
            "         up.delivered_all AS nd, up.read_all AS nr FROM up) "
            "SELECT b.nd, b.nr, "
            "  CASE WHEN b.nd > b.pd THEN COALESCE(("
            "    SELECT string_agg(DISTINCT m.sender_id::text, ',') "
            "    FROM messages m JOIN conversation_members cm "
            "      ON cm.conversation_id = m.conversation_id "
            "     AND cm.user_id = m.sender_id "
            "    WHERE m.conversation_id = $1 "
            "      AND m.seq > b.pd AND m.seq <= b.nd), '') ELSE '' END, "
            "  CASE WHEN b.nr > b.pr THEN COALESCE(("
            "    SELECT string_agg(DISTINCT m.sender_id::text, ',') "
            "    FROM messages m JOIN conversation_members cm "
            "      ON cm.conversation_id = m.conversation_id "
            "     AND cm.user_id = m.sender_id "
            "    WHERE m.conversation_id = $1 "
            "      AND m.seq > b.pr AND m.seq <= b.nr), '') ELSE '' END "
            "FROM b",
            1, values, NULL, NULL);
        if (res == NULL) {
            rc = -1;
            break;
        }

        if (PQntuples(res) == 1
            && (chat_presence_receipt(p, values[0], "delivered",
                                      PQgetvalue(res, 0, 0),
                                      PQgetvalue(res, 0, 2)) != 0
                || chat_presence_receipt(p, values[0], "read",
                                         PQgetvalue(res, 0, 1),
                                         PQgetvalue(res, 0, 3)) != 0))
        {
            chat_log_error("group receipts: out of memory");
        }

        PQclear(res);
    }

    PQclear(due);

    if (p->events.n > 0 && chat_bus_ok(&p->bus)) {
        list = &p->events;
        (void) chat_fanout(&p->bus, &list, 1);
    }
    chat_events_clear(&p->events);

    return rc;
}


static void
chat_presence_loop(chat_presence_t *p)
{
    int64_t  now;

    while (!chat_presence_stop) {

        if (!chat_bus_ok(&p->bus)) {
            if (chat_bus_connect(&p->bus, &chat_presence_stop) != 0) {
                break;
            }
            if (chat_presence_group(p) != 0) {
                chat_sleep_ms(1000);
                continue;
            }
        }

        if (chat_db_reconnect(&p->db) != 0) {
            chat_sleep_ms(100);
            continue;
        }

        now = chat_mono_ms();

        if (now >= p->next_tick) {
            p->next_tick = now + CHAT_PRESENCE_TICK_MS;

            if (chat_presence_sweep(p) != 0
                || chat_presence_receipts(p) != 0
                || chat_membership_cache_rebuild(&p->bus, &p->db) != 0)
            {
                chat_sleep_ms(200);
                continue;
            }
        }

        if (!chat_bus_ok(&p->bus)) {
            continue;
        }

        if (chat_presence_changes(p, CHAT_PRESENCE_TICK_MS / 2) != 0) {
            /* left pending: read them again first */
            p->backlog = 1;
            chat_sleep_ms(100);
        }
    }
}


int
chat_presence_run(const chat_config_t *cfg, pid_t supervisor)
{
    char             host[256];
    chat_presence_t  p;

    chat_log_set_role("presence");
    chat_role_signals(&chat_presence_stop, supervisor);

    memset(&p, 0, sizeof(p));

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';

    snprintf(p.consumer, sizeof(p.consumer), "%s:%ld:presence", host,
             (long) getpid());

    chat_db_init(&p.db, cfg->pg, "chat-backend presence");

    if (chat_bus_init(&p.bus, cfg, p.consumer) != 0) {
        chat_log_error("out of memory");
        return 1;
    }

    chat_log_info("started (presence ttl %d ms, receipt window %d ms)",
                  chat_roles.presence_ttl_ms, chat_roles.receipt_window_ms);

    chat_presence_loop(&p);

    chat_events_clear(&p.events);
    chat_bus_free(&p.bus);
    chat_db_close(&p.db);

    chat_log_info("stopped");

    return 0;
}
