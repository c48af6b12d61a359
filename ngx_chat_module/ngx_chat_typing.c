/*
 * ngx_chat_typing.c: typing indicators, ephemeral from end to end.
 *
 * A `typing {conversation_id}` frame never reaches PostgreSQL or the
 * durable command streams.  It is three steps in Redis, each one slot
 * (the scripts are in protocol/chat_scripts.c, run by SHA):
 *
 *   1. on the conversation's slot, atomic (chat_script_typing):
 *        SISMEMBER chat:members:{cid} uid     not a member: dropped
 *        SET chat:typing:{cid}:<uid> 1 NX PX <chat_typing_interval>
 *                                             already set: rate-limited,
 *                                             dropped
 *        SMEMBERS chat:members:{cid}          the other members
 *      and beside it SMEMBERS chat:blocked:{uid} (whom the typist blocked)
 *   2. on each other member's slot (chat_script_typing_target):
 *        SISMEMBER chat:blocked:{member} uid  blocked the typist: skipped
 *        HGETALL chat:online:{member}         the fields the fan-out
 *                                             rule counts (gateways and
 *                                             poll sessions refreshed
 *                                             within 60 s, chat_online.h),
 *                                             as the workers' fan-out
 *   3. XADD <stream> MAXLEN ~ 10000 * ev <typing event> uids <csv>
 *      (and its EXPIRE), one per stream, as workers fan out
 *      (chat_protocol.h), members the typist blocked left out
 *
 * so the gateways and long polls deliver it like any event.  The script
 * is chat_script_typing (protocol/chat_scripts.c), run by SHA.  The event is
 * {"type":"typing","conversation_id","user_id","expires_in_ms"}: a client
 * shows the indicator for expires_in_ms (three intervals) unless another
 * one renews it; nothing has to say "stopped typing".  A user typing
 * steadily sends at most one delivery per interval per conversation,
 * whatever their clients send.
 *
 * chat:members:{cid} is a cache of conversation_members (those who
 * accepted the conversation: a request's recipient neither sends nor
 * receives typing until they answer) written by the
 * backend after each membership commit and rebuilt by its presence
 * process when Redis lost it (backend/presence/membership_cache.c).  Typing is
 * fire and forget: the client gets no answer, and a frame for a
 * conversation the user is not in is dropped, which tells them nothing.
 *
 * Each step waits for the one before (the keys of step 2 come from step
 * 1's answer), so an indicator costs three round trips where one script
 * did it all before: a Redis Cluster refuses a script that reads keys
 * found in data (chat_scripts.c says what the split changes and why it
 * is harmless).  The steps run on nginx's event loop, nothing waits.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_protocol.h"
#include "chat_scripts.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


/* One typing indicator between its steps, in a pool of its own that
 * goes when the last answer is in. */
typedef struct {
    ngx_pool_t          *pool;
    ngx_log_t           *log;
    ngx_chat_gateway_t  *gw;    /* the application's Redis (a worker's
                                   gateways live as long as it) */
    int64_t              uid;
    ngx_str_t            event;
    ngx_uint_t           left;  /* answers still to come */
    ngx_array_t          blocked;   /* int64_t: whom the typist blocked */
    ngx_array_t          routes;    /* ngx_chat_typing_route_t */
} ngx_chat_typing_t;

/* a stream to write the event to, and for whom (a csv of uids) */
typedef struct {
    ngx_str_t     stream;
    u_char       *csv;
    size_t        len;
    size_t        cap;
} ngx_chat_typing_route_t;

/* a step-2 answer's context: whose online hash it is */
typedef struct {
    ngx_chat_typing_t  *t;
    int64_t             member;
} ngx_chat_typing_target_t;


