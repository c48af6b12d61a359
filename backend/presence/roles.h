/*
 * roles.h: the processes the supervisor runs beside the workers, and
 * their settings.  See roles.c, presence.c, notifier.c.
 */

#ifndef CHAT_ROLES_H
#define CHAT_ROLES_H

#include <signal.h>
#include <sys/types.h>

#include "config.h"

typedef struct {
    int          presence_ttl_ms;       /* = the edge's chat_presence_ttl */
    int          receipt_window_ms;     /* group receipts: one per window */
    const char  *notify_webhook;        /* NULL: no notifications at all */
    int          notify_quiet_ms;       /* a batch waits this long for more */
    int          notify_max_delay_ms;   /* ... but no longer than this */
    int          notify_attempts;       /* webhook calls before giving up */
    int          notify_backoff_ms;     /* first retry delay, then doubled */
    int          notify_timeout_ms;     /* one webhook call */
} chat_roles_config_t;

/* Filled once by chat_roles_configure() before the supervisor forks;
 * read-only afterwards (workers read receipt_window_ms and
 * notify_webhook too). */
extern chat_roles_config_t  chat_roles;

/* Reads the CHAT_PRESENCE_* / CHAT_RECEIPT_* / CHAT_NOTIFY_* environment.
 * 0, or -1 after printing what is wrong. */
int chat_roles_configure(void);

/* How many role processes to run: presence, and the notifier when a
 * webhook is configured. */
int chat_roles_count(void);

/* Runs role number role (0 presence, 1 notifier) until SIGTERM; the exit
 * status. */
int chat_role_run(const chat_config_t *cfg, int role, pid_t supervisor);

int chat_presence_run(const chat_config_t *cfg, pid_t supervisor);
int chat_notifier_run(const chat_config_t *cfg, pid_t supervisor);

#endif /* CHAT_ROLES_H */
