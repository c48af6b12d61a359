/*
 * presence.c: the presence process (one, beside the workers).
 *
 * Presence is decided in Redis (ngx_chat_module/ngx_chat_presence.c has
 * the whole picture; every presence script is in protocol/chat_scripts.c); this process turns its transitions into what
 * people see and what PostgreSQL keeps.  It loops over four jobs:
 *
 *   1. Transitions.  XREADGROUP GROUP presence presence ... STREAMS
 *      chat:presence:{p<n>}:changes, one read per presence shard (a
 *      cluster keeps the shards on different slots, so one XREADGROUP
 *      cannot name two; none blocks, and a round that found nothing in
 *      any shard waits CHAT_PRESENCE_IDLE_MS): entries {uid, status
 *      online|offline, ts} written atomically by the edge (online) and
 *      by the sweeper below (offline).  For each, one statement records users.presence and
 *      last_seen and finds everyone who shares a conversation with the
 *      user; the event
 *        {"type":"presence","user_id","status","last_seen"}
 *      goes to them through the ordinary fan-out (fanout.c), and the
 *      entry is acked.  The consumer name is fixed, so a restarted
 *      process first re-reads what its predecessor left unacked ("0"),
 *      in order.  An entry that cannot be parsed is logged and acked.
 *   2. The sweeper, every CHAT_PRESENCE_TICK_MS, per presence shard:
 *      a script takes the users in the shard's due set whose due time
 *      has passed; a plain HGETALL of each one's chat:online:{uid} (the
 *      user's slot) finds the newest refresh of a field the fan-out
 *      rule may route to; a second script on the shard decides: a
 *      refresh within the TTL means still online (the due time moves to
 *      that refresh + TTL), none means offline: the user leaves the due
 *      set and the online set and an offline transition with the last
 *      time seen is XADDed, atomically on the shard, so a user is
 *      declared offline once, and only if their due time is still past
 *      (an edge announcing them online meanwhile moved it: skipped;
 *      protocol/chat_scripts.c has the whole argument).
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
#include "chat_online.h"
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
#include "supervisor.h"


#define CHAT_PRESENCE_GROUP    "presence"
#define CHAT_PRESENCE_TICK_MS  500
#define CHAT_PRESENCE_IDLE_MS  100        /* a round with nothing read */
#define CHAT_PRESENCE_SWEEP    "1000"     /* users per shard and sweep */
#define CHAT_PRESENCE_READ     "100"      /* transitions per read */

/* the streams read: one per shard, then the single stream of before the
 * shards, read once after an upgrade (chat_presence_legacy) */
#define CHAT_PRESENCE_STREAMS  (CHAT_PRESENCE_SHARDS + 1)


typedef struct {
    chat_bus_t      bus;
    chat_db_t       db;
    char            consumer[300];
    chat_events_t   events;
    char            changes[CHAT_PRESENCE_STREAMS][CHAT_KEY_MAX];
    /* per stream: still re-reading our pending ones */
    int             backlog[CHAT_PRESENCE_STREAMS];
    int             legacy_done;    /* since the last connect */
    int64_t         next_tick;
} chat_presence_t;


static volatile sig_atomic_t  chat_presence_stop;


static int chat_presence_changes(chat_presence_t *p, int s);


/* XGROUP CREATE <stream> presence 0 [MKSTREAM].  0 or -1. */
static int
chat_presence_group(chat_presence_t *p, const char *stream, int mkstream)
{
    int          rc;
    redisReply  *r;
    const char  *argv[6] = {
        "XGROUP", "CREATE", stream, CHAT_PRESENCE_GROUP, "0", "MKSTREAM"
    };

    r = chat_bus_command(&p->bus, mkstream ? 6 : 5, argv, NULL);
    if (r == NULL) {
        return -1;
    }

    rc = 0;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
    {
        chat_log_error("redis: XGROUP CREATE %s: %s", stream, r->str);
        rc = -1;
    }

    freeReplyObject(r);

    return rc;
}


/* Every shard's group (and stream).  0 or -1. */
static int
chat_presence_groups(chat_presence_t *p)
{
    int  i;

    for (i = 0; i < CHAT_PRESENCE_SHARDS; i++) {
        if (chat_presence_group(p, p->changes[i], 1) != 0) {
            return -1;
        }
        p->backlog[i] = 1;
    }

    return 0;
}