static void ngx_chat_typing_members(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_typing_blocked(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_typing_target(redisAsyncContext *ac, void *reply,
    void *privdata);
static ngx_int_t ngx_chat_typing_route(ngx_chat_typing_t *t,
    redisReply *stream, int64_t member);
static void ngx_chat_typing_answered(ngx_chat_typing_t *t);
static void ngx_chat_typing_done(redisAsyncContext *ac, void *reply,
    void *privdata);


#define NGX_CHAT_TYPING_XSTR(x)     NGX_CHAT_TYPING_STR(x)
#define NGX_CHAT_TYPING_STR(x)      #x
#define NGX_CHAT_TYPING_STREAM_TTL  NGX_CHAT_TYPING_XSTR(CHAT_GW_STREAM_TTL_SEC)


void
ngx_chat_typing(ngx_chat_gateway_t *gw, int64_t uid, int64_t conversation_id,
    ngx_log_t *log)
{
    int                    mlen, rlen, blen;
    char                   members[CHAT_KEY_MAX], rate[CHAT_KEY_MAX];
    char                   blocked[CHAT_KEY_MAX];
    u_char                 id[NGX_INT64_LEN], interval[NGX_INT64_LEN];
    u_char                *ilast, *nlast;
    const char            *argv[6];
    size_t                 argvlen[6];
    ngx_pool_t            *pool;
    ngx_chat_redis_t      *rc;
    ngx_chat_typing_t     *t;
    ngx_chat_main_conf_t  *cmcf;

    rc = ngx_chat_bus_redis(gw);
    cmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_chat_module);

    if (rc == NULL || cmcf == NULL || !ngx_chat_redis_usable(rc)) {
        /* ephemeral: a typing indicator lost to an outage is no loss */
        return;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    t = ngx_pcalloc(pool, sizeof(ngx_chat_typing_t));
    if (t == NULL
        || ngx_array_init(&t->blocked, pool, 4, sizeof(int64_t)) != NGX_OK
        || ngx_array_init(&t->routes, pool, 4,
                          sizeof(ngx_chat_typing_route_t))
           != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    t->pool = pool;
    t->log = ngx_cycle->log;
    t->uid = uid;
    t->gw = gw;
    t->event.data = ngx_pnalloc(pool, 160);
    if (t->event.data == NULL) {
        ngx_destroy_pool(pool);
        return;
    }
    t->event.len = ngx_sprintf(t->event.data,
                               "{\"type\":\"typing\",\"conversation_id\":%L,"
                               "\"user_id\":%L,\"expires_in_ms\":%M}",
                               conversation_id, uid,
                               3 * cmcf->typing_interval)
                   - t->event.data;

    mlen = chat_key_members(members, sizeof(members), conversation_id);
    rlen = chat_key_typing(rate, sizeof(rate), conversation_id, uid);
    blen = chat_key_blocked(blocked, sizeof(blocked), uid);
    ilast = ngx_sprintf(id, "%L", uid);
    nlast = ngx_sprintf(interval, "%M", cmcf->typing_interval);

    argv[0] = "2";
    argvlen[0] = 1;
    argv[1] = members;
    argvlen[1] = mlen;
    argv[2] = rate;
    argvlen[2] = rlen;
    argv[3] = (const char *) id;
    argvlen[3] = ilast - id;
    argv[4] = (const char *) interval;
    argvlen[4] = nlast - interval;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "chat typing: user %L in conversation %L", uid,
                   conversation_id);

    if (ngx_chat_redis_script(rc, &chat_script_typing, ngx_chat_typing_members,
                              t, 5, argv, argvlen)
        != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    t->left = 1;

    /* the typist's own blocks, beside step 1 (a slot of its own) */
    argv[0] = "SMEMBERS";
    argvlen[0] = 8;
    argv[1] = blocked;
    argvlen[1] = blen;

    if (ngx_chat_redis_command(rc, ngx_chat_typing_blocked, t, 2, argv,
                               argvlen)
        == NGX_OK)
    {
        t->left++;
    }
}


/* Step 1's answer: the other members, each asked for their streams. */
static void
ngx_chat_typing_members(redisAsyncContext *ac, void *reply, void *privdata)
{
    int                        klen, blen;
    char                       online[CHAT_KEY_MAX], blocked[CHAT_KEY_MAX];
    u_char                     id[NGX_INT64_LEN];
    size_t                     i, argvlen[5];
    int64_t                    m;
    const char                *argv[5];
    redisReply                *rr = reply, *e;
    ngx_chat_redis_t          *rc;
    ngx_chat_typing_t         *t = privdata;
    ngx_chat_typing_target_t  *tt;

    rc = ngx_chat_bus_redis(t->gw);

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, t->log, 0,
                      "chat: typing script failed: %*s", (size_t) rr->len,
                      rr->str);
    }

    if (rr != NULL && rr->type == REDIS_REPLY_ARRAY && rc != NULL
        && ngx_chat_redis_usable(rc))
    {
        argv[0] = "2";
        argvlen[0] = 1;
        argv[3] = (const char *) id;
        argvlen[3] = ngx_sprintf(id, "%L", t->uid) - id;

        for (i = 0; i < rr->elements; i++) {
            e = rr->element[i];
            m = (e->type == REDIS_REPLY_STRING)
                ? ngx_atoof((u_char *) e->str, e->len) : NGX_ERROR;
            if (m <= 0) {
                continue;
            }

            tt = ngx_palloc(t->pool, sizeof(ngx_chat_typing_target_t));
            if (tt == NULL) {
                break;
            }
            tt->t = t;
            tt->member = m;

            klen = chat_key_online(online, sizeof(online), m);
            blen = chat_key_blocked(blocked, sizeof(blocked), m);
            argv[1] = online;
            argvlen[1] = klen;
            argv[2] = blocked;
            argvlen[2] = blen;

            if (ngx_chat_redis_script(rc, &chat_script_typing_target,
                                      ngx_chat_typing_target, tt, 4, argv,
                                      argvlen)
                == NGX_OK)
            {
                t->left++;
            }
        }
    }

    ngx_chat_typing_answered(t);
}


/* Whom the typist blocked: left out at step 3. */
static void
ngx_chat_typing_blocked(redisAsyncContext *ac, void *reply, void *privdata)
{
    size_t              i;
    int64_t             b, *slot;
    redisReply         *rr = reply;
    ngx_chat_typing_t  *t = privdata;

    for (i = 0; rr != NULL && rr->type == REDIS_REPLY_ARRAY
                && i < rr->elements; i++)
    {
        if (rr->element[i]->type != REDIS_REPLY_STRING) {
            continue;
        }

        b = ngx_atoof((u_char *) rr->element[i]->str, rr->element[i]->len);
        slot = (b > 0) ? ngx_array_push(&t->blocked) : NULL;
        if (slot != NULL) {
            *slot = b;
        }
    }

    ngx_chat_typing_answered(t);
}


/* Step 2's answer for one member: the streams that serve them. */
static void
ngx_chat_typing_target(redisAsyncContext *ac, void *reply, void *privdata)
{
    size_t                     i;
    redisReply                *rr = reply;
    ngx_chat_typing_target_t  *tt = privdata;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, tt->t->log, 0,
                      "chat: typing target script failed: %*s",
                      (size_t) rr->len, rr->str);
    }

    for (i = 0; rr != NULL && rr->type == REDIS_REPLY_ARRAY
                && i < rr->elements; i++)
    {
        if (ngx_chat_typing_route(tt->t, rr->element[i], tt->member)
            != NGX_OK)
        {
            break;
        }
    }

    ngx_chat_typing_answered(tt->t);
}


