/*
 * ngx_chat_api.c: the content handler of `chat_api` locations.
 *
 * A request walks four gates before anything reaches Redis:
 *   1. route: method and path must be in the route table (404/405);
 *   2. auth: routes that need a user verify the bearer token here, and the
 *      user id and role that travel inward come from the token only;
 *   3. size: bodies over chat_max_body_size get 413 before being read;
 *   4. shape: the body must be one JSON object with the route's required
 *      fields of the right types (400).
 * Then the route either answers locally (health) or becomes a command on
 * the bus (ngx_chat_bus.c), and the worker's reply is the answer.
 *
 * Business rules (is this email taken? is this password right?) are not
 * here: they live in the workers, next to the data.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <cjson/cJSON.h>

#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


#define NGX_CHAT_IDEMPOTENCY_KEY_MAX  128


typedef enum {
    NGX_CHAT_AUTH_NONE = 0,
    NGX_CHAT_AUTH_USER,
    NGX_CHAT_AUTH_ADMIN
} ngx_chat_auth_e;


typedef struct {
    const char   *name;
    int           type;             /* cJSON_String, cJSON_Number, ... */
} ngx_chat_field_t;


typedef struct {
    ngx_uint_t               method;
    ngx_str_t                path;
    ngx_chat_auth_e          auth;
    const char              *op;     /* bus operation, or NULL: local */
    ngx_int_t              (*local)(ngx_http_request_t *r);
    const ngx_chat_field_t  *fields; /* required body fields, NULL-ended */
} ngx_chat_route_t;


/* why a request is refused: filled by the gates, sent by their caller */
typedef struct {
    ngx_uint_t               status;
    const char              *code;
    const char              *message;
} ngx_chat_problem_t;


typedef struct {
    const ngx_chat_route_t  *route;
    ngx_chat_caller_t        caller;
} ngx_chat_api_ctx_t;


static ngx_int_t ngx_chat_api_authenticate(ngx_http_request_t *r,
    ngx_chat_auth_e auth, ngx_chat_caller_t *caller,
    ngx_chat_problem_t *problem);
