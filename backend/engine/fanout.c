/*
 * fanout.c: telling the gateways about committed commands.
 *
 * After a batch's commit and replies, the worker passes the events of
 * its commands here (event.c holds them: JSON text plus recipient ids).
 * Delivery follows chat_protocol.h and costs two pipelined round trips
 * however many events and recipients there are:
 *
 *   1. HGETALL chat:online:{<uid>} for every distinct recipient of every
 *      event.  Each field is a gateway's reply stream key, its value the
 *      time (ms) that gateway last said the user is connected there.
 *      Fields older than CHAT_ONLINE_STALE_MS belong to a gateway that
 *      died without cleaning up, and are skipped.
 *   2. For each event, its recipients grouped by gateway, and one
 *      XADD <gateway stream> MAXLEN ~ 10000 * ev <json> uids <csv>
 *      per gateway; then EXPIRE <stream> 300 once per gateway, as for
 *      replies, so streams of dead gateways go away.
 *
 * A 1000-member group message is thus 1000 HGETALLs in one round trip
 * and one XADD per gateway with someone online, not one per member.
 * Users with no fresh field are offline: they catch up with sync or
 * history when they come back.
 *
 * Stale fields are not deleted here.  The owner might be a slow gateway
 * about to refresh, and an HDEL racing its HSET would cut a live user off
 * until the next refresh; the key's TTL (CHAT_ONLINE_TTL_SEC) bounds the
 * garbage anyway.
 *
 * Failures (Redis down, an error reply) are logged and the events are
 * dropped: the commands are committed and answered, and delivery is
 * at-least-once only in the sense that clients fill gaps from history
 * and sync.  Nothing here can fail a command.
 *
 * What it does not do: decide who receives what (the operations do), or
 * deliver to clients (the gateways do).
 */

#include <stdlib.h>
#include <string.h>

#include "chat_protocol.h"
#include "fanout.h"
#include "log.h"


typedef struct {
    const char  *name;
    size_t       len;
} chat_gw_name_t;


static int
chat_fanout_cmp(const void *a, const void *b)
{
    int64_t  x = *(const int64_t *) a, y = *(const int64_t *) b;

    return (x > y) - (x < y);
}


/* The sorted distinct recipients of every event; *nu their count. */
static int64_t *
chat_fanout_recipients(chat_events_t *const *lists, size_t n, size_t *nu)
{
    size_t    i, j, k, count;
    int64_t  *uids;

    count = 0;
    for (i = 0; i < n; i++) {
        for (j = 0; j < lists[i]->n; j++) {
            count += lists[i]->items[j].n;
        }
    }

    uids = malloc((count ? count : 1) * sizeof(int64_t));
    if (uids == NULL) {
        return NULL;
    }

    k = 0;
    for (i = 0; i < n; i++) {
        for (j = 0; j < lists[i]->n; j++) {
            memcpy(uids + k, lists[i]->items[j].uids,
                   lists[i]->items[j].n * sizeof(int64_t));
            k += lists[i]->items[j].n;
        }
    }

    qsort(uids, k, sizeof(int64_t), chat_fanout_cmp);

    *nu = 0;
    for (i = 0; i < k; i++) {
        if (*nu == 0 || uids[i] != uids[*nu - 1]) {
            uids[(*nu)++] = uids[i];
        }
    }

    return uids;
}


/* Round trip 1: the online hash of every recipient into online[]. */
static int
chat_fanout_online(chat_bus_t *bus, const int64_t *uids, size_t nu,
    redisReply **online)
{
    size_t   i;
    void    *reply;

    for (i = 0; i < nu; i++) {
        if (redisAppendCommand(bus->ctx, "HGETALL " CHAT_ONLINE_PREFIX
                               "%lld}", (long long) uids[i]) != REDIS_OK)
        {
            chat_bus_lost(bus);
            return -1;
        }
    }

    for (i = 0; i < nu; i++) {
        if (redisGetReply(bus->ctx, &reply) != REDIS_OK) {
            chat_bus_lost(bus);
            return -1;
        }

        online[i] = reply;

        if (online[i]->type != REDIS_REPLY_ARRAY) {
            (void) chat_bus_check(online[i], "HGETALL online");
        }
    }

    return 0;
}


/* Adds gw to the set of streams to EXPIRE. */
static int
chat_fanout_remember(chat_gw_name_t **gws, size_t *n, size_t *cap,
    const char *name, size_t len)
{
    size_t           i;
    chat_gw_name_t  *p;

    for (i = 0; i < *n; i++) {
        if ((*gws)[i].len == len && memcmp((*gws)[i].name, name, len) == 0) {
            return 0;
        }
    }

    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        p = realloc(*gws, *cap * sizeof(chat_gw_name_t));
        if (p == NULL) {
            return -1;
        }
        *gws = p;
    }

    (*gws)[*n].name = name;
    (*gws)[(*n)++].len = len;

    return 0;
}


