/*
 * chat_poll.h: the long-poll parameters (GET /api/v1/events?cursor=&timeout=)
 * as plain C, shared by the edge and the unit tests and fuzzer.  See
 * chat_poll.c.
 */

#ifndef CHAT_POLL_H
#define CHAT_POLL_H

#include <stddef.h>
#include <stdint.h>

#include "chat_keys.h"                  /* CHAT_POLL_SID_LEN */

#define CHAT_POLL_CURSOR_MAX     64      /* sid "_" ms "-" seq, with room */
#define CHAT_POLL_TIMEOUT_MAX    120     /* seconds */

typedef struct {
    char      sid[CHAT_POLL_SID_LEN + 1];
    uint64_t  ms;               /* the Redis stream id of the last event */
    uint64_t  seq;              /* seen, "<ms>-<seq>"; 0-0 before any */
} chat_poll_cursor_t;

typedef enum {
    CHAT_POLL_OK = 0,
    CHAT_POLL_EMPTY,            /* no cursor: start a new session */
    CHAT_POLL_INVALID
} chat_poll_rc_t;

/*
 * Parses a cursor "<sid>_<ms>-<seq>" (len bytes, not NUL-terminated):
 * exactly 16 lowercase hex digits, then decimal numbers without sign or
 * leading zeros, each below 2^63.  len 0 is CHAT_POLL_EMPTY.
 */
chat_poll_rc_t chat_poll_cursor_parse(const char *s, size_t len,
    chat_poll_cursor_t *c);

/* Writes the cursor NUL-terminated into out (at least
 * CHAT_POLL_CURSOR_MAX bytes); returns its length. */
size_t chat_poll_cursor_format(const chat_poll_cursor_t *c, char *out);

/*
 * Parses the timeout in whole seconds, 0..CHAT_POLL_TIMEOUT_MAX; len 0
 * gives dflt.  Returns the seconds, or -1 when invalid.
 */
int chat_poll_timeout_parse(const char *s, size_t len, int dflt);

/* Parses a Redis stream id "<ms>-<seq>" into c->ms / c->seq; 0 or -1. */
int chat_poll_stream_id_parse(const char *s, size_t len,
    chat_poll_cursor_t *c);

#endif /* CHAT_POLL_H */
