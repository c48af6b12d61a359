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
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <cjson/cJSON.h>

#include "chat_json.h"
#include "chat_protocol.h"
#include "chat_query.h"
#include "chat_utf8.h"
#include "ngx_chat_bus.h"
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


static ngx_int_t ngx_chat_api_check_target(ngx_http_request_t *r,
    ngx_chat_problem_t *problem);
static const ngx_chat_route_t *ngx_chat_api_route(ngx_http_request_t *r,
    int64_t *ids, ngx_uint_t *path_found);
static ngx_int_t ngx_chat_api_authenticate(ngx_http_request_t *r,
    ngx_chat_auth_e auth, ngx_chat_caller_t *caller,
    ngx_chat_problem_t *problem);
static void ngx_chat_api_body_read(ngx_http_request_t *r);
static ngx_int_t ngx_chat_api_dispatch(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx, cJSON *json);
static cJSON *ngx_chat_api_parse_body(ngx_http_request_t *r,
    const ngx_chat_route_t *route, ngx_str_t *body,
    ngx_chat_problem_t *problem);
static ngx_int_t ngx_chat_api_add_params(ngx_http_request_t *r,
    ngx_chat_api_ctx_t *ctx, cJSON *json, ngx_chat_problem_t *problem);
static ngx_int_t ngx_chat_api_idempotency_key(ngx_http_request_t *r,
    ngx_str_t *key, ngx_chat_problem_t *problem);
static ngx_int_t ngx_chat_api_key_required(const ngx_chat_route_t *route,
    ngx_str_t *key, ngx_chat_problem_t *problem);
static ngx_int_t ngx_chat_api_seal(ngx_http_request_t *r, const char *op,
    cJSON *json, ngx_chat_problem_t *problem);
static ngx_int_t ngx_chat_api_no_card(const ngx_chat_route_t *route,
    cJSON *json, ngx_chat_problem_t *problem);
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