/* member joins the csv of stream's route (a new route for a new one) */
static ngx_int_t
ngx_chat_typing_route(ngx_chat_typing_t *t, redisReply *stream,
    int64_t member)
{
    u_char                   *csv;
    size_t                    need;
    ngx_uint_t                i;
    ngx_chat_typing_route_t  *r;

    if (stream->type != REDIS_REPLY_STRING || stream->len == 0) {
        return NGX_OK;
    }

    r = t->routes.elts;
    for (i = 0; i < t->routes.nelts; i++) {
        if (r[i].stream.len == stream->len
            && ngx_memcmp(r[i].stream.data, stream->str, stream->len) == 0)
        {
            break;
        }
    }

    if (i == t->routes.nelts) {
        r = ngx_array_push(&t->routes);
        if (r == NULL) {
            return NGX_ERROR;
        }
        ngx_memzero(r, sizeof(ngx_chat_typing_route_t));
        r->stream.data = ngx_pnalloc(t->pool, stream->len);
        if (r->stream.data == NULL) {
            t->routes.nelts--;
            return NGX_ERROR;
        }
        ngx_memcpy(r->stream.data, stream->str, stream->len);
        r->stream.len = stream->len;

    } else {
        r = &r[i];
    }

    need = r->len + 1 + NGX_INT64_LEN;
    if (need > r->cap) {
        csv = ngx_pnalloc(t->pool, 2 * need);
        if (csv == NULL) {
            return NGX_ERROR;
        }
        ngx_memcpy(csv, r->csv, r->len);
        r->csv = csv;
        r->cap = 2 * need;
    }

    r->len = ngx_sprintf(r->csv + r->len, r->len ? ",%L" : "%L", member)
             - r->csv;

    return NGX_OK;
}


