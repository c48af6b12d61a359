/*
 * event.h: events an operation wants fanned out after its commit, and the
 * per-gateway grouping of their recipients.  Pure: memory only, no Redis.
 * See event.c; fanout.c delivers them.
 */

#ifndef CHAT_EVENT_H
#define CHAT_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "chat_online.h"

/* One event: the complete JSON text the edge sends as one WebSocket
 * frame, and the users it is for. */
typedef struct {
    char     *json;
    int64_t  *uids;
    size_t    n;
} chat_event_t;

typedef struct {
    chat_event_t  *items;
    size_t         n;
    size_t         cap;
} chat_events_t;

/* Appends event (serialised now; the caller keeps ownership of the cJSON)
 * for the n users in uids (copied).  0, or -1 without memory. */
int chat_events_add(chat_events_t *events, const cJSON *event,
    const int64_t *uids, size_t n);

/* Frees every event; the list is empty and reusable afterwards. */
void chat_events_clear(chat_events_t *events);


/* The recipients one gateway serves for one event, as the "uids" value
 * of chat_protocol.h: "12,40,7". */
typedef struct {
    const char  *gw;            /* gateway reply stream key, borrowed */
    size_t       gw_len;
    char        *uids;          /* NUL-terminated decimal list */
    size_t       len;
    size_t       cap;
} chat_route_t;

typedef struct {
    chat_route_t  *items;
    size_t         n;
    size_t         cap;
} chat_routes_t;

/* Adds uid to gw's route (made on first use).  gw must outlive the
 * routes.  0, or -1 without memory. */
int chat_routes_add(chat_routes_t *routes, const char *gw, size_t gw_len,
    int64_t uid);

/* Empties the routes, keeping their buffers for reuse. */
void chat_routes_reset(chat_routes_t *routes);

void chat_routes_free(chat_routes_t *routes);

/* the fan-out rule (which online fields an event goes to) is
 * chat_online_field_fresh in the shared protocol/chat_online.h */

#endif /* CHAT_EVENT_H */
