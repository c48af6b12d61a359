/*
 * ngx_chat_ws.c: WebSocket connections (RFC 6455) on an nginx worker.
 *
 * The handshake is an ordinary content handler: it checks the request
 * (GET, HTTP/1.1, Upgrade, Connection, version 13, a 16-byte key, the
 * Origin allowlist, a valid token or a single-use ticket) and answers
 * 101; a ticket (?ticket=) is taken out of Redis first (ngx_chat_session.c),
 * so that handshake answers from a callback.  From then on the
 * connection's read and write events come here, and the HTTP request only
 * carries the pool and the access log line.
 *
 * Reading: bytes go through chat_ws_parse() (chat_ws.c), which does the
 * framing rules, UTF-8 checks and size cap; text messages are reassembled
 * in a buffer that never outgrows chat_ws_max_message and is freed after
 * each message.  The read buffer itself is one per worker: the parser
 * keeps its own state between reads, so nothing per connection needs it.
 *
 * Writing: frames wait in a per-connection queue bounded by
 * chat_ws_max_queue bytes.  A reader too slow to keep it under the bound is
 * closed with 1008, so a slow client can never grow the worker's memory.
 *
 * Liveness: a ping every chat_ws_ping_interval; no pong within
 * chat_ws_pong_timeout and the connection is dropped.
 *
 * What the messages mean (commands, answers, events) is the chat layer's
 * business, in ngx_chat_ws_chat.c; this file only moves frames.
 *
 * Closing is always deferred to a posted event, never done in the middle
 * of a registry walk or a parser loop, and the request's pool cleanup is
 * the one place that releases everything.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "chat_ws.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_metrics.h"
#include "ngx_chat_module.h"
#include "ngx_chat_registry.h"
#include "ngx_chat_ws.h"


#define NGX_CHAT_WS_READ_BUF        16384
#define NGX_CHAT_WS_CLOSE_TIMEOUT   5000
#define NGX_CHAT_WS_GUID            "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


static ngx_int_t ngx_chat_ws_check(ngx_http_request_t *r, u_char *accept,
    ngx_chat_caller_t *caller, ngx_str_t *ticket, ngx_int_t *refused);
static ngx_int_t ngx_chat_ws_hide_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
static void ngx_chat_ws_ticket_ready(ngx_http_request_t *r,
    ngx_chat_caller_t *caller, void *data);
static void ngx_chat_ws_revoked(ngx_chat_client_t *client, u_char *sid,
    size_t len);
static ngx_int_t ngx_chat_ws_header_has(ngx_table_elt_t *h, const char *token);
static ngx_int_t ngx_chat_ws_start(ngx_http_request_t *r, u_char *accept,
    ngx_chat_caller_t *caller);
static void ngx_chat_ws_cleanup(void *data);

static void ngx_chat_ws_read(ngx_event_t *rev);
static void ngx_chat_ws_write(ngx_event_t *wev);
static ngx_int_t ngx_chat_ws_consume(ngx_chat_ws_t *ws, u_char *buf,
    size_t len);

static void ngx_chat_ws_drop(ngx_chat_ws_t *ws);
static void ngx_chat_ws_closer(ngx_event_t *ev);
static void ngx_chat_ws_ping(ngx_event_t *ev);
static void ngx_chat_ws_expired(ngx_event_t *ev);


static u_char  ngx_chat_ws_read_buf[NGX_CHAT_WS_READ_BUF];


/* handshake */

ngx_int_t
ngx_chat_ws_handler(ngx_http_request_t *r)
{
    u_char             accept[32], *saved;
    ngx_int_t          rc;
    ngx_str_t          ticket;
    ngx_chat_caller_t  caller;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_chat_ws_check(r, accept, &caller, &ticket, &rc) != NGX_OK) {
        return rc;
    }

    if (ticket.len == 0) {
        return ngx_chat_ws_start(r, accept, &caller);
    }

    /* the caller is in Redis under the ticket: the 101 comes later */
    saved = ngx_pnalloc(r->pool, sizeof(accept));
    if (saved == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ngx_memcpy(saved, accept, sizeof(accept));

    rc = ngx_chat_session_redeem(r, &ticket, ngx_chat_ws_ticket_ready, saved);
    if (rc == NGX_DONE) {
        r->main->count++;
    }

    return rc;
}


