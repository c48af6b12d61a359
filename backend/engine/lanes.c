/*
 * lanes.c: the worker pool is one pool per lane, and this is where a lane
 * is sized.
 *
 * Why lanes.  With one pool for everything, 20 sign-ups (0.4 s of scrypt
 * each) or a payment processor that answers in seconds held every worker,
 * and chat messages waited seconds behind them.  Now each kind of work has
 * its own streams (chat_lanes.h) and its own processes, so the most one
 * kind can do to another is share the CPU, and the CPU-bound lanes run at
 * a lower priority (nice) so they get what the interactive lanes leave.
 *
 * What a lane has:
 *
 *   procs        worker processes reading the lane's streams
 *   batch        entries taken per shard and read (XREADGROUP COUNT)
 *   commit       most commands per transaction (1..64, see command.c)
 *   concurrency  commands one process may have waiting on an outbound
 *                call at once (CHAT_OP_SUSPENDS: the checkout and the
 *                refund wait on the payment processor; suspend.c).  A
 *                lane's throughput through the processor is at most
 *                procs * concurrency / the processor's answer time: the
 *                orders lane's 2 * 256 over 300 ms is ~1,700 checkouts/s,
 *                more than PostgreSQL on two cores commits, so the
 *                processor's latency is never the limit.  Lanes whose ops
 *                never wait keep 1 (it is not used)
 *   timeout      ms the edge waits for an answer before 504
 *   queue        commands waiting or running beyond which the edge answers
 *                503 overloaded at once (0: no bound)
 *   wait         ms the lane's oldest unread command may have waited
 *                before the edge answers new ones 503 overloaded at once
 *                too (0, the default: half the timeout).  A bound in
 *                commands alone assumes the pool drains at its usual
 *                rate; when it slows (a commit that stalls, a core taken
 *                by something else), a queue under its bound can still
 *                hold more than a timeout's worth of work, and every
 *                command in it would end as a late 504.  The wait bound
 *                sheds by what the clients feel instead
 *   retry        the Retry-After seconds of that 503
 *   nice         scheduling priority of the lane's processes (0..19)
 *
 * timeout, queue and retry are the edge's to enforce: every worker
 * publishes them in chat:lanes with its heartbeat (chat_lanes.h), so they
 * are still set in this one place.  Settings come from the table below,
 * then CHAT_LANES, then --lane flags, later ones winning; --workers,
 * --batch and --commit-batch are shorthands for the chat and read lanes.
 */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "command.h"
#include "lanes.h"
#include "log.h"


/* Sized for a 2-core machine; see backend/README.md, Lanes.  The auth
 * lane's nice is 10, not 19: at 19 it gets about 1.5 % of a core against
 * anything else that is busy, and on a machine loaded by something
 * outside the product sign-ups then wait past their timeout; at 10 it
 * still yields ~90 % of a contended core to the interactive lanes. */
static const chat_lane_conf_t  chat_lane_defaults[CHAT_LANE_COUNT] = {
    /*             procs batch commit conc timeout queue wait retry nice */
    [CHAT_LANE_CHAT]   = { 2, 64, 64, 1, 10000, 20000, 0, 1, 0 },
    [CHAT_LANE_READ]   = { 2, 16, 64, 1, 10000, 2000, 0, 1, 0 },
    [CHAT_LANE_AUTH]   = { 2, 1, 1, 1, 30000, 64, 0, 2, 10 },
    [CHAT_LANE_ORDERS] = { 2, 16, 64, 256, 30000, 2000, 0, 1, 0 },
    [CHAT_LANE_ADMIN]  = { 1, 16, 64, 16, 30000, 1000, 0, 1, 5 },
};

typedef struct {
    const char  *name;
    size_t       offset;
    long         min;
    long         max;
} chat_lane_key_t;

static const chat_lane_key_t  chat_lane_keys[] = {
    { "procs", offsetof(chat_lane_conf_t, procs), 0, 256 },
    { "batch", offsetof(chat_lane_conf_t, batch), 1, 1000 },
    { "commit", offsetof(chat_lane_conf_t, commit_batch), 1,
      CHAT_COMMIT_BATCH_MAX },
    { "concurrency", offsetof(chat_lane_conf_t, concurrency), 1, 10000 },
    { "timeout", offsetof(chat_lane_conf_t, timeout_ms), 100, 3600000 },
    { "queue", offsetof(chat_lane_conf_t, queue), 0, 100000000 },
    { "wait", offsetof(chat_lane_conf_t, wait_ms), 0, 3600000 },
    { "retry", offsetof(chat_lane_conf_t, retry_s), 1, 3600 },
    { "nice", offsetof(chat_lane_conf_t, nice), 0, 19 },
};


void
chat_lanes_defaults(chat_config_t *cfg)
{
    memcpy(cfg->lanes, chat_lane_defaults, sizeof(chat_lane_defaults));
}


