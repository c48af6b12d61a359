/*
 * ngx_chat_api.c: the content handler of `chat_api` locations.
 *
 * A request walks four gates before anything reaches Redis:
 *   1. route: method and path must be in the route table (404/405); a "*"
 *      segment of a route matches a positive integer id;
 *   2. auth: routes that need a user verify the bearer token here, and the
 *      user id and role that travel inward come from the token only;
 *   3. size: bodies over chat_max_body_size get 413 before being read;
 *   4. shape: the body must be one JSON object with the route's required
 *      fields of the right types; query parameters must parse (400).
 * Before the first gate the path and the query string must be text: UTF-8
 * without NUL or control characters, escapes well-formed (chat_query.c);
 * and the body is checked strictly (chat_json.c) before cJSON reads it,
 * so nothing cJSON would read differently from what the client sent (a
 * string cut at \u0000, the first of two equal keys, 1e2 as an integer)
 * reaches the bus.
 * Then the route either answers locally (health) or becomes a command on
 * the bus.  The command body is the client's JSON object with the path ids
 * and query parameters added as fields (path ids win over body fields), so
 * a worker sees one flat object per operation whatever the transport.
 *
 * Business rules (is this email taken? is the caller a member?) are not
 * here: they live in the workers, next to the data.
 *
 * This file runs the gates in order and hands the command to the bus; the
 * route table and its field tables are ngx_chat_api_routes.c, the checks
 * of the target, headers and body ngx_chat_api_input.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <cjson/cJSON.h>

#include "ngx_chat_api.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


static ngx_int_t ngx_chat_api_authenticate(ngx_http_request_t *r,
    ngx_chat_auth_e auth, ngx_chat_caller_t *caller,
    ngx_chat_problem_t *problem);
static void ngx_chat_api_body_read(ngx_http_request_t *r);
static ngx_int_t ngx_chat_api_dispatch(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx, cJSON *json);
static ngx_int_t ngx_chat_api_refuse(ngx_http_request_t *r,
    ngx_chat_problem_t *problem);


ngx_int_t
ngx_chat_api_handler(ngx_http_request_t *r)
{
    cJSON                   *json;
    ngx_int_t                rc;
    ngx_uint_t               path_found;
    ngx_chat_api_ctx_t      *ctx;
    ngx_chat_problem_t       problem;
    ngx_chat_loc_conf_t     *clcf;
    const ngx_chat_route_t  *route;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_chat_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_chat_api_check_target(r, &problem) != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_chat_api_refuse(r, &problem);
    }

    route = ngx_chat_api_route(r, ctx->ids, &path_found);

    if (route == NULL) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (path_found) {
            return ngx_chat_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                       "method_not_allowed",
                                       "this method is not allowed here");
        }

        return ngx_chat_send_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                   "no such endpoint");
    }

    ctx->route = route;
    ngx_http_set_ctx(r, ctx, ngx_chat_module);

    if (ngx_chat_api_authenticate(r, route->auth, &ctx->caller, &problem)
        != NGX_OK)
    {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_chat_api_refuse(r, &problem);
    }

    if (route->method != NGX_HTTP_POST && route->method != NGX_HTTP_PUT
        && route->method != NGX_HTTP_PATCH)
    {

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (route->local) {
            return route->local(r, &ctx->caller);
        }

        json = cJSON_CreateObject();
        if (json == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_chat_api_dispatch(r, ctx, json);
        if (rc == NGX_DONE) {
            /* the bus answers later: keep the request alive until then */
            r->main->count++;
        }
        return rc;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    if (r->headers_in.content_length_n > (off_t) clcf->max_body_size) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_chat_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "too_large", "request body is too large");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_chat_api_body_read);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * The backend writes URLs into answers and events (an attachment's url and
 * thumb_url, a book's cover_url) under API.md's prefix: it serves every
 * location of its Redis and does not know theirs.  A location with
 * another chat_api_prefix gets them rewritten on their way out.  Such a
 * value is found as the bytes  ":"/api/v1/  (a key's closing quote, the
 * colon, the value's opening quote and the prefix), which cannot occur
 * inside a JSON string, where every quote is escaped: so no text a user
 * wrote is ever changed.
 */
u_char *
ngx_chat_api_urls(ngx_http_request_t *r, ngx_pool_t *pool, u_char *body,
    size_t *len)
{
    u_char               *p, *end, *hit, *out, *o;
    size_t                n, from_len;
    ngx_chat_loc_conf_t  *clcf;

    static u_char  from[] = "\":\"" NGX_CHAT_API_PREFIX "/";

    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);
    from_len = sizeof(from) - 1;

    if (clcf == NULL || clcf->api_prefix.len == 0
        || (clcf->api_prefix.len == sizeof(NGX_CHAT_API_PREFIX) - 1
            && ngx_strncmp(clcf->api_prefix.data, NGX_CHAT_API_PREFIX,
                           clcf->api_prefix.len) == 0))
    {
        return body;
    }

    end = body + *len;
    n = 0;

    for (p = body; (hit = ngx_strnstr(p, (char *) from, end - p)) != NULL;
         p = hit + from_len)
    {
        n++;
    }

    if (n == 0) {
        return body;
    }

    n = *len + n * clcf->api_prefix.len + 1;
    out = pool ? ngx_pnalloc(pool, n) : ngx_alloc(n, r->connection->log);
    if (out == NULL) {
        return NULL;
    }

    /* each  ":"/api/v1/  becomes  ":"<prefix>/  */
    o = out;
    for (p = body; (hit = ngx_strnstr(p, (char *) from, end - p)) != NULL;
         p = hit + from_len)
    {
        o = ngx_cpymem(o, p, hit - p);
        o = ngx_cpymem(o, "\":\"", 3);
        o = ngx_cpymem(o, clcf->api_prefix.data, clcf->api_prefix.len);
        *o++ = '/';
    }
    o = ngx_cpymem(o, p, end - p);

    *len = o - out;
    return out;
}


ngx_int_t
ngx_chat_api_path(ngx_http_request_t *r, ngx_str_t *rest)
{
    ngx_chat_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    if (r->uri.len <= clcf->api_prefix.len
        || ngx_strncmp(r->uri.data, clcf->api_prefix.data,
                       clcf->api_prefix.len) != 0
        || r->uri.data[clcf->api_prefix.len] != '/')
    {
        return NGX_DECLINED;
    }

    rest->data = r->uri.data + clcf->api_prefix.len;
    rest->len = r->uri.len - clcf->api_prefix.len;

    return NGX_OK;
}


static void
ngx_chat_api_body_read(ngx_http_request_t *r)
{
    cJSON               *json;
    ngx_int_t            rc;
    ngx_str_t            body;
    ngx_chat_api_ctx_t  *ctx;
    ngx_chat_problem_t   problem;

    ctx = ngx_http_get_module_ctx(r, ngx_chat_module);

    rc = ngx_chat_request_body(r, &body);

    if (rc == NGX_DECLINED) {
        ngx_chat_finalize_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                "too_large", "request body is too large");
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    json = ngx_chat_api_parse_body(r, ctx->route, &body, &problem);
    if (json == NULL) {
        ngx_http_finalize_request(r, ngx_chat_api_refuse(r, &problem));
        return;
    }

    rc = ngx_chat_api_dispatch(r, ctx, json);
    if (rc == NGX_DONE) {
        /* read_client_request_body's reference keeps the request alive */
        return;
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * Adds the path ids and query parameters to json, sends it as the route's
 * command and frees json.  Returns NGX_DONE when parked on the bus, else
 * what to finalize with.
 */
static ngx_int_t
ngx_chat_api_dispatch(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx,
    cJSON *json)
{
    char                *text;
    ngx_int_t            rc;
    ngx_str_t            key, body;
    ngx_chat_pending_t  *p;
    ngx_chat_problem_t   problem;

    /* a POST the edge answers itself, once its body proved well-formed */
    if (ctx->route->local) {
        cJSON_Delete(json);
        return ctx->route->local(r, &ctx->caller);
    }

    if (ngx_chat_api_no_card(ctx->route, json, &problem) != NGX_OK
        || ngx_chat_api_add_params(r, ctx, json, &problem) != NGX_OK
        || ngx_chat_api_idempotency_key(r, &key, &problem) != NGX_OK
        || ngx_chat_api_key_required(ctx->route, &key, &problem) != NGX_OK
        || ngx_chat_api_seal(r, ctx->route->op, json, &problem) != NGX_OK)
    {
        cJSON_Delete(json);
        return ngx_chat_api_refuse(r, &problem);
    }

    text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = (u_char *) text;
    body.len = ngx_strlen(text);

    p = ngx_chat_http_pending(r);
    if (p == NULL) {
        cJSON_free(text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* shared catalog reads: from the edge's cache when fresh */
    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        rc = ngx_chat_cache_handle(r, p, ctx->route->op, &ctx->caller, &body,
                                   ctx->ids[0]);
        if (rc != NGX_DECLINED) {
            cJSON_free(text);
            return rc == NGX_ERROR ? NGX_HTTP_INTERNAL_SERVER_ERROR : rc;
        }
    }

    rc = ngx_chat_bus_send(ngx_chat_gateway(r), p, r->connection->log,
                           ctx->route->op, &ctx->caller, &key, &body);
    cJSON_free(text);

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


static ngx_int_t
ngx_chat_api_refuse(ngx_http_request_t *r, ngx_chat_problem_t *problem)
{
    if (problem->status == NGX_HTTP_INTERNAL_SERVER_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_chat_send_error(r, problem->status, problem->code,
                               problem->message);
}


/* The token of "Authorization: Bearer <token>": NGX_OK, or NGX_DECLINED
 * when there is none. */
ngx_int_t
ngx_chat_bearer_token(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h == NULL || h->value.len <= 7
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) != 0)
    {
        return NGX_DECLINED;
    }

    token->data = h->value.data + 7;
    token->len = h->value.len - 7;

    return NGX_OK;
}


/*
 * Verifies a bearer token, and that its session was not signed out.
 * Returns NGX_OK with caller filled, NGX_DECLINED with why set to a
 * human reason, NGX_BUSY (why set) when the revoked sessions cannot be
 * consulted (answer 503: a token that may have been signed out is never
 * honoured), or NGX_ERROR.
 */
ngx_int_t
ngx_chat_authenticate_token(ngx_http_request_t *r, ngx_str_t *token,
    ngx_chat_caller_t *caller, const char **why)
{
    chat_token_status_t   status;
    chat_token_claims_t   claims;
    ngx_chat_loc_conf_t  *clcf;

    /* the secret of the request's application (its location's) */
    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    status = chat_token_verify(clcf->token_secret.data, clcf->token_secret.len,
                               (const char *) token->data, token->len,
                               (int64_t) ngx_time(), &claims);

    if (status != CHAT_TOKEN_OK) {
        *why = chat_token_status_text(status);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "chat: token refused: %s", *why);
        return NGX_DECLINED;
    }

    switch (ngx_chat_revoked_check(ngx_chat_gateway(r), (u_char *) claims.sid,
                                   ngx_strlen(claims.sid)))
    {
    case NGX_OK:
        break;

    case NGX_DECLINED:
        *why = "token revoked (signed out)";
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "chat: token refused: %s", *why);
        return NGX_DECLINED;

    default:
        *why = "sign-in state is unavailable (redis); try again shortly";
        return NGX_BUSY;
    }

    caller->uid = claims.uid;
    caller->exp = claims.exp;
    caller->sxp = claims.sxp;
    ngx_cpystrn(caller->sid, (u_char *) claims.sid, sizeof(caller->sid));
    caller->role.len = ngx_strlen(claims.role);
    caller->role.data = ngx_pnalloc(r->pool, caller->role.len);
    if (caller->role.data == NULL) {
        return NGX_ERROR;
    }
    ngx_memcpy(caller->role.data, claims.role, caller->role.len);

    return NGX_OK;
}


/*
 * Checks "Authorization: Bearer <token>" when the route needs a user.
 * Returns NGX_OK with caller filled, or NGX_ERROR with problem filled.
 */
static ngx_int_t
ngx_chat_api_authenticate(ngx_http_request_t *r, ngx_chat_auth_e auth,
    ngx_chat_caller_t *caller, ngx_chat_problem_t *problem)
{
    ngx_int_t    rc;
    ngx_str_t    token;
    const char  *why;

    caller->uid = 0;
    ngx_str_null(&caller->role);

    if (auth == NGX_CHAT_AUTH_NONE) {
        return NGX_OK;
    }

    if (ngx_chat_bearer_token(r, &token) != NGX_OK) {
        return ngx_chat_problem(problem, NGX_HTTP_UNAUTHORIZED,
                                "unauthorized", "a bearer token is required");
    }

    rc = ngx_chat_authenticate_token(r, &token, caller, &why);

    if (rc == NGX_DECLINED) {
        return ngx_chat_problem(problem, NGX_HTTP_UNAUTHORIZED,
                                "unauthorized", why);
    }

    if (rc == NGX_BUSY) {
        return ngx_chat_problem(problem, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "unavailable", why);
    }

    if (rc != NGX_OK) {
        return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
    }

    if (auth == NGX_CHAT_AUTH_ADMIN
        && !(caller->role.len == 5
             && ngx_strncmp(caller->role.data, "admin", 5) == 0))
    {
        return ngx_chat_problem(problem, NGX_HTTP_FORBIDDEN, "forbidden",
                                "this needs the admin role");
    }

    return NGX_OK;
}
