/*
 * membership_cache.h: the chat:members:{cid} sets the edge's typing
 * script reads.  See membership_cache.c.
 */

#ifndef CHAT_MEMBERSHIP_CACHE_H
#define CHAT_MEMBERSHIP_CACHE_H

#include <stddef.h>

#include "bus.h"
#include "db.h"
#include "event.h"

/* Replaces the set of every conversation whose committed membership one
 * of the events announces.  Failures are logged and otherwise ignored. */
void chat_membership_cache_update(chat_bus_t *bus,
    chat_events_t *const *lists, size_t n);

/* When chat:members:ready is missing, fills every set from PostgreSQL
 * and sets it.  0 (nothing to do, or done), or -1. */
int chat_membership_cache_rebuild(chat_bus_t *bus, chat_db_t *db);

#endif /* CHAT_MEMBERSHIP_CACHE_H */
