/*
 * ngx_chat_http.c: the one JSON response writer and the one error builder
 * of the module, and the reader that hands a request body over as one
 * contiguous string.  Every answer the module gives goes through here, so
 * every answer has the same headers and every error the same shape:
 *   {"error": {"code": "<machine code>", "message": "<human text>"}}
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <cjson/cJSON.h>

#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


static void ngx_chat_http_answer(ngx_chat_pending_t *p, ngx_uint_t status,
    u_char *body, size_t len);
static void ngx_chat_http_unpark(void *data);


static ngx_int_t ngx_chat_send_response(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, u_char *body, size_t len,
    ngx_str_t *cache_control, ngx_str_t *etag);


static ngx_str_t  ngx_chat_json_type = ngx_string("application/json");

/* API answers are per user and per moment: never cache them */
static ngx_str_t  ngx_chat_no_store = ngx_string("no-store");


/* Sends status and body (copied, so the caller may free it). */
ngx_int_t
ngx_chat_send_json(ngx_http_request_t *r, ngx_uint_t status, u_char *body,
    size_t len)
{
    return ngx_chat_send_response(r, status, &ngx_chat_json_type, body, len,
                                  &ngx_chat_no_store, NULL);
}


/* A body of another type (the Prometheus text of /metrics), not cached. */
ngx_int_t
ngx_chat_send_body(ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *type,
    u_char *body, size_t len)
{
    return ngx_chat_send_response(r, status, type, body, len,
                                  &ngx_chat_no_store, NULL);
}


/*
 * ngx_chat_send_json with the caller's Cache-Control value and, when etag
 * is not NULL, an ETag (the catalog's shared reads, ngx_chat_cache.c).
 */
ngx_int_t
ngx_chat_send_json_cached(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len, ngx_str_t *cache_control, ngx_str_t *etag)
{
    return ngx_chat_send_response(r, status, &ngx_chat_json_type, body, len,
                                  cache_control, etag);
}


/* The one response writer: status, type, caching headers, the body. */
static ngx_int_t
ngx_chat_send_response(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len, ngx_str_t *cache_control,
    ngx_str_t *etag)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    /* the backend's URLs under this location's API prefix */
    if (type == &ngx_chat_json_type) {
        body = ngx_chat_api_urls(r, r->pool, body, &len);
        if (body == NULL) {
            return NGX_ERROR;
        }
    }

    r->headers_out.status = status;
    if (status == 426) {
        /* nginx has no reason phrase of its own for this one */
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");
    }
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_length_n = len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }
    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    h->value = *cache_control;

    if (etag != NULL) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "ETag");
        h->value = *etag;
    }

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, len ? len : 1);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->pos, body, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_chat_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    char       *text;
    cJSON      *root, *error;
    ngx_int_t   rc;

    root = cJSON_CreateObject();
    error = cJSON_AddObjectToObject(root, "error");

    if (error == NULL
        || cJSON_AddStringToObject(error, "code", code) == NULL
        || cJSON_AddStringToObject(error, "message", message) == NULL
        || (text = cJSON_PrintUnformatted(root)) == NULL)
    {
        cJSON_Delete(root);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cJSON_Delete(root);

    rc = ngx_chat_send_json(r, status, (u_char *) text, ngx_strlen(text));
    cJSON_free(text);

    return rc;
}


/*
 * The content handler of `chat_error_page`: the errors nginx answers by
 * itself, before or instead of a chat_api handler (a malformed request
 * line or %00 in the path, headers or URI over its buffers, a body over
 * client_max_body_size, a method a static location refuses, a failure),
 * reach it through error_page and get the API's error shape instead of
 * an HTML page.  r->err_status is the error nginx was about to send.
 */

typedef struct {
    ngx_uint_t    error;
    ngx_uint_t    status;           /* what goes on the wire */
    const char   *code;
    const char   *message;
} ngx_chat_error_page_t;


