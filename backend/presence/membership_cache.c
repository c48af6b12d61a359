/*
 * membership_cache.c: chat:members:{cid}, a Redis set per conversation
 * holding its member ids, for the edge's typing script
 * (ngx_chat_module/ngx_chat_typing.c), which must not ask PostgreSQL.
 *
 * PostgreSQL stays the truth; the sets follow it two ways:
 *
 *   - After a commit, the worker passes its events here.  Every
 *     {"type":"conversation","conversation":{"id",...,"members":[...]}}
 *     event is what a membership change (conv.create, conv.member.add,
 *     conv.member.remove) tells the members, with the members as
 *     committed; the set is replaced by them (DEL + SADD in one
 *     MULTI/EXEC, pipelined for the whole batch).
 *   - When Redis lost them (a restart without persistence; the first
 *     start after this cache was introduced), the marker key
 *     chat:members:ready is missing; the presence process then rebuilds
 *     every set from conversation_members and sets the marker
 *     (chat_membership_cache_rebuild).  Until it has, typing indicators
 *     are dropped: they are ephemeral, nothing else depends on the sets.
 *
 * Only members who accepted the conversation are in its set (a request's
 * recipient is left out until they answer or accept: conversation events
 * carry "requests", the members who have not), so a request neither
 * sends nor receives typing.  And chat:blocked:{uid} holds the users uid
 * blocked, from the {"type":"block"} events of user.block / user.unblock
 * (and the same rebuild): the typing script skips a recipient who
 * blocked the typist, or whom the typist blocked.
 *
 * Two membership changes of one conversation committed by two workers
 * within the same instant may write the set in the other order, and a
 * rebuild racing a change may re-add a removed member; either lasts until
 * the conversation's next membership change.  The only effect is who sees
 * a typing indicator, which is why a cache this simple is good enough.
 */

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chat_protocol.h"
#include "log.h"
#include "membership_cache.h"


#define CHAT_CONV_EVENT      "{\"type\":\"conversation\","
#define CHAT_BLOCK_EVENT     "{\"type\":\"block\","


/* Whether the JSON array list (may be NULL) holds the number v. */
static int
chat_members_listed(const cJSON *list, double v)
{
    const cJSON  *x;

    cJSON_ArrayForEach(x, list) {
        if (cJSON_IsNumber(x) && x->valuedouble == v) {
            return 1;
        }
    }

    return 0;
}


/* the set's key for an id: chat_key_members or chat_key_blocked */
typedef int (*chat_members_key_pt)(char *buf, size_t size, int64_t id);


/* MULTI; DEL key; SADD key ids...; EXEC appended to the pipeline: 4
 * replies, or 3 when there are no members; the members listed in
 * requests (may be NULL) are left out.  Returns the number of replies
 * appended, or -1. */
static int
chat_members_append(chat_bus_t *bus, chat_members_key_pt key_of, int64_t cid,
    const cJSON *members, const cJSON *requests, int replace)
{
    int           n, i, argc;
    char          key[CHAT_KEY_MAX], (*ids)[24];
    const char  **argv;
    const cJSON  *m;

    n = cJSON_GetArraySize(members);
    (void) key_of(key, sizeof(key), cid);

    argv = malloc((n + 2) * sizeof(char *));
    ids = malloc((n + 1) * sizeof(*ids));
    if (argv == NULL || ids == NULL) {
        free(argv);
        free(ids);
        return -1;
    }

    argc = 0;
    argv[argc++] = "SADD";
    argv[argc++] = key;

    i = 0;
    cJSON_ArrayForEach(m, members) {
        if (cJSON_IsNumber(m) && i < n
            && !chat_members_listed(requests, m->valuedouble))
        {
            snprintf(ids[i], sizeof(ids[i]), "%lld",
                     (long long) m->valuedouble);
            argv[argc++] = ids[i++];
        }
    }

    if (replace) {
        (void) chat_router_appendf(&bus->route, "MULTI");
        (void) chat_router_appendf(&bus->route, "DEL %s", key);
    }

    if (argc > 2) {
        (void) chat_router_append_argv(&bus->route, argc, argv, NULL);
    }

    if (replace) {
        (void) chat_router_appendf(&bus->route, "EXEC");
    }

    free(argv);
    free(ids);

    return (replace ? 3 : 0) + (argc > 2);
}


/* Reads and checks n pipelined replies.  0, or -1 (connection lost). */
static int
chat_members_replies(chat_bus_t *bus, long n)
{
    /* error replies are only logged: a lost connection is the failure */
    return chat_bus_replies(bus, (size_t) n, "membership cache") < 0 ? -1 : 0;
}


/* SADD or SREM chat:blocked:{blocker} <user_id> for a {"type":"block",
 * "user_id","blocked"} event appended to the pipeline: the number of
 * replies appended (0 or 1). */
