/*
 * stats.h: this worker process's own figures (commands answered, batches
 * and their commit times, outside calls), published with its heartbeat
 * under CHAT_STATS_KEY for the edge's `chat_metrics cluster`.  See stats.c.
 */

#ifndef CHAT_STATS_H
#define CHAT_STATS_H

#include <stddef.h>
#include <stdint.h>

/* commands run to an answer */
void chat_stats_answered(size_t n);

/* a committed transaction of n commands that took ms from BEGIN to COMMIT */
void chat_stats_committed(size_t n, int64_t ms);

/* a transaction rolled back by an infrastructure error */
void chat_stats_failed(void);

/* an outside HTTP call (payment processor, webhook) that took ms */
void chat_stats_call(int64_t ms);

/* The CHAT_STATS_KEY value for this process on lane (chat_protocol.h);
 * the length, or -1 when size is too small. */
int chat_stats_format(char *buf, size_t size, const char *lane);

#endif /* CHAT_STATS_H */
