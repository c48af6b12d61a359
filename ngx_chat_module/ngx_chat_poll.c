/*
 * ngx_chat_poll.c: GET /api/v1/events?cursor=&timeout=, the long-poll
 * fallback carrying the same events as the WebSocket.
 *
 * A poll session is a Redis stream, chat:poll:{<uid>}:<sid>, and it is a
 * gateway like any nginx worker: the poll writes the stream's name into
 * the user's online hash (chat:online:{<uid>}), so the backend's fan-out
 * appends the user's events to it directly (the same XADD ev/uids entry
 * a worker's reply stream gets, bounded and expiring the same way).  No
 * nginx worker relays anything, so events wait in Redis between polls
 * whichever worker the next poll reaches, across reloads and crashes.
 * The cursor the client sends back is "<sid>_<stream id of the last
 * entry it has>".
 *
 * A poll runs one script: it refreshes the session's field in the online
 * hash, checks that the cursor can still be honoured, and returns the
 * entries after it.  Entries waiting: answered at once.  None: the
 * request is held (an nginx request parked on a timer, no thread, no
 * busy polling) until the stream grows or the timeout passes.  Each
 * worker watches the streams of its held polls with one blocking XREAD on
 * a connection of its own, re-issued with the current set every
 * NGX_CHAT_POLL_WATCH_MS at most (so a poll held while an XREAD is
 * already blocked is watched from the next round; the entries it missed
 * meanwhile are still after its cursor, so nothing is lost, only late).
 *
 * Explicit resync, never a silent gap:
 *   - no such stream (expired, never existed, someone else's sid):
 *     {resync: true, reason: "unknown_session", cursor: ""}; the client
 *     opens a new session (a poll without cursor) and catches up from
 *     history;
 *   - entries after the cursor were trimmed (the stream keeps the newest
 *     10,000), or the session went unpolled long enough that the fan-out
 *     may have skipped it (its online field went stale): {resync: true,
 *     reason: "cursor_expired", cursor: <the stream's end>}: the client
 *     catches up from history and polls on from that cursor.
 * A poll without a cursor opens a session and answers its first cursor
 * at once, unless the user already has chat_poll_max_per_user live
 * sessions (each one multiplies every event to the user): then 429
 * too_many_connections, counted by the opening script in Redis, so the
 * cap holds across workers and edges.
 *
 * Holds last at most a third of chat_presence_ttl (and 25 s) whatever the
 * timeout asks (the API says "up to"): a held poll must come back before
 * its registration could lapse.  A client that leaves mid-poll is
 * noticed by nginx (ngx_http_test_reading) and its request freed; a
 * graceful shutdown (reload) answers held polls at once.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "chat_poll.h"
#include "chat_protocol.h"
#include "chat_scripts.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_metrics.h"
#include "ngx_chat_module.h"


#define NGX_CHAT_POLL_DEFAULT_TIMEOUT  25       /* seconds */
#define NGX_CHAT_POLL_MAX_HOLD_MS      25000
#define NGX_CHAT_POLL_WATCH_MS         "1000"   /* one XREAD round, at most */
/* on a Redis Cluster: the pause between two rounds that found nothing */
#define NGX_CHAT_POLL_CLUSTER_ROUND_MS 100
#define NGX_CHAT_POLL_MAX_EVENTS       "100"    /* per answer */

/* a field not refreshed for this long may have been skipped by the
 * fan-out, which gives up on fields after CHAT_ONLINE_STALE_MS (60 s):
 * half of that, for clocks that disagree; above the longest hold */
#define NGX_CHAT_POLL_LAPSE_STR        "30000"

/* the session stream lives as long as a gateway's (CHAT_GW_STREAM_TTL_SEC)
 * after its last poll or event */
#define NGX_CHAT_POLL_STREAM_TTL_STR   "300"

#define NGX_CHAT_POLL_KEY_LEN          96


/* One poll request, in its pool.  pending is how script answers find it
 * again (by id: they may come after the request is gone). */
typedef struct {
    ngx_chat_pending_t    pending;
    ngx_http_request_t   *request;
    ngx_chat_poll_t      *poll;         /* its location's gateway's */
    int64_t               uid;
    u_char                sid[CHAT_TOKEN_SID_MAX + 1];  /* sign-in session */
    chat_poll_cursor_t    cursor;       /* what the answer will carry */
    u_char                key[NGX_CHAT_POLL_KEY_LEN];   /* the stream */
    size_t                key_len;
    ngx_msec_t            timeout;

    ngx_queue_t           queue;        /* in the held list while held */
    ngx_event_handler_pt  conn_read;    /* the connection's, while held */
    ngx_event_t           hold;         /* the held poll's timeout */
    unsigned              held:1;
    unsigned              reading:1;    /* a read script is in flight */
} ngx_chat_poll_req_t;


