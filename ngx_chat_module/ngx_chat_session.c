/*
 * ngx_chat_session.c: the sign-in session routes of the edge: WebSocket
 * tickets, logout and refresh.
 *
 * Every token names its session ("sid") and the session's end ("sxp",
 * chat_token.c).  A refresh gives a fresh token of the same session (a
 * worker signs it, backend/auth/session.c); a logout revokes the session
 * (ngx_chat_revoked.c keeps the revoked ones), so every token of it stops
 * working at once, the one it was asked with and any refreshed from it.
 *
 * Tickets: POST /api/v1/auth/ws-ticket stores the caller under the SHA-256
 * of 32 random bytes for chat_ws_ticket_ttl (SET NX PX); GET /ws?ticket=
 * takes it with GETDEL, so exactly one handshake, on any worker of any
 * edge, gets it.  Redis keeps only the hash.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "chat_base64.h"
#include "chat_protocol.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


#define NGX_CHAT_TICKET_BYTES        32
#define NGX_CHAT_TICKET_LEN          43     /* base64url of 32 bytes */
#define NGX_CHAT_TICKET_KEY_LEN      (sizeof(CHAT_TICKET_PREFIX) - 1       \
                                      + 2 * SHA256_DIGEST_LENGTH)


/* one request waiting on Redis: a logout, a ticket made or redeemed */
typedef struct {
    ngx_http_request_t     *request;
    ngx_chat_pending_t     *pending;
    ngx_chat_caller_t       caller;
    u_char                  ticket[NGX_CHAT_TICKET_LEN + 1];
    ngx_chat_ticket_pt      ready;
    void                   *data;
} ngx_chat_session_req_t;


static ngx_chat_session_req_t *ngx_chat_session_req(ngx_http_request_t *r,
    ngx_chat_caller_t *caller);
static ngx_chat_session_req_t *ngx_chat_session_answered(void *privdata,
    redisReply *rr, const char *failed);
static ngx_int_t ngx_chat_session_run(ngx_chat_session_req_t *sr,
    chat_script_t *script, redisCallbackFn *fn, int argc, const char **argv,
    size_t *argvlen);