static void
ngx_chat_ws_ticket_ready(ngx_http_request_t *r, ngx_chat_caller_t *caller,
    void *data)
{
    ngx_http_finalize_request(r, ngx_chat_ws_start(r, data, caller));
}


/*
 * Returns NGX_OK with the Sec-WebSocket-Accept value and the caller, or
 * NGX_DECLINED with *refused set to what the handler returns once the
 * refusal has been sent.
 */
#define ngx_chat_ws_refuse(status, code, message)                           \
    (*refused = ngx_chat_send_error(r, status, code, message), NGX_DECLINED)

static ngx_int_t
ngx_chat_ws_check(ngx_http_request_t *r, u_char *accept,
    ngx_chat_caller_t *caller, ngx_str_t *ticket, ngx_int_t *refused)
{
    u_char                 raw[20 + 64], digest[SHA_DIGEST_LENGTH];
    u_char                 decoded[32];
    ngx_int_t              rc, has_token;
    ngx_str_t              key, token, query_token, out, src, dst;
    ngx_uint_t             i;
    const char            *why;
    ngx_table_elt_t       *h, *origin;
    ngx_chat_loc_conf_t   *clcf;
    ngx_str_t             *allowed;

    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    if (r->method != NGX_HTTP_GET) {
        return ngx_chat_ws_refuse(NGX_HTTP_NOT_ALLOWED,
                                   "method_not_allowed",
                                   "a WebSocket handshake is a GET");
    }

    if (r->http_version < NGX_HTTP_VERSION_11
        || !ngx_chat_ws_header_has(ngx_chat_http_header(r, "Upgrade"),
                                   "websocket")
        || !ngx_chat_ws_header_has(ngx_chat_http_header(r, "Connection"),
                                   "upgrade"))
    {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            *refused = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DECLINED;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "Upgrade");
        ngx_str_set(&h->value, "websocket");

        return ngx_chat_ws_refuse(426, "upgrade_required",
                                   "this endpoint speaks WebSocket only "
                                   "(HTTP/1.1 Upgrade: websocket)");
    }

    h = ngx_chat_http_header(r, "Sec-WebSocket-Version");
    if (h == NULL || h->value.len != 2
        || ngx_strncmp(h->value.data, "13", 2) != 0)
    {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            *refused = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DECLINED;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "Sec-WebSocket-Version");
        ngx_str_set(&h->value, "13");

        return ngx_chat_ws_refuse(426, "unsupported_version",
                                   "Sec-WebSocket-Version must be 13");
    }

    /* the key: base64 of exactly 16 bytes, so exactly 24 characters */
    h = ngx_chat_http_header(r, "Sec-WebSocket-Key");
    key.len = 0;
    if (h != NULL) {
        key = h->value;
        while (key.len && key.data[key.len - 1] == ' ') {
            key.len--;
        }
    }

    src = key;
    dst.data = decoded;
    if (key.len != 24 || ngx_decode_base64(&dst, &src) != NGX_OK
        || dst.len != 16)
    {
        return ngx_chat_ws_refuse(NGX_HTTP_BAD_REQUEST, "invalid_key",
                                   "Sec-WebSocket-Key must be the base64 "
                                   "of 16 bytes");
    }

    /* browsers always send Origin; other clients may leave it out */
    origin = ngx_chat_http_header(r, "Origin");
    if (origin != NULL && clcf->ws_origins != NULL) {
        allowed = clcf->ws_origins->elts;

        for (i = 0; i < clcf->ws_origins->nelts; i++) {
            if (allowed[i].len == origin->value.len
                && ngx_strncasecmp(allowed[i].data, origin->value.data,
                                   allowed[i].len) == 0)
            {
                break;
            }
        }

        if (i == clcf->ws_origins->nelts) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "chat ws: origin \"%V\" not allowed",
                          &origin->value);
            return ngx_chat_ws_refuse(NGX_HTTP_FORBIDDEN,
                                       "origin_not_allowed",
                                       "this Origin may not connect");
        }
    }

    /*
     * Who: "Authorization: Bearer", or for browsers, which cannot set it,
     * ?ticket= (single use, redeemed by the caller of this function) or
     * ?access_token= (older clients).  Both query values are hidden in
     * the request line at once, so no later log line can show them.
     */
    if (ngx_chat_ws_hide_arg(r, "ticket", ticket) != NGX_OK
        || ngx_chat_ws_hide_arg(r, "access_token", &query_token) != NGX_OK)
    {
        *refused = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    has_token = (ngx_chat_bearer_token(r, &token) == NGX_OK);

    if (!has_token && query_token.len) {
        token = query_token;
        has_token = 1;
    }

    if (has_token) {
        ticket->len = 0;

    } else if (ticket->len) {
        /* accept is computed below; the ticket is redeemed after that */
        caller->uid = 0;

    } else {
        return ngx_chat_ws_refuse(NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "a ticket or token is required "
                                   "(?ticket=, Authorization: Bearer, or "
                                   "?access_token=)");
    }

    rc = has_token ? ngx_chat_authenticate_token(r, &token, caller, &why)
                   : NGX_OK;

    if (rc == NGX_DECLINED) {
        return ngx_chat_ws_refuse(NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   why);
    }
    if (rc == NGX_BUSY) {
        return ngx_chat_ws_refuse(NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable", why);
    }
    if (rc != NGX_OK) {
        *refused = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    /* Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) */
    ngx_memcpy(raw, key.data, key.len);
    ngx_memcpy(raw + key.len, NGX_CHAT_WS_GUID, sizeof(NGX_CHAT_WS_GUID) - 1);
    SHA1(raw, key.len + sizeof(NGX_CHAT_WS_GUID) - 1, digest);

    src.data = digest;
    src.len = sizeof(digest);
    out.data = accept;
    ngx_encode_base64(&out, &src);
    accept[out.len] = '\0';

    return NGX_OK;
}


/*
 * The value of query parameter name (empty when absent), copied to the
 * pool; the original bytes in the request line are overwritten, so that
 * $request, $request_uri and error log lines never carry it.
 */
static ngx_int_t
ngx_chat_ws_hide_arg(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    u_char  *copy;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), value) != NGX_OK) {
        ngx_str_null(value);
        return NGX_OK;
    }

    copy = ngx_pnalloc(r->pool, value->len + 1);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(copy, value->data, value->len);
    copy[value->len] = '\0';

    ngx_memset(value->data, 'x', value->len);
    value->data = copy;

    return NGX_OK;
}


