/*
 * ngx_chat_variables.c: variables the module offers to nginx.conf.
 *
 * $chat_user_id is the user id of the request's verified bearer token, and
 * empty without a valid one.  It exists so that operators can use nginx's
 * own limit_req (a well-kept, shared-memory, per-key leaky bucket) per
 * user rather than per address, e.g. for checkout bursts:
 *
 *     map $request_method $chat_checkout_key { POST $chat_user_id; default ""; }
 *     limit_req_zone $chat_checkout_key zone=checkout:10m rate=2r/s;
 *
 * limit_req ignores empty keys, so requests without a valid token are not
 * counted here (the API answers them 401 anyway).  The token is verified
 * with the same code as the API's, once per request (nginx caches the
 * value).
 *
 * $chat_request_safe is $request (the request line) with the values of
 * the access_token and ticket query parameters hidden (chat_redact.c):
 * what an access log_format should use instead of $request, so that no
 * credential a browser had to put in a URL is ever written to a log.
 *
 * ngx_chat_request_id() reads nginx's own $request_id for a request: it
 * travels in the command envelope (CHAT_F_RID) and the backend prints it
 * in its log lines, so a request can be followed from the access log
 * (log_format chat_safe has it) to the worker that ran it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_redact.h"
#include "ngx_chat_module.h"


static ngx_int_t ngx_chat_variable_user_id(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_chat_variable_request_safe(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_chat_variables[] = {

    { ngx_string("chat_user_id"), NULL, ngx_chat_variable_user_id, 0, 0, 0 },

    { ngx_string("chat_request_safe"), NULL, ngx_chat_variable_request_safe,
      0, 0, 0 },

      ngx_http_null_variable
};


static ngx_int_t  ngx_chat_request_id_index = NGX_ERROR;


ngx_int_t
ngx_chat_add_variables(ngx_conf_t *cf)
{
    ngx_str_t             rid = ngx_string("request_id");
    ngx_http_variable_t  *var, *v;

    for (v = ngx_chat_variables; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    ngx_chat_request_id_index = ngx_http_get_variable_index(cf, &rid);
    if (ngx_chat_request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_chat_request_id(ngx_http_request_t *r, ngx_str_t *rid)
{
    ngx_http_variable_value_t  *v;

    ngx_str_null(rid);

    if (r == NULL || ngx_chat_request_id_index == NGX_ERROR) {
        return;
    }

    v = ngx_http_get_indexed_variable(r, ngx_chat_request_id_index);
    if (v == NULL || v->not_found || v->len == 0) {
        return;
    }

    rid->data = v->data;
    rid->len = v->len;
}


static ngx_int_t
ngx_chat_variable_user_id(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                *p;
    ngx_str_t              token;
    const char            *why;
    ngx_chat_caller_t      caller;
    ngx_chat_loc_conf_t   *clcf;

    /* the request's application's secret */
    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    if (clcf->token_secret.len == 0
        || ngx_chat_bearer_token(r, &token) != NGX_OK)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (ngx_chat_authenticate_token(r, &token, &caller, &why)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
    case NGX_BUSY:
        v->not_found = 1;
        return NGX_OK;

    default:
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%L", caller.uid) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_variable_request_safe(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    int        n;
    u_char    *p;
    size_t     size;
    ngx_str_t  line;

    line = r->request_line;

    if (line.data == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    if (!chat_redact_needed((const char *) line.data, line.len)) {
        v->len = line.len;
        v->data = line.data;
        return NGX_OK;
    }

    size = chat_redact_bound(line.len);

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    n = chat_redact_query((const char *) line.data, line.len, (char *) p,
                          size);
    if (n < 0) {
        return NGX_ERROR;
    }

    v->len = n;
    v->data = p;

    return NGX_OK;
}