/* per worker and gateway: the held polls whose streams are in the
 * gateway's Redis, and the connection that watches them */
struct ngx_chat_poll_s {
    ngx_chat_redis_t      watcher;
    ngx_chat_gateway_t   *gw;
    ngx_queue_t           held;
    ngx_uint_t            nheld;
    ngx_uint_t            watching;     /* XREADs in flight */
    ngx_event_t           rewatch;      /* a cluster's next round */
    unsigned              woke:1;       /* this round woke some poll */
};


/*
 * Both scripts (protocol/chat_scripts.c: chat_script_poll_open and
 * chat_script_poll_read) register the session as a WebSocket's gateway
 * is registered (the same Lua, Redis' own clock): its field in the
 * online hash, and then, in a second command on the user's presence
 * shard (ngx_chat_presence_shard, sent without waiting for its answer),
 * the user's due time for the offline sweeper and an "online" change on
 * a transition.  So a user who only polls is
 * online while polling, and goes offline like anyone else.
 */


static ngx_chat_poll_req_t *ngx_chat_poll_req(ngx_http_request_t *r,
    int64_t uid);
static void ngx_chat_poll_cleanup(void *data);
static void ngx_chat_poll_failed(ngx_chat_pending_t *p, ngx_uint_t status,
    u_char *body, size_t len);
static ngx_chat_poll_req_t *ngx_chat_poll_unpark(void *privdata);
static ngx_int_t ngx_chat_poll_run(ngx_chat_poll_req_t *pr,
    redisCallbackFn *fn, chat_script_t *script, ngx_uint_t nargs,
    ngx_str_t *args);
static void ngx_chat_poll_presence(ngx_chat_poll_req_t *pr);
static void ngx_chat_poll_opened(redisAsyncContext *ac, void *reply,
    void *privdata);
static ngx_int_t ngx_chat_poll_read(ngx_chat_poll_req_t *pr);
static void ngx_chat_poll_got(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_poll_hold(ngx_chat_poll_req_t *pr);
static void ngx_chat_poll_unhold(ngx_chat_poll_req_t *pr);
static void ngx_chat_poll_hold_expired(ngx_event_t *ev);
static void ngx_chat_poll_conn_read(ngx_event_t *rev);
static void ngx_chat_poll_finish(ngx_chat_poll_req_t *pr, redisReply *rr,
    const char *reason);
static ngx_int_t ngx_chat_poll_answer(ngx_chat_poll_req_t *pr,
    redisReply *rr, const char *reason);
static void ngx_chat_poll_watch(ngx_chat_redis_t *rc);
static ngx_uint_t ngx_chat_poll_watch_slots(ngx_chat_poll_t *poll,
    ngx_uint_t n, const char **keys, size_t *lens, const char **ids,
    size_t *idlens);
static void ngx_chat_poll_rewatch(ngx_event_t *ev);
static void ngx_chat_poll_watched(redisAsyncContext *ac, void *reply,
    void *privdata);
static size_t ngx_chat_poll_key(u_char *buf, int64_t uid, const char *sid);


/* ------------------------------------------------------------------------
 * The request
 * --------------------------------------------------------------------- */

ngx_int_t
ngx_chat_poll_handler(ngx_http_request_t *r, ngx_chat_caller_t *caller)
{
    int                   timeout;
    u_char                rnd[CHAT_POLL_SID_LEN / 2];
    u_char                maxbuf[NGX_INT_T_LEN];
    ngx_int_t             rc;
    ngx_str_t              arg, max;
    chat_poll_rc_t         prc;
    ngx_chat_poll_req_t   *pr;
    ngx_chat_gateway_t    *gw;
    ngx_chat_loc_conf_t   *clcf;
    ngx_chat_main_conf_t  *cmcf;

    gw = ngx_chat_gateway(r);
    if (gw == NULL) {
        return ngx_chat_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   "the event store (redis) is unavailable");
    }

    if (ngx_http_arg(r, (u_char *) "timeout", 7, &arg) != NGX_OK) {
        arg.len = 0;
    }

    timeout = chat_poll_timeout_parse((char *) arg.data, arg.len,
                                      NGX_CHAT_POLL_DEFAULT_TIMEOUT);
    if (timeout < 0) {
        return ngx_chat_send_error(r, NGX_HTTP_BAD_REQUEST, "invalid_timeout",
                                   "timeout must be whole seconds, 0 to 120");
    }

    pr = ngx_chat_poll_req(r, caller->uid);
    if (pr == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(pr->sid, caller->sid, sizeof(pr->sid));
    pr->poll = gw->poll;

    /* a held poll must come back before its registration lapses (the
     * offline sweeper would take it): a third of the presence TTL, as the
     * WebSocket registry refreshes */
    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);
    pr->timeout = ngx_min((ngx_msec_t) timeout * 1000,
                          ngx_min(NGX_CHAT_POLL_MAX_HOLD_MS,
                                  ngx_max(cmcf->presence_ttl / 3, 1000)));

    if (ngx_http_arg(r, (u_char *) "cursor", 6, &arg) != NGX_OK) {
        arg.len = 0;
    }

    prc = chat_poll_cursor_parse((char *) arg.data, arg.len, &pr->cursor);

    if (prc == CHAT_POLL_INVALID) {
        return ngx_chat_send_error(r, NGX_HTTP_BAD_REQUEST, "invalid_cursor",
                                   "cursor is not one this server gave out");
    }

    ngx_chat_metric_inc(poll_requests);

    if (prc == CHAT_POLL_EMPTY) {
        /* a new session: its stream, then its first cursor at once */
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_hex_dump((u_char *) pr->cursor.sid, rnd, sizeof(rnd));
        pr->cursor.sid[CHAT_POLL_SID_LEN] = '\0';
        pr->key_len = ngx_chat_poll_key(pr->key, pr->uid, pr->cursor.sid);

        max.data = maxbuf;
        clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);
        max.len = ngx_sprintf(maxbuf, "%i", clcf->poll_max_per_user)
                  - maxbuf;

        rc = ngx_chat_poll_run(pr, ngx_chat_poll_opened,
                               &chat_script_poll_open, 1, &max);

    } else {
        pr->key_len = ngx_chat_poll_key(pr->key, pr->uid, pr->cursor.sid);
        rc = ngx_chat_poll_read(pr);
    }

    if (rc == NGX_DONE) {
        r->main->count++;               /* answered from a callback */
    }

    return rc;
}