/* Whether a comma-separated header value lists token (any case). */
static ngx_int_t
ngx_chat_ws_header_has(ngx_table_elt_t *h, const char *token)
{
    u_char  *p, *end, *start;
    size_t   len;

    if (h == NULL) {
        return 0;
    }

    len = ngx_strlen(token);
    p = h->value.data;
    end = p + h->value.len;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        start = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t') {
            p++;
        }

        if ((size_t) (p - start) == len
            && ngx_strncasecmp(start, (u_char *) token, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_chat_ws_start(ngx_http_request_t *r, u_char *accept,
    ngx_chat_caller_t *caller)
{
    size_t                 len;
    ngx_int_t              rc;
    ngx_chat_ws_t         *ws;
    ngx_table_elt_t       *h;
    ngx_connection_t      *c;
    chat_ws_config_t       conf;
    ngx_pool_cleanup_t    *cln;
    ngx_chat_loc_conf_t   *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);
    c = r->connection;

    ws = ngx_pcalloc(r->pool, sizeof(ngx_chat_ws_t));
    if (ws == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ws->request = r;
    ws->connection = c;
    ws->caller = *caller;
    ngx_queue_init(&ws->out);
    ngx_queue_init(&ws->commands);

    conf.max_message = clcf->ws_max_message;
    chat_ws_parser_init(&ws->parser, &conf);

    ws->ping.handler = ngx_chat_ws_ping;
    ws->ping.data = ws;
    ws->ping.log = c->log;
    ws->ping.cancelable = 1;

    ws->closer.handler = ngx_chat_ws_closer;
    ws->closer.data = ws;
    ws->closer.log = c->log;

    ws->close_timer.handler = ngx_chat_ws_closer;
    ws->close_timer.data = ws;
    ws->close_timer.log = c->log;
    ws->close_timer.cancelable = 1;

    ws->expiry.handler = ngx_chat_ws_expired;
    ws->expiry.data = ws;
    ws->expiry.log = c->log;
    ws->expiry.cancelable = 1;

    ws->client.uid = caller->uid;
    ws->client.deliver = ngx_chat_ws_deliver;
    /* events come from the Redis of this location's application */
    ws->client.registry = ngx_chat_gateway(r) ? ngx_chat_gateway(r)->registry
                                              : NULL;
    ws->client.revoke = ngx_chat_ws_revoked;
    ws->client.data = ws;

    /* a user at chat_ws_max_per_user on this edge is refused before the
     * upgrade, so the client sees a plain JSON answer */
    ws->app = clcf->endpoint ? clcf->endpoint->index : 0;
    rc = ngx_chat_caps_ws_acquire(ws->app, caller->uid,
                                  (ngx_uint_t) clcf->ws_max_per_user, c->log);
    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "chat ws: user %L is at chat_ws_max_per_user",
                      caller->uid);
        ngx_chat_http_retry_after(r, 5);
        return ngx_chat_send_error(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                   "too_many_connections",
                                   "this user has as many WebSockets open "
                                   "as allowed; close one first");
    }

    ws->capped = (rc == NGX_OK);

    cln->handler = ngx_chat_ws_cleanup;
    cln->data = ws;

    /* from here the cleanup runs exactly once: it takes the gauge back */
    ngx_chat_metric_ws_open(1);
    ngx_chat_metric_inc(ws_total);

    ngx_http_set_ctx(r, ws, ngx_chat_module);

    /* 101 Switching Protocols */
    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
    r->headers_out.content_length_n = -1;
    r->header_only = 1;
    r->keepalive = 0;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    h->hash = 1;
    ngx_str_set(&h->key, "Upgrade");
    ngx_str_set(&h->value, "websocket");

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    h->hash = 1;
    ngx_str_set(&h->key, "Sec-WebSocket-Accept");
    h->value.data = accept;
    h->value.len = ngx_strlen(accept);
    h->value.data = ngx_pstrdup(r->pool, &h->value);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    /* the connection is ours now */
    r->main->count++;
    c->log->action = "in a WebSocket";
    c->read->handler = ngx_chat_ws_read;
    c->write->handler = ngx_chat_ws_write;

    /* graceful shutdown (nginx -s reload/quit) closes us with 1001 */
    c->idle = 1;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ngx_chat_registry_add(&ws->client) != NGX_OK) {
        ngx_chat_ws_drop(ws);
        return NGX_DONE;
    }

    ngx_add_timer(&ws->ping, clcf->ws_ping_interval);

    /* the token was checked at the handshake; the session ends with it
     * (a client reconnects with a fresh token) */
    ngx_add_timer(&ws->expiry,
                  (ngx_msec_t) (caller->exp - ngx_time()) * 1000);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "chat ws: user %L connected", caller->uid);

    /* frames the client sent right behind its handshake */
    len = r->header_in->last - r->header_in->pos;
    if (len) {
        if (ngx_chat_ws_consume(ws, r->header_in->pos, len) != NGX_OK) {
            return NGX_DONE;
        }
        r->header_in->pos = r->header_in->last;
    }

    (void) ngx_chat_ws_flush(ws);

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_chat_ws_drop(ws);
    }

    return NGX_DONE;
}


