/*
 * chat_utf8.h: an incremental UTF-8 validator (RFC 3629) that keeps its
 * place across arbitrary chunk boundaries.  The WebSocket parser feeds it
 * each piece of a text message as the piece arrives; anything that wants a
 * yes or no for one buffer calls chat_utf8_valid().
 *
 * The state is three bytes and needs no cleanup: how many continuation
 * bytes are still owed and the range the next one must fall in.  Plain C,
 * no nginx types, nothing allocated.
 */

#ifndef CHAT_UTF8_H
#define CHAT_UTF8_H

#include <stddef.h>

typedef enum {
    CHAT_UTF8_OK = 0,
    CHAT_UTF8_INVALID
} chat_utf8_rc_t;

typedef struct {
    unsigned char  need;        /* continuation bytes owed; 0xff: failed */
    unsigned char  lo;          /* range allowed for the next one */
    unsigned char  hi;
} chat_utf8_t;

void chat_utf8_init(chat_utf8_t *u);

/*
 * Validates the next len bytes of the stream.  On CHAT_UTF8_INVALID, *bad
 * (when not NULL) is the offset in p of the first byte that no valid
 * stream could contain, and the validator stays failed: later feeds return
 * CHAT_UTF8_INVALID with *bad = 0.
 */
chat_utf8_rc_t chat_utf8_feed(chat_utf8_t *u, const unsigned char *p,
    size_t len, size_t *bad);

/* CHAT_UTF8_INVALID when the stream failed or stopped mid-sequence. */
chat_utf8_rc_t chat_utf8_finish(const chat_utf8_t *u);

/* 1 when len bytes at p are a complete, valid UTF-8 string, else 0. */
int chat_utf8_valid(const unsigned char *p, size_t len);

#endif /* CHAT_UTF8_H */
