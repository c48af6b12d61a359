/*
 * admin_event.h: one admin's change told to every admin's open back
 * office.  See admin_event.c.
 */

#ifndef CHAT_ADMIN_EVENT_H
#define CHAT_ADMIN_EVENT_H

#include <stdint.h>

#include "db.h"
#include "event.h"

/*
 * Queues {"type":"admin_change","change":{"kind":kind,"id":id,"by":actor}}
 * on events for every account of role admin (the first 1000; the actor's
 * own other tabs included).  kind is "book", "stock" or "order"; actor is 0 for the
 * system (the reconciler, the carrier).  events NULL: nothing to do.
 * 0, or -1 when the query or memory failed (the caller's command fails
 * and is retried, as for its other writes).
 */
int chat_admin_event(chat_db_t *db, chat_events_t *events, const char *kind,
    int64_t id, int64_t actor);

#endif /* CHAT_ADMIN_EVENT_H */