/* One "NAME:key=value,..." of len bytes. */
static const char *
chat_lanes_apply_one(chat_config_t *cfg, const char *s, size_t len)
{
    int          lane;
    long         v;
    char        *end, num[32];
    size_t       i, j, k, n;
    const char  *colon;
    chat_lane_conf_t  lc;
    static char  why[160];

    colon = memchr(s, ':', len);
    if (colon == NULL) {
        return "expected NAME:key=value,...";
    }

    lane = chat_lane_by_name(s, colon - s);
    if (lane < 0) {
        snprintf(why, sizeof(why), "unknown lane \"%.*s\" (chat, read, "
                 "auth, orders, admin)", (int) (colon - s), s);
        return why;
    }

    lc = cfg->lanes[lane];
    i = colon - s + 1;

    while (i < len) {
        for (j = i; j < len && s[j] != '=' && s[j] != ','; j++) {
            /* the key */
        }

        if (j >= len || s[j] != '=') {
            snprintf(why, sizeof(why), "expected key=value in \"%.*s\"",
                     (int) (len - i), s + i);
            return why;
        }

        for (k = j + 1; k < len && s[k] != ','; k++) {
            /* the value */
        }

        n = k - j - 1;
        if (n == 0 || n >= sizeof(num)) {
            return "a lane setting needs a number";
        }
        memcpy(num, s + j + 1, n);
        num[n] = '\0';

        errno = 0;
        v = strtol(num, &end, 10);

        for (n = 0; n < sizeof(chat_lane_keys) / sizeof(chat_lane_keys[0]);
             n++)
        {
            if (strlen(chat_lane_keys[n].name) == j - i
                && memcmp(chat_lane_keys[n].name, s + i, j - i) == 0)
            {
                break;
            }
        }

        if (n == sizeof(chat_lane_keys) / sizeof(chat_lane_keys[0])) {
            snprintf(why, sizeof(why), "unknown lane setting \"%.*s\" "
                     "(procs, batch, commit, concurrency, timeout, queue, "
                     "wait, retry, nice)", (int) (j - i), s + i);
            return why;
        }

        if (errno != 0 || *end != '\0' || v < chat_lane_keys[n].min
            || v > chat_lane_keys[n].max)
        {
            snprintf(why, sizeof(why), "%s of lane %s must be an integer "
                     "from %ld to %ld, got \"%s\"", chat_lane_keys[n].name,
                     chat_lane_name(lane), chat_lane_keys[n].min,
                     chat_lane_keys[n].max, num);
            return why;
        }

        *(int *) ((char *) &lc + chat_lane_keys[n].offset) = (int) v;

        i = k + 1;
    }

    cfg->lanes[lane] = lc;

    return NULL;
}


const char *
chat_lanes_apply(chat_config_t *cfg, const char *spec)
{
    size_t       n;
    const char  *why;

    while (*spec) {
        n = strcspn(spec, "; \t\n");
        if (n > 0) {
            why = chat_lanes_apply_one(cfg, spec, n);
            if (why != NULL) {
                return why;
            }
        }

        spec += n;
        spec += strspn(spec, "; \t\n");
    }

    return NULL;
}


int
chat_lanes_processes(const chat_config_t *cfg)
{
    int  lane, n = 0;

    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        n += cfg->lanes[lane].procs;
    }

    return n;
}


chat_lane_t
chat_lanes_of_index(const chat_config_t *cfg, int index)
{
    int  lane;

    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        if (index < cfg->lanes[lane].procs) {
            return (chat_lane_t) lane;
        }
        index -= cfg->lanes[lane].procs;
    }

    return CHAT_LANE_READ;      /* not reached for a valid index */
}


void
chat_lanes_enter(chat_config_t *cfg, chat_lane_t lane)
{
    const chat_lane_conf_t  *lc = &cfg->lanes[lane];

    cfg->lane = lane;
    cfg->batch = lc->batch;
    cfg->commit_batch = lc->commit_batch;

    if (lc->nice > 0 && setpriority(PRIO_PROCESS, 0, lc->nice) != 0) {
        chat_log_warn("lane %s: setpriority(%d) failed: %s",
                      chat_lane_name(lane), lc->nice, strerror(errno));
    }
}


int
chat_lanes_wait_ms(const chat_lane_conf_t *lc)
{
    return lc->wait_ms > 0 ? lc->wait_ms : lc->timeout_ms / 2;
}


void
chat_lanes_log(const chat_config_t *cfg)
{
    int                      lane;
    const chat_lane_conf_t  *lc;

    for (lane = 0; lane < CHAT_LANE_COUNT; lane++) {
        lc = &cfg->lanes[lane];
        chat_log_info("lane %s: %d processes, batch %d, commit %d, "
                      "concurrency %d, timeout %d ms, queue %d, wait %d ms, "
                      "retry %d s, nice %d", chat_lane_name(lane), lc->procs,
                      lc->batch, lc->commit_batch, lc->concurrency,
                      lc->timeout_ms, lc->queue, chat_lanes_wait_ms(lc),
                      lc->retry_s, lc->nice);
    }
}
