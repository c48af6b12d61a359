/*
 * ngx_chat_api_routes.c: the API's routes (shared/API.md): for each method
 * and path, who may call it, the bus operation it becomes (or the local
 * handler that answers it), the names of its path ids, its required body
 * fields and its accepted query parameters; and the lookup of a request's
 * route.  Adding an operation to the API is adding a line here (and its
 * handler in a backend area).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <cjson/cJSON.h>

#include "ngx_chat_api.h"
#include "ngx_chat_module.h"


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

/* the catalog */

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
    /* the catalog: reads are cached by the edge, see
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


/*
 * The route for r's method and path, with the "*" ids parsed into ids.
 * The table's paths are API.md's; the location's chat_api_prefix stands
 * for their "/api/v1".
 */
const ngx_chat_route_t *
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
