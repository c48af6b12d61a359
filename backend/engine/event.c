/*
 * event.c: what a committed command has to tell other people, kept as
 * plain data until fanout.c delivers it.
 *
 * A handler describes an event once: the JSON text and the user ids it
 * is for.  The text is serialised when the event is added, so the handler
 * can free its cJSON at once and the worker holds nothing but strings
 * until after the commit.  If the command's transaction rolls back, the
 * worker clears the list and nothing was said.
 *
 * Delivery groups recipients by the gateway serving them
 * (chat_protocol.h: one XADD per gateway carrying "uids"), which is what
 * the routes here are: for one event, gateway -> "12,40,7".  Routes are
 * found by a linear scan; there are as many as gateways (nginx workers),
 * so a handful to a few hundred.  Their buffers are kept between events.
 *
 * What it does not do: talk to Redis, or decide who is online (fanout.c
 * reads the registry and asks the fan-out rule, chat_online.h, about each
 * field).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_protocol.h"
#include "envelope.h"
#include "event.h"


int
chat_events_add(chat_events_t *events, const cJSON *event,
    const int64_t *uids, size_t n)
{
    size_t         cap;
    chat_event_t  *items, *e;

    if (events->n == events->cap) {
        cap = events->cap ? events->cap * 2 : 4;
        items = realloc(events->items, cap * sizeof(chat_event_t));
        if (items == NULL) {
            return -1;
        }
        events->items = items;
        events->cap = cap;
    }

    e = &events->items[events->n];

    e->json = cJSON_PrintUnformatted(event);
    e->uids = malloc((n ? n : 1) * sizeof(int64_t));
    e->n = n;

    if (e->json == NULL || e->uids == NULL) {
        free(e->json);
        free(e->uids);
        return -1;
    }

    if (n > 0) {
        memcpy(e->uids, uids, n * sizeof(int64_t));
    }

    events->n++;
    return 0;
}


void
chat_events_clear(chat_events_t *events)
{
    size_t  i;

    for (i = 0; i < events->n; i++) {
        free(events->items[i].json);
        free(events->items[i].uids);
    }

    free(events->items);
    events->items = NULL;
    events->n = 0;
    events->cap = 0;
}


int
chat_routes_add(chat_routes_t *routes, const char *gw, size_t gw_len,
    int64_t uid)
{
    int            len;
    char           num[24];
    char          *buf;
    size_t         i, cap;
    chat_route_t  *r, *items;

    r = NULL;

    for (i = 0; i < routes->n; i++) {
        if (routes->items[i].gw_len == gw_len
            && memcmp(routes->items[i].gw, gw, gw_len) == 0)
        {
            r = &routes->items[i];
            break;
        }
    }

    if (r == NULL) {
        if (routes->n == routes->cap) {
            cap = routes->cap ? routes->cap * 2 : 4;
            items = realloc(routes->items, cap * sizeof(chat_route_t));
            if (items == NULL) {
                return -1;
            }
            /* the new slots own no buffers yet */
            memset(items + routes->cap, 0,
                   (cap - routes->cap) * sizeof(chat_route_t));
            routes->items = items;
            routes->cap = cap;
        }

        r = &routes->items[routes->n++];
        r->gw = gw;
        r->gw_len = gw_len;
        r->len = 0;
    }

    len = snprintf(num, sizeof(num), "%s%lld", r->len ? "," : "",
                   (long long) uid);

    if (r->len + (size_t) len + 1 > r->cap) {
        cap = r->cap ? r->cap * 2 : 64;
        while (cap < r->len + (size_t) len + 1) {
            cap *= 2;
        }
        buf = realloc(r->uids, cap);
        if (buf == NULL) {
            return -1;
        }
        r->uids = buf;
        r->cap = cap;
    }

    memcpy(r->uids + r->len, num, (size_t) len + 1);
    r->len += (size_t) len;

    return 0;
}


void
chat_routes_reset(chat_routes_t *routes)
{
    routes->n = 0;
}


void
chat_routes_free(chat_routes_t *routes)
{
    size_t  i;

    for (i = 0; i < routes->cap; i++) {
        free(routes->items[i].uids);
    }

    free(routes->items);
    memset(routes, 0, sizeof(*routes));
}