/*
 * After an upgrade from the single presence keys (run at every connect:
 * on a Redis without them it is three reads of nothing).  First the old
 * changes stream is read to its end and applied, like a shard's, so its
 * transitions come before anything the sweeper decides next; then the
 * old due set and online set move into the shards (ZADD GT, HSETNX: what
 * an edge registered in a shard since wins), so a user who left during
 * the upgrade is still swept; then the three keys go.  Not atomic, and
 * it need not be: every step can run twice, and a user missed here is
 * registered again by their edge within a third of the TTL.  The edges
 * are upgraded first (CHANGELOG): an old edge writing the old keys after
 * this ran is read at the next start.  0 or -1.
 */
static int
chat_presence_legacy(chat_presence_t *p)
{
    int          rc, n, s;
    char         key[CHAT_KEY_MAX];
    size_t       i;
    unsigned     shard;
    redisReply  *r, *w;
    const char  *argv[5];

    s = CHAT_PRESENCE_SHARDS;
    argv[0] = "EXISTS";
    argv[1] = CHAT_PRESENCE_LEGACY_CHANGES;

    r = chat_bus_command(&p->bus, 2, argv, NULL);
    if (chat_bus_check(r, "EXISTS " CHAT_PRESENCE_LEGACY_CHANGES) != 0) {
        freeReplyObject(r);
        return -1;
    }
    n = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);

    if (n) {
        chat_log_info("presence: taking over the presence keys of before "
                      "the shards");

        if (chat_presence_group(p, p->changes[s], 0) != 0) {
            return -1;
        }

        /* what was left pending, then everything new, to the end */
        p->backlog[s] = 1;
        do {
            n = chat_presence_changes(p, s);
            if (n < 0) {
                return -1;
            }
        } while (n > 0 || p->backlog[s]);
    }

    argv[0] = "ZRANGE";
    argv[1] = CHAT_PRESENCE_LEGACY_DUE;
    argv[2] = "0";
    argv[3] = "-1";
    argv[4] = "WITHSCORES";

    r = chat_bus_command(&p->bus, 5, argv, NULL);
    rc = chat_bus_check(r, "ZRANGE " CHAT_PRESENCE_LEGACY_DUE);

    for (i = 0; rc == 0 && r->type == REDIS_REPLY_ARRAY
                && i + 1 < r->elements; i += 2)
    {
        shard = chat_presence_shard(strtoll(r->element[i]->str, NULL, 10));
        (void) chat_key_presence(key, sizeof(key), shard, CHAT_PRESENCE_DUE);
        argv[0] = "ZADD";
        argv[1] = key;
        argv[2] = "GT";
        argv[3] = r->element[i + 1]->str;
        argv[4] = r->element[i]->str;
        w = chat_bus_command(&p->bus, 5, argv, NULL);
        rc = chat_bus_check(w, "ZADD presence due");
        freeReplyObject(w);
    }
    freeReplyObject(r);

    if (rc != 0) {
        return -1;
    }

    argv[0] = "HGETALL";
    argv[1] = CHAT_PRESENCE_LEGACY_ON;

    r = chat_bus_command(&p->bus, 2, argv, NULL);
    rc = chat_bus_check(r, "HGETALL " CHAT_PRESENCE_LEGACY_ON);

    for (i = 0; rc == 0 && r->type == REDIS_REPLY_ARRAY
                && i + 1 < r->elements; i += 2)
    {
        shard = chat_presence_shard(strtoll(r->element[i]->str, NULL, 10));
        (void) chat_key_presence(key, sizeof(key), shard, CHAT_PRESENCE_ON);
        argv[0] = "HSETNX";
        argv[1] = key;
        argv[2] = r->element[i]->str;
        argv[3] = r->element[i + 1]->str;
        w = chat_bus_command(&p->bus, 4, argv, NULL);
        rc = chat_bus_check(w, "HSETNX presence on");
        freeReplyObject(w);
    }
    freeReplyObject(r);

    if (rc != 0) {
        return -1;
    }

    /* one key per DEL: they were one slot's only by accident of no tag */
    argv[0] = "DEL";
    argv[1] = CHAT_PRESENCE_LEGACY_DUE;
    r = chat_bus_command(&p->bus, 2, argv, NULL);
    rc = chat_bus_check(r, "DEL " CHAT_PRESENCE_LEGACY_DUE);
    freeReplyObject(r);

    argv[1] = CHAT_PRESENCE_LEGACY_ON;
    r = chat_bus_command(&p->bus, 2, argv, NULL);
    rc |= chat_bus_check(r, "DEL " CHAT_PRESENCE_LEGACY_ON);
    freeReplyObject(r);

    argv[1] = CHAT_PRESENCE_LEGACY_CHANGES;
    r = chat_bus_command(&p->bus, 2, argv, NULL);
    rc |= chat_bus_check(r, "DEL " CHAT_PRESENCE_LEGACY_CHANGES);
    freeReplyObject(r);

    return rc;
}