/* The one place that releases a connection's resources. */
static void
ngx_chat_ws_cleanup(void *data)
{
    ngx_chat_ws_t      *ws = data;
    ngx_queue_t        *q;
    ngx_chat_ws_out_t  *o;

    ws->finished = 1;

    ngx_chat_metric_ws_open((ngx_atomic_int_t) -1);

    if (ws->capped) {
        ngx_chat_caps_ws_release(ws->app, ws->caller.uid);
    }

    ngx_chat_registry_remove(&ws->client);

    ngx_chat_ws_cancel_commands(ws);

    while (!ngx_queue_empty(&ws->out)) {
        q = ngx_queue_head(&ws->out);
        ngx_queue_remove(q);
        o = ngx_queue_data(q, ngx_chat_ws_out_t, queue);
        ngx_free(o);
    }

    if (ws->msg) {
        ngx_free(ws->msg);
        ws->msg = NULL;
    }

    if (ws->ping.timer_set) {
        ngx_del_timer(&ws->ping);
    }

    if (ws->close_timer.timer_set) {
        ngx_del_timer(&ws->close_timer);
    }

    if (ws->expiry.timer_set) {
        ngx_del_timer(&ws->expiry);
    }

    if (ws->closer.posted) {
        ngx_delete_posted_event(&ws->closer);
    }
}


/* reading */

