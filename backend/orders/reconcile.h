/*
 * reconcile.h: settling payments whose outcome was not known when they
 * were made.  See reconcile.c.
 */

#ifndef CHAT_RECONCILE_H
#define CHAT_RECONCILE_H

#include "config.h"
#include "db.h"
#include "event.h"

/*
 * One pass: claims up to a page of pending payment attempts whose lease
 * has passed, asks the provider about each and settles what its record
 * says; order events go to events.  Returns how many were settled, or -1
 * when PostgreSQL failed.
 */
int chat_reconcile(chat_db_t *db, const chat_config_t *cfg,
    chat_events_t *events);

#endif /* CHAT_RECONCILE_H */
