/*
 * http_client.c: outbound HTTP with libcurl.
 *
 * Why libcurl: a correct HTTP/1.1 client (chunked answers, keep-alive,
 * redirects refused, TLS for a real provider, timeouts that cover connect
 * and transfer) is a project of its own; libcurl is the well-kept one every
 * distribution ships.  Calls are blocking: the backend's workers are
 * processes that each do one thing at a time, and every call carries a
 * deadline so a hung peer costs at most timeout_ms.
 *
 * A fresh easy handle per call keeps the code simple; the connection is not
 * reused across calls, which at our call rates (a payment per checkout, a
 * webhook per notification batch) costs nothing that matters.
 */

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http_client.h"

#define CHAT_HTTP_MAX_BODY  (1024 * 1024)


typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
    int      too_large;
} chat_http_buf_t;


int
chat_http_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}


static size_t
chat_http_collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    size_t            n = size * nmemb, cap;
    char             *p;
    chat_http_buf_t  *buf = userdata;

    if (buf->len + n > CHAT_HTTP_MAX_BODY) {
        buf->too_large = 1;
        return 0;                       /* makes curl fail the transfer */
    }

    if (buf->len + n + 1 > buf->cap) {
        cap = buf->cap ? buf->cap : 1024;
        while (cap < buf->len + n + 1) {
            cap *= 2;
        }
        p = realloc(buf->data, cap);
        if (p == NULL) {
            return 0;
        }
        buf->data = p;
        buf->cap = cap;
    }

    memcpy(buf->data + buf->len, ptr, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
    return n;
}


chat_http_result_t
chat_http_request(const char *method, const char *url,
    const char *const *headers, const char *body, long timeout_ms,
    chat_http_response_t *resp)
{
    CURL                *curl;
    CURLcode             rc;
    chat_http_buf_t      buf = { NULL, 0, 0, 0 };
    chat_http_result_t   result;
    struct curl_slist   *list = NULL, *l;

    memset(resp, 0, sizeof(*resp));

    curl = curl_easy_init();
    if (curl == NULL) {
        strcpy(resp->error, "curl_easy_init failed");
        return CHAT_HTTP_FAILED;
    }

    for (; headers && *headers; headers++) {
        l = curl_slist_append(list, *headers);
        if (l == NULL) {
            goto oom;
        }
        list = l;
    }

    if (body) {
        l = curl_slist_append(list, "Content-Type: application/json");
        if (l == NULL) {
            goto oom;
        }
        list = l;
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    }

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  /* no SIGALRM in workers */
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, resp->error);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, chat_http_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);

    rc = curl_easy_perform(curl);

    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
        resp->body = buf.data ? buf.data : strdup("");
        resp->body_len = buf.len;
        buf.data = NULL;
        result = resp->body ? CHAT_HTTP_OK : CHAT_HTTP_FAILED;

    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        result = CHAT_HTTP_TIMEOUT;

    } else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST
               || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR
               || rc == CURLE_GOT_NOTHING)
    {
        result = CHAT_HTTP_UNREACHABLE;

    } else {
        result = CHAT_HTTP_FAILED;
        if (buf.too_large) {
            strcpy(resp->error, "answer over 1 MiB");
        }
    }

    if (result != CHAT_HTTP_OK && resp->error[0] == '\0') {
        strncpy(resp->error, curl_easy_strerror(rc), sizeof(resp->error) - 1);
    }

    free(buf.data);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return result;

oom:
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    strcpy(resp->error, "out of memory");
    return CHAT_HTTP_FAILED;
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
