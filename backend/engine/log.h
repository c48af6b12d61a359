/*
 * log.h: one-line log records on stderr, and the two clocks the backend
 * reads.  See log.c.
 */

#ifndef CHAT_LOG_H
#define CHAT_LOG_H

#include <stdint.h>

typedef enum {
    CHAT_LOG_DEBUG = 0,
    CHAT_LOG_INFO,
    CHAT_LOG_WARN,
    CHAT_LOG_ERROR
} chat_log_level_t;

/* The process role printed in every line ("supervisor", "worker", ...);
 * the string must stay valid for the life of the process. */
void chat_log_set_role(const char *role);

void chat_log_set_level(chat_log_level_t level);

/* Parses "debug" | "info" | "warn" | "error"; -1 for anything else. */
int chat_log_parse_level(const char *name);

int chat_log_enabled(chat_log_level_t level);

/* Writes one line with a single write(2), so lines of concurrent
 * processes sharing stderr never interleave.  Long lines are truncated. */
void chat_log(chat_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define chat_log_debug(...)                                                 \
    do {                                                                    \
        if (chat_log_enabled(CHAT_LOG_DEBUG)) {                             \
            chat_log(CHAT_LOG_DEBUG, __VA_ARGS__);                          \
        }                                                                   \
    } while (0)
#define chat_log_info(...)   chat_log(CHAT_LOG_INFO, __VA_ARGS__)
#define chat_log_warn(...)   chat_log(CHAT_LOG_WARN, __VA_ARGS__)
#define chat_log_error(...)  chat_log(CHAT_LOG_ERROR, __VA_ARGS__)

/* Wall clock in milliseconds since the epoch (for heartbeats and logs). */
int64_t chat_time_ms(void);

/* Monotonic milliseconds, for intervals and deadlines (never jumps). */
int64_t chat_mono_ms(void);

/* Sleeps ms milliseconds; returns early when a signal arrives. */
void chat_sleep_ms(int64_t ms);

#endif /* CHAT_LOG_H */