static ngx_chat_poll_req_t *
ngx_chat_poll_req(ngx_http_request_t *r, int64_t uid)
{
    ngx_pool_cleanup_t   *cln;
    ngx_chat_poll_req_t  *pr;

    pr = ngx_pcalloc(r->pool, sizeof(ngx_chat_poll_req_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (pr == NULL || cln == NULL) {
        return NULL;
    }

    pr->request = r;
    pr->uid = uid;
    pr->pending.answer = ngx_chat_poll_failed;
    pr->pending.data = pr;

    pr->hold.handler = ngx_chat_poll_hold_expired;
    pr->hold.data = pr;
    pr->hold.log = r->connection->log;
    pr->hold.cancelable = 1;

    cln->handler = ngx_chat_poll_cleanup;
    cln->data = pr;

    /* the API's own context is done with by now: ours replaces it */
    ngx_http_set_ctx(r, pr, ngx_chat_module);

    /* notice a client that gives up while we wait */
    r->read_event_handler = ngx_http_test_reading;

    return pr;
}


/* The request is going away (answered, or its client left). */
static void
ngx_chat_poll_cleanup(void *data)
{
    ngx_chat_poll_req_t  *pr = data;

    ngx_chat_bus_cancel(&pr->pending);
    ngx_chat_poll_unhold(pr);
}


/* The bus gave up on a script (its connection dropped, or no answer in
 * chat_command_timeout): 503/504 like any command. */
static void
ngx_chat_poll_failed(ngx_chat_pending_t *p, ngx_uint_t status, u_char *body,
    size_t len)
{
    ngx_chat_poll_req_t  *pr = p->data;

    ngx_chat_poll_unhold(pr);
    ngx_chat_finalize_json(pr->request, status, body, len);
}


static ngx_chat_poll_req_t *
ngx_chat_poll_unpark(void *privdata)
{
    ngx_chat_pending_t  *p;

    p = ngx_chat_bus_unpark((uint64_t) (uintptr_t) privdata);

    return p ? p->data : NULL;
}


/*
 * Runs script with the user's online hash and the session's stream as
 * KEYS, then the presence TTL, the stream's TTL, then args; the
 * answer goes to fn with pr parked.  Returns NGX_DONE, or what to
 * finalize the request with after a 503 was sent.
 */
static ngx_int_t
ngx_chat_poll_run(ngx_chat_poll_req_t *pr, redisCallbackFn *fn,
    chat_script_t *script, ngx_uint_t nargs, ngx_str_t *args)
{
    char                   online[CHAT_KEY_MAX];
    u_char                 ttl[NGX_INT_T_LEN];
    size_t                 argvlen[16];
    ngx_uint_t             i, n;
    const char            *argv[16];
    ngx_chat_redis_t      *redis;
    ngx_chat_main_conf_t  *cmcf;

    redis = ngx_chat_bus_redis(pr->poll->gw);

    if (redis == NULL || !ngx_chat_redis_usable(redis)
        || ngx_chat_bus_park(&pr->pending, pr->request->connection->log)
           != NGX_OK)
    {
        return ngx_chat_send_error(pr->request, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   "the event store (redis) is unavailable");
    }

    cmcf = ngx_http_get_module_main_conf(pr->request, ngx_chat_module);

    n = 0;
    argv[n] = "2";
    argvlen[n++] = 1;
    argv[n] = online;
    argvlen[n++] = chat_key_online(online, sizeof(online), pr->uid);
    argv[n] = (const char *) pr->key;
    argvlen[n++] = pr->key_len;

    argv[n] = (const char *) ttl;
    argvlen[n++] = ngx_sprintf(ttl, "%M", cmcf->presence_ttl) - ttl;
    argv[n] = NGX_CHAT_POLL_STREAM_TTL_STR;
    argvlen[n++] = sizeof(NGX_CHAT_POLL_STREAM_TTL_STR) - 1;

    for (i = 0; i < nargs; i++) {
        argv[n] = (const char *) args[i].data;
        argvlen[n++] = args[i].len;
    }

    if (ngx_chat_redis_script(redis, script, fn,
                              (void *) (uintptr_t) pr->pending.id, (int) n,
                              argv, argvlen)
        != NGX_OK)
    {
        ngx_chat_bus_cancel(&pr->pending);
        return ngx_chat_send_error(pr->request, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   "the event store (redis) is unavailable");
    }

    return NGX_DONE;
}


/* ------------------------------------------------------------------------
 * Opening, reading, holding
 * --------------------------------------------------------------------- */

static void
ngx_chat_poll_opened(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply           *rr = reply;
    ngx_chat_poll_req_t  *pr;

    pr = ngx_chat_poll_unpark(privdata);
    if (pr == NULL) {
        return;
    }

    if (rr == NULL
        || (rr->type != REDIS_REPLY_INTEGER
            && (rr->type != REDIS_REPLY_STRING
                || chat_poll_stream_id_parse(rr->str, rr->len, &pr->cursor)
                   != 0)))
    {
        ngx_chat_finalize_error(pr->request, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "unavailable",
                                "the event store (redis) did not answer");
        return;
    }

    if (rr != NULL && rr->type == REDIS_REPLY_INTEGER) {
        ngx_chat_finalize_error(pr->request, NGX_HTTP_TOO_MANY_REQUESTS,
                                "too_many_connections",
                                "this user has as many long-poll sessions "
                                "as allowed; poll with an open session's "
                                "cursor or let one lapse");
        return;
    }

    ngx_chat_poll_presence(pr);
    ngx_chat_metric_inc(poll_sessions_total);
    ngx_chat_poll_finish(pr, NULL, NULL);
}


static ngx_int_t
ngx_chat_poll_read(ngx_chat_poll_req_t *pr)
{
    u_char     id[CHAT_POLL_CURSOR_MAX];
    ngx_str_t  args[3];

    args[0].data = id;
    args[0].len = ngx_sprintf(id, "%uL-%uL", pr->cursor.ms, pr->cursor.seq)
                  - id;
    ngx_str_set(&args[1], NGX_CHAT_POLL_MAX_EVENTS);
    ngx_str_set(&args[2], NGX_CHAT_POLL_LAPSE_STR);

    pr->reading = 1;

    return ngx_chat_poll_run(pr, ngx_chat_poll_got, &chat_script_poll_read,
                             3, args);
}


static void
ngx_chat_poll_got(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply           *rr = reply;
    ngx_chat_poll_req_t  *pr;

    pr = ngx_chat_poll_unpark(privdata);
    if (pr == NULL) {
        return;
    }

    pr->reading = 0;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements < 1
        || rr->element[0]->type != REDIS_REPLY_STRING)
    {
        if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, pr->request->connection->log, 0,
                          "chat poll: redis: %s", rr->str);
        }
        ngx_chat_poll_unhold(pr);
        ngx_chat_finalize_error(pr->request, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "unavailable",
                                "the event store (redis) did not answer");
        return;
    }

    if (ngx_strcmp(rr->element[0]->str, "unknown") == 0) {
        ngx_chat_poll_finish(pr, NULL, "unknown_session");
        return;
    }

    if (!pr->held) {
        /* registered by the script: the shard's half, once a request */
        ngx_chat_poll_presence(pr);
    }

    if (rr->elements < 2 || rr->element[1]->type != REDIS_REPLY_STRING) {
        ngx_chat_poll_unhold(pr);
        ngx_http_finalize_request(pr->request, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_strcmp(rr->element[0]->str, "expired") == 0) {
        /* events after the cursor may be gone: go on from the end */
        (void) chat_poll_stream_id_parse(rr->element[1]->str,
                                         rr->element[1]->len, &pr->cursor);
        ngx_chat_poll_finish(pr, NULL, "cursor_expired");
        return;
    }

    if (rr->elements > 2 || pr->timeout == 0) {
        ngx_chat_poll_finish(pr, rr, NULL);
        return;
    }

    if (!pr->held) {
        ngx_chat_poll_hold(pr);

    } else if (!pr->poll->watching) {
        /* woken for nothing new: back under watch */
        ngx_chat_poll_watch(&pr->poll->watcher);
    }
}


