/*
 * roles.c: the processes that run beside the workers, under the same
 * supervisor (restarted the same way when they die):
 *
 *   presence   presence transitions -> users.presence/last_seen and
 *              presence events; the offline sweeper; coalesced group
 *              receipts; the membership cache rebuild (presence.c)
 *   notifier   offline notification jobs -> batched webhook calls
 *              (notifier.c); only when CHAT_NOTIFY_WEBHOOK is set
 *
 * Each runs once: the work they do is either cheap (presence) or paced
 * by a webhook (notifier), and one instance keeps their ordering simple.
 * Their settings come from the environment only:
 *
 *   CHAT_PRESENCE_TTL_MS      45000  must equal the edge's chat_presence_ttl
 *   CHAT_RECEIPT_WINDOW_MS    1000   group receipts coalesce over this
 *   CHAT_NOTIFY_WEBHOOK       (none) URL the notifier POSTs to
 *   CHAT_NOTIFY_QUIET_MS      1000   a batch is sent after this long
 *                                    without a new message for it ...
 *   CHAT_NOTIFY_MAX_DELAY_MS  10000  ... or this long after its first
 *   CHAT_NOTIFY_ATTEMPTS      5      calls per batch before giving up
 *   CHAT_NOTIFY_BACKOFF_MS    500    first retry delay, doubled each time
 *   CHAT_NOTIFY_TIMEOUT_MS    5000   one webhook call
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "roles.h"


chat_roles_config_t  chat_roles = {
    45000, 1000, NULL, 1000, 10000, 5, 500, 5000
};



/* An integer in [min, max] from the environment variable name. */
static int
chat_roles_env_int(const char *name, int min, int max, int *out)
{
    long         v;
    char        *end;
    const char  *s;

    s = getenv(name);
    if (s == NULL || s[0] == '\0') {
        return 0;
    }

    errno = 0;
    v = strtol(s, &end, 10);

    if (errno != 0 || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "chat-backend: %s: expected an integer from %d to "
                "%d, got \"%s\"\n", name, min, max, s);
        return -1;
    }

    *out = (int) v;
    return 0;
}


int
chat_roles_configure(void)
{
    const char  *url;

    url = getenv("CHAT_NOTIFY_WEBHOOK");
    if (url != NULL && url[0] != '\0') {
        if (strncmp(url, "http://", 7) != 0
            && strncmp(url, "https://", 8) != 0)
        {
            fprintf(stderr, "chat-backend: CHAT_NOTIFY_WEBHOOK: expected an "
                    "http:// or https:// URL, got \"%s\"\n", url);
            return -1;
        }
        chat_roles.notify_webhook = url;
    }

    if (chat_roles_env_int("CHAT_PRESENCE_TTL_MS", 3000, 60000,
                           &chat_roles.presence_ttl_ms) != 0
        || chat_roles_env_int("CHAT_RECEIPT_WINDOW_MS", 100, 60000,
                              &chat_roles.receipt_window_ms) != 0
        || chat_roles_env_int("CHAT_NOTIFY_QUIET_MS", 100, 600000,
                              &chat_roles.notify_quiet_ms) != 0
        || chat_roles_env_int("CHAT_NOTIFY_MAX_DELAY_MS", 100, 3600000,
                              &chat_roles.notify_max_delay_ms) != 0
        || chat_roles_env_int("CHAT_NOTIFY_ATTEMPTS", 1, 100,
                              &chat_roles.notify_attempts) != 0
        || chat_roles_env_int("CHAT_NOTIFY_BACKOFF_MS", 10, 600000,
                              &chat_roles.notify_backoff_ms) != 0
        || chat_roles_env_int("CHAT_NOTIFY_TIMEOUT_MS", 100, 120000,
                              &chat_roles.notify_timeout_ms) != 0)
    {
        return -1;
    }

    if (chat_roles.notify_max_delay_ms < chat_roles.notify_quiet_ms) {
        chat_roles.notify_max_delay_ms = chat_roles.notify_quiet_ms;
    }

    return 0;
}


int
chat_roles_count(void)
{
    return chat_roles.notify_webhook ? 2 : 1;
}


int
chat_role_run(const chat_config_t *cfg, int role, pid_t supervisor)
{
    return role == 0 ? chat_presence_run(cfg, supervisor)
                     : chat_notifier_run(cfg, supervisor);
}
