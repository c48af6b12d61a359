/*
 * ngx_chat_module.h: what the module's files share: configuration
 * structures and the entry points each file offers the others.
 */

#ifndef NGX_CHAT_MODULE_H
#define NGX_CHAT_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_seal.h"
#include "chat_secret.h"
#include "chat_token.h"
#include "ngx_chat_redis.h"


/* a worker's gateway on one Redis (ngx_chat_bus.c) */
typedef struct ngx_chat_gateway_s  ngx_chat_gateway_t;

/* what a gateway holds per endpoint, each owned by its own file */
typedef struct ngx_chat_lanes_s        ngx_chat_lanes_t;        /* lanes.c */
typedef struct ngx_chat_registry_s     ngx_chat_registry_t;     /* registry.c */
typedef struct ngx_chat_poll_s         ngx_chat_poll_t;         /* poll.c */
typedef struct ngx_chat_revocations_s  ngx_chat_revocations_t;  /* revoked.c */


/*
 * One Redis the applications of this nginx use: a distinct host:port and
 * ACL user.  Made at configuration time, when a location that talks to
 * Redis is merged (ngx_chat_module.c), and shared by every location that
 * names the same one; each worker process opens one gateway per endpoint
 * (its connections, reply stream, reply reader, lanes view, revocation
 * feed, poll watcher), never one per request.  One backend serves one
 * Redis with one token secret, so the locations of an endpoint must agree
 * on its password, timeouts and secret.
 */
typedef struct {
    ngx_uint_t    index;                /* in endpoints: the gateway's */
    ngx_str_t     name;                 /* "host:port" or "user@host:port" */
    ngx_str_t     host;                 /* NUL-terminated */
    in_port_t     port;
    ngx_str_t     user;                 /* none: AUTH with the password only */
    ngx_str_t     password;             /* none: no AUTH */
    ngx_msec_t    connect_timeout;
    ngx_msec_t    timeout;
    ngx_str_t     token_secret;         /* the backend's; none: not known */
    u_char        seal_key[CHAT_SEAL_KEY_LEN];  /* from the token secret */
} ngx_chat_endpoint_t;

/* distinct Redis endpoints per nginx (bits of a word in the revocation
 * zone say which ones a worker follows) */
#define NGX_CHAT_MAX_ENDPOINTS  64


typedef struct {
    ngx_array_t   endpoints;            /* of ngx_chat_endpoint_t * */
    ngx_msec_t    command_timeout;
    ngx_uint_t    stream_shards;
    ngx_uint_t    stream_maxlen;
    ngx_flag_t    used;                 /* some location has chat_api */

    /* presence and typing (ngx_chat_presence.c, ngx_chat_typing.c) */
    ngx_msec_t    presence_ttl;
    ngx_msec_t    presence_grace;
    ngx_msec_t    typing_interval;
    /* the catalog read cache (issue 4), ngx_chat_cache.c */
    ngx_flag_t    cache;
    ngx_msec_t    cache_ttl;
    time_t        cache_max_age;

    /* sign-in sessions, ngx_chat_session.c and ngx_chat_revoked.c */
    ngx_msec_t       ws_ticket_ttl;
    size_t           revocation_zone_size;
    ngx_shm_zone_t  *revocation_zone;

    /* uploads and downloads, ngx_chat_media.c */
    ngx_str_t        media_root;        /* the store; none: no uploads */
    ngx_str_t        media_internal;    /* the internal location's URI */
} ngx_chat_main_conf_t;

/* A connection to one endpoint (ngx_chat_redis.c): the server, the
 * credentials, the connect timeout and the log every one of the worker's
 * connections to it shares; the caller sets the rest. */
void ngx_chat_redis_use_endpoint(ngx_chat_redis_t *rc, const char *name,
    ngx_chat_endpoint_t *ep, ngx_log_t *log);


/*
 * What may differ per application: set in http, server or location and
 * merged the nginx way (the innermost setting wins, a list replaces the
 * outer one).  Read from the request (ngx_http_get_module_loc_conf).
 */