/* Groups one event's recipients by fresh gateway into routes. */
static int
chat_fanout_route(const chat_event_t *e, const int64_t *uids, size_t nu,
    redisReply **online, int64_t now, chat_routes_t *routes)
{
    size_t        i, f;
    int64_t      *hit;
    redisReply   *r, *name, *value;

    chat_routes_reset(routes);

    for (i = 0; i < e->n; i++) {
        hit = bsearch(&e->uids[i], uids, nu, sizeof(int64_t),
                      chat_fanout_cmp);
        r = hit ? online[hit - uids] : NULL;

        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            continue;
        }

        for (f = 0; f + 1 < r->elements; f += 2) {
            name = r->element[f];
            value = r->element[f + 1];

            if (name->type == REDIS_REPLY_STRING
                && value->type == REDIS_REPLY_STRING
                && chat_online_field_fresh(name->str, name->len, value->str,
                                           value->len, now)
                && chat_routes_add(routes, name->str, name->len, e->uids[i])
                   != 0)
            {
                return -1;
            }
        }
    }

    return 0;
}


int
chat_fanout(chat_bus_t *bus, chat_events_t *const *lists, size_t n)
{
    int              rc;
    void            *reply;
    size_t           i, j, k, nu, sent, nevents, ngw, capgw;
    int64_t          now, *uids;
    redisReply     **online;
    chat_routes_t    routes;
    chat_gw_name_t  *gws;
    chat_event_t    *e;

    nevents = 0;
    for (i = 0; i < n; i++) {
        nevents += lists[i]->n;
    }

    if (nevents == 0) {
        return 0;
    }

    if (!chat_bus_ok(bus)) {
        chat_log_warn("fan-out: Redis is down, %zu events dropped", nevents);
        return -1;
    }

    rc = -1;
    nu = 0;
    online = NULL;
    gws = NULL;
    ngw = capgw = 0;
    sent = 0;
    memset(&routes, 0, sizeof(routes));

    uids = chat_fanout_recipients(lists, n, &nu);
    if (uids == NULL) {
        goto done;
    }

    online = calloc(nu ? nu : 1, sizeof(redisReply *));
    if (online == NULL || chat_fanout_online(bus, uids, nu, online) != 0) {
        goto done;
    }

    now = chat_time_ms();

    /* round trip 2: an XADD per event and gateway, an EXPIRE per gateway */
    for (i = 0; i < n; i++) {
        for (j = 0; j < lists[i]->n; j++) {
            e = &lists[i]->items[j];

            if (chat_fanout_route(e, uids, nu, online, now, &routes) != 0) {
                goto flush;
            }

            for (k = 0; k < routes.n; k++) {
                if (redisAppendCommand(bus->ctx,
                        "XADD %b MAXLEN ~ " CHAT_GW_STREAM_MAXLEN " * "
                        CHAT_F_EVENT " %s " CHAT_F_UIDS " %s",
                        routes.items[k].gw, routes.items[k].gw_len, e->json,
                        routes.items[k].uids) != REDIS_OK)
                {
                    chat_bus_lost(bus);
                    goto done;
                }

                sent++;

                if (chat_fanout_remember(&gws, &ngw, &capgw,
                                         routes.items[k].gw,
                                         routes.items[k].gw_len) != 0)
                {
                    goto flush;
                }
            }
        }
    }

    for (k = 0; k < ngw; k++) {
        if (redisAppendCommand(bus->ctx, "EXPIRE %b %d", gws[k].name,
                               gws[k].len, CHAT_GW_STREAM_TTL_SEC)
            != REDIS_OK)
        {
            chat_bus_lost(bus);
            goto done;
        }
        sent++;
    }

    rc = 0;

flush:

    /* whatever was appended is read back, even after running out of
     * memory, so the connection stays in step */
    for (k = 0; k < sent; k++) {
        if (redisGetReply(bus->ctx, &reply) != REDIS_OK) {
            chat_bus_lost(bus);
            rc = -1;
            goto done;
        }

        if (chat_bus_check(reply, "event XADD/EXPIRE") != 0) {
            rc = -1;
        }

        freeReplyObject(reply);
    }

    chat_log_debug("fan-out: %zu events, %zu users, %zu gateways, "
                   "%zu commands", nevents, nu, ngw, sent);

done:

    if (rc != 0) {
        chat_log_error("fan-out of %zu events failed or was cut short; "
                       "clients will catch up from history", nevents);
    }

    for (i = 0; online != NULL && i < nu; i++) {
        freeReplyObject(online[i]);
    }

    free(online);
    free(uids);
    free(gws);
    chat_routes_free(&routes);

    return rc;
}