static void ngx_chat_api_body_read(ngx_http_request_t *r);
static ngx_int_t ngx_chat_api_dispatch(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_chat_api_check_body(ngx_http_request_t *r,
    const ngx_chat_route_t *route, ngx_str_t *body,
    ngx_chat_problem_t *problem);
static ngx_int_t ngx_chat_api_idempotency_key(ngx_http_request_t *r,
    ngx_str_t *key, ngx_chat_problem_t *problem);
static ngx_int_t ngx_chat_api_refuse(ngx_http_request_t *r,
    ngx_chat_problem_t *problem);


static const ngx_chat_field_t  ngx_chat_register_fields[] = {
    { "email", cJSON_String },
    { "password", cJSON_String },
    { "display_name", cJSON_String },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_login_fields[] = {
    { "email", cJSON_String },
    { "password", cJSON_String },
    { NULL, 0 }
};


static const ngx_chat_route_t  ngx_chat_routes[] = {

    { NGX_HTTP_GET, ngx_string("/api/v1/health"), NGX_CHAT_AUTH_NONE,
      NULL, ngx_chat_health_handler, NULL },

    { NGX_HTTP_POST, ngx_string("/api/v1/auth/register"), NGX_CHAT_AUTH_NONE,
      "auth.register", NULL, ngx_chat_register_fields },

    { NGX_HTTP_POST, ngx_string("/api/v1/auth/login"), NGX_CHAT_AUTH_NONE,
      "auth.login", NULL, ngx_chat_login_fields },

    { NGX_HTTP_GET, ngx_string("/api/v1/users/me"), NGX_CHAT_AUTH_USER,
      "user.me", NULL, NULL },

    { 0, ngx_null_string, 0, NULL, NULL, NULL }
};


ngx_int_t
ngx_chat_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_str_t                empty = ngx_string("{}");
    ngx_uint_t               path_found;
    ngx_chat_api_ctx_t      *ctx;
    ngx_chat_problem_t       problem;
    ngx_chat_main_conf_t    *cmcf;
    const ngx_chat_route_t  *route;

    path_found = 0;

    for (route = ngx_chat_routes; route->path.len; route++) {
        if (r->uri.len != route->path.len
            || ngx_strncmp(r->uri.data, route->path.data, r->uri.len) != 0)
        {
            continue;
        }

        path_found = 1;

        if (r->method == route->method
            || (r->method == NGX_HTTP_HEAD && route->method == NGX_HTTP_GET))
        {
            break;
        }
    }

    if (route->path.len == 0) {
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

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_chat_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
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

    if (route->method != NGX_HTTP_POST && route->method != NGX_HTTP_PUT) {

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (route->local) {
            return route->local(r);
        }

        rc = ngx_chat_api_dispatch(r, ctx, &empty);
        if (rc == NGX_DONE) {
            /* the bus answers later: keep the request alive until then */
            r->main->count++;
        }
        return rc;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    if (r->headers_in.content_length_n > (off_t) cmcf->max_body_size) {
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


static void
ngx_chat_api_body_read(ngx_http_request_t *r)
{
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

    if (ngx_chat_api_check_body(r, ctx->route, &body, &problem) != NGX_OK) {
        ngx_http_finalize_request(r, ngx_chat_api_refuse(r, &problem));
        return;
    }

    rc = ngx_chat_api_dispatch(r, ctx, &body);
    if (rc == NGX_DONE) {
        /* read_client_request_body's reference keeps the request alive */
        return;
    }

    ngx_http_finalize_request(r, rc);
}


/* Returns NGX_DONE when parked on the bus, else what to finalize with. */
static ngx_int_t
ngx_chat_api_dispatch(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx,
    ngx_str_t *body)
{
    ngx_int_t           rc;
    ngx_str_t           key;
    ngx_chat_problem_t  problem;

    if (ngx_chat_api_idempotency_key(r, &key, &problem) != NGX_OK) {
        return ngx_chat_api_refuse(r, &problem);
    }

    rc = ngx_chat_bus_send(r, ctx->route->op, &ctx->caller, &key, body);

    if (rc == NGX_HTTP_SERVICE_UNAVAILABLE) {
        return ngx_chat_send_error(r, rc, "unavailable",
                                   "the command bus (redis) is unavailable");
    }

    return rc;
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


#define ngx_chat_problem(p, s, c, m)                                        \
    ((p)->status = (s), (p)->code = (c), (p)->message = (m), NGX_ERROR)


/*
 * Checks "Authorization: Bearer <token>" when the route needs a user.
 * Returns NGX_OK with caller filled, or NGX_ERROR with problem filled.
 */
static ngx_int_t
ngx_chat_api_authenticate(ngx_http_request_t *r, ngx_chat_auth_e auth,
    ngx_chat_caller_t *caller, ngx_chat_problem_t *problem)
{
    ngx_str_t              token;
    ngx_table_elt_t       *h;
    chat_token_status_t    status;
    chat_token_claims_t    claims;
    ngx_chat_main_conf_t  *cmcf;

    caller->uid = 0;
    ngx_str_null(&caller->role);

    if (auth == NGX_CHAT_AUTH_NONE) {
        return NGX_OK;
    }

    h = r->headers_in.authorization;

    if (h == NULL || h->value.len <= 7
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) != 0)
    {
        return ngx_chat_problem(problem, NGX_HTTP_UNAUTHORIZED,
                                "unauthorized", "a bearer token is required");
    }

    token.data = h->value.data + 7;
    token.len = h->value.len - 7;

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    status = chat_token_verify(cmcf->token_secret.data, cmcf->token_secret.len,
                               (const char *) token.data, token.len,
                               (int64_t) ngx_time(), &claims);

    if (status != CHAT_TOKEN_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "chat: token refused: %s",
                      chat_token_status_text(status));

        return ngx_chat_problem(problem, NGX_HTTP_UNAUTHORIZED,
                                "unauthorized",
                                chat_token_status_text(status));
    }

    if (auth == NGX_CHAT_AUTH_ADMIN && ngx_strcmp(claims.role, "admin") != 0) {
        return ngx_chat_problem(problem, NGX_HTTP_FORBIDDEN, "forbidden",
                                "this needs the admin role");
    }

    caller->uid = claims.uid;
    caller->role.len = ngx_strlen(claims.role);
    caller->role.data = ngx_pnalloc(r->pool, caller->role.len);
    if (caller->role.data == NULL) {
        return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
    }
    ngx_memcpy(caller->role.data, claims.role, caller->role.len);

    return NGX_OK;
}


/* One JSON object carrying the route's required fields with their types. */
static ngx_int_t
ngx_chat_api_check_body(ngx_http_request_t *r, const ngx_chat_route_t *route,
    ngx_str_t *body, ngx_chat_problem_t *problem)
{
    u_char                  *message;
    cJSON                   *json, *item;
    ngx_int_t                rc;
    const ngx_chat_field_t  *f;

    /* length + 1: the NUL after the body proves there is no trailing junk */
    json = cJSON_ParseWithLengthOpts((const char *) body->data, body->len + 1,
                                     NULL, 1);

    if (json == NULL || !cJSON_IsObject(json)) {
        cJSON_Delete(json);
        return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST, "invalid_json",
                                "the body must be one JSON object");
    }

    rc = NGX_OK;

    for (f = route->fields; f && f->name; f++) {
        item = cJSON_GetObjectItemCaseSensitive(json, f->name);

        if (item != NULL && (item->type & 0xff) == f->type) {
            continue;
        }

        message = ngx_pnalloc(r->pool, ngx_strlen(f->name) + 64);
        if (message == NULL) {
            rc = ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  NULL, NULL);
            break;
        }

        ngx_sprintf(message, "\"%s\" is %s%Z", f->name,
                    item ? "of the wrong type" : "required");

        rc = ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                              item ? "invalid_field" : "missing_field",
                              (const char *) message);
        break;
    }

    cJSON_Delete(json);
    return rc;
}


/* The optional Idempotency-Key header: 1..128 visible ASCII characters. */
static ngx_int_t
ngx_chat_api_idempotency_key(ngx_http_request_t *r, ngx_str_t *key,
    ngx_chat_problem_t *problem)
{
    ngx_uint_t        i, j;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    ngx_str_null(key);

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }
            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof("Idempotency-Key") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Idempotency-Key",
                               h[i].key.len) != 0)
        {
            continue;
        }

        if (h[i].value.len == 0
            || h[i].value.len > NGX_CHAT_IDEMPOTENCY_KEY_MAX)
        {
            goto invalid;
        }

        for (j = 0; j < h[i].value.len; j++) {
            if (h[i].value.data[j] <= 0x20 || h[i].value.data[j] >= 0x7f) {
                goto invalid;
            }
        }

        *key = h[i].value;
        return NGX_OK;
    }

    return NGX_OK;

invalid:

    return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST, "invalid_header",
                            "Idempotency-Key must be 1 to 128 visible "
                            "ASCII characters");
}