typedef struct {
    ngx_flag_t    api;
    ngx_str_t     api_prefix;           /* "/api/v1": where the routes are */
    size_t        max_body_size;
    ngx_array_t  *ws_origins;           /* of ngx_str_t; NULL: any */
    size_t        ws_max_message;
    size_t        ws_max_queue;
    ngx_msec_t    ws_ping_interval;
    ngx_msec_t    ws_pong_timeout;
    ngx_int_t     ws_max_per_user;      /* ngx_chat_caps.c */
    ngx_int_t     poll_max_per_user;

    /* the application's Redis and token secret: what the merge makes of
     * them is the endpoint, for a location that talks to Redis */
    ngx_str_t     redis_host;           /* NUL-terminated; none: unset */
    in_port_t     redis_port;
    ngx_str_t     redis_user;
    ngx_str_t     redis_password;
    ngx_msec_t    redis_connect_timeout;
    ngx_msec_t    redis_timeout;
    ngx_str_t     token_secret;
    ngx_chat_endpoint_t  *endpoint;     /* NULL: no Redis here */

    /* set by this location's own handler directive, never inherited */
    unsigned      talks_to_redis:1;     /* chat_api, chat_websocket, ... */
    unsigned      checks_tokens:1;      /* ... which need the secret */
} ngx_chat_loc_conf_t;

/* ngx_chat_endpoint.c: from the merge of a location that talks to Redis:
 * its endpoint (found or made) in conf->endpoint; NGX_CONF_ERROR, logged,
 * when its settings cannot make one */
char *ngx_chat_endpoint(ngx_conf_t *cf, ngx_chat_loc_conf_t *conf);

/* the prefix of the route table's paths (shared/API.md): chat_api_prefix
 * takes its place in a request's path */
#define NGX_CHAT_API_PREFIX  "/api/v1"


/* the verified caller of a request; uid 0 means anonymous */
typedef struct {
    int64_t       uid;
    ngx_str_t     role;
    int64_t       exp;          /* the token's expiry, seconds since 1970 */
    int64_t       sxp;          /* its session's end, seconds since 1970 */
    u_char        sid[CHAT_TOKEN_SID_MAX + 1];  /* its session, NUL-ended */
} ngx_chat_caller_t;


/* ngx_chat_session_redeem() found the ticket's caller */
typedef void (*ngx_chat_ticket_pt)(ngx_http_request_t *r,
    ngx_chat_caller_t *caller, void *data);


extern ngx_module_t  ngx_chat_module;


/* ngx_chat_api.c: the /api/ content handler */
ngx_int_t ngx_chat_api_handler(ngx_http_request_t *r);

/* ngx_chat_ws.c: the chat_websocket content handler (GET /ws) */
ngx_int_t ngx_chat_ws_handler(ngx_http_request_t *r);

/* ngx_chat_health.c: GET /api/v1/health */
ngx_int_t ngx_chat_health_handler(ngx_http_request_t *r,
    ngx_chat_caller_t *caller);

/* ngx_chat_poll.c: GET /api/v1/events, the long-poll fallback */
ngx_int_t ngx_chat_poll_handler(ngx_http_request_t *r,
    ngx_chat_caller_t *caller);
/* a gateway's held polls and the connection that watches their streams */
ngx_chat_poll_t *ngx_chat_poll_create(ngx_cycle_t *cycle,
    ngx_chat_gateway_t *gw);
void ngx_chat_poll_stop(ngx_chat_poll_t *poll);

/* ngx_chat_http.c: responses and request bodies */
void ngx_chat_http_retry_after(ngx_http_request_t *r, time_t seconds);
ngx_int_t ngx_chat_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);
ngx_int_t ngx_chat_send_body(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len);
ngx_int_t ngx_chat_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message);
void ngx_chat_finalize_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);
void ngx_chat_finalize_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message);
ngx_int_t ngx_chat_request_body(ngx_http_request_t *r, ngx_str_t *body);
ngx_table_elt_t *ngx_chat_http_header(ngx_http_request_t *r,
    const char *name);
ngx_int_t ngx_chat_send_json_cached(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len, ngx_str_t *cache_control, ngx_str_t *etag);
ngx_int_t ngx_chat_error_page_handler(ngx_http_request_t *r);

/* ngx_chat_api.c: the part of r's path after the location's
 * chat_api_prefix into *rest ("/uploads"); NGX_DECLINED when the path is
 * not under it */
ngx_int_t ngx_chat_api_path(ngx_http_request_t *r, ngx_str_t *rest);
/*
 * The answer or event body with the URLs the backend wrote in it (values
 * that start with NGX_CHAT_API_PREFIX "/") under the chat_api_prefix of
 * r's location instead: body itself when there is nothing to change (the
 * default prefix, or no such value), else a copy from pool (NULL: from
 * ngx_alloc, for the caller to ngx_free), with *len updated; NULL when
 * the copy cannot be made.
 */