static void
ngx_chat_ws_read(ngx_event_t *rev)
{
    ssize_t            n;
    ngx_chat_ws_t     *ws;
    ngx_connection_t  *c;

    c = rev->data;
    ws = ngx_http_get_module_ctx((ngx_http_request_t *) c->data,
                                 ngx_chat_module);

    if (c->close) {
        /* nginx is shutting down gracefully */
        ngx_chat_ws_close(ws, 1001, "server shutting down");
        return;
    }

    if (ws->lingering) {
        for ( ;; ) {
            n = c->recv(c, ngx_chat_ws_read_buf, NGX_CHAT_WS_READ_BUF);

            if (n == NGX_AGAIN) {
                if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                    ngx_chat_ws_drop(ws);
                }
                return;
            }

            if (n == 0 || n == NGX_ERROR) {
                ngx_chat_ws_drop(ws);
                return;
            }
        }
    }

    if (ws->closing || ws->drop) {
        return;
    }

    for ( ;; ) {
        n = c->recv(c, ngx_chat_ws_read_buf, NGX_CHAT_WS_READ_BUF);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            /* the client went away without a close frame */
            ngx_chat_ws_drop(ws);
            return;
        }

        if (ngx_chat_ws_consume(ws, ngx_chat_ws_read_buf, (size_t) n)
            != NGX_OK)
        {
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_chat_ws_drop(ws);
    }
}


/* Feeds bytes to the parser; NGX_ERROR when the connection is closing. */
static ngx_int_t
ngx_chat_ws_consume(ngx_chat_ws_t *ws, u_char *buf, size_t len)
{
    u_char                *p;
    size_t                 used, cap;
    chat_ws_event_t        ev;
    ngx_chat_loc_conf_t   *clcf;

    while (len > 0 && !ws->closing && !ws->drop) {
        used = chat_ws_parse(&ws->parser, buf, len, &ev);
        buf += used;
        len -= used;

        switch (ev.type) {

        case CHAT_WS_EV_NONE:
            break;

        case CHAT_WS_EV_DATA:
            if (ev.opcode == CHAT_WS_OP_BINARY) {
                ngx_chat_ws_close(ws, 1003, "binary messages not accepted");
                return NGX_ERROR;
            }

            if (ev.fin) {
                ngx_chat_metric_inc(ws_in);
            }

            if (ev.first && ev.fin) {
                /* the common case: one frame, no copy */
                ngx_chat_ws_message(ws, ev.data, ev.len);
                break;
            }

            if (ws->msg_len + ev.len > ws->msg_cap) {
                /* grows by doubling; the parser keeps it under the cap */
                clcf = ngx_http_get_module_loc_conf(ws->request,
                                                    ngx_chat_module);
                cap = ws->msg_cap ? ws->msg_cap : 4096;
                while (cap < ws->msg_len + ev.len) {
                    cap *= 2;
                }
                if (cap > clcf->ws_max_message) {
                    cap = clcf->ws_max_message;
                }

                p = ngx_alloc(cap, ws->connection->log);
                if (p == NULL) {
                    ngx_chat_ws_close(ws, 1011, "out of memory");
                    return NGX_ERROR;
                }
                if (ws->msg) {
                    ngx_memcpy(p, ws->msg, ws->msg_len);
                    ngx_free(ws->msg);
                }
                ws->msg = p;
                ws->msg_cap = cap;
            }

            ngx_memcpy(ws->msg + ws->msg_len, ev.data, ev.len);
            ws->msg_len += ev.len;

            if (ev.fin) {
                ngx_chat_ws_message(ws, ws->msg, ws->msg_len);
                ngx_free(ws->msg);
                ws->msg = NULL;
                ws->msg_len = 0;
                ws->msg_cap = 0;
            }
            break;

        case CHAT_WS_EV_PING:
            ngx_chat_ws_send(ws, CHAT_WS_OP_PONG, ev.data, ev.len);
            break;

        case CHAT_WS_EV_PONG:
            if (ws->awaiting_pong) {
                ws->awaiting_pong = 0;
                clcf = ngx_http_get_module_loc_conf(ws->request,
                                                    ngx_chat_module);
                if (ws->ping.timer_set) {
                    ngx_del_timer(&ws->ping);
                }
                ngx_add_timer(&ws->ping, clcf->ws_ping_interval);
            }
            break;

        case CHAT_WS_EV_CLOSE:
            /* echo the code (none if none came) and close */
            ngx_chat_ws_close(ws, ev.code, NULL);
            return NGX_ERROR;

        case CHAT_WS_EV_ERROR:
            ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                          "chat ws: closing with %ui: %s",
                          (ngx_uint_t) ev.code, ev.reason);
            ngx_chat_ws_close(ws, ev.code, ev.reason);
            return NGX_ERROR;
        }
    }

    (void) ngx_chat_ws_flush(ws);

    return (ws->closing || ws->drop) ? NGX_ERROR : NGX_OK;
}


