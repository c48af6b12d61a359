/*
 * stats.c: a worker's figures for Prometheus.
 *
 * The backend opens no port of its own: each worker process counts in
 * plain process memory (one process, one thread: no atomics) and, with
 * every heartbeat (bus_liveness.c), writes the totals since it started to
 * Redis as one line (the format is in chat_protocol.h).  The edge's
 * `chat_metrics cluster` location reads them all in its one scrape and
 * exports them labelled by worker and lane, so a Prometheus that scrapes
 * that location once sees every worker's own series, and a restarted
 * worker shows up as a new series starting from zero (a counter reset, as
 * Prometheus expects).  The field goes with the heartbeat's.
 *
 * Histograms use the edge's buckets (CHAT_LATENCY_BOUNDS_MS) and count in
 * whole milliseconds: a commit under a millisecond falls in the first.
 */

#include <stdio.h>

#include "chat_protocol.h"
#include "stats.h"


static const int64_t  chat_stats_bounds[] = { CHAT_LATENCY_BOUNDS_MS };

typedef struct {
    uint64_t  count;
    uint64_t  sum_ms;
    uint64_t  bucket[CHAT_LATENCY_NBOUNDS + 1];
} chat_stats_hist_t;

static struct {
    uint64_t           answered;
    uint64_t           failed;
    uint64_t           batches;
    uint64_t           batch_commands;
    chat_stats_hist_t  commit;
    chat_stats_hist_t  call;
} chat_stats;


static void
chat_stats_observe(chat_stats_hist_t *h, int64_t ms)
{
    int  b;

    if (ms < 0) {
        ms = 0;
    }

    for (b = 0; b < CHAT_LATENCY_NBOUNDS; b++) {
        if (ms <= chat_stats_bounds[b]) {
            break;
        }
    }

    h->bucket[b]++;
    h->count++;
    h->sum_ms += (uint64_t) ms;
}


void
chat_stats_answered(size_t n)
{
    chat_stats.answered += n;
}


void
chat_stats_committed(size_t n, int64_t ms)
{
    chat_stats.batches++;
    chat_stats.batch_commands += n;
    chat_stats_observe(&chat_stats.commit, ms);
}


void
chat_stats_failed(void)
{
    chat_stats.failed++;
}


void
chat_stats_call(int64_t ms)
{
    chat_stats_observe(&chat_stats.call, ms);
}


/* " count sum b0 b1 ... bN" */
static int
chat_stats_put_hist(char *buf, size_t size, const chat_stats_hist_t *h)
{
    int     b, n, m;

    n = snprintf(buf, size, " %llu %llu", (unsigned long long) h->count,
                 (unsigned long long) h->sum_ms);

    for (b = 0; b <= CHAT_LATENCY_NBOUNDS && n >= 0 && (size_t) n < size;
         b++)
    {
        m = snprintf(buf + n, size - n, " %llu",
                     (unsigned long long) h->bucket[b]);
        n = m < 0 ? -1 : n + m;
    }

    return n;
}


int
chat_stats_format(char *buf, size_t size, const char *lane)
{
    int  n, m;

    n = snprintf(buf, size, CHAT_STATS_VERSION " %s %llu %llu %llu %llu",
                 lane, (unsigned long long) chat_stats.answered,
                 (unsigned long long) chat_stats.failed,
                 (unsigned long long) chat_stats.batches,
                 (unsigned long long) chat_stats.batch_commands);
    if (n < 0 || (size_t) n >= size) {
        return -1;
    }

    m = chat_stats_put_hist(buf + n, size - n, &chat_stats.commit);
    if (m < 0 || (size_t) (n + m) >= size) {
        return -1;
    }
    n += m;

    m = chat_stats_put_hist(buf + n, size - n, &chat_stats.call);
    if (m < 0 || (size_t) (n + m) >= size) {
        return -1;
    }

    return n + m;
}
