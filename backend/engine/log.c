/*
 * log.c: the backend's log lines and clocks.
 *
 * Every record is one line on stderr:
 *
 *   2026-11-23T10:00:00.123Z [error] worker 1234: postgres: connection refused
 *
 * UTC timestamp with milliseconds, level, process role and pid, message.
 * The supervisor and all workers share one stderr (the terminal, a log file,
 * or journald), so each line is formatted into a buffer first and written
 * with one write(2): a pipe or file never shows half a line from one process
 * glued to half a line from another.
 *
 * A log file (--log-file) is opened onto stderr (fd 2) before the
 * workers are forked, so the same single write(2) serves both cases.
 * Rotation is logrotate's: it renames the file and sends SIGHUP to the
 * supervisor, which reopens the path onto its fd 2 and passes the signal
 * on; each worker reopens its own fd 2 from the signal handler
 * (chat_log_reopen() uses only open, dup2 and close, all
 * async-signal-safe), so no line is lost or written to the renamed file
 * after the signal has been handled.
 *
 * What it does not do: rotate by itself, syslog, structured output.
 * Without a log file, whoever runs the pool redirects stderr where it
 * wants it (journald under systemd).
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"


#define CHAT_LOG_LINE_MAX  2048

static const char        *chat_log_role = "backend";
static const char        *chat_log_path;    /* --log-file; NULL: stderr */
static chat_log_level_t   chat_log_level = CHAT_LOG_INFO;
static int                chat_log_json;
static char               chat_log_rid[65];  /* CHAT_MAX_RID_LEN + 1 */

static const char *chat_log_names[] = { "debug", "info", "warn", "error" };


void
chat_log_set_role(const char *role)
{
    chat_log_role = role;
}


void
chat_log_set_level(chat_log_level_t level)
{
    chat_log_level = level;
}


void
chat_log_set_json(int on)
{
    chat_log_json = on;
}


void
chat_log_set_request(const char *rid, size_t len)
{
    if (rid == NULL || len >= sizeof(chat_log_rid)) {
        len = 0;
    }

    if (len) {
        memcpy(chat_log_rid, rid, len);
    }
    chat_log_rid[len] = '\0';
}


/* Appends s as the inside of a JSON string at line + n; returns the new n,
 * never past max (a cut escape is dropped whole). */
static int
chat_log_json_escape(char *line, int n, int max, const char *s, size_t len)
{
    size_t          i;
    int             w;
    unsigned char   c;
    char            esc[8];

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c == '"' || c == '\\') {
            esc[0] = '\\'; esc[1] = (char) c; w = 2;
        } else if (c == '\n') {
            esc[0] = '\\'; esc[1] = 'n'; w = 2;
        } else if (c < 0x20 || c == 0x7f) {
            w = snprintf(esc, sizeof(esc), "\\u%04x", c);
        } else {
            esc[0] = (char) c; w = 1;
        }

        if (n + w > max) {
            break;
        }

        memcpy(line + n, esc, w);
        n += w;
    }

    return n;
}


int
chat_log_parse_level(const char *name)
{
    int  i;

    for (i = 0; i < 4; i++) {
        if (strcmp(name, chat_log_names[i]) == 0) {
            return i;
        }
    }

    return -1;
}


int
chat_log_enabled(chat_log_level_t level)
{
    return level >= chat_log_level;
}


void
chat_log(chat_log_level_t level, const char *fmt, ...)
{
    int              n, m, saved_errno;
    char             line[CHAT_LOG_LINE_MAX + 256];
    char             msg[CHAT_LOG_LINE_MAX];
    va_list          ap;
    struct tm        tm;
    struct timespec  ts;

    if (level < chat_log_level) {
        return;
    }

    saved_errno = errno;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    va_start(ap, fmt);
    m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (m < 0) {
        m = 0;
    }

    if (m > (int) sizeof(msg) - 1) {
        /* truncated: mark it */
        m = sizeof(msg) - 1;
        memcpy(msg + m - 3, "...", 3);
    }

    if (chat_log_json) {
        n = snprintf(line, sizeof(line),
                     "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
                     "\"level\":\"%s\",\"role\":\"%s\",\"pid\":%ld,"
                     "%s%s%s\"msg\":\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     chat_log_names[level], chat_log_role, (long) getpid(),
                     chat_log_rid[0] ? "\"rid\":\"" : "", chat_log_rid,
                     chat_log_rid[0] ? "\"," : "");
        /* room for the closing quote, brace and newline */
        n = chat_log_json_escape(line, n, sizeof(line) - 3, msg, m);
        line[n++] = '"';
        line[n++] = '}';

    } else {
        n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] %s %ld%s%s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     chat_log_names[level], chat_log_role, (long) getpid(),
                     chat_log_rid[0] ? " rid=" : "", chat_log_rid);
        if (m > (int) sizeof(line) - 1 - n) {
            m = sizeof(line) - 1 - n;
        }
        memcpy(line + n, msg, m);
        n += m;
    }

    line[n++] = '\n';

    /* a short write to stderr is not worth retrying */
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nothing sensible left to do */
    }

    errno = saved_errno;
}


int
chat_log_open(const char *path)
{
    chat_log_path = path;

    return chat_log_reopen();
}


int
chat_log_reopen(void)
{
    int  fd, saved_errno;

    if (chat_log_path == NULL) {
        return 0;
    }

    /* 0640: the log names users and conversations; its group reads it */
    fd = open(chat_log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
              0640);
    if (fd < 0) {
        return -1;
    }

    if (fd != STDERR_FILENO) {
        /* dup2 swaps fd 2 atomically: a write is in the old file or the
         * new one, never nowhere */
        if (dup2(fd, STDERR_FILENO) < 0) {
            saved_errno = errno;
            close(fd);
            errno = saved_errno;
            return -1;
        }

        close(fd);
    }

    return 0;
}


const char *
chat_log_file(void)
{
    return chat_log_path;
}


static void
chat_log_on_sighup(int signo)
{
    int  saved_errno;

    (void) signo;

    saved_errno = errno;
    (void) chat_log_reopen();     /* the old file is kept on failure */
    errno = saved_errno;
}


void
chat_log_reopen_on_sighup(void)
{
    struct sigaction  sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = chat_log_on_sighup;
    sigemptyset(&sa.sa_mask);
    /* a log rotation must not fail a Redis or PostgreSQL call in hand */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
}


int64_t
chat_time_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int64_t
chat_mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


void
chat_sleep_ms(int64_t ms)
{
    struct timespec  ts;

    if (ms <= 0) {
        return;
    }

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;

    /* EINTR ends the sleep on purpose: a SIGTERM must be seen promptly */
    nanosleep(&ts, NULL);
}
