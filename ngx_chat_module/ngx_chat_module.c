/*
 * ngx_chat_module.c: the chat and bookstore edge: directives,
 * configuration and the worker process life cycle.
 *
 * `chat_api` makes a location answer the JSON API (ngx_chat_api.c); the
 * other directives say where Redis is, how long to wait, how big bodies may
 * be and which secret verifies tokens.  Each worker process becomes one
 * gateway on the command bus at start (ngx_chat_bus.c) and leaves it at
 * exit.
 *
 * Two kinds of settings: what a request or a connection reads (the API
 * prefix, origins, caps, pings, its application's Redis and token secret)
 * lives in ngx_chat_loc_conf_t and may differ per server and location;
 * what a worker process holds once (the command streams, the timeouts of
 * the bus, the shared-memory zones) lives in ngx_chat_main_conf_t, http
 * only.  The Redis settings a location ends up with name an endpoint
 * (ngx_chat_endpoint_t): made once per distinct host:port and user, here,
 * and given one gateway per worker process (ngx_chat_bus.c).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_bus.h"
#include "ngx_chat_lanes.h"
#include "ngx_chat_metrics.h"
#include "ngx_chat_module.h"
#include "ngx_chat_registry.h"
#include "chat_version.h"


static void *ngx_chat_create_main_conf(ngx_conf_t *cf);
static char *ngx_chat_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_chat_create_loc_conf(ngx_conf_t *cf);
static char *ngx_chat_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_chat_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_chat_websocket(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_media_upload(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_error_page(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_ws_allowed_origins(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static void ngx_chat_talks_to_redis(ngx_conf_t *cf, ngx_uint_t tokens);
static char *ngx_chat_token_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_chat_init_process(ngx_cycle_t *cycle);
static void ngx_chat_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_chat_shards_bounds = {
    ngx_conf_check_num_bounds, 1, 1024
};

static ngx_conf_num_bounds_t  ngx_chat_maxlen_bounds = {
    ngx_conf_check_num_bounds, 1000, 100000000
};

static ngx_conf_num_bounds_t  ngx_chat_per_user_bounds = {
    ngx_conf_check_num_bounds, 1, 10000
};


static ngx_command_t  ngx_chat_commands[] = {

    { ngx_string("chat_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_api_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, api_prefix),
      NULL },

    { ngx_string("chat_websocket"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_websocket,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_chat_metrics_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_error_page"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_error_page,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_ws_allowed_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_chat_ws_allowed_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_ws_max_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, ws_max_message),
      NULL },

    { ngx_string("chat_ws_max_queue"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, ws_max_queue),
      NULL },

    { ngx_string("chat_ws_ping_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, ws_ping_interval),
      NULL },

    { ngx_string("chat_ws_pong_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, ws_pong_timeout),
      NULL },

    /* the application's Redis (one backend per Redis) */

    { ngx_string("chat_redis"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_chat_redis,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, redis_connect_timeout),
      NULL },

    { ngx_string("chat_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, redis_timeout),
      NULL },

    { ngx_string("chat_command_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, command_timeout),
      NULL },

    { ngx_string("chat_stream_shards"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, stream_shards),
      &ngx_chat_shards_bounds },

    { ngx_string("chat_stream_maxlen"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, stream_maxlen),
      &ngx_chat_maxlen_bounds },

    { ngx_string("chat_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, max_body_size),
      NULL },

    { ngx_string("chat_token_secret"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, token_secret),
      NULL },

    { ngx_string("chat_token_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_chat_token_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* Redis credentials: an ACL user and its password, from a file */

    { ngx_string("chat_redis_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, redis_user),
      NULL },

    { ngx_string("chat_redis_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_chat_redis_password_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* per-user caps on live connections (ngx_chat_caps.c) */

    { ngx_string("chat_ws_max_per_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, ws_max_per_user),
      &ngx_chat_per_user_bounds },

    { ngx_string("chat_poll_max_per_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, poll_max_per_user),
      &ngx_chat_per_user_bounds },

    /* presence and typing */

    { ngx_string("chat_presence_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, presence_ttl),
      NULL },

    { ngx_string("chat_presence_grace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, presence_grace),
      NULL },

    { ngx_string("chat_typing_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, typing_interval),
      NULL },

    /* the catalog read cache (issue 4), ngx_chat_cache.c */

    { ngx_string("chat_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, cache),
      NULL },

    { ngx_string("chat_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, cache_ttl),
      NULL },

    { ngx_string("chat_cache_max_age"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, cache_max_age),
      NULL },

    /* sign-in sessions, ngx_chat_session.c and ngx_chat_revoked.c */
    { ngx_string("chat_ws_ticket_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, ws_ticket_ttl),
      NULL },

    { ngx_string("chat_revocation_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, revocation_zone_size),
      NULL },

    /* uploads and downloads, ngx_chat_media.c */
    { ngx_string("chat_media_upload"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_media_upload,
      0,
      0,
      NULL },

    { ngx_string("chat_media_root"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, media_root),
      NULL },

    { ngx_string("chat_media_internal"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, media_internal),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_chat_module_ctx = {
    ngx_chat_add_variables,                /* preconfiguration */
    ngx_chat_metrics_init,                 /* postconfiguration */

    ngx_chat_create_main_conf,             /* create main configuration */
    ngx_chat_init_main_conf,               /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_chat_create_loc_conf,              /* create location configuration */
    ngx_chat_merge_loc_conf                /* merge location configuration */
};


ngx_module_t  ngx_chat_module = {
    NGX_MODULE_V1,
    &ngx_chat_module_ctx,                  /* module context */
    ngx_chat_commands,                     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_chat_init_process,                 /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_chat_exit_process,                 /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_chat_create_main_conf(ngx_conf_t *cf)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_chat_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     cmcf->used = 0;
     */

    if (ngx_array_init(&cmcf->endpoints, cf->pool, 2,
                       sizeof(ngx_chat_endpoint_t *))
        != NGX_OK)
    {
        return NULL;
    }

    cmcf->command_timeout = NGX_CONF_UNSET_MSEC;
    cmcf->stream_shards = NGX_CONF_UNSET_UINT;
    cmcf->stream_maxlen = NGX_CONF_UNSET_UINT;
    cmcf->presence_ttl = NGX_CONF_UNSET_MSEC;
    cmcf->presence_grace = NGX_CONF_UNSET_MSEC;
    cmcf->typing_interval = NGX_CONF_UNSET_MSEC;
    cmcf->cache = NGX_CONF_UNSET;
    cmcf->cache_ttl = NGX_CONF_UNSET_MSEC;
    cmcf->cache_max_age = NGX_CONF_UNSET;
    cmcf->ws_ticket_ttl = NGX_CONF_UNSET_MSEC;
    cmcf->revocation_zone_size = NGX_CONF_UNSET_SIZE;

    return cmcf;
}


static char *
ngx_chat_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_chat_main_conf_t  *cmcf = conf;

    if (ngx_chat_metrics_zone(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_msec_value(cmcf->command_timeout, 10000);
    ngx_conf_init_uint_value(cmcf->stream_shards, 4);
    ngx_conf_init_uint_value(cmcf->stream_maxlen, 1000000);
    ngx_conf_init_msec_value(cmcf->presence_ttl, 45000);
    ngx_conf_init_msec_value(cmcf->presence_grace, 5000);
    ngx_conf_init_msec_value(cmcf->typing_interval, 2000);

    if (ngx_chat_caps_zone(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cmcf->presence_ttl < 3000 || cmcf->presence_ttl > 60000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_presence_ttl must be from 3s to 60s");
        return NGX_CONF_ERROR;
    }

    if (cmcf->typing_interval < 100 || cmcf->typing_interval > 60000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_typing_interval must be from 100ms to 60s");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(cmcf->cache, 1);
    ngx_conf_init_msec_value(cmcf->cache_ttl, 60000);
    ngx_conf_init_value(cmcf->cache_max_age, 0);

    if (cmcf->cache_ttl < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_cache_ttl must be at least 1ms");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_msec_value(cmcf->ws_ticket_ttl, 30000);
    ngx_conf_init_size_value(cmcf->revocation_zone_size, 16 * 1024 * 1024);

    if (cmcf->ws_ticket_ttl < 1000 || cmcf->ws_ticket_ttl > 300000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_ws_ticket_ttl must be from 1s to 5m");
        return NGX_CONF_ERROR;
    }

    /* where downloads are handed to nginx's static handler */
    if (cmcf->media_internal.data == NULL) {
        ngx_str_set(&cmcf->media_internal, "/_media/");
    }

    if (cmcf->media_internal.len == 0
        || cmcf->media_internal.data[0] != '/'
        || cmcf->media_internal.data[cmcf->media_internal.len - 1] != '/')
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_media_internal must start and end "
                           "with \"/\"");
        return NGX_CONF_ERROR;
    }

    if (cmcf->revocation_zone_size < 64 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_revocation_zone must be at least 64k");
        return NGX_CONF_ERROR;
    }

    if (cmcf->used && ngx_chat_revoked_zone(cf, cmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_chat_create_loc_conf(ngx_conf_t *cf)
{
    ngx_chat_loc_conf_t  *clcf;

    clcf = ngx_pcalloc(cf->pool, sizeof(ngx_chat_loc_conf_t));
    if (clcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     clcf->api_prefix = { 0, NULL };
     *     clcf->redis_host = { 0, NULL };
     *     clcf->redis_user = { 0, NULL };
     *     clcf->redis_password = { 0, NULL };
     *     clcf->token_secret = { 0, NULL };
     *     clcf->endpoint = NULL;
     *     clcf->talks_to_redis = 0;
     *     clcf->checks_tokens = 0;
     */

    clcf->api = NGX_CONF_UNSET;
    clcf->max_body_size = NGX_CONF_UNSET_SIZE;
    clcf->ws_origins = NGX_CONF_UNSET_PTR;
    clcf->ws_max_message = NGX_CONF_UNSET_SIZE;
    clcf->ws_max_queue = NGX_CONF_UNSET_SIZE;
    clcf->ws_ping_interval = NGX_CONF_UNSET_MSEC;
    clcf->ws_pong_timeout = NGX_CONF_UNSET_MSEC;
    clcf->ws_max_per_user = NGX_CONF_UNSET;
    clcf->poll_max_per_user = NGX_CONF_UNSET;
    clcf->redis_connect_timeout = NGX_CONF_UNSET_MSEC;
    clcf->redis_timeout = NGX_CONF_UNSET_MSEC;

    return clcf;
}


/*
 * http → server → location, nginx's way: what a block does not set it
 * takes from the one around it, and chat_ws_allowed_origins in a block
 * replaces the outer list rather than adding to it (like add_header).
 * The bounds are checked here, where the value a location ends up with
 * is known.
 */
static char *
ngx_chat_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_chat_loc_conf_t  *prev = parent;
    ngx_chat_loc_conf_t  *conf = child;

    u_char  *p, *last;

    ngx_conf_merge_value(conf->api, prev->api, 0);
    ngx_conf_merge_str_value(conf->api_prefix, prev->api_prefix,
                             NGX_CHAT_API_PREFIX);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              64 * 1024);
    ngx_conf_merge_ptr_value(conf->ws_origins, prev->ws_origins, NULL);
    ngx_conf_merge_size_value(conf->ws_max_message, prev->ws_max_message,
                              1024 * 1024);
    ngx_conf_merge_size_value(conf->ws_max_queue, prev->ws_max_queue,
                              1024 * 1024);
    ngx_conf_merge_msec_value(conf->ws_ping_interval, prev->ws_ping_interval,
                              30000);
    ngx_conf_merge_msec_value(conf->ws_pong_timeout, prev->ws_pong_timeout,
                              10000);
    ngx_conf_merge_value(conf->ws_max_per_user, prev->ws_max_per_user, 20);
    ngx_conf_merge_value(conf->poll_max_per_user, prev->poll_max_per_user,
                         10);

    /* the application's Redis and secret: unset inherits the outer block's */
    if (conf->redis_host.data == NULL) {
        conf->redis_host = prev->redis_host;
        conf->redis_port = prev->redis_port;
    }

    if (conf->redis_host.data == NULL) {
        ngx_str_set(&conf->redis_host, "127.0.0.1");
        conf->redis_port = 6379;
    }

    ngx_conf_merge_str_value(conf->redis_user, prev->redis_user, "");
    ngx_conf_merge_str_value(conf->redis_password, prev->redis_password, "");
    ngx_conf_merge_msec_value(conf->redis_connect_timeout,
                              prev->redis_connect_timeout, 2000);
    ngx_conf_merge_msec_value(conf->redis_timeout, prev->redis_timeout, 5000);
    ngx_conf_merge_str_value(conf->token_secret, prev->token_secret, "");

    if (conf->talks_to_redis && ngx_chat_endpoint(cf, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->ws_max_message > 64 * 1024 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_ws_max_message must be at most 64m");
        return NGX_CONF_ERROR;
    }

    if (conf->ws_max_queue < 64 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_ws_max_queue must be at least 64k");
        return NGX_CONF_ERROR;
    }

    /* a path without a final "/": the routes' own paths add theirs */
    p = conf->api_prefix.data;
    last = p + conf->api_prefix.len;

    if (conf->api_prefix.len < 2 || p[0] != '/' || last[-1] == '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_api_prefix \"%V\" must start with \"/\" "
                           "and not end with one", &conf->api_prefix);
        return NGX_CONF_ERROR;
    }

    for ( /* void */ ; p < last; p++) {
        if (*p <= ' ' || *p == '?' || *p == '#' || *p == '%' || *p >= 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "chat_api_prefix \"%V\" must be a plain "
                               "path", &conf->api_prefix);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/*
 * A handler directive of this location needs Redis (and, with tokens,
 * the token secret): the merge turns its settings into an endpoint.
 */
static void
ngx_chat_talks_to_redis(ngx_conf_t *cf, ngx_uint_t tokens)
{
    ngx_chat_loc_conf_t   *clcf;
    ngx_chat_main_conf_t  *cmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_chat_module);
    clcf->talks_to_redis = 1;
    clcf->checks_tokens |= tokens;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_chat_module);
    cmcf->used = 1;
}


static char *
ngx_chat_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t       *clcf = conf;
    ngx_http_core_loc_conf_t  *hclcf;

    if (clcf->api != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    clcf->api = 1;

    hclcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    hclcf->handler = ngx_chat_api_handler;

    ngx_chat_talks_to_redis(cf, 1);

    return NGX_CONF_OK;
}


static char *
ngx_chat_websocket(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *hclcf;

    hclcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    if (hclcf->handler) {
        return "is duplicate or clashes with another handler";
    }
    hclcf->handler = ngx_chat_ws_handler;

    ngx_chat_talks_to_redis(cf, 1);

    return NGX_CONF_OK;
}


static char *
ngx_chat_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *hclcf;

    hclcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    if (hclcf->handler) {
        return "is duplicate or clashes with another handler";
    }

    /* chat_metrics: this edge's own figures; chat_metrics cluster: what
     * every edge would report the same, for one scrape job */
    value = cf->args->elts;

    if (cf->args->nelts == 1) {
        hclcf->handler = ngx_chat_metrics_handler;

    } else if (ngx_strcmp(value[1].data, "cluster") == 0) {
        hclcf->handler = ngx_chat_metrics_cluster_handler;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" (expected \"cluster\" "
                           "or nothing)", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* the figures of this location's Redis; no token is checked here */
    ngx_chat_talks_to_redis(cf, 0);

    return NGX_CONF_OK;
}


/* chat_media_upload: the location takes uploads (ngx_chat_media.c);
 * its client_max_body_size is the cap */
static char *
ngx_chat_media_upload(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *hclcf;

    hclcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    if (hclcf->handler) {
        return "is duplicate or clashes with another handler";
    }
    hclcf->handler = ngx_chat_media_upload_handler;

    ngx_chat_talks_to_redis(cf, 1);

    return NGX_CONF_OK;
}


/* chat_error_page: nginx's own errors in the API's shape (error_page ...
 * /uri; location = /uri { internal; chat_error_page; }) */
static char *
ngx_chat_error_page(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *hclcf;

    hclcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    if (hclcf->handler) {
        return "is duplicate or clashes with another handler";
    }
    hclcf->handler = ngx_chat_error_page_handler;

    return NGX_CONF_OK;
}


/*
 * chat_ws_allowed_origins origin ...: every argument, in any number of
 * directives (ngx_conf_set_str_array_slot would keep only the first).
 */
static char *
ngx_chat_ws_allowed_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t  *clcf = conf;

    ngx_str_t   *value, *origin;
    ngx_uint_t   i;

    if (clcf->ws_origins == NGX_CONF_UNSET_PTR) {
        clcf->ws_origins = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (clcf->ws_origins == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strncasecmp(value[i].data, (u_char *) "http://", 7) != 0
            && ngx_strncasecmp(value[i].data, (u_char *) "https://", 8) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "origin \"%V\" must start with http:// or "
                               "https://", &value[i]);
            return NGX_CONF_ERROR;
        }

        origin = ngx_array_push(clcf->ws_origins);
        if (origin == NULL) {
            return NGX_CONF_ERROR;
        }

        *origin = value[i];
    }

    return NGX_CONF_OK;
}


/* chat_redis host:port */
static char *
ngx_chat_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t  *clcf = conf;

    u_char     *host;
    ngx_str_t  *value;
    ngx_url_t   u;

    if (clcf->redis_host.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = 6379;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.host.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid chat_redis \"%V\"%s%s",
                           &value[1], u.err ? ": " : "",
                           u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    /* hiredis wants a C string */
    host = ngx_pnalloc(cf->pool, u.host.len + 1);
    if (host == NULL) {
        return NGX_CONF_ERROR;
    }
    ngx_cpystrn(host, u.host.data, u.host.len + 1);

    clcf->redis_host.data = host;
    clcf->redis_host.len = u.host.len;
    clcf->redis_port = u.port;

    return NGX_CONF_OK;
}


/*
 * Reads the secret file named by the directive's argument with the reader
 * the backend uses too (chat_secret.c: one final line end off, a file any
 * user may read refused) into *out, allocated from the cycle's pool.
 */
static char *
ngx_chat_conf_secret_file(ngx_conf_t *cf, ngx_str_t *out)
{
    u_char      *buf;
    ssize_t      n;
    ngx_str_t   *value, path;
    const char  *err;

    value = cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    buf = ngx_pnalloc(cf->pool, CHAT_SECRET_MAX + 2);
    if (buf == NULL) {
        return NGX_CONF_ERROR;
    }

    n = chat_secret_read((const char *) path.data, buf, CHAT_SECRET_MAX + 2,
                         &err);
    if (n < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" %s", &path, err);
        return NGX_CONF_ERROR;
    }

    out->data = buf;
    out->len = (size_t) n;

    return NGX_CONF_OK;
}


/* chat_token_secret_file path */
static char *
ngx_chat_token_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t  *clcf = conf;

    if (clcf->token_secret.data) {
        return "is duplicate (or \"chat_token_secret\" is set too)";
    }

    return ngx_chat_conf_secret_file(cf, &clcf->token_secret);
}


/* chat_redis_password_file path */
static char *
ngx_chat_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t  *clcf = conf;

    if (clcf->redis_password.data) {
        return "is duplicate";
    }

    return ngx_chat_conf_secret_file(cf, &clcf->redis_password);
}


static ngx_int_t
ngx_chat_init_process(ngx_cycle_t *cycle)
{
    ngx_chat_main_conf_t  *cmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0, "chat module " CHAT_VERSION);

    ngx_chat_metrics_init_process();
    ngx_chat_caps_init_process();

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);
    if (cmcf == NULL || !cmcf->used || cmcf->endpoints.nelts == 0) {
        return NGX_OK;
    }

    /* before the registries, whose refresh timers use the presence TTL */
    if (ngx_chat_presence_init_process(cycle, cmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_chat_revoked_init_process(cycle, cmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* one gateway per Redis endpoint, each with its registry, lanes,
     * revocation feed and poll watcher */
    return ngx_chat_bus_init_process(cycle, cmcf);
}


static void
ngx_chat_exit_process(ngx_cycle_t *cycle)
{
    ngx_chat_bus_exit_process();
    ngx_chat_revoked_exit_process();
}