u_char *ngx_chat_api_urls(ngx_http_request_t *r, ngx_pool_t *pool,
    u_char *body, size_t *len);

/* ngx_chat_api.c: the caller behind a bearer token (also used by /ws and
 * $chat_user_id) */
ngx_int_t ngx_chat_bearer_token(ngx_http_request_t *r, ngx_str_t *token);
ngx_int_t ngx_chat_authenticate_token(ngx_http_request_t *r, ngx_str_t *token,
    ngx_chat_caller_t *caller, const char **why);

/* ngx_chat_revoked.c: the signed-out sessions every token is checked
 * against (NGX_OK, NGX_DECLINED revoked, NGX_BUSY cannot tell: nobody
 * follows the revocations of gw's Redis); one table, one feed per
 * gateway */
ngx_int_t ngx_chat_revoked_zone(ngx_conf_t *cf, ngx_chat_main_conf_t *cmcf);
ngx_int_t ngx_chat_revoked_init_process(ngx_cycle_t *cycle,
    ngx_chat_main_conf_t *cmcf);
void ngx_chat_revoked_exit_process(void);
ngx_chat_revocations_t *ngx_chat_revoked_follow(ngx_cycle_t *cycle,
    ngx_chat_gateway_t *gw);
void ngx_chat_revoked_unfollow(ngx_chat_revocations_t *ses);
ngx_int_t ngx_chat_revoked_check(ngx_chat_gateway_t *gw, u_char *sid,
    size_t len);
ngx_int_t ngx_chat_revoked_add(u_char *sid, size_t len, int64_t until_ms,
    ngx_log_t *log);

/* ngx_chat_session.c: WebSocket tickets, logout, refresh */
ngx_int_t ngx_chat_session_logout_handler(ngx_http_request_t *r,
    ngx_chat_caller_t *caller);
ngx_int_t ngx_chat_session_refresh_handler(ngx_http_request_t *r,
    ngx_chat_caller_t *caller);
ngx_int_t ngx_chat_session_ticket_handler(ngx_http_request_t *r,
    ngx_chat_caller_t *caller);
ngx_int_t ngx_chat_session_redeem(ngx_http_request_t *r, ngx_str_t *ticket,
    ngx_chat_ticket_pt ready, void *data);

/* ngx_chat_poll.c: held polls of a revoked session are answered 401 */
void ngx_chat_poll_revoke(ngx_chat_poll_t *poll, int64_t uid,
    u_char *sid, size_t len);

/* ngx_chat_variables.c: $chat_user_id, $chat_request_safe; the request's
 * $request_id (empty when there is none) for the command envelope */
ngx_int_t ngx_chat_add_variables(ngx_conf_t *cf);
void ngx_chat_request_id(ngx_http_request_t *r, ngx_str_t *rid);
/* ngx_chat_presence.c: this worker's users in Redis' presence registry */
ngx_int_t ngx_chat_presence_init_process(ngx_cycle_t *cycle,
    ngx_chat_main_conf_t *cmcf);
void ngx_chat_presence_announce(ngx_chat_gateway_t *gw, int64_t uid,
    ngx_uint_t online);
ngx_msec_t ngx_chat_presence_refresh_interval(void);
/* the presence shard's half of a registration (online: ms is the TTL) or
 * of a leave (ms is the grace), for a long-poll session too */
void ngx_chat_presence_shard(ngx_chat_redis_t *rc, int64_t uid,
    ngx_uint_t online, ngx_msec_t ms);

/* ngx_chat_caps.c: per-user caps on live WebSockets across this edge */
ngx_int_t ngx_chat_caps_zone(ngx_conf_t *cf);
void ngx_chat_caps_init_process(void);
ngx_int_t ngx_chat_caps_ws_acquire(ngx_uint_t app, int64_t uid,
    ngx_uint_t max, ngx_log_t *log);
void ngx_chat_caps_ws_release(ngx_uint_t app, int64_t uid);

/* ngx_chat_media.c: uploads (the chat_media_upload handler) and
 * GET /api/v1/attachments/{id} */
ngx_int_t ngx_chat_media_upload_handler(ngx_http_request_t *r);
ngx_int_t ngx_chat_media_download_handler(ngx_http_request_t *r,
    ngx_chat_caller_t *caller);

/* ngx_chat_typing.c: one typing indicator from a user to a conversation */
void ngx_chat_typing(ngx_chat_gateway_t *gw, int64_t uid,
    int64_t conversation_id, ngx_log_t *log);

#endif /* NGX_CHAT_MODULE_H */