static const ngx_chat_field_t  ngx_chat_conv_create_fields[] = {
    { "type", cJSON_String },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_member_add_fields[] = {
    { "user_id", cJSON_Number },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_send_fields[] = {
    { "client_msg_id", cJSON_String },
    { "text", cJSON_String },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_edit_fields[] = {
    { "text", cJSON_String },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_message_search_query[] = {
    { "q", cJSON_String },
    { "conversation_id", cJSON_Number },
    { "cursor", cJSON_String },
    { "limit", cJSON_Number },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_user_find_query[] = {
    { "email", cJSON_String },
    { "q", cJSON_String },
    { "ids", cJSON_String },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_read_fields[] = {
    { "seq", cJSON_Number },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_history_query[] = {
    { "before_seq", cJSON_Number },
    { "after_seq", cJSON_Number },
    { "limit", cJSON_Number },
    { NULL, 0 }
};

/* cart, checkout and orders */

static const ngx_chat_field_t  ngx_chat_cart_item_fields[] = {
    { "quantity", cJSON_Number },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_checkout_fields[] = {
    { "payment", cJSON_Object },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_orders_query[] = {
    { "cursor", cJSON_Number },
    { "limit", cJSON_Number },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_admin_orders_query[] = {
    { "status", cJSON_String },
    { "cursor", cJSON_Number },
    { "limit", cJSON_Number },
    { NULL, 0 }
};

/*
 * Card details are refused before anything reaches Redis (400
 * card_data_not_accepted): the browser tokenizes the card with the
 * payment processor and a checkout carries payment: {token}, so no card
 * number or cvc ever crosses our servers, the bus or its files.
 */
static const char  *ngx_chat_card_fields[] = { CHAT_CARD_FIELDS, NULL };

/* ops that refuse to run without the client's Idempotency-Key (400): a
 * retry without it could charge twice */
static const char  *ngx_chat_key_required_ops[] = {
    "order.checkout",
    NULL
};


/* the catalog (issue 4) */

static const ngx_chat_field_t  ngx_chat_browse_query[] = {
    { "category", cJSON_Number },
    { "author", cJSON_Number },
    { "sort", cJSON_String },
    { "cursor", cJSON_String },
    { "limit", cJSON_Number },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_search_query[] = {
    { "q", cJSON_String },
    { "category", cJSON_Number },
    { "min_price", cJSON_Number },
    { "max_price", cJSON_Number },
    { "in_stock", cJSON_String },
    { "cursor", cJSON_String },
    { "limit", cJSON_Number },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_suggest_query[] = {
    { "q", cJSON_String },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_page_query[] = {
    { "cursor", cJSON_String },
    { "limit", cJSON_Number },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_review_fields[] = {
    { "rating", cJSON_Number },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_warehouse_fields[] = {
    { "code", cJSON_String },
    { "name", cJSON_String },
    { "region", cJSON_String },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_stock_set_fields[] = {
    { "on_hand", cJSON_Number },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_name_fields[] = {
    { "name", cJSON_String },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_delivery_fields[] = {
    { "event_id", cJSON_String },
    { "order_id", cJSON_Number },
    { "status", cJSON_String },
    { NULL, 0 }
};

static const ngx_chat_field_t  ngx_chat_stock_adjust_fields[] = {
    { "delta", cJSON_Number },
    { "reason", cJSON_String },
    { NULL, 0 }
};


static const ngx_chat_route_t  ngx_chat_routes[] = {

    { NGX_HTTP_GET, "/api/v1/health", NGX_CHAT_AUTH_NONE,
      NULL, ngx_chat_health_handler, { NULL }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/auth/register", NGX_CHAT_AUTH_NONE,
      "auth.register", NULL, { NULL }, ngx_chat_register_fields, NULL },

    { NGX_HTTP_POST, "/api/v1/auth/login", NGX_CHAT_AUTH_NONE,
      "auth.login", NULL, { NULL }, ngx_chat_login_fields, NULL },

    /* sign-in sessions (ngx_chat_session.c): tickets and logout are the
     * edge's own; refresh goes to a worker, which signs the new token */
    { NGX_HTTP_POST, "/api/v1/auth/ws-ticket", NGX_CHAT_AUTH_USER,
      NULL, ngx_chat_session_ticket_handler, { NULL }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/auth/logout", NGX_CHAT_AUTH_USER,
      NULL, ngx_chat_session_logout_handler, { NULL }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/auth/refresh", NGX_CHAT_AUTH_USER,
      NULL, ngx_chat_session_refresh_handler, { NULL }, NULL, NULL },

    { NGX_HTTP_GET, "/api/v1/users/me", NGX_CHAT_AUTH_USER,
      "user.me", NULL, { NULL }, NULL, NULL },

    { NGX_HTTP_GET, "/api/v1/conversations", NGX_CHAT_AUTH_USER,
      "conv.list", NULL, { NULL }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/conversations", NGX_CHAT_AUTH_USER,
      "conv.create", NULL, { NULL }, ngx_chat_conv_create_fields, NULL },

    { NGX_HTTP_POST, "/api/v1/conversations/*/members", NGX_CHAT_AUTH_USER,
      "conv.member.add", NULL, { "conversation_id" },
      ngx_chat_member_add_fields, NULL },

    { NGX_HTTP_DELETE, "/api/v1/conversations/*/members/*",
      NGX_CHAT_AUTH_USER, "conv.member.remove", NULL,
      { "conversation_id", "user_id" }, NULL, NULL },

    { NGX_HTTP_GET, "/api/v1/conversations/*/messages", NGX_CHAT_AUTH_USER,
      "msg.history", NULL, { "conversation_id" }, NULL,
      ngx_chat_history_query },

    { NGX_HTTP_POST, "/api/v1/conversations/*/messages", NGX_CHAT_AUTH_USER,
      "msg.send", NULL, { "conversation_id" }, ngx_chat_send_fields, NULL },

    { NGX_HTTP_PATCH, "/api/v1/conversations/*/messages/*",
      NGX_CHAT_AUTH_USER, "msg.edit", NULL, { "conversation_id", "seq" },
      ngx_chat_edit_fields, NULL },

    { NGX_HTTP_DELETE, "/api/v1/conversations/*/messages/*",
      NGX_CHAT_AUTH_USER, "msg.delete", NULL, { "conversation_id", "seq" },
      NULL, NULL },

    { NGX_HTTP_GET, "/api/v1/messages/search", NGX_CHAT_AUTH_USER,
      "msg.search", NULL, { NULL }, NULL, ngx_chat_message_search_query },

    { NGX_HTTP_GET, "/api/v1/users", NGX_CHAT_AUTH_USER,
      "user.find", NULL, { NULL }, NULL, ngx_chat_user_find_query },

    /* downloads: a worker authorizes, nginx serves (ngx_chat_media.c);
     * uploads have locations of their own (chat_media_upload) */
    { NGX_HTTP_GET, "/api/v1/attachments/*", NGX_CHAT_AUTH_USER,
      NULL, ngx_chat_media_download_handler, { "attachment_id" }, NULL,
      NULL },

    { NGX_HTTP_POST, "/api/v1/conversations/*/read", NGX_CHAT_AUTH_USER,
      "conv.read", NULL, { "conversation_id" }, ngx_chat_read_fields, NULL },

    /* the long-poll fallback: answered by the edge from Redis */
    { NGX_HTTP_GET, "/api/v1/events", NGX_CHAT_AUTH_USER,
      NULL, ngx_chat_poll_handler, { NULL }, NULL, NULL },
    /* presence, receipts, mutes */

    { NGX_HTTP_GET, "/api/v1/users/*/presence", NGX_CHAT_AUTH_USER,
      "presence.get", NULL, { "user_id" }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/conversations/*/delivered", NGX_CHAT_AUTH_USER,
      "conv.delivered", NULL, { "conversation_id" }, ngx_chat_read_fields,
      NULL },

    { NGX_HTTP_GET, "/api/v1/conversations/*/receipts", NGX_CHAT_AUTH_USER,
      "conv.receipts", NULL, { "conversation_id" }, NULL, NULL },

    { NGX_HTTP_PUT, "/api/v1/conversations/*/mute", NGX_CHAT_AUTH_USER,
      "conv.mute", NULL, { "conversation_id" }, NULL, NULL },
    /* contacts and consent */

    { NGX_HTTP_POST, "/api/v1/conversations/*/accept", NGX_CHAT_AUTH_USER,
      "conv.accept", NULL, { "conversation_id" }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/users/*/block", NGX_CHAT_AUTH_USER,
      "user.block", NULL, { "user_id" }, NULL, NULL },

    { NGX_HTTP_DELETE, "/api/v1/users/*/block", NGX_CHAT_AUTH_USER,
      "user.unblock", NULL, { "user_id" }, NULL, NULL },
    /* cart, checkout and orders */

    { NGX_HTTP_GET, "/api/v1/cart", NGX_CHAT_AUTH_USER,
      "cart.get", NULL, { NULL }, NULL, NULL },

    { NGX_HTTP_PUT, "/api/v1/cart/items/*", NGX_CHAT_AUTH_USER,
      "cart.item.put", NULL, { "book_id" }, ngx_chat_cart_item_fields, NULL },

    { NGX_HTTP_DELETE, "/api/v1/cart/items/*", NGX_CHAT_AUTH_USER,
      "cart.item.delete", NULL, { "book_id" }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/orders", NGX_CHAT_AUTH_USER,
      "order.checkout", NULL, { NULL }, ngx_chat_checkout_fields, NULL },

    { NGX_HTTP_GET, "/api/v1/orders", NGX_CHAT_AUTH_USER,
      "order.list", NULL, { NULL }, NULL, ngx_chat_orders_query },

    { NGX_HTTP_GET, "/api/v1/orders/*", NGX_CHAT_AUTH_USER,
      "order.get", NULL, { "order_id" }, NULL, NULL },

    { NGX_HTTP_GET, "/api/v1/admin/orders", NGX_CHAT_AUTH_ADMIN,
      "admin.order.list", NULL, { NULL }, NULL,
      ngx_chat_admin_orders_query },

    { NGX_HTTP_POST, "/api/v1/admin/orders/*/ship", NGX_CHAT_AUTH_ADMIN,
      "admin.order.ship", NULL, { "order_id" }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/admin/orders/*/refund", NGX_CHAT_AUTH_ADMIN,
      "admin.order.refund", NULL, { "order_id" }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/admin/orders/*/deliver", NGX_CHAT_AUTH_ADMIN,
      "admin.order.deliver", NULL, { "order_id" }, NULL, NULL },

    /* the carrier's webhook: an account of role carrier (the worker
     * checks the role) */
    { NGX_HTTP_POST, "/api/v1/carrier/deliveries", NGX_CHAT_AUTH_USER,
      "carrier.delivery", NULL, { NULL }, ngx_chat_delivery_fields, NULL },
    /* the catalog (issue 4): reads are cached by the edge, see
     * ngx_chat_cache.c; admin routes need role admin (403) */

    { NGX_HTTP_GET, "/api/v1/categories", NGX_CHAT_AUTH_NONE,
      "catalog.categories", NULL, { NULL }, NULL, NULL },

    { NGX_HTTP_GET, "/api/v1/authors/*", NGX_CHAT_AUTH_NONE,
      "catalog.author", NULL, { "author_id" }, NULL, NULL },

    { NGX_HTTP_GET, "/api/v1/books", NGX_CHAT_AUTH_NONE,
      "catalog.browse", NULL, { NULL }, NULL, ngx_chat_browse_query },

    { NGX_HTTP_GET, "/api/v1/books/search", NGX_CHAT_AUTH_NONE,
      "catalog.search", NULL, { NULL }, NULL, ngx_chat_search_query },

    { NGX_HTTP_GET, "/api/v1/books/suggest", NGX_CHAT_AUTH_NONE,
      "catalog.suggest", NULL, { NULL }, NULL, ngx_chat_suggest_query },

    { NGX_HTTP_GET, "/api/v1/books/*", NGX_CHAT_AUTH_NONE,
      "catalog.book", NULL, { "book_id" }, NULL, NULL },

    { NGX_HTTP_GET, "/api/v1/books/*/reviews", NGX_CHAT_AUTH_NONE,
      "catalog.reviews", NULL, { "book_id" }, NULL, ngx_chat_page_query },

    { NGX_HTTP_POST, "/api/v1/books/*/reviews", NGX_CHAT_AUTH_USER,
      "catalog.review.create", NULL, { "book_id" }, ngx_chat_review_fields,
      NULL },

    { NGX_HTTP_POST, "/api/v1/admin/books", NGX_CHAT_AUTH_ADMIN,
      "admin.book.create", NULL, { NULL }, NULL, NULL },

    { NGX_HTTP_PUT, "/api/v1/admin/books/*", NGX_CHAT_AUTH_ADMIN,
      "admin.book.update", NULL, { "book_id" }, NULL, NULL },

    { NGX_HTTP_DELETE, "/api/v1/admin/books/*", NGX_CHAT_AUTH_ADMIN,
      "admin.book.delete", NULL, { "book_id" }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/admin/warehouses", NGX_CHAT_AUTH_ADMIN,
      "admin.warehouse.create", NULL, { NULL }, ngx_chat_warehouse_fields,
      NULL },

    { NGX_HTTP_GET, "/api/v1/admin/warehouses", NGX_CHAT_AUTH_ADMIN,
      "admin.warehouse.list", NULL, { NULL }, NULL, NULL },

    { NGX_HTTP_PUT, "/api/v1/admin/inventory/*/*", NGX_CHAT_AUTH_ADMIN,
      "admin.inventory.set", NULL, { "book_id", "warehouse_id" },
      ngx_chat_stock_set_fields, NULL },

    { NGX_HTTP_POST, "/api/v1/admin/inventory/*/*/adjust",
      NGX_CHAT_AUTH_ADMIN, "admin.inventory.adjust", NULL,
      { "book_id", "warehouse_id" }, ngx_chat_stock_adjust_fields, NULL },

    { NGX_HTTP_GET, "/api/v1/admin/inventory/*", NGX_CHAT_AUTH_ADMIN,
      "admin.inventory.book", NULL, { "book_id" }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/admin/categories", NGX_CHAT_AUTH_ADMIN,
      "admin.category.create", NULL, { NULL }, ngx_chat_name_fields, NULL },

    { NGX_HTTP_PUT, "/api/v1/admin/categories/*", NGX_CHAT_AUTH_ADMIN,
      "admin.category.update", NULL, { "category_id" }, NULL, NULL },

    { NGX_HTTP_POST, "/api/v1/admin/authors", NGX_CHAT_AUTH_ADMIN,
      "admin.author.create", NULL, { NULL }, ngx_chat_name_fields, NULL },

    { NGX_HTTP_PUT, "/api/v1/admin/authors/*", NGX_CHAT_AUTH_ADMIN,
      "admin.author.update", NULL, { "author_id" }, NULL, NULL },

    { 0, NULL, 0, NULL, NULL, { NULL }, NULL, NULL }
};


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


/*
 * The route for r's method and path, with the "*" ids parsed into ids.
 * The table's paths are API.md's; the location's chat_api_prefix stands
 * for their "/api/v1".
 */
static const ngx_chat_route_t *
ngx_chat_api_route(ngx_http_request_t *r, int64_t *ids,
    ngx_uint_t *path_found)
{
    u_char                  *u, *end, *digits;
    ngx_int_t                id;
    ngx_str_t                rest;
    ngx_uint_t               n;
    const char              *pat;
    const ngx_chat_route_t  *route;

    *path_found = 0;

    if (ngx_chat_api_path(r, &rest) != NGX_OK) {
        return NULL;
    }

    for (route = ngx_chat_routes; route->path; route++) {
        u = rest.data;
        end = rest.data + rest.len;
        n = 0;

        for (pat = route->path + sizeof(NGX_CHAT_API_PREFIX) - 1;
             *pat && u < end;
             pat++)
        {
            if (*pat != '*') {
                if (*u++ != (u_char) *pat) {
                    break;
                }
                continue;
            }

            /* a positive decimal id without leading zeros */
            digits = u;
            while (u < end && *u >= '0' && *u <= '9') {
                u++;
            }

            if (u == digits || *digits == '0' || u - digits > 18) {
                break;
            }

            id = ngx_atoi(digits, u - digits);
            if (id == NGX_ERROR || n == NGX_CHAT_MAX_PATH_IDS) {
                break;
            }
            ids[n++] = id;
        }

        if (*pat != '\0' || u != end) {
            continue;
        }

        *path_found = 1;

        if (r->method == route->method
            || (r->method == NGX_HTTP_HEAD && route->method == NGX_HTTP_GET))
        {
            return route;
        }
    }

    return NULL;
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


#define ngx_chat_problem(p, s, c, m)                                        \
    ((p)->status = (s), (p)->code = (c), (p)->message = (m), NGX_ERROR)


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


/*
 * The request target is text: the path (as nginx decoded it) is UTF-8, and
 * every query parameter decodes to UTF-8 without NUL or control
 * characters.  A byte PostgreSQL would refuse is a 400 here, at once, not
 * a command retried into the dead-letter stream.
 */
static ngx_int_t
ngx_chat_api_check_target(ngx_http_request_t *r, ngx_chat_problem_t *problem)
{
    size_t           where;
    u_char          *message;
    chat_query_rc_t  rc;

    if (!chat_utf8_valid(r->uri.data, r->uri.len)) {
        return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST, "invalid_utf8",
                                "the path is not valid UTF-8");
    }

    rc = chat_query_check((const char *) r->args.data, r->args.len, &where);
    if (rc == CHAT_QUERY_OK) {
        return NGX_OK;
    }

    message = ngx_pnalloc(r->pool, 128);
    if (message == NULL) {
        return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
    }

    ngx_sprintf(message, "%s (parameter at byte %uz of the query)%Z",
                chat_query_reason(rc), where);

    return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                            chat_query_code(rc), (const char *) message);
}


/*
 * One JSON object carrying the route's required fields with their types.
 * Returns the parsed object (the caller deletes it), or NULL with problem.
 */
static cJSON *
ngx_chat_api_parse_body(ngx_http_request_t *r, const ngx_chat_route_t *route,
    ngx_str_t *body, ngx_chat_problem_t *problem)
{
    size_t                   where;
    u_char                  *message;
    cJSON                   *json, *item;
    chat_json_rc_t           rc;
    const ngx_chat_field_t  *f;

    /* a POST without a body, where nothing is required (ship, refund) */
    if (body->len == 0 && route->fields == NULL) {
        json = cJSON_CreateObject();
        if (json == NULL) {
            (void) ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NULL, NULL);
        }
        return json;
    }

    /* strictly first: what passes reads the same to cJSON, the workers
     * and PostgreSQL */
    rc = chat_json_check((const char *) body->data, body->len,
                         CHAT_JSON_OBJECT | CHAT_JSON_INTEGERS, &where);

    if (rc == CHAT_JSON_NOMEM) {
        (void) ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
        return NULL;
    }

    if (rc != CHAT_JSON_OK) {
        message = ngx_pnalloc(r->pool, 160);
        if (message == NULL) {
            (void) ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NULL, NULL);
            return NULL;
        }

        ngx_sprintf(message, "%s (byte %uz of the body)%Z",
                    chat_json_reason(rc), where);

        (void) ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                chat_json_code(rc), (const char *) message);
        return NULL;
    }

    json = cJSON_ParseWithLength((const char *) body->data, body->len);

    if (json == NULL) {
        /* the text is valid: only memory can have failed */
        (void) ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
        return NULL;
    }

    for (f = route->fields; f && f->name; f++) {
        item = cJSON_GetObjectItemCaseSensitive(json, f->name);

        if (item != NULL && (item->type & 0xff) == f->type) {
            continue;
        }

        cJSON_Delete(json);

        message = ngx_pnalloc(r->pool, ngx_strlen(f->name) + 64);
        if (message == NULL) {
            (void) ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NULL, NULL);
            return NULL;
        }

        ngx_sprintf(message, "\"%s\" is %s%Z", f->name,
                    item ? "of the wrong type" : "required");

        (void) ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                item ? "invalid_field" : "missing_field",
                                (const char *) message);
        return NULL;
    }

    return json;
}


/* Path ids and accepted query parameters become fields of the command. */
static ngx_int_t
ngx_chat_api_add_params(ngx_http_request_t *r, ngx_chat_api_ctx_t *ctx,
    cJSON *json, ngx_chat_problem_t *problem)
{
    char                    *value;
    size_t                   len;
    u_char                  *message;
    int64_t                  n;
    ngx_uint_t               i;
    chat_query_rc_t          rc;
    const ngx_chat_field_t  *q;

    for (i = 0; i < NGX_CHAT_MAX_PATH_IDS && ctx->route->ids[i]; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(json, ctx->route->ids[i]);

        if (cJSON_AddNumberToObject(json, ctx->route->ids[i],
                                    (double) ctx->ids[i])
            == NULL)
        {
            return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NULL, NULL);
        }
    }

    if (ctx->route->query == NULL || r->args.len == 0) {
        return NGX_OK;
    }

    /* a decoded value is never longer than the query string */
    value = ngx_pnalloc(r->pool, r->args.len + 1);
    if (value == NULL) {
        return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
    }

    for (q = ctx->route->query; q->name; q++) {
        n = 0;
        rc = chat_query_get((const char *) r->args.data, r->args.len,
                            q->name, ngx_strlen(q->name), value, &len);

        if (rc == CHAT_QUERY_ABSENT) {
            continue;
        }

        if (rc == CHAT_QUERY_OK && q->type == cJSON_Number
            && (chat_json_integer_text(value, len, &n) != 0 || n < 0))
        {
            message = ngx_pnalloc(r->pool, ngx_strlen(q->name) + 64);
            if (message == NULL) {
                return ngx_chat_problem(problem,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        NULL, NULL);
            }

            ngx_sprintf(message, "\"%s\" must be a non-negative integer%Z",
                        q->name);

            return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                    "invalid_query", (const char *) message);
        }

        if (rc != CHAT_QUERY_OK) {
            message = ngx_pnalloc(r->pool, ngx_strlen(q->name) + 128);
            if (message == NULL) {
                return ngx_chat_problem(problem,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        NULL, NULL);
            }

            ngx_sprintf(message, "\"%s\": %s%Z", q->name,
                        chat_query_reason(rc));

            return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                    chat_query_code(rc),
                                    (const char *) message);
        }

        cJSON_DeleteItemFromObjectCaseSensitive(json, q->name);

        if (q->type == cJSON_Number) {
            if (cJSON_AddNumberToObject(json, q->name, (double) n) == NULL) {
                return ngx_chat_problem(problem,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        NULL, NULL);
            }

            continue;
        }

        /* chat_query_get refused NUL: the C string is the whole value */
        value[len] = '\0';

        if (cJSON_AddStringToObject(json, q->name, value) == NULL) {
            return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NULL, NULL);
        }
    }

    return NGX_OK;
}


/* The optional Idempotency-Key header: 1..128 visible ASCII characters. */
static ngx_int_t
ngx_chat_api_idempotency_key(ngx_http_request_t *r, ngx_str_t *key,
    ngx_chat_problem_t *problem)
{
    ngx_uint_t        j;
    ngx_table_elt_t  *h;

    ngx_str_null(key);

    h = ngx_chat_http_header(r, "Idempotency-Key");
    if (h == NULL) {
        return NGX_OK;
    }

    if (h->value.len == 0 || h->value.len > NGX_CHAT_IDEMPOTENCY_KEY_MAX) {
        goto invalid;
    }

    for (j = 0; j < h->value.len; j++) {
        if (h->value.data[j] <= 0x20 || h->value.data[j] >= 0x7f) {
            goto invalid;
        }
    }

    *key = h->value;
    return NGX_OK;

invalid:

    return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST, "invalid_header",
                            "Idempotency-Key must be 1 to 128 visible "
                            "ASCII characters");
}


/* 400 when the route's op needs the client's Idempotency-Key and the
 * request has none. */
static ngx_int_t
ngx_chat_api_key_required(const ngx_chat_route_t *route, ngx_str_t *key,
    ngx_chat_problem_t *problem)
{
    const char  **op;

    if (key->len > 0) {
        return NGX_OK;
    }

    for (op = ngx_chat_key_required_ops; *op; op++) {
        if (ngx_strcmp(*op, route->op) == 0) {
            return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                    "missing_idempotency_key",
                                    "this request needs an Idempotency-Key "
                                    "header");
        }
    }

    return NGX_OK;
}


/*
 * The op's secret fields (a password: chat_seal.c) sealed in json, so
 * that Redis and its append-only file never hold them in clear.
 */
static ngx_int_t
ngx_chat_api_seal(ngx_http_request_t *r, const char *op, cJSON *json,
    ngx_chat_problem_t *problem)
{
    const cJSON           *item;
    chat_seal_ad_t         ad;
    const char *const     *fields, *const *f;
    ngx_chat_loc_conf_t   *clcf;

    fields = chat_seal_command_fields(op, ngx_strlen(op));
    if (fields == NULL) {
        return NGX_OK;
    }

    for (f = fields; *f; f++) {
        item = cJSON_GetObjectItemCaseSensitive(json, *f);

        if (cJSON_IsString(item)
            && ngx_strlen(item->valuestring) > CHAT_SEAL_MAX_PLAIN)
        {
            return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                    "invalid_field",
                                    "a secret field is too long");
        }
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    if (clcf->endpoint == NULL) {
        return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                "internal_error", "no redis here");
    }

    ad.dir = "cmd";
    ad.op = op;
    ad.op_len = ngx_strlen(op);
    ad.gw = "";
    ad.gw_len = 0;
    ad.req = "";
    ad.req_len = 0;

    if (chat_seal_json(clcf->endpoint->seal_key, &ad, fields, json) != 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "chat: sealing the secret fields of \"%s\" failed",
                      op);
        return ngx_chat_problem(problem, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                NULL, NULL);
    }

    return NGX_OK;
}


/* 400 card_data_not_accepted when a checkout's payment carries card
 * details instead of the processor's token. */
static ngx_int_t
ngx_chat_api_no_card(const ngx_chat_route_t *route, cJSON *json,
    ngx_chat_problem_t *problem)
{
    const char   **f;
    const cJSON   *payment;

    if (ngx_strcmp(route->op, "order.checkout") != 0) {
        return NGX_OK;
    }

    payment = cJSON_GetObjectItemCaseSensitive(json, "payment");

    for (f = ngx_chat_card_fields; *f; f++) {
        if (cJSON_GetObjectItemCaseSensitive(payment, *f) != NULL) {
            return ngx_chat_problem(problem, NGX_HTTP_BAD_REQUEST,
                                    CHAT_CARD_REFUSED_CODE,
                                    CHAT_CARD_REFUSED_TEXT);
        }
    }

    return NGX_OK;
}
