/*
 * ngx_chat_health.c: GET /api/v1/health, answered by the edge itself.
 *
 * Redis is "ok" when this worker's command connection is up.  PostgreSQL
 * and the worker pool are judged from the heartbeats the backend workers
 * write to the CHAT_WORKERS_KEY hash every second ("<unix_ms>:<pg 0|1>"):
 * a worker is live when its heartbeat is fresh, and PostgreSQL is "ok" when
 * a live worker reports a working connection.  The edge never talks to
 * PostgreSQL itself.  Anything down means 503 and a "down" list naming it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_protocol.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_metrics.h"
#include "ngx_chat_module.h"


static ngx_int_t ngx_chat_health_send(ngx_http_request_t *r,
    ngx_uint_t redis_ok, ngx_uint_t workers, ngx_uint_t pg_ok);
static void ngx_chat_health_heartbeats(redisAsyncContext *ac, void *reply,
    void *privdata);


ngx_int_t
ngx_chat_health_handler(ngx_http_request_t *r, ngx_chat_caller_t *caller)
{
    ngx_chat_redis_t    *rc;
    ngx_chat_pending_t  *p;
    static const char   *argv[] = { "HGETALL", CHAT_WORKERS_KEY };
    static const size_t  argvlen[] = { 7, sizeof(CHAT_WORKERS_KEY) - 1 };

    rc = ngx_chat_bus_redis(ngx_chat_gateway(r));

    if (rc == NULL || !ngx_chat_redis_usable(rc)) {
        return ngx_chat_health_send(r, 0, 0, 0);
    }

    p = ngx_chat_http_pending(r);
    if (p == NULL || ngx_chat_bus_park(p, r->connection->log) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_chat_redis_command(rc, ngx_chat_health_heartbeats,
                               (void *) (uintptr_t) p->id, 2, argv,
                               argvlen)
        != NGX_OK)
    {
        ngx_chat_bus_cancel(p);
        return ngx_chat_health_send(r, 0, 0, 0);
    }

    /* answered from the callback: keep the request until then */
    r->main->count++;
    return NGX_DONE;
}


/*
 * The backend workers whose heartbeat in hgetall (the reply to HGETALL
 * CHAT_WORKERS_KEY) is fresh; *pg_ok is 1 when one of them reports a
 * working PostgreSQL connection.  Also used by /metrics.
 */
ngx_uint_t
ngx_chat_health_live_workers(redisReply *hgetall, ngx_uint_t *pg_ok)
{
    char        *colon;
    size_t       i;
    int64_t      now, beat;
    ngx_uint_t   workers;
    ngx_time_t  *tp;
    redisReply  *v;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;
    workers = 0;
    *pg_ok = 0;

    if (hgetall == NULL || hgetall->type != REDIS_REPLY_ARRAY) {
        return 0;
    }

    for (i = 1; i < hgetall->elements; i += 2) {
        v = hgetall->element[i];
        if (v->type != REDIS_REPLY_STRING) {
            continue;
        }

        beat = strtoll(v->str, &colon, 10);
        if (*colon != ':' || now - beat > CHAT_WORKER_STALE_MS) {
            continue;
        }

        workers++;
        if (colon[1] == '1') {
            *pg_ok = 1;
        }
    }

    return workers;
}


static void
ngx_chat_health_heartbeats(redisAsyncContext *ac, void *reply, void *privdata)
{
    ngx_uint_t           workers, pg_ok;
    redisReply          *rr = reply;
    ngx_chat_pending_t  *p;

    p = ngx_chat_bus_unpark((uint64_t) (uintptr_t) privdata);
    if (p == NULL) {
        return;
    }

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY) {
        ngx_http_finalize_request(p->data, ngx_chat_health_send(p->data, 0, 0,
                                                                0));
        return;
    }

    workers = ngx_chat_health_live_workers(rr, &pg_ok);

    ngx_http_finalize_request(p->data, ngx_chat_health_send(p->data, 1,
                                                            workers, pg_ok));
}


/* Sends the health document; the caller finalizes with the result. */
static ngx_int_t
ngx_chat_health_send(ngx_http_request_t *r, ngx_uint_t redis_ok,
    ngx_uint_t workers, ngx_uint_t pg_ok)
{
    u_char      buf[256], *last, *down, *down_last;
    ngx_uint_t  healthy;

    healthy = redis_ok && workers && pg_ok;

    last = ngx_sprintf(buf, "{\"status\":\"%s\",\"redis\":\"%s\","
                       "\"postgres\":\"%s\",\"workers\":%ui",
                       healthy ? "ok" : "down",
                       redis_ok ? "ok" : "down",
                       pg_ok ? "ok" : (workers ? "down" : "unknown"),
                       workers);

    if (!healthy) {
        last = ngx_sprintf(last, ",\"down\":[");
        down = last;
        if (!redis_ok) {
            last = ngx_sprintf(last, "\"redis\",");
        }
        if (!pg_ok) {
            last = ngx_sprintf(last, "\"postgres\",");
        }
        if (!workers) {
            last = ngx_sprintf(last, "\"workers\",");
        }
        if (last[-1] == ',') {
            last--;
        }
        down_last = last;
        last = ngx_sprintf(last, "]");

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "chat health: down: %*s", (size_t) (down_last - down),
                      down);
    }

    last = ngx_sprintf(last, "}");

    return ngx_chat_send_json(r, healthy ? NGX_HTTP_OK
                                         : NGX_HTTP_SERVICE_UNAVAILABLE,
                              buf, last - buf);
}
