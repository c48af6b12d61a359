/*
 * ngx_chat_api.h: what the files of the chat_api handler share: the route
 * table's shape (ngx_chat_api_routes.c), the input checks
 * (ngx_chat_api_input.c) and the handler that runs them in order
 * (ngx_chat_api.c).
 */

#ifndef NGX_CHAT_API_H
#define NGX_CHAT_API_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <cjson/cJSON.h>

#include "ngx_chat_module.h"


#define NGX_CHAT_IDEMPOTENCY_KEY_MAX  128
#define NGX_CHAT_MAX_PATH_IDS         2


typedef enum {
    NGX_CHAT_AUTH_NONE = 0,
    NGX_CHAT_AUTH_USER,
    NGX_CHAT_AUTH_ADMIN
} ngx_chat_auth_e;


/* a required body field, or an optional query parameter */
typedef struct {
    const char   *name;
    int           type;             /* cJSON_String, cJSON_Number, ... */
} ngx_chat_field_t;


typedef struct {
    ngx_uint_t               method;
    const char              *path;   /* "*" segments match integer ids */
    ngx_chat_auth_e          auth;
    const char              *op;     /* bus operation, or NULL: local */
    ngx_int_t              (*local)(ngx_http_request_t *r,
                                    ngx_chat_caller_t *caller);
    const char              *ids[NGX_CHAT_MAX_PATH_IDS];  /* names of "*" */
    const ngx_chat_field_t  *fields; /* required body fields */
    const ngx_chat_field_t  *query;  /* accepted query parameters */
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
    int64_t                  ids[NGX_CHAT_MAX_PATH_IDS];
} ngx_chat_api_ctx_t;


/* fills the problem p and evaluates to NGX_ERROR */
#define ngx_chat_problem(p, s, c, m)                                        \
    ((p)->status = (s), (p)->code = (c), (p)->message = (m), NGX_ERROR)


/* ngx_chat_api_routes.c: the route for r's method and path, with the "*"
 * ids parsed into ids; NULL (path_found says whether another method
 * would have matched: 405, else 404) */
const ngx_chat_route_t *ngx_chat_api_route(ngx_http_request_t *r,
    int64_t *ids, ngx_uint_t *path_found);

/* ngx_chat_api_input.c: the gates a request's target, headers and body
 * pass before anything is sent; NGX_OK, or NGX_ERROR with the problem */
ngx_int_t ngx_chat_api_check_target(ngx_http_request_t *r,
    ngx_chat_problem_t *problem);
cJSON *ngx_chat_api_parse_body(ngx_http_request_t *r,
    const ngx_chat_route_t *route, ngx_str_t *body,
    ngx_chat_problem_t *problem);
ngx_int_t ngx_chat_api_add_params(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx, cJSON *json, ngx_chat_problem_t *problem);
ngx_int_t ngx_chat_api_idempotency_key(ngx_http_request_t *r,
    ngx_str_t *key, ngx_chat_problem_t *problem);
ngx_int_t ngx_chat_api_key_required(const ngx_chat_route_t *route,
    ngx_str_t *key, ngx_chat_problem_t *problem);
ngx_int_t ngx_chat_api_seal(ngx_http_request_t *r, const char *op,
    cJSON *json, ngx_chat_problem_t *problem);
ngx_int_t ngx_chat_api_no_card(const ngx_chat_route_t *route,
    cJSON *json, ngx_chat_problem_t *problem);

#endif /* NGX_CHAT_API_H */