/* writing */

static void
ngx_chat_ws_write(ngx_event_t *wev)
{
    ngx_connection_t  *c = wev->data;
    ngx_chat_ws_t     *ws;

    ws = ngx_http_get_module_ctx((ngx_http_request_t *) c->data,
                                 ngx_chat_module);

    (void) ngx_chat_ws_flush(ws);
}


/* Queues one frame.  Past chat_ws_max_queue the client is too slow: 1008. */
void
ngx_chat_ws_send(ngx_chat_ws_t *ws, chat_ws_opcode_t opcode, u_char *data,
    size_t len)
{
    size_t                 hlen;
    u_char                 header[CHAT_WS_MAX_SERVER_HEADER];
    ngx_chat_ws_out_t     *o;
    ngx_chat_loc_conf_t   *clcf;

    if (ws->closing || ws->drop) {
        return;
    }

    clcf = ngx_http_get_module_loc_conf(ws->request, ngx_chat_module);

    hlen = chat_ws_frame_header(header, opcode, len);

    /*
     * The bound is on the backlog: a frame is always taken into an empty
     * queue, so one large answer cannot close a client that keeps up.
     */
    if (ws->out_bytes > 0
        && ws->out_bytes + hlen + len > clcf->ws_max_queue
        && opcode != CHAT_WS_OP_CLOSE)
    {
        ngx_log_error(NGX_LOG_WARN, ws->connection->log, 0,
                      "chat ws: user %L reads too slowly, %uz bytes queued",
                      ws->caller.uid, ws->out_bytes);
        ngx_chat_metric_inc(ws_slow);
        ngx_chat_ws_close(ws, 1008, "too slow: outgoing queue full");
        return;
    }

    if (opcode == CHAT_WS_OP_TEXT) {
        ngx_chat_metric_inc(ws_out);
    }

    o = ngx_alloc(sizeof(ngx_chat_ws_out_t) + hlen + len, ws->connection->log);
    if (o == NULL) {
        ngx_chat_ws_drop(ws);
        return;
    }

    o->len = hlen + len;
    o->sent = 0;
    ngx_memcpy(o->data, header, hlen);
    ngx_memcpy(o->data + hlen, data, len);

    ngx_queue_insert_tail(&ws->out, &o->queue);
    ws->out_bytes += o->len;
}


/*
 * Writes what is queued.  Returns NGX_OK when all is out, NGX_AGAIN when
 * the socket is full (the write event continues), NGX_ERROR when the
 * connection is gone (its close is scheduled).
 */
