/*
 * ngx_chat_endpoint.c: the Redis endpoints of this nginx's applications.
 *
 * A location with chat_api, chat_websocket, chat_media_upload or
 * chat_metrics ends up, after nginx's merge, with a Redis (chat_redis,
 * chat_redis_user, ...) and a token secret.  Here, while the configuration
 * is loaded, each distinct host:port and user becomes one endpoint
 * (ngx_chat_endpoint_t, in the main conf's list), shared by every location
 * that names it; at process start each worker opens one gateway per
 * endpoint (ngx_chat_bus.c).  Nothing here runs per request.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_module.h"


/*
 * The endpoint of a location that talks to Redis: the one with its
 * host:port and user if some location made it already, else a new one.
 * Locations sharing an endpoint share one gateway per worker, so they
 * must agree on what a gateway holds once: the password, the timeouts
 * and the token secret (the backend reading that Redis has one).
 */
char *
ngx_chat_endpoint(ngx_conf_t *cf, ngx_chat_loc_conf_t *conf)
{
    u_char                *p;
    ngx_str_t              secret;
    ngx_uint_t             i;
    const char            *what;
    ngx_chat_endpoint_t   *ep, **eps, **slot;
    ngx_chat_main_conf_t  *cmcf;

    if (conf->checks_tokens
        && conf->token_secret.len < CHAT_TOKEN_MIN_SECRET_LEN)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_api, chat_websocket and chat_media_upload "
                           "need \"chat_token_secret\" or "
                           "\"chat_token_secret_file\" of at least %d bytes "
                           "(in this location, its server or http)",
                           CHAT_TOKEN_MIN_SECRET_LEN);
        return NGX_CONF_ERROR;
    }

    if (conf->redis_user.len && conf->redis_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_redis_user\" needs "
                           "\"chat_redis_password_file\"");
        return NGX_CONF_ERROR;
    }

    /* only what checks tokens says which secret the backend has (a
     * chat_metrics location may inherit another one) */
    secret = conf->token_secret;
    if (!conf->checks_tokens) {
        ngx_str_null(&secret);
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_chat_module);
    eps = cmcf->endpoints.elts;

    for (i = 0; i < cmcf->endpoints.nelts; i++) {
        ep = eps[i];

        if (ep->port != conf->redis_port
            || ep->host.len != conf->redis_host.len
            || ngx_strncmp(ep->host.data, conf->redis_host.data,
                           ep->host.len) != 0
            || ep->user.len != conf->redis_user.len
            || ngx_strncmp(ep->user.data, conf->redis_user.data,
                           ep->user.len) != 0)
        {
            continue;
        }

        what = NULL;

        if (ep->password.len != conf->redis_password.len
            || ngx_strncmp(ep->password.data, conf->redis_password.data,
                           ep->password.len) != 0)
        {
            what = "chat_redis_password_file";

        } else if (ep->connect_timeout != conf->redis_connect_timeout) {
            what = "chat_redis_connect_timeout";

        } else if (ep->timeout != conf->redis_timeout) {
            what = "chat_redis_timeout";

        } else if (ep->token_secret.len && secret.len
                   && (ep->token_secret.len != secret.len
                       || ngx_strncmp(ep->token_secret.data, secret.data,
                                      secret.len) != 0))
        {
            what = "chat_token_secret";
        }

        if (what != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "chat_redis %V: the locations using it must "
                               "agree on \"%s\" (one Redis, one gateway per "
                               "worker, one backend with one secret)",
                               &ep->name, what);
            return NGX_CONF_ERROR;
        }

        if (ep->token_secret.len == 0 && secret.len) {
            ep->token_secret = secret;
            goto seal;
        }

        conf->endpoint = ep;
        return NGX_CONF_OK;
    }

    if (cmcf->endpoints.nelts == NGX_CHAT_MAX_ENDPOINTS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_redis: at most %d distinct Redis endpoints",
                           NGX_CHAT_MAX_ENDPOINTS);
        return NGX_CONF_ERROR;
    }

    ep = ngx_pcalloc(cf->pool, sizeof(ngx_chat_endpoint_t));
    slot = ngx_array_push(&cmcf->endpoints);
    p = ngx_pnalloc(cf->pool, conf->redis_user.len + conf->redis_host.len
                              + NGX_INT_T_LEN + 2);
    if (ep == NULL || slot == NULL || p == NULL) {
        return NGX_CONF_ERROR;
    }

    *slot = ep;
    ep->index = cmcf->endpoints.nelts - 1;
    ep->host = conf->redis_host;
    ep->port = conf->redis_port;
    ep->user = conf->redis_user;
    ep->password = conf->redis_password;
    ep->connect_timeout = conf->redis_connect_timeout;
    ep->timeout = conf->redis_timeout;
    ep->token_secret = secret;

    ep->name.data = p;
    if (ep->user.len) {
        p = ngx_sprintf(p, "%V@", &ep->user);
    }
    ep->name.len = ngx_sprintf(p, "%V:%d", &ep->host, (int) ep->port)
                   - ep->name.data;

seal:

    conf->endpoint = ep;

    /* the key of the secret fields on the bus (chat_seal.c): the workers
     * reading this Redis derive the same one from the same secret */
    if (ep->token_secret.len
        && chat_seal_derive(ep->token_secret.data, ep->token_secret.len,
                            CHAT_SEAL_LABEL, ep->seal_key,
                            sizeof(ep->seal_key))
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat: deriving the bus seal key failed");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
