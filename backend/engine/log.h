/*
 * log.h: one-line log records on stderr (or a log file reopened on
 * SIGHUP), and the two clocks the backend reads.  See log.c.
 */

#ifndef CHAT_LOG_H
#define CHAT_LOG_H

#include <stddef.h>
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

/* Every later line is one JSON object ({"time", "level", "role", "pid",
 * "rid" when set, "msg"}) instead of text: --log-format json. */
void chat_log_set_json(int on);

/* The edge's request id of the command being run, printed in every line
 * until the next call (NULL or len 0: none).  Copied. */
void chat_log_set_request(const char *rid, size_t len);

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

/* Sends every later record (this process's and its children's) to path,
 * appended, by opening it onto stderr.  Returns -1 with errno on failure.
 * The string must stay valid for the life of the process. */
int chat_log_open(const char *path);

/* Opens the log file's path again onto stderr (after a rotation renamed
 * it); 0 without a log file.  Async-signal-safe.  On failure (-1, errno)
 * records keep going to the old file. */
int chat_log_reopen(void);

/* The log file's path, or NULL when records go to the inherited stderr. */
const char *chat_log_file(void);

/* Installs a SIGHUP handler that calls chat_log_reopen(): for the
 * workers, which the supervisor signals after it has reopened its own. */
void chat_log_reopen_on_sighup(void);

/* Wall clock in milliseconds since the epoch (for heartbeats and logs). */
int64_t chat_time_ms(void);

/* Monotonic milliseconds, for intervals and deadlines (never jumps). */
int64_t chat_mono_ms(void);

/* Sleeps ms milliseconds; returns early when a signal arrives. */
void chat_sleep_ms(int64_t ms);

#endif /* CHAT_LOG_H */