ngx_int_t
ngx_chat_ws_flush(ngx_chat_ws_t *ws)
{
    ssize_t              n;
    ngx_int_t            rc;
    ngx_queue_t         *q;
    ngx_connection_t    *c;
    ngx_chat_ws_out_t   *o;
    ngx_http_request_t  *r;

    if (ws->finished || ws->drop) {
        return NGX_ERROR;
    }

    r = ws->request;
    c = ws->connection;

    /* the 101 header may still sit in nginx's own output chain */
    if (r->out || c->buffered) {
        rc = ngx_http_output_filter(r, NULL);
        if (rc == NGX_ERROR) {
            ngx_chat_ws_drop(ws);
            return NGX_ERROR;
        }
        if (r->out || c->buffered) {
            goto again;
        }
    }

    while (!ngx_queue_empty(&ws->out)) {
        q = ngx_queue_head(&ws->out);
        o = ngx_queue_data(q, ngx_chat_ws_out_t, queue);

        n = c->send(c, o->data + o->sent, o->len - o->sent);

        if (n == NGX_ERROR) {
            ngx_chat_ws_drop(ws);
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN || n == 0) {
            goto again;
        }

        o->sent += n;

        if (o->sent == o->len) {
            ngx_queue_remove(q);
            ws->out_bytes -= o->len;
            ngx_free(o);
        }
    }

    if (ws->closing && !ws->lingering) {
        /*
         * Our close frame is out and the server closes TCP.  Closing with
         * the client's bytes still unread would make the kernel answer with
         * a reset that can destroy the close frame in flight, so stop
         * writing, read and discard until the client closes too or the
         * close timer runs out.
         */
        ws->lingering = 1;

        if (shutdown(c->fd, SHUT_WR) == -1) {
            ngx_chat_ws_drop(ws);
            return NGX_OK;
        }

        ngx_post_event(c->read, &ngx_posted_events);
    }

    return NGX_OK;

again:

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_chat_ws_drop(ws);
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


/* closing */

/*
 * Queues a close frame (code 0: an empty one) ahead of nothing else, and
 * closes the socket once it is written or after NGX_CHAT_WS_CLOSE_TIMEOUT.
 */
void
ngx_chat_ws_close(ngx_chat_ws_t *ws, unsigned code, const char *reason)
{
    size_t   len;
    u_char   payload[CHAT_WS_MAX_CONTROL];

    if (ws->closing || ws->drop || ws->finished) {
        return;
    }

    len = chat_ws_close_payload(payload, code, reason,
                                reason ? ngx_strlen(reason) : 0);

    ngx_chat_ws_send(ws, CHAT_WS_OP_CLOSE, payload, len);
    ws->closing = 1;

    if (ws->ping.timer_set) {
        ngx_del_timer(&ws->ping);
    }

    ngx_add_timer(&ws->close_timer, NGX_CHAT_WS_CLOSE_TIMEOUT);

    (void) ngx_chat_ws_flush(ws);
}


/* Closes the socket without a close frame, from a safe place. */
static void
ngx_chat_ws_drop(ngx_chat_ws_t *ws)
{
    if (ws->finished) {
        return;
    }

    ws->drop = 1;

    if (!ws->closer.posted) {
        ngx_post_event(&ws->closer, &ngx_posted_events);
    }
}


static void
ngx_chat_ws_closer(ngx_event_t *ev)
{
    ngx_chat_ws_t     *ws = ev->data;
    ngx_connection_t  *c;

    if (ws->finished) {
        return;
    }

    ws->finished = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ws->connection->log, 0,
                   "chat ws: user %L disconnected", ws->caller.uid);

    c = ws->connection;

    ngx_http_finalize_request(ws->request, NGX_HTTP_CLOSE);

    /*
     * The connection's events are ours, not ngx_http_request_handler(), so
     * nobody else runs the termination nginx just posted for the request:
     * without this the socket would sit in CLOSE-WAIT forever.
     */
    ngx_http_run_posted_requests(c);
}


static void
ngx_chat_ws_ping(ngx_event_t *ev)
{
    ngx_chat_ws_t         *ws = ev->data;
    ngx_chat_loc_conf_t   *clcf;

    if (ws->awaiting_pong) {
        ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                      "chat ws: no pong in time, dropping user %L",
                      ws->caller.uid);
        ngx_chat_ws_drop(ws);
        return;
    }

    clcf = ngx_http_get_module_loc_conf(ws->request, ngx_chat_module);

    ngx_chat_ws_send(ws, CHAT_WS_OP_PING, NULL, 0);
    ws->awaiting_pong = 1;
    ngx_add_timer(&ws->ping, clcf->ws_pong_timeout);

    (void) ngx_chat_ws_flush(ws);
}


/* Its session was signed out (ngx_chat_revoked.c): 1008, as at expiry. */
static void
ngx_chat_ws_revoked(ngx_chat_client_t *client, u_char *sid, size_t len)
{
    ngx_chat_ws_t  *ws = client->data;

    if (ngx_strlen(ws->caller.sid) != len
        || ngx_memcmp(ws->caller.sid, sid, len) != 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                  "chat ws: session of user %L signed out, closing",
                  ws->caller.uid);

    ngx_chat_ws_close(ws, 1008, "signed out");
}


static void
ngx_chat_ws_expired(ngx_event_t *ev)
{
    ngx_chat_ws_t  *ws = ev->data;

    ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                  "chat ws: token of user %L expired, closing",
                  ws->caller.uid);

    ngx_chat_ws_close(ws, 1008, "token expired");
}