static const ngx_chat_error_page_t  ngx_chat_error_pages[] = {
    { NGX_HTTP_BAD_REQUEST, NGX_HTTP_BAD_REQUEST, "bad_request",
      "the request is malformed" },
    /* nginx's own code for headers over large_client_header_buffers; it
     * answers 400, and so do we */
    { NGX_HTTP_REQUEST_HEADER_TOO_LARGE, NGX_HTTP_BAD_REQUEST,
      "header_too_large", "the request headers are too large" },
    { NGX_HTTP_FORBIDDEN, NGX_HTTP_FORBIDDEN, "forbidden",
      "access is denied" },
    { NGX_HTTP_NOT_FOUND, NGX_HTTP_NOT_FOUND, "not_found",
      "no such resource" },
    { NGX_HTTP_NOT_ALLOWED, NGX_HTTP_NOT_ALLOWED, "method_not_allowed",
      "this method is not allowed here" },
    { NGX_HTTP_LENGTH_REQUIRED, NGX_HTTP_LENGTH_REQUIRED, "length_required",
      "the request needs a Content-Length" },
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
      "too_large", "request body is too large" },
    { NGX_HTTP_REQUEST_URI_TOO_LARGE, NGX_HTTP_REQUEST_URI_TOO_LARGE,
      "uri_too_long", "the request target is too long" },
    { NGX_HTTP_NOT_IMPLEMENTED, NGX_HTTP_NOT_IMPLEMENTED, "not_implemented",
      "the request uses something this server does not implement" },
    { NGX_HTTP_BAD_GATEWAY, NGX_HTTP_BAD_GATEWAY, "bad_gateway",
      "an upstream server failed" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_SERVICE_UNAVAILABLE,
      "unavailable", "the service is unavailable" },
    { NGX_HTTP_GATEWAY_TIME_OUT, NGX_HTTP_GATEWAY_TIME_OUT, "timeout",
      "an upstream server took too long" },
    { NGX_HTTP_VERSION_NOT_SUPPORTED, NGX_HTTP_VERSION_NOT_SUPPORTED,
      "http_version_not_supported", "use HTTP/1.0 or HTTP/1.1" },
    { 0, NGX_HTTP_INTERNAL_SERVER_ERROR, "internal", "internal error" }
};


ngx_int_t
ngx_chat_error_page_handler(ngx_http_request_t *r)
{
    ngx_uint_t                    error;
    const ngx_chat_error_page_t  *e;

    error = r->err_status ? r->err_status : r->headers_out.status;

    for (e = ngx_chat_error_pages; e->error; e++) {
        if (e->error == error) {
            break;
        }
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    /* err_status overrides the status of whatever is sent next */
    r->err_status = e->status;

    return ngx_chat_send_error(r, e->status, e->code, e->message);
}


/* For answers given after the handler returned NGX_DONE. */
void
ngx_chat_finalize_json(ngx_http_request_t *r, ngx_uint_t status, u_char *body,
    size_t len)
{
    ngx_http_finalize_request(r, ngx_chat_send_json(r, status, body, len));
}


void
ngx_chat_finalize_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_http_finalize_request(r, ngx_chat_send_error(r, status, code,
                                                     message));
}


/*
 * The request body as one NUL-terminated string in the request pool,
 * whether nginx kept it in memory buffers or spilled it to a temp file.
 * Returns NGX_OK, NGX_DECLINED when it exceeds chat_max_body_size, or
 * NGX_ERROR.
 */
ngx_int_t
ngx_chat_request_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                *p;
    off_t                  len;
    ssize_t                n;
    ngx_buf_t             *b;
    ngx_chain_t           *cl;
    ngx_chat_loc_conf_t   *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        body->data = (u_char *) "";
        return NGX_OK;
    }

    len = 0;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > (off_t) clcf->max_body_size) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, (size_t) len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }
            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    *p = '\0';
    body->len = p - body->data;

    return NGX_OK;
}


/*
 * A parked entry for r, living in r's pool: whatever ends the request also
 * takes the entry out of the bus's table, so no answer can reach a request
 * that is gone.  The answer finalizes r with the worker's status and body.
 */
ngx_chat_pending_t *
ngx_chat_http_pending(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;
    ngx_chat_pending_t  *p;

    p = ngx_pcalloc(r->pool, sizeof(ngx_chat_pending_t));
    if (p == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_chat_http_unpark;
    cln->data = p;

    p->answer = ngx_chat_http_answer;
    p->data = r;
    ngx_chat_request_id(r, &p->rid);

    /* notice a client that gives up while we wait */
    r->read_event_handler = ngx_http_test_reading;

    return p;
}


static void
ngx_chat_http_answer(ngx_chat_pending_t *p, ngx_uint_t status, u_char *body,
    size_t len)
{
    ngx_chat_http_retry_after(p->data, p->retry_after);
    ngx_chat_finalize_json(p->data, status, body, len);
}


/* Adds "Retry-After: <seconds>" to the answer when seconds > 0 (a lane
 * refused the command: the client should come back, not hammer). */
void
ngx_chat_http_retry_after(ngx_http_request_t *r, time_t seconds)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    if (seconds <= 0) {
        return;
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    h = ngx_list_push(&r->headers_out.headers);
    if (p == NULL || h == NULL) {
        return;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%T", seconds) - p;
}


static void
ngx_chat_http_unpark(void *data)
{
    ngx_chat_bus_cancel(data);
}


/* The first request header called name (case-insensitive), or NULL. */
ngx_table_elt_t *
ngx_chat_http_header(ngx_http_request_t *r, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }
            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}
