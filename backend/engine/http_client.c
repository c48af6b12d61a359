/*
 * http_client.c: outbound HTTP with libcurl.
 *
 * Why libcurl: a correct HTTP/1.1 client (chunked answers, keep-alive,
 * redirects refused, TLS for a real provider, timeouts that cover connect
 * and transfer) is a project of its own; libcurl is the well-kept one every
 * distribution ships.
 *
 * A call (chat_http_call_t) carries its request, its deadline and, once
 * finished, its outcome.  It runs one of two ways with the same options:
 * blocking here (chat_http_call_perform: the notifier's webhooks, which
 * have a process to themselves), or in a worker's multi handle beside
 * many others (http_multi.c: the payment provider, so a worker waiting on
 * a charge still serves other commands).  Every call carries a deadline
 * that covers connect and transfer, so a hung peer costs at most
 * timeout_ms.
 *
 * A blocking call makes its own easy handle, and so its own connection;
 * calls in a multi handle share that handle's connection cache, so a
 * busy worker keeps a few warm connections to the provider instead of
 * connecting for every charge.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http_client.h"
#include "stats.h"

#define CHAT_HTTP_MAX_BODY  (1024 * 1024)


int
chat_http_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}


chat_http_call_t *
chat_http_call_new(const char *method, const char *url,
    const char *const *headers, const char *body, long timeout_ms)
{
    chat_http_call_t   *call;
    struct curl_slist  *l;

    call = calloc(1, sizeof(chat_http_call_t));
    if (call == NULL) {
        return NULL;
    }

    snprintf(call->method, sizeof(call->method), "%s", method);
    call->timeout_ms = timeout_ms;
    call->url = strdup(url);

    if (call->url == NULL) {
        goto failed;
    }

    if (body != NULL) {
        call->body = strdup(body);
        l = curl_slist_append(NULL, "Content-Type: application/json");
        if (call->body == NULL || l == NULL) {
            curl_slist_free_all(l);
            goto failed;
        }
        call->headers = l;
    }

    for (; headers && *headers; headers++) {
        l = curl_slist_append(call->headers, *headers);
        if (l == NULL) {
            goto failed;
        }
        call->headers = l;
    }

    return call;

failed:

    chat_http_call_free(call);
    return NULL;
}


void
chat_http_call_free(chat_http_call_t *call)
{
    if (call == NULL) {
        return;
    }

    if (call->cleanup != NULL) {
        call->cleanup(call->data);
    }

    if (call->body != NULL) {
        explicit_bzero(call->body, strlen(call->body));
        free(call->body);
    }

    if (call->easy != NULL) {
        curl_easy_cleanup(call->easy);
    }

    curl_slist_free_all(call->headers);
    free(call->url);
    free(call->buf);
    chat_http_response_free(&call->resp);
    free(call);
}


static size_t
chat_http_collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    size_t             n = size * nmemb, cap;
    char              *p;
    chat_http_call_t  *call = userdata;

    if (call->buf_len + n > CHAT_HTTP_MAX_BODY) {
        call->too_large = 1;
        return 0;                       /* makes curl fail the transfer */
    }

    if (call->buf_len + n + 1 > call->buf_cap) {
        cap = call->buf_cap ? call->buf_cap : 1024;
        while (cap < call->buf_len + n + 1) {
            cap *= 2;
        }
        p = realloc(call->buf, cap);
        if (p == NULL) {
            return 0;
        }
        call->buf = p;
        call->buf_cap = cap;
    }

    memcpy(call->buf + call->buf_len, ptr, n);
    call->buf_len += n;
    call->buf[call->buf_len] = '\0';
    return n;
}


int
chat_http_call_prepare(chat_http_call_t *call)
{
    CURL  *curl;

    memset(&call->resp, 0, sizeof(call->resp));

    curl = curl_easy_init();
    if (curl == NULL) {
        call->result = CHAT_HTTP_FAILED;
        strcpy(call->resp.error, "curl_easy_init failed");
        return -1;
    }

    if (call->body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, call->body);
    }

    curl_easy_setopt(curl, CURLOPT_URL, call->url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, call->method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, call->headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, call->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, call->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  /* no SIGALRM in workers */
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, call->resp.error);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, chat_http_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(curl, CURLOPT_PRIVATE, call);

    call->easy = curl;
    return 0;
}


void
chat_http_call_finish(chat_http_call_t *call, int code)
{
    CURLcode    rc = (CURLcode) code;
    curl_off_t  us;

    if (curl_easy_getinfo(call->easy, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK)
    {
        chat_stats_call((int64_t) (us / 1000));
    }

    if (rc == CURLE_OK) {
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE,
                          &call->resp.status);
        call->resp.body = call->buf ? call->buf : strdup("");
        call->resp.body_len = call->buf_len;
        call->buf = NULL;
        call->result = call->resp.body ? CHAT_HTTP_OK : CHAT_HTTP_FAILED;

    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        call->result = CHAT_HTTP_TIMEOUT;

    } else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST
               || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR
               || rc == CURLE_GOT_NOTHING)
    {
        call->result = CHAT_HTTP_UNREACHABLE;

    } else {
        call->result = CHAT_HTTP_FAILED;
        if (call->too_large) {
            strcpy(call->resp.error, "answer over 1 MiB");
        }
    }

    if (call->result != CHAT_HTTP_OK && call->resp.error[0] == '\0') {
        strncpy(call->resp.error, curl_easy_strerror(rc),
                sizeof(call->resp.error) - 1);
    }

    free(call->buf);
    call->buf = NULL;
    call->buf_len = 0;
    call->buf_cap = 0;

    curl_easy_cleanup(call->easy);
    call->easy = NULL;
}


chat_http_result_t
chat_http_call_perform(chat_http_call_t *call)
{
    if (chat_http_call_prepare(call) != 0) {
        return call->result;
    }

    chat_http_call_finish(call, curl_easy_perform(call->easy));
    return call->result;
}


chat_http_result_t
chat_http_request(const char *method, const char *url,
    const char *const *headers, const char *body, long timeout_ms,
    chat_http_response_t *resp)
{
    chat_http_call_t    *call;
    chat_http_result_t   result;

    memset(resp, 0, sizeof(*resp));

    call = chat_http_call_new(method, url, headers, body, timeout_ms);
    if (call == NULL) {
        strcpy(resp->error, "out of memory");
        return CHAT_HTTP_FAILED;
    }

    result = chat_http_call_perform(call);

    *resp = call->resp;
    memset(&call->resp, 0, sizeof(call->resp));
    chat_http_call_free(call);

    return result;
}


void
chat_http_response_free(chat_http_response_t *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}


const char *
chat_http_result_text(chat_http_result_t result)
{
    switch (result) {
    case CHAT_HTTP_OK:          return "ok";
    case CHAT_HTTP_TIMEOUT:     return "timeout";
    case CHAT_HTTP_UNREACHABLE: return "unreachable";
    default:                    return "failed";
    }
}
