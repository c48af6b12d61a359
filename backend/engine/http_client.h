/*
 * http_client.h: outbound HTTP calls with a deadline, for the backend's
 * calls to the outside (the payment provider, notification webhooks).
 * A call is an object: made with its request, performed here blocking
 * (chat_http_call_perform) or driven with many others on the worker's
 * loop (http_multi.h), then read and freed.  See http_client.c.
 */

#ifndef CHAT_HTTP_CLIENT_H
#define CHAT_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

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

struct curl_slist;

typedef struct chat_http_call_s  chat_http_call_t;

struct chat_http_call_s {
    /* the request: copies owned by the call */
    char                  method[8];
    char                 *url;
    char                 *body;         /* NULL: none; wiped when freed */
    struct curl_slist    *headers;
    long                  timeout_ms;

    /* the outcome, once finished */
    chat_http_result_t    result;
    chat_http_response_t  resp;

    /* the maker's state, and what frees it with the call (may be NULL) */
    void                 *data;
    void                (*cleanup)(void *data);

    /* whoever drives the call (suspend.c), and its bookkeeping */
    void                 *owner;
    int64_t               started_ms;

    /* libcurl's side (http_client.c, http_multi.c) */
    void                 *easy;
    char                 *buf;
    size_t                buf_len;
    size_t                buf_cap;
    int                   too_large;
};

/* Once per process, before any call (curl_global_init is not thread-safe
 * and must not run inside a request). Returns 0 or -1. */
int chat_http_init(void);

/*
 * A call of method to url with body (NULL: none; sent as
 * application/json) and headers (NULL-terminated "Name: value" strings,
 * or NULL), whose whole exchange must finish within timeout_ms.
 * Everything is copied.  NULL when memory ran out.
 */
chat_http_call_t *chat_http_call_new(const char *method, const char *url,
    const char *const *headers, const char *body, long timeout_ms);

/* Runs data's cleanup, wipes the body (it may hold a card number) and
 * frees everything.  The call must not be in a multi handle. */
void chat_http_call_free(chat_http_call_t *call);

/* Performs the call, blocking until it finishes or its deadline passes;
 * the outcome is in call->result and call->resp. */
chat_http_result_t chat_http_call_perform(chat_http_call_t *call);

/*
 * Sends method to url with body and headers, waiting at most timeout_ms
 * for the whole exchange (a call made, performed and freed).  Fills resp;
 * free resp->body with chat_http_response_free.  Answers over 1 MiB are
 * refused (CHAT_HTTP_FAILED): nothing we call has a reason to send that
 * much.
 */
chat_http_result_t chat_http_request(const char *method, const char *url,
    const char *const *headers, const char *body, long timeout_ms,
    chat_http_response_t *resp);

void chat_http_response_free(chat_http_response_t *resp);

const char *chat_http_result_text(chat_http_result_t result);


/* For http_multi.c only. */

/* Makes the call's easy handle with every option set (call->easy).  0,
 * or -1 with the call finished as CHAT_HTTP_FAILED. */
int chat_http_call_prepare(chat_http_call_t *call);

/* Records how the transfer ended (a CURLcode) in call->result and
 * call->resp, and frees the easy handle. */
void chat_http_call_finish(chat_http_call_t *call, int code);

#endif /* CHAT_HTTP_CLIENT_H */
