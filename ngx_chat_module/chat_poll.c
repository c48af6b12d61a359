/*
 * chat_poll.c: parsing and formatting the long-poll cursor and timeout.
 *
 * A cursor names a poll session and the last event the client has from
 * it: "<sid>_<ms>-<seq>", where sid is the session's 16 hex digits and
 * "<ms>-<seq>" the Redis stream id of that event (0-0 before the first).
 * The parser is strict (one spelling per value, no signs, no leading
 * zeros, nothing trailing) because a cursor is an address into Redis: a
 * lenient parse would let two spellings name the same place, and an
 * overflowing number would name a wrong one.
 */

#include <string.h>

#include "chat_poll.h"


/* A decimal below 2^63 without sign or leading zeros; the digits consumed,
 * or 0 when there are none or it is malformed. */
static size_t
chat_poll_number(const char *s, size_t len, uint64_t *out)
{
    size_t    i;
    uint64_t  v = 0;

    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (i == 1 && s[0] == '0') {
            return 0;                   /* leading zero */
        }
        if (v > (UINT64_C(0x7fffffffffffffff) - (uint64_t) (s[i] - '0')) / 10)
        {
            return 0;                   /* past 2^63 - 1 */
        }
        v = v * 10 + (uint64_t) (s[i] - '0');
    }

    *out = v;
    return i;
}


int
chat_poll_stream_id_parse(const char *s, size_t len, chat_poll_cursor_t *c)
{
    size_t  n;

    n = chat_poll_number(s, len, &c->ms);
    if (n == 0 || n >= len || s[n] != '-') {
        return -1;
    }

    s += n + 1;
    len -= n + 1;

    n = chat_poll_number(s, len, &c->seq);
    if (n == 0 || n != len) {
        return -1;
    }

    return 0;
}


chat_poll_rc_t
chat_poll_cursor_parse(const char *s, size_t len, chat_poll_cursor_t *c)
{
    size_t  i;

    if (len == 0) {
        return CHAT_POLL_EMPTY;
    }

    if (len > CHAT_POLL_CURSOR_MAX || len < CHAT_POLL_SID_LEN + 4
        || s[CHAT_POLL_SID_LEN] != '_')
    {
        return CHAT_POLL_INVALID;
    }

    for (i = 0; i < CHAT_POLL_SID_LEN; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return CHAT_POLL_INVALID;
        }
        c->sid[i] = s[i];
    }
    c->sid[CHAT_POLL_SID_LEN] = '\0';

    if (chat_poll_stream_id_parse(s + CHAT_POLL_SID_LEN + 1,
                                  len - CHAT_POLL_SID_LEN - 1, c) != 0)
    {
        return CHAT_POLL_INVALID;
    }

    return CHAT_POLL_OK;
}


/* Writes v in decimal at p; returns the end. */
static char *
chat_poll_put_number(char *p, uint64_t v)
{
    char    tmp[20];
    size_t  n = 0;

    do {
        tmp[n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    while (n) {
        *p++ = tmp[--n];
    }

    return p;
}


size_t
chat_poll_cursor_format(const chat_poll_cursor_t *c, char *out)
{
    char  *p = out;

    memcpy(p, c->sid, CHAT_POLL_SID_LEN);
    p += CHAT_POLL_SID_LEN;
    *p++ = '_';
    p = chat_poll_put_number(p, c->ms);
    *p++ = '-';
    p = chat_poll_put_number(p, c->seq);
    *p = '\0';

    return (size_t) (p - out);
}


int
chat_poll_timeout_parse(const char *s, size_t len, int dflt)
{
    uint64_t  v;

    if (len == 0) {
        return dflt;
    }

    if (chat_poll_number(s, len, &v) != len || v > CHAT_POLL_TIMEOUT_MAX) {
        return -1;
    }

    return (int) v;
}
