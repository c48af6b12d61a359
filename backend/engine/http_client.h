/*
 * http_client.h: one blocking HTTP call with a deadline, for the backend's
 * outbound calls (the payment provider, notification webhooks).  See
 * http_client.c.
 */

#ifndef CHAT_HTTP_CLIENT_H
#define CHAT_HTTP_CLIENT_H

#include <stddef.h>

typedef enum {
    CHAT_HTTP_OK = 0,        /* an answer arrived (any status) */
    CHAT_HTTP_TIMEOUT,       /* no complete answer before the deadline */
    CHAT_HTTP_UNREACHABLE,   /* refused, reset, DNS: nothing was answered */
    CHAT_HTTP_FAILED         /* bad URL, out of memory, answer too large */
} chat_http_result_t;

typedef struct {
    long     status;         /* HTTP status when CHAT_HTTP_OK, else 0 */
    char    *body;           /* NUL-terminated, malloc'ed; caller frees */
    size_t   body_len;
    char     error[256];     /* why, when not CHAT_HTTP_OK */
} chat_http_response_t;

/* Once per process, before any call (curl_global_init is not thread-safe
 * and must not run inside a request). Returns 0 or -1. */
int chat_http_init(void);

/*
 * Sends method to url with body (NULL: none, sent as application/json)
 * and headers (NULL-terminated "Name: value" strings, or NULL), waiting at
 * most timeout_ms for the whole exchange.  Fills resp; free resp->body
 * with chat_http_response_free.  Answers over 1 MiB are refused
 * (CHAT_HTTP_FAILED): nothing we call has a reason to send that much.
 */
chat_http_result_t chat_http_request(const char *method, const char *url,
    const char *const *headers, const char *body, long timeout_ms,
    chat_http_response_t *resp);

void chat_http_response_free(chat_http_response_t *resp);

const char *chat_http_result_text(chat_http_result_t result);

#endif /* CHAT_HTTP_CLIENT_H */
