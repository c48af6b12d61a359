/*
 * http_multi.h: many outbound HTTP calls in flight on one worker's loop
 * (libcurl's multi interface).  See http_multi.c.
 */

#ifndef CHAT_HTTP_MULTI_H
#define CHAT_HTTP_MULTI_H

#include <stddef.h>

#include "http_client.h"

typedef struct {
    void    *multi;             /* CURLM *, NULL until the first call */
    size_t   active;            /* started, not yet collected */
} chat_http_multi_t;

/* Releases the multi handle; every call must have been collected or
 * cancelled first. */
void chat_http_multi_free(chat_http_multi_t *m);

/*
 * Starts call (made with chat_http_call_new) without waiting.  0, or -1
 * with the call finished as CHAT_HTTP_FAILED (not started: the caller
 * still owns it and reads the failure as an outcome).
 */
int chat_http_multi_start(chat_http_multi_t *m, chat_http_call_t *call);

/* Stops a started call that is no longer wanted; the caller still owns
 * it (and frees it). */
void chat_http_multi_cancel(chat_http_multi_t *m, chat_http_call_t *call);

/*
 * Moves every transfer on, first waiting up to timeout_ms for any of
 * them to have something to do (0: no waiting).  Finished calls are
 * collected with chat_http_multi_done.
 */
void chat_http_multi_wait(chat_http_multi_t *m, int timeout_ms);

/* A finished call with its outcome set, taken out of the multi handle
 * (the caller owns it again), or NULL when none has finished. */
chat_http_call_t *chat_http_multi_done(chat_http_multi_t *m);

#endif /* CHAT_HTTP_MULTI_H */