/* The presence shard's half of the session's registration, which the
 * poll script did on the user's slot (chat_scripts.c: the split). */
static void
ngx_chat_poll_presence(ngx_chat_poll_req_t *pr)
{
    ngx_chat_redis_t      *redis;
    ngx_chat_main_conf_t  *cmcf;

    redis = ngx_chat_bus_redis(pr->poll->gw);
    cmcf = ngx_http_get_module_main_conf(pr->request, ngx_chat_module);

    if (redis != NULL && ngx_chat_redis_usable(redis)) {
        ngx_chat_presence_shard(redis, pr->uid, 1, cmcf->presence_ttl);
    }
}


/* Nothing yet: park the request until its stream grows or the timeout. */
static void
ngx_chat_poll_hold(ngx_chat_poll_req_t *pr)
{
    ngx_http_request_t  *r = pr->request;
    ngx_chat_poll_t     *poll = pr->poll;

    pr->held = 1;
    ngx_queue_insert_tail(&poll->held, &pr->queue);
    poll->nheld++;
    ngx_add_timer(&pr->hold, pr->timeout);
    ngx_chat_metric_add(poll_held[ngx_process_slot], 1);

    /*
     * A graceful shutdown (reload) calls the read handler of idle
     * connections with c->close set.  nginx's own handler would terminate
     * the request without an answer, so while held the connection's read
     * handler is ours: it answers at once, and leaves everything else to
     * nginx's.
     */
    r->connection->idle = 1;
    pr->conn_read = r->connection->read->handler;
    r->connection->read->handler = ngx_chat_poll_conn_read;

    if (!poll->watching) {
        ngx_chat_poll_watch(&poll->watcher);
    }
}