static int
chat_blocked_append(chat_bus_t *bus, int64_t blocker, const char *json)
{
    int           k;
    char          key[CHAT_KEY_MAX], id[24];
    cJSON        *ev;
    const cJSON  *who, *blocked;

    ev = cJSON_Parse(json);
    who = cJSON_GetObjectItemCaseSensitive(ev, "user_id");
    blocked = cJSON_GetObjectItemCaseSensitive(ev, "blocked");
    k = 0;

    if (cJSON_IsNumber(who) && cJSON_IsBool(blocked)) {
        (void) chat_key_blocked(key, sizeof(key), blocker);
        snprintf(id, sizeof(id), "%lld", (long long) who->valuedouble);
        (void) chat_router_appendf(&bus->route, "%s %s %s",
                                   cJSON_IsTrue(blocked) ? "SADD" : "SREM",
                                   key, id);
        k = 1;
    }

    cJSON_Delete(ev);
    return k;
}


void
chat_membership_cache_update(chat_bus_t *bus, chat_events_t *const *lists,
    size_t n)
{
    int            k;
    long           replies;
    size_t         i, j;
    cJSON         *ev;
    const cJSON   *conv, *id, *members;
    const char    *json;

    replies = 0;

    for (i = 0; i < n && chat_bus_ok(bus); i++) {
        for (j = 0; j < lists[i]->n; j++) {
            json = lists[i]->items[j].json;

            if (strncmp(json, CHAT_BLOCK_EVENT, sizeof(CHAT_BLOCK_EVENT) - 1)
                == 0
                && lists[i]->items[j].n == 1)
            {
                k = chat_blocked_append(bus, lists[i]->items[j].uids[0],
                                        json);
                replies += k > 0 ? k : 0;
                continue;
            }

            if (strncmp(json, CHAT_CONV_EVENT, sizeof(CHAT_CONV_EVENT) - 1)
                != 0)
            {
                continue;
            }

            ev = cJSON_Parse(json);
            conv = cJSON_GetObjectItemCaseSensitive(ev, "conversation");
            id = cJSON_GetObjectItemCaseSensitive(conv, "id");
            members = cJSON_GetObjectItemCaseSensitive(conv, "members");

            if (cJSON_IsNumber(id) && cJSON_IsArray(members)) {
                k = chat_members_append(bus, chat_key_members,
                        (int64_t) id->valuedouble, members,
                        cJSON_GetObjectItemCaseSensitive(conv, "requests"),
                        1);
                if (k < 0) {
                    chat_log_error("membership cache: out of memory");
                } else {
                    replies += k;
                }
            }

            cJSON_Delete(ev);
        }
    }

    if (replies > 0) {
        (void) chat_members_replies(bus, replies);
    }
}


int
chat_membership_cache_rebuild(chat_bus_t *bus, chat_db_t *db)
{
    int          rows, row, k;
    long         replies;
    cJSON       *members;
    PGresult    *res;
    redisReply  *r;
    const char  *argv[2];
    const char  *set[3] = { "SET", CHAT_MEMBERS_READY_KEY, "1" };

    argv[0] = "EXISTS";
    argv[1] = CHAT_MEMBERS_READY_KEY;

    r = chat_bus_command(bus, 2, argv, NULL);
    if (chat_bus_check(r, "EXISTS " CHAT_MEMBERS_READY_KEY) != 0) {
        freeReplyObject(r);
        return -1;
    }

    k = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);

    if (k) {
        return 0;
    }

    /* the typing sets (accepted members), then the block sets */
    res = chat_db_query(db,
        "SELECT 'm', conversation_id, "
        "       '[' || string_agg(user_id::text, ',') || ']' "
        "FROM conversation_members WHERE accepted GROUP BY conversation_id "
        "UNION ALL "
        "SELECT 'b', blocker_id, "
        "       '[' || string_agg(blocked_id::text, ',') || ']' "
        "FROM user_blocks GROUP BY blocker_id",
        0, NULL, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rows = PQntuples(res);
    replies = 0;

    for (row = 0; row < rows; row++) {
        members = cJSON_Parse(PQgetvalue(res, row, 2));
        k = members ? chat_members_append(bus,
                          PQgetvalue(res, row, 0)[0] == 'm'
                          ? chat_key_members : chat_key_blocked,
                          strtoll(PQgetvalue(res, row, 1), NULL, 10),
                          members, NULL, 0)
                    : -1;
        cJSON_Delete(members);

        if (k < 0) {
            chat_log_error("membership cache: out of memory");
            PQclear(res);
            (void) chat_members_replies(bus, replies);
            return -1;
        }

        replies += k;

        /* keep the pipeline's buffers bounded */
        if (replies >= 1000) {
            if (chat_members_replies(bus, replies) != 0) {
                PQclear(res);
                return -1;
            }
            replies = 0;
        }
    }

    PQclear(res);

    if (chat_members_replies(bus, replies) != 0) {
        return -1;
    }

    r = chat_bus_command(bus, 3, set, NULL);
    if (chat_bus_check(r, "SET " CHAT_MEMBERS_READY_KEY) != 0) {
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);

    chat_log_info("membership cache rebuilt: %d conversations", rows);

    return 0;
}