/* One answer fewer; after the last, step 3 and the end. */
static void
ngx_chat_typing_answered(ngx_chat_typing_t *t)
{
    u_char                   *p, *w, *end, *csv;
    int64_t                   m, *blocked;
    ngx_uint_t                i, j;
    const char               *argv[10];
    size_t                    argvlen[10];
    ngx_chat_redis_t         *rc;
    ngx_chat_typing_route_t  *r;

    if (--t->left > 0) {
        return;
    }

    rc = ngx_chat_bus_redis(t->gw);
    r = t->routes.elts;
    blocked = t->blocked.elts;

    for (i = 0; rc != NULL && ngx_chat_redis_usable(rc)
                && i < t->routes.nelts; i++)
    {
        /* the csv again without the members the typist blocked */
        csv = ngx_pnalloc(t->pool, r[i].len + 1);
        if (csv == NULL) {
            break;
        }

        w = csv;
        end = r[i].csv + r[i].len;

        for (p = r[i].csv; p < end; p = ngx_min(end, p + 1)) {
            u_char  *comma = ngx_strlchr(p, end, ',');

            if (comma == NULL) {
                comma = end;
            }

            m = ngx_atoof(p, comma - p);
            for (j = 0; j < t->blocked.nelts && blocked[j] != m; j++) {
                /* void */
            }

            if (j == t->blocked.nelts) {
                if (w > csv) {
                    *w++ = ',';
                }
                w = ngx_cpymem(w, p, comma - p);
            }

            p = comma;
        }

        if (w == csv) {
            continue;
        }

        argv[0] = "XADD";
        argv[1] = (const char *) r[i].stream.data;
        argvlen[1] = r[i].stream.len;
        argv[2] = "MAXLEN";
        argv[3] = "~";
        argv[4] = CHAT_GW_STREAM_MAXLEN;
        argv[5] = "*";
        argv[6] = CHAT_F_EVENT;
        argv[7] = (const char *) t->event.data;
        argvlen[7] = t->event.len;
        argv[8] = CHAT_F_UIDS;
        argv[9] = (const char *) csv;
        argvlen[9] = w - csv;
        argvlen[0] = 4;
        argvlen[2] = 6;
        argvlen[3] = 1;
        argvlen[4] = sizeof(CHAT_GW_STREAM_MAXLEN) - 1;
        argvlen[5] = 1;
        argvlen[6] = sizeof(CHAT_F_EVENT) - 1;
        argvlen[8] = sizeof(CHAT_F_UIDS) - 1;

        (void) ngx_chat_redis_command(rc, ngx_chat_typing_done, NULL, 10,
                                      argv, argvlen);

        argv[0] = "EXPIRE";
        argvlen[0] = 6;
        argv[2] = NGX_CHAT_TYPING_STREAM_TTL;
        argvlen[2] = sizeof(NGX_CHAT_TYPING_STREAM_TTL) - 1;

        (void) ngx_chat_redis_command(rc, ngx_chat_typing_done, NULL, 3, argv,
                                      argvlen);
    }

    ngx_destroy_pool(t->pool);
}


static void
ngx_chat_typing_done(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply  *rr = reply;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: typing: %*s", (size_t) rr->len, rr->str);
    }
}
