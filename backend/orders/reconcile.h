/*
 * reconcile.h: settling payments whose outcome was not known when they
 * were made.  See reconcile.c.
 */

#ifndef CHAT_RECONCILE_H
#define CHAT_RECONCILE_H

#include "config.h"
#include "db.h"
#include "event.h"
#include "suspend.h"

/*
 * One pass, unless the last one's lookups are still out: claims up to a
 * page of pending payment attempts whose lease has passed and starts a
 * lookup of each on calls (the worker's loop); as each answers, what the
 * provider's record says is settled (order events fanned out by the
 * worker).  Returns how many lookups were started, or -1 when PostgreSQL
 * failed.
 */
int chat_reconcile(chat_db_t *db, const chat_config_t *cfg,
    chat_events_t *events, chat_suspend_t *calls);

#endif /* CHAT_RECONCILE_H */