static void ngx_chat_session_logged_out(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_session_ticket_made(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_session_redeemed(redisAsyncContext *ac, void *reply,
    void *privdata);
static size_t ngx_chat_session_ticket_key(u_char *buf, u_char *ticket,
    size_t len);
static ngx_int_t ngx_chat_session_ticket_caller(u_char *p, size_t len,
    ngx_chat_caller_t *caller);





static ngx_chat_session_req_t *
ngx_chat_session_req(ngx_http_request_t *r, ngx_chat_caller_t *caller)
{
    ngx_chat_session_req_t  *sr;

    sr = ngx_pcalloc(r->pool, sizeof(ngx_chat_session_req_t));
    if (sr == NULL) {
        return NULL;
    }

    /* answers 503/504 itself when Redis fails or is too slow */
    sr->pending = ngx_chat_http_pending(r);
    if (sr->pending == NULL) {
        return NULL;
    }

    sr->request = r;
    if (caller != NULL) {
        sr->caller = *caller;
    }

    /* the API's context is done with by now: ours replaces it */
    ngx_http_set_ctx(r, sr, ngx_chat_module);

    return sr;
}


/*
 * The request Redis answered rr for; NULL when it is gone (timed out, the
 * client left) or when Redis failed, which this answers 503 with failed.
 */
static ngx_chat_session_req_t *
ngx_chat_session_answered(void *privdata, redisReply *rr, const char *failed)
{
    ngx_chat_pending_t      *p;
    ngx_chat_session_req_t  *sr;

    p = ngx_chat_bus_unpark((uint64_t) (uintptr_t) privdata);
    if (p == NULL) {
        return NULL;
    }

    sr = ngx_http_get_module_ctx((ngx_http_request_t *) p->data,
                                 ngx_chat_module);

    if (rr == NULL || rr->type == REDIS_REPLY_ERROR) {
        if (rr != NULL) {
            ngx_log_error(NGX_LOG_ERR, sr->request->connection->log, 0,
                          "chat: session store: %*s", (size_t) rr->len,
                          rr->str);
        }

        ngx_chat_finalize_error(sr->request, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "unavailable", failed);
        return NULL;
    }

    return sr;
}


/* Sends one command for sr, or runs script (by SHA) with argv when it is
 * not NULL; NGX_DONE, or what to finalize with. */
static ngx_int_t
ngx_chat_session_run(ngx_chat_session_req_t *sr, chat_script_t *script,
    redisCallbackFn *fn, int argc, const char **argv, size_t *argvlen)
{
    ngx_int_t          rc;
    ngx_chat_redis_t  *redis;

    redis = ngx_chat_bus_redis(ngx_chat_gateway(sr->request));

    if (redis == NULL || !ngx_chat_redis_usable(redis)
        || ngx_chat_bus_park(sr->pending, sr->request->connection->log)
           != NGX_OK)
    {
        goto unavailable;
    }

    rc = script
         ? ngx_chat_redis_script(redis, script, fn,
                                 (void *) (uintptr_t) sr->pending->id, argc,
                                 argv, argvlen)
         : ngx_chat_redis_command(redis, fn,
                                  (void *) (uintptr_t) sr->pending->id, argc,
                                  argv, argvlen);

    if (rc != NGX_OK) {
        ngx_chat_bus_cancel(sr->pending);
        goto unavailable;
    }

    return NGX_DONE;

unavailable:

    return ngx_chat_send_error(sr->request, NGX_HTTP_SERVICE_UNAVAILABLE,
                               "unavailable",
                               "the session store (redis) is unavailable");
}


/* POST /api/v1/auth/logout: the caller's session is revoked everywhere. */
ngx_int_t
ngx_chat_session_logout_handler(ngx_http_request_t *r,
    ngx_chat_caller_t *caller)
{
    u_char                  member[CHAT_TOKEN_SID_MAX + NGX_INT64_LEN + 2];
    u_char                  uid[NGX_INT64_LEN], until[NGX_INT64_LEN];
    u_char                  now[NGX_INT64_LEN];
    size_t                  argvlen[8], sid_len;
    ngx_time_t             *tp;
    const char             *argv[8];
    ngx_chat_session_req_t *sr;

    sr = ngx_chat_session_req(r, caller);
    if (sr == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sid_len = ngx_strlen(caller->sid);

    argv[0] = "2";
    argvlen[0] = 1;
    argv[1] = CHAT_REVOKED_KEY;
    argvlen[1] = sizeof(CHAT_REVOKED_KEY) - 1;
    argv[2] = CHAT_REVOCATIONS_KEY;
    argvlen[2] = sizeof(CHAT_REVOCATIONS_KEY) - 1;
    argv[3] = (const char *) member;
    argvlen[3] = ngx_sprintf(member, "%*s:%L", sid_len, caller->sid,
                             caller->uid) - member;
    argv[4] = (const char *) caller->sid;
    argvlen[4] = sid_len;
    argv[5] = (const char *) uid;
    argvlen[5] = ngx_sprintf(uid, "%L", caller->uid) - uid;
    argv[6] = (const char *) until;
    argvlen[6] = ngx_sprintf(until, "%L", caller->sxp * 1000) - until;
    argv[7] = (const char *) now;
    tp = ngx_timeofday();
    argvlen[7] = ngx_sprintf(now, "%L", (int64_t) tp->sec * 1000 + tp->msec)
                 - now;

    return ngx_chat_session_run(sr, &chat_script_logout,
                                ngx_chat_session_logged_out, 8, argv,
                                argvlen);
}


static void
ngx_chat_session_logged_out(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_int_t                rc;
    redisReply              *rr = reply;
    ngx_http_request_t      *r;
    ngx_chat_session_req_t  *sr;

    sr = ngx_chat_session_answered(privdata, rr,
                                   "the session store (redis) did not "
                                   "answer; not signed out");
    if (sr == NULL) {
        return;
    }

    r = sr->request;

    /* every worker of this edge refuses the session before the 204 goes;
     * the stream brings it to the other edges and closes live sessions */
    (void) ngx_chat_revoked_add(sr->caller.sid, ngx_strlen(sr->caller.sid),
                                sr->caller.sxp * 1000, r->connection->log);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "chat: user %L signed out", sr->caller.uid);

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);
    ngx_http_finalize_request(r, rc);
}


/* POST /api/v1/auth/refresh: a worker signs a fresh token of the same
 * session (auth.refresh); the edge vouches for the session it names. */
ngx_int_t
ngx_chat_session_refresh_handler(ngx_http_request_t *r,
    ngx_chat_caller_t *caller)
{
    u_char              *p;
    ngx_int_t            rc;
    ngx_str_t            body;
    ngx_chat_pending_t  *pending;

    p = ngx_pnalloc(r->pool, CHAT_TOKEN_SID_MAX + NGX_INT64_LEN + 32);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = p;
    body.len = ngx_sprintf(p, "{\"sid\":\"%s\",\"sxp\":%L}", caller->sid,
                           caller->sxp) - p;

    pending = ngx_chat_http_pending(r);
    if (pending == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_bus_send(ngx_chat_gateway(r), pending, r->connection->log,
                           "auth.refresh", caller, NULL, &body);

    if (rc == NGX_OK) {
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED) {
        return ngx_chat_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   "the command bus (redis) is unavailable");
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/* POST /api/v1/auth/ws-ticket: {ticket, expires_in}, good for one /ws
 * handshake within chat_ws_ticket_ttl. */
ngx_int_t
ngx_chat_session_ticket_handler(ngx_http_request_t *r,
    ngx_chat_caller_t *caller)
{
    u_char                   rnd[NGX_CHAT_TICKET_BYTES];
    u_char                   key[NGX_CHAT_TICKET_KEY_LEN];
    u_char                   value[NGX_INT64_LEN * 3 + CHAT_TOKEN_SID_MAX
                                   + 32];
    u_char                   ttl[NGX_INT_T_LEN];
    size_t                   argvlen[7];
    const char              *argv[7];
    ngx_chat_main_conf_t    *cmcf;
    ngx_chat_session_req_t  *sr;

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    sr = ngx_chat_session_req(r, caller);
    if (sr == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (RAND_bytes(rnd, sizeof(rnd)) != 1
        || chat_b64_encode(CHAT_B64_URL, rnd, sizeof(rnd),
                           (char *) sr->ticket, sizeof(sr->ticket))
           != NGX_CHAT_TICKET_LEN)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (const char *) key;
    argvlen[1] = ngx_chat_session_ticket_key(key, sr->ticket,
                                             NGX_CHAT_TICKET_LEN);
    argv[2] = (const char *) value;
    argvlen[2] = ngx_sprintf(value, "%L %V %s %L %L", caller->uid,
                             &caller->role, caller->sid, caller->sxp,
                             caller->exp) - value;
    argv[3] = "PX";
    argvlen[3] = 2;
    argv[4] = (const char *) ttl;
    argvlen[4] = ngx_sprintf(ttl, "%M", cmcf->ws_ticket_ttl) - ttl;
    argv[5] = "NX";
    argvlen[5] = 2;

    return ngx_chat_session_run(sr, NULL, ngx_chat_session_ticket_made, 6,
                                argv, argvlen);
}


static void
ngx_chat_session_ticket_made(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    u_char                  *body;
    size_t                   len;
    redisReply              *rr = reply;
    ngx_http_request_t      *r;
    ngx_chat_main_conf_t    *cmcf;
    ngx_chat_session_req_t  *sr;

    sr = ngx_chat_session_answered(privdata, rr,
                                   "the session store (redis) did not "
                                   "answer");
    if (sr == NULL) {
        return;
    }

    r = sr->request;

    /* nil would be a collision of 256 random bits: refused all the same */
    if (rr->type != REDIS_REPLY_STATUS) {
        ngx_chat_finalize_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "unavailable",
                                "the session store (redis) did not answer");
        return;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    body = ngx_pnalloc(r->pool, NGX_CHAT_TICKET_LEN + 64);
    if (body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    len = ngx_sprintf(body, "{\"ticket\":\"%s\",\"expires_in\":%M}",
                      sr->ticket, ngx_max(cmcf->ws_ticket_ttl / 1000, 1))
          - body;

    ngx_chat_finalize_json(r, NGX_HTTP_OK, body, len);
}


/*
 * GET /ws?ticket=: takes the ticket out of Redis and calls ready with its
 * caller, or answers the request itself (401 unknown, used, expired or
 * signed out; 503).  Returns NGX_DONE (the caller adds its reference to
 * the request) or what to finalize with.
 */
ngx_int_t
ngx_chat_session_redeem(ngx_http_request_t *r, ngx_str_t *ticket,
    ngx_chat_ticket_pt ready, void *data)
{
    u_char                   key[NGX_CHAT_TICKET_KEY_LEN];
    size_t                   argvlen[2];
    const char              *argv[2];
    ngx_chat_session_req_t  *sr;

    if (ticket->len != NGX_CHAT_TICKET_LEN) {
        return ngx_chat_send_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "unknown, used or expired ticket");
    }

    sr = ngx_chat_session_req(r, NULL);
    if (sr == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sr->ready = ready;
    sr->data = data;

    argv[0] = "GETDEL";
    argvlen[0] = 6;
    argv[1] = (const char *) key;
    argvlen[1] = ngx_chat_session_ticket_key(key, ticket->data, ticket->len);

    return ngx_chat_session_run(sr, NULL, ngx_chat_session_redeemed, 2, argv,
                                argvlen);
}


static void
ngx_chat_session_redeemed(redisAsyncContext *ac, void *reply, void *privdata)
{
    ngx_int_t                rc;
    redisReply              *rr = reply;
    ngx_http_request_t      *r;
    ngx_chat_session_req_t  *sr;

    sr = ngx_chat_session_answered(privdata, rr,
                                   "the session store (redis) did not "
                                   "answer");
    if (sr == NULL) {
        return;
    }

    r = sr->request;

    if (rr->type != REDIS_REPLY_STRING
        || ngx_chat_session_ticket_caller((u_char *) rr->str, rr->len,
                                          &sr->caller)
           != NGX_OK)
    {
        ngx_chat_finalize_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                "unknown, used or expired ticket");
        return;
    }

    if (sr->caller.exp <= (int64_t) ngx_time()) {
        ngx_chat_finalize_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                "token expired");
        return;
    }

    rc = ngx_chat_revoked_check(ngx_chat_gateway(r), sr->caller.sid,
                                ngx_strlen(sr->caller.sid));

    if (rc == NGX_DECLINED) {
        ngx_chat_finalize_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                "token revoked (signed out)");
        return;
    }

    if (rc != NGX_OK) {
        ngx_chat_finalize_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "unavailable",
                                "sign-in state unavailable (redis)");
        return;
    }

    sr->ready(r, &sr->caller, sr->data);
}


/* "chat:ticket:<hex SHA-256 of the ticket>": Redis never holds a ticket
 * that would work. */
static size_t
ngx_chat_session_ticket_key(u_char *buf, u_char *ticket, size_t len)
{
    u_char  digest[SHA256_DIGEST_LENGTH], *p;

    SHA256(ticket, len, digest);

    p = ngx_cpymem(buf, CHAT_TICKET_PREFIX, sizeof(CHAT_TICKET_PREFIX) - 1);
    p = ngx_hex_dump(p, digest, sizeof(digest));

    return p - buf;
}


/* "<uid> <role> <sid> <sxp> <exp>" as the ticket's value. */
static ngx_int_t
ngx_chat_session_ticket_caller(u_char *p, size_t len,
    ngx_chat_caller_t *caller)
{
    u_char      *end, *field[5];
    size_t       flen[5];
    ngx_int_t    uid, sxp, exp;
    ngx_uint_t   i;
    const char  *role;

    end = p + len;

    for (i = 0; i < 5; i++) {
        field[i] = p;
        while (p < end && *p != ' ') {
            p++;
        }
        flen[i] = p - field[i];
        if (p < end) {
            p++;
        } else if (i < 4) {
            return NGX_ERROR;
        }
    }

    uid = ngx_atoi(field[0], flen[0]);
    sxp = ngx_atoi(field[3], flen[3]);
    exp = ngx_atoi(field[4], flen[4]);

    if (uid <= 0 || sxp == NGX_ERROR || exp == NGX_ERROR
        || !chat_token_sid_valid((const char *) field[2], flen[2]))
    {
        return NGX_ERROR;
    }

    role = chat_role_name((const char *) field[1], flen[1]);
    if (role == NULL) {
        return NGX_ERROR;
    }

    caller->role.data = (u_char *) role;
    caller->role.len = ngx_strlen(role);

    caller->uid = uid;
    caller->sxp = sxp;
    caller->exp = exp;
    ngx_memcpy(caller->sid, field[2], flen[2]);
    caller->sid[flen[2]] = '\0';

    return NGX_OK;
}