static void
ngx_chat_poll_unhold(ngx_chat_poll_req_t *pr)
{
    if (!pr->held) {
        return;
    }

    pr->held = 0;
    ngx_queue_remove(&pr->queue);
    pr->poll->nheld--;
    ngx_chat_metric_add(poll_held[ngx_process_slot], (ngx_atomic_int_t) -1);

    if (pr->hold.timer_set) {
        ngx_del_timer(&pr->hold);
    }

    pr->request->connection->idle = 0;
    pr->request->connection->read->handler = pr->conn_read;
}


static void
ngx_chat_poll_hold_expired(ngx_event_t *ev)
{
    ngx_chat_poll_req_t  *pr = ev->data;

    if (pr->reading) {
        return;                 /* a read is on its way: it answers */
    }

    ngx_chat_poll_finish(pr, NULL, NULL);
}


static void
ngx_chat_poll_conn_read(ngx_event_t *rev)
{
    ngx_connection_t     *c = rev->data;
    ngx_http_request_t   *r = c->data;
    ngx_chat_poll_req_t  *pr;

    pr = ngx_http_get_module_ctx(r, ngx_chat_module);

    if (c->close && pr != NULL && pr->held) {
        /* nginx is shutting down: answer now, the client polls again */
        ngx_chat_bus_cancel(&pr->pending);
        ngx_chat_poll_finish(pr, NULL, NULL);
        ngx_http_run_posted_requests(c);
        return;
    }

    pr->conn_read(rev);
}


