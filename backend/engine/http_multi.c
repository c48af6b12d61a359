/*
 * http_multi.c: outbound calls in flight side by side on a worker's loop.
 *
 * A worker that waited on each payment call in turn served one checkout
 * per processor round trip (300 ms to 2 s with a real processor).  Here
 * the calls of one worker share a libcurl multi handle: the worker starts
 * a call and goes on with other commands; between them it gives the
 * handle a moment (chat_http_multi_wait, which also waits when there is
 * nothing else to do) and collects what has finished.  Nothing here
 * blocks beyond the wait the caller asks for.
 *
 * The calls are the same objects as blocking ones (http_client.c) with
 * the same options and deadlines; libcurl enforces each deadline inside
 * the multi handle, and a call past it finishes as CHAT_HTTP_TIMEOUT.
 * The handle keeps a connection cache, so consecutive calls to the same
 * provider reuse warm keep-alive connections.
 *
 * What it does not do: know what a call is for, or own it.  The caller
 * (suspend.c) keeps each call and decides what its outcome means.
 */

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "http_multi.h"
#include "log.h"


void
chat_http_multi_free(chat_http_multi_t *m)
{
    if (m->multi != NULL) {
        curl_multi_cleanup(m->multi);
        m->multi = NULL;
    }

    m->active = 0;
}


int
chat_http_multi_start(chat_http_multi_t *m, chat_http_call_t *call)
{
    CURLMcode  rc;

    if (m->multi == NULL) {
        m->multi = curl_multi_init();
        if (m->multi == NULL) {
            call->result = CHAT_HTTP_FAILED;
            strcpy(call->resp.error, "curl_multi_init failed");
            return -1;
        }
    }

    if (chat_http_call_prepare(call) != 0) {
        return -1;
    }

    rc = curl_multi_add_handle(m->multi, call->easy);
    if (rc != CURLM_OK) {
        chat_http_call_finish(call, CURLE_FAILED_INIT);
        snprintf(call->resp.error, sizeof(call->resp.error),
                 "curl_multi_add_handle: %s", curl_multi_strerror(rc));
        return -1;
    }

    call->started_ms = chat_mono_ms();
    m->active++;

    return 0;
}


void
chat_http_multi_cancel(chat_http_multi_t *m, chat_http_call_t *call)
{
    if (call->easy == NULL) {
        return;                 /* finished already */
    }

    (void) curl_multi_remove_handle(m->multi, call->easy);
    chat_http_call_finish(call, CURLE_ABORTED_BY_CALLBACK);
    m->active--;
}


void
chat_http_multi_wait(chat_http_multi_t *m, int timeout_ms)
{
    int        running;
    CURLMcode  rc;

    if (m->multi == NULL || m->active == 0) {
        return;
    }

    if (timeout_ms > 0) {
        rc = curl_multi_poll(m->multi, NULL, 0, timeout_ms, NULL);
        if (rc != CURLM_OK) {
            chat_log_error("curl_multi_poll: %s", curl_multi_strerror(rc));
        }
    }

    rc = curl_multi_perform(m->multi, &running);
    if (rc != CURLM_OK) {
        chat_log_error("curl_multi_perform: %s", curl_multi_strerror(rc));
    }
}


chat_http_call_t *
chat_http_multi_done(chat_http_multi_t *m)
{
    int                left;
    CURLMsg           *msg;
    CURLcode           result;
    chat_http_call_t  *call;

    if (m->multi == NULL) {
        return NULL;
    }

    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        /* msg is gone once its handle is removed: read it first */
        call = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
                          (char **) &call);
        result = msg->data.result;

        (void) curl_multi_remove_handle(m->multi, msg->easy_handle);

        if (call == NULL) {
            continue;           /* every handle added is a call's */
        }

        chat_http_call_finish(call, result);
        m->active--;

        return call;
    }

    return NULL;
}