/* The sweeper's decision for one shard (see the file comment).  0 or
 * -1. */
static int
chat_presence_sweep_shard(chat_presence_t *p, unsigned shard)
{
    int           rc, argc;
    char          keys[3][CHAT_KEY_MAX], ttl[24], (*newest)[24];
    size_t        i, j, n;
    int64_t       best, v;
    redisReply   *due, *h, *r;
    const char  **argv;

    (void) chat_key_presence(keys[0], sizeof(keys[0]), shard,
                             CHAT_PRESENCE_DUE);
    (void) chat_key_presence(keys[1], sizeof(keys[1]), shard,
                             CHAT_PRESENCE_ON);
    (void) chat_key_presence(keys[2], sizeof(keys[2]), shard,
                             CHAT_PRESENCE_CHANGES);

    {
        const char  *dargv[3] = { "1", keys[0], CHAT_PRESENCE_SWEEP };

        due = chat_bus_script(&p->bus, &chat_script_presence_due, 3, dargv,
                              NULL);
    }

    if (chat_bus_check(due, "presence due") != 0) {
        freeReplyObject(due);
        return -1;
    }

    n = due->type == REDIS_REPLY_ARRAY ? due->elements : 0;
    if (n == 0) {
        freeReplyObject(due);
        return 0;
    }

    argv = malloc((5 + 2 * n) * sizeof(char *));
    newest = malloc(n * sizeof(*newest));
    if (argv == NULL || newest == NULL) {
        free(argv);
        free(newest);
        freeReplyObject(due);
        return -1;
    }

    snprintf(ttl, sizeof(ttl), "%d", chat_roles.presence_ttl_ms);

    argc = 0;
    argv[argc++] = "3";
    argv[argc++] = keys[0];
    argv[argc++] = keys[1];
    argv[argc++] = keys[2];
    argv[argc++] = ttl;
    rc = 0;

    for (i = 0; i < n && rc == 0; i++) {
        char         online[CHAT_KEY_MAX];
        const char  *hargv[2] = { "HGETALL", online };

        if (chat_key_online(online, sizeof(online),
                            strtoll(due->element[i]->str, NULL, 10))
            < 0)
        {
            continue;
        }

        h = chat_bus_command(&p->bus, 2, hargv, NULL);
        rc = chat_bus_check(h, "HGETALL online");

        best = 0;
        for (j = 0; rc == 0 && h->type == REDIS_REPLY_ARRAY
                    && j + 1 < h->elements; j += 2)
        {
            if (chat_online_field_routable(h->element[j]->str,
                                           h->element[j]->len))
            {
                v = strtoll(h->element[j + 1]->str, NULL, 10);
                if (v > best) {
                    best = v;
                }
            }
        }
        freeReplyObject(h);

        snprintf(newest[i], sizeof(newest[i]), "%lld", (long long) best);
        argv[argc++] = due->element[i]->str;
        argv[argc++] = newest[i];
    }

    if (rc == 0) {
        r = chat_bus_script(&p->bus, &chat_script_presence_sweep, argc, argv,
                            NULL);
        rc = chat_bus_check(r, "presence sweep");

        if (rc == 0 && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
            chat_log_debug("presence sweep: %lld users went offline",
                           (long long) r->integer);
        }
        freeReplyObject(r);
    }

    free(argv);
    free(newest);
    freeReplyObject(due);

    return rc;
}