/* Answers pr (events from rr, if any) and ends the request. */
static void
ngx_chat_poll_finish(ngx_chat_poll_req_t *pr, redisReply *rr,
    const char *reason)
{
    ngx_chat_poll_unhold(pr);
    ngx_http_finalize_request(pr->request,
                              ngx_chat_poll_answer(pr, rr, reason));
}


/*
 * {"events":[...],"cursor":"...","resync":false} from the read script's
 * answer rr (NULL: no events).  The cursor moves past every entry read,
 * the session's opening marker included.
 */
static ngx_int_t
ngx_chat_poll_answer(ngx_chat_poll_req_t *pr, redisReply *rr,
    const char *reason)
{
    u_char      *buf, *last;
    size_t       size, i;
    char         cursor[CHAT_POLL_CURSOR_MAX];
    ngx_uint_t   first;
    redisReply  *id, *name, *value;

    size = 128 + CHAT_POLL_CURSOR_MAX;

    for (i = 2; rr != NULL && i + 2 < rr->elements; i += 3) {
        size += rr->element[i + 2]->len + 1;
    }

    buf = ngx_pnalloc(pr->request->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = ngx_cpymem(buf, "{\"events\":[", sizeof("{\"events\":[") - 1);
    first = 1;

    /* entries come as id, first field name, first field value: the
     * fan-out writes "ev" first; the opening marker is "m" */
    for (i = 2; rr != NULL && i + 2 < rr->elements; i += 3) {
        id = rr->element[i];
        name = rr->element[i + 1];
        value = rr->element[i + 2];

        if (id->type != REDIS_REPLY_STRING
            || chat_poll_stream_id_parse(id->str, id->len, &pr->cursor) != 0)
        {
            continue;
        }

        if (name->type != REDIS_REPLY_STRING || value->type
            != REDIS_REPLY_STRING || ngx_strcmp(name->str, CHAT_F_EVENT) != 0)
        {
            continue;
        }

        if (!first) {
            *last++ = ',';
        }
        first = 0;
        last = ngx_cpymem(last, value->str, value->len);
    }

    if (reason != NULL && ngx_strcmp(reason, "unknown_session") == 0) {
        cursor[0] = '\0';
    } else {
        (void) chat_poll_cursor_format(&pr->cursor, cursor);
    }

    last = ngx_sprintf(last, "],\"cursor\":\"%s\",\"resync\":%s", cursor,
                       reason ? "true" : "false");
    if (reason) {
        last = ngx_sprintf(last, ",\"reason\":\"%s\"", reason);
    }
    *last++ = '}';

    return ngx_chat_send_json(pr->request, NGX_HTTP_OK, buf, last - buf);
}


/* The sign-in session sid of user uid was revoked (ngx_chat_revoked.c):
 * its held polls are answered 401 at once, as its next poll would be. */
void
ngx_chat_poll_revoke(ngx_chat_poll_t *poll, int64_t uid, u_char *sid,
    size_t len)
{
    ngx_queue_t          *q, *next;
    ngx_chat_poll_req_t  *pr;

    if (poll == NULL) {
        return;
    }

    for (q = ngx_queue_head(&poll->held);
         q != ngx_queue_sentinel(&poll->held);
         q = next)
    {
        next = ngx_queue_next(q);
        pr = ngx_queue_data(q, ngx_chat_poll_req_t, queue);

        if (pr->uid != uid || pr->reading || ngx_strlen(pr->sid) != len
            || ngx_memcmp(pr->sid, sid, len) != 0)
        {
            continue;
        }

        ngx_chat_poll_unhold(pr);
        ngx_chat_finalize_error(pr->request, NGX_HTTP_UNAUTHORIZED,
                                "unauthorized", "token revoked (signed out)");
    }
}


/* chat:poll:{<uid>}:<sid>: with the uid in the name, one user's sid can
 * never name another user's stream; and the same hash tag as the user's
 * online hash, so the scripts' two keys share a Redis Cluster slot */
static size_t
ngx_chat_poll_key(u_char *buf, int64_t uid, const char *sid)
{
    int  n;

    n = chat_key_poll((char *) buf, NGX_CHAT_POLL_KEY_LEN, uid, sid);

    return n < 0 ? 0 : (size_t) n;
}


/* ------------------------------------------------------------------------
 * Watching the held polls' streams
 * --------------------------------------------------------------------- */

ngx_chat_poll_t *
ngx_chat_poll_create(ngx_cycle_t *cycle, ngx_chat_gateway_t *gw)
{
    ngx_chat_poll_t  *poll;

    poll = ngx_pcalloc(cycle->pool, sizeof(ngx_chat_poll_t));
    if (poll == NULL) {
        return NULL;
    }

    ngx_queue_init(&poll->held);
    poll->gw = gw;

    poll->rewatch.handler = ngx_chat_poll_rewatch;
    poll->rewatch.data = poll;
    poll->rewatch.log = cycle->log;
    poll->rewatch.cancelable = 1;

    ngx_chat_redis_use_endpoint(&poll->watcher, "poll", gw->endpoint,
                                cycle->log);
    poll->watcher.stall_timeout = 1000 + gw->endpoint->timeout;
    poll->watcher.on_connect = ngx_chat_poll_watch;
    poll->watcher.data = poll;

    ngx_chat_redis_start(&poll->watcher);

    return poll;
}


void
ngx_chat_poll_stop(ngx_chat_poll_t *poll)
{
    if (poll != NULL) {
        if (poll->rewatch.timer_set) {
            ngx_del_timer(&poll->rewatch);
        }

        ngx_chat_redis_stop(&poll->watcher);
    }
}


/*
 * XREAD BLOCK on the stream of every held poll, from its cursor.  On a
 * Redis Cluster one command may not name keys of two slots (even on one
 * master), and a blocking read per slot would hold a connection per
 * user: there each slot's streams get a plain XREAD, all sent at once,
 * and a round that woke nobody is repeated after
 * NGX_CHAT_POLL_CLUSTER_ROUND_MS (at most that much later than the
 * blocking read would have answered).
 */
static void
ngx_chat_poll_watch(ngx_chat_redis_t *rc)
{
    u_char               *ids, *p;
    size_t               *argvlen;
    ngx_uint_t            n, i;
    ngx_queue_t          *q;
    const char          **argv;
    ngx_chat_poll_t      *poll = rc->data;
    ngx_chat_poll_req_t  *pr;

    if (poll->watching || poll->nheld == 0 || !ngx_chat_redis_usable(rc))
    {
        return;
    }

    if (poll->rewatch.timer_set) {
        ngx_del_timer(&poll->rewatch);
    }

    /* polls being read are left out: their read answers them, and a
     * stream with entries after their cursor would wake us at once */
    n = 0;
    for (q = ngx_queue_head(&poll->held);
         q != ngx_queue_sentinel(&poll->held);
         q = ngx_queue_next(q))
    {
        pr = ngx_queue_data(q, ngx_chat_poll_req_t, queue);
        n += !pr->reading;
    }

    if (n == 0) {
        return;
    }

    argv = ngx_alloc((6 + 2 * n) * sizeof(char *), rc->log);
    argvlen = ngx_alloc((6 + 2 * n) * sizeof(size_t), rc->log);
    ids = ngx_alloc(n * 48, rc->log);

    if (argv == NULL || argvlen == NULL || ids == NULL) {
        goto done;
    }

    argv[0] = "XREAD";
    argv[1] = "COUNT";
    argv[2] = "1";
    argv[3] = "BLOCK";
    argv[4] = NGX_CHAT_POLL_WATCH_MS;
    argv[5] = "STREAMS";

    i = 0;
    p = ids;

    for (q = ngx_queue_head(&poll->held);
         q != ngx_queue_sentinel(&poll->held);
         q = ngx_queue_next(q))
    {
        pr = ngx_queue_data(q, ngx_chat_poll_req_t, queue);
        if (pr->reading) {
            continue;
        }

        argv[6 + i] = (const char *) pr->key;
        argvlen[6 + i] = pr->key_len;

        argv[6 + n + i] = (const char *) p;
        argvlen[6 + n + i] = ngx_sprintf(p, "%uL-%uL", pr->cursor.ms,
                                         pr->cursor.seq) - p;
        p += argvlen[6 + n + i];
        i++;
    }

    if (ngx_chat_redis_is_cluster(rc)) {
        poll->woke = 0;
        poll->watching = ngx_chat_poll_watch_slots(poll, n, &argv[6],
                                                   &argvlen[6], &argv[6 + n],
                                                   &argvlen[6 + n]);
        goto done;
    }

    for (i = 0; i < 6; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    if (ngx_chat_redis_command(rc, ngx_chat_poll_watched, NULL,
                               (int) (6 + 2 * n), argv, argvlen)
        == NGX_OK)
    {
        poll->watching = 1;
    }

done:

    /* hiredis has formatted the command into its own buffer by now */
    ngx_free(argv);
    ngx_free(argvlen);
    ngx_free(ids);
}


/* One plain XREAD per slot of the n streams (keys, from ids); how many
 * were sent. */
static ngx_uint_t
ngx_chat_poll_watch_slots(ngx_chat_poll_t *poll, ngx_uint_t n,
    const char **keys, size_t *lens, const char **ids, size_t *idlens)
{
    size_t       *order, *argvlen;
    unsigned     *slot_of;
    ngx_uint_t    i, j, k, sent;
    const char  **argv;

    order = ngx_alloc(n * sizeof(size_t), poll->watcher.log);
    slot_of = ngx_alloc(n * sizeof(unsigned), poll->watcher.log);
    argv = ngx_alloc((4 + 2 * n) * sizeof(char *), poll->watcher.log);
    argvlen = ngx_alloc((4 + 2 * n) * sizeof(size_t), poll->watcher.log);

    sent = 0;

    if (order == NULL || slot_of == NULL || argv == NULL || argvlen == NULL)
    {
        goto done;
    }

    (void) chat_cluster_group_by_slot(keys, lens, n, order, slot_of);

    argv[0] = "XREAD";
    argv[1] = "COUNT";
    argv[2] = "1";
    argv[3] = "STREAMS";

    for (i = 0; i < 4; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    for (i = 0; i < n; i = j) {
        /* order[i .. j) is one slot's streams */
        for (j = i + 1; j < n && slot_of[order[j]] == slot_of[order[i]]; j++)
        {
            /* void */
        }

        for (k = i; k < j; k++) {
            argv[4 + k - i] = keys[order[k]];
            argvlen[4 + k - i] = lens[order[k]];
            argv[4 + (j - i) + k - i] = ids[order[k]];
            argvlen[4 + (j - i) + k - i] = idlens[order[k]];
        }

        if (ngx_chat_redis_command(&poll->watcher, ngx_chat_poll_watched,
                                   NULL, (int) (4 + 2 * (j - i)), argv,
                                   argvlen)
            == NGX_OK)
        {
            sent++;
        }
    }

done:

    ngx_free(order);
    ngx_free(slot_of);
    ngx_free(argv);
    ngx_free(argvlen);

    return sent;
}


static void
ngx_chat_poll_rewatch(ngx_event_t *ev)
{
    ngx_chat_poll_t  *poll = ev->data;

    if (!ngx_exiting) {
        ngx_chat_poll_watch(&poll->watcher);
    }
}


/* Some watched streams grew (or a round passed): wake their polls with a
 * read, and watch again with the set as it is now. */
static void
ngx_chat_poll_watched(redisAsyncContext *ac, void *reply, void *privdata)
{
    size_t                i;
    ngx_int_t             rc;
    ngx_queue_t          *q, *next;
    redisReply           *rr = reply, *name;
    ngx_chat_poll_t      *poll;
    ngx_chat_poll_req_t  *pr;

    /* the watcher's poll: it lives in the cycle's pool, valid even for
     * the NULL reply of the connection's end at exit */
    poll = ((ngx_chat_redis_t *) ac->data)->data;

    if (poll->watching > 0) {
        poll->watching--;
    }

    if (rr != NULL && rr->type == REDIS_REPLY_ARRAY) {

        for (i = 0; i < rr->elements; i++) {
            if (rr->element[i]->type != REDIS_REPLY_ARRAY
                || rr->element[i]->elements < 1)
            {
                continue;
            }

            name = rr->element[i]->element[0];
            if (name->type != REDIS_REPLY_STRING) {
                continue;
            }

            for (q = ngx_queue_head(&poll->held);
                 q != ngx_queue_sentinel(&poll->held);
                 q = next)
            {
                next = ngx_queue_next(q);
                pr = ngx_queue_data(q, ngx_chat_poll_req_t, queue);

                if (pr->reading || pr->key_len != name->len
                    || ngx_memcmp(pr->key, name->str, name->len) != 0)
                {
                    continue;
                }

                poll->woke = 1;
                rc = ngx_chat_poll_read(pr);
                if (rc != NGX_DONE) {
                    ngx_chat_poll_unhold(pr);
                    ngx_http_finalize_request(pr->request, rc);
                }
            }
        }
    }

    if (rr == NULL || poll->watching > 0) {
        /* NULL: the connection dropped; on_connect watches again */
        return;
    }

    if (ngx_chat_redis_is_cluster(&poll->watcher) && !poll->woke) {
        /* a cluster's round of plain reads found nothing: a pause */
        if (!poll->rewatch.timer_set && !ngx_exiting) {
            ngx_add_timer(&poll->rewatch, NGX_CHAT_POLL_CLUSTER_ROUND_MS);
        }
        return;
    }

    ngx_chat_poll_watch(&poll->watcher);
}