/* The sweeper, every shard.  0 or -1. */
static int
chat_presence_sweep(chat_presence_t *p)
{
    unsigned  shard;

    for (shard = 0; shard < CHAT_PRESENCE_SHARDS; shard++) {
        if (chat_presence_sweep_shard(p, shard) != 0) {
            return -1;
        }
    }

    return 0;
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


/* One read of stream s's transitions, applied, fanned out and acked.
 * The number of entries read, or -1. */
static int
chat_presence_changes(chat_presence_t *p, int s)
{
    int              rc, argc;
    size_t           i, nacked;
    redisReply      *r, *entries, *a;
    chat_events_t   *list;
    const char     **ack;
    const char      *argv[9];

    /* one consumer with a fixed name: after a restart, what the previous
     * process left pending is read first ("0"), without blocking */
    argc = 0;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = CHAT_PRESENCE_GROUP;
    argv[argc++] = CHAT_PRESENCE_GROUP;
    argv[argc++] = "COUNT";
    argv[argc++] = CHAT_PRESENCE_READ;
    argv[argc++] = "STREAMS";
    argv[argc++] = p->changes[s];
    argv[argc++] = p->backlog[s] ? "0" : ">";

    r = chat_bus_command(&p->bus, argc, argv, NULL);

    if (chat_bus_check(r, "XREADGROUP presence changes") != 0) {
        freeReplyObject(r);
        return -1;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1
        || r->element[0]->elements != 2)
    {
        /* nil: nothing new */
        freeReplyObject(r);
        return 0;
    }

    entries = r->element[0]->element[1];

    if (p->backlog[s] && entries->elements == 0) {
        p->backlog[s] = 0;
    }

    ack = malloc((entries->elements + 3) * sizeof(char *));
    if (ack == NULL) {
        freeReplyObject(r);
        return -1;
    }

    ack[0] = "XACK";
    ack[1] = p->changes[s];
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
        (void) chat_bus_check(a, "XACK presence changes");
        freeReplyObject(a);
    }

    free(ack);
    freeReplyObject(r);

    return rc < 0 ? -1 : (int) (nacked - 3);
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


/* One read of every shard's transitions.  The number read, or -1 (the
 * failing stream re-reads its pending ones first next time). */
static int
chat_presence_read(chat_presence_t *p)
{
    int  s, n, total;

    total = 0;

    for (s = 0; s < CHAT_PRESENCE_SHARDS; s++) {
        n = chat_presence_changes(p, s);
        if (n < 0) {
            p->backlog[s] = 1;
            return -1;
        }

        total += n;
    }

    return total;
}


static void
chat_presence_loop(chat_presence_t *p)
{
    int      n;
    int64_t  now;

    while (!chat_presence_stop) {

        if (!chat_bus_ok(&p->bus)) {
            if (chat_bus_connect(&p->bus, &chat_presence_stop) != 0) {
                break;
            }
            p->legacy_done = 0;
            if (chat_presence_groups(p) != 0) {
                chat_sleep_ms(1000);
                continue;
            }
        }

        if (chat_db_reconnect(&p->db) != 0) {
            chat_sleep_ms(100);
            continue;
        }

        /* after each connect, before any sweep: the old keys' takeover,
         * which needs PostgreSQL (it applies the old transitions) */
        if (!p->legacy_done) {
            if (chat_presence_legacy(p) != 0) {
                chat_sleep_ms(1000);
                continue;
            }
            p->legacy_done = 1;
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

        /* no read blocks (one XREADGROUP cannot wait on streams of
         * different slots): a round that found nothing waits a little */
        n = chat_presence_read(p);
        if (n < 0) {
            chat_sleep_ms(100);

        } else if (n == 0) {
            chat_sleep_ms(CHAT_PRESENCE_IDLE_MS);
        }
    }
}


int
chat_presence_run(const chat_config_t *cfg, pid_t supervisor)
{
    char             host[256];
    unsigned         i;
    chat_presence_t  p;

    chat_log_set_role("presence");
    chat_supervised_signals(&chat_presence_stop, supervisor);

    memset(&p, 0, sizeof(p));

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';

    snprintf(p.consumer, sizeof(p.consumer), "%s:%ld:presence", host,
             (long) getpid());

    for (i = 0; i < CHAT_PRESENCE_SHARDS; i++) {
        (void) chat_key_presence(p.changes[i], sizeof(p.changes[i]), i,
                                 CHAT_PRESENCE_CHANGES);
    }
    snprintf(p.changes[CHAT_PRESENCE_SHARDS], CHAT_KEY_MAX, "%s",
             CHAT_PRESENCE_LEGACY_CHANGES);

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
