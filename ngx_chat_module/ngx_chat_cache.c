/*
 * ngx_chat_cache.c: catalog reads served by the edge straight from Redis.
 *
 * Book details, their review pages, search and browse pages, categories
 * and authors are the same for every reader, so their answers are cached
 * in Redis and a fresh copy is sent without a round trip to a worker.
 *
 * Keys.  An answer is identified by its command: the op and the JSON body
 * the edge built from the path ids and the accepted query parameters
 * (ngx_chat_api.c adds them in a fixed order, so equal requests give equal
 * bodies).  Each entry belongs to a generation counter: a book's
 * ("cat:{b<id>}:gen") for the book's details and reviews, a list shard's
 * ("cat:{l<x>}:gen", x the md5's first hex digit: sixteen tags, so list
 * reads spread over a cluster's masters) for everything else.  The entry
 * lives at "<prefix><md5 of op and body>:v<generation>", with a TTL.
 *
 * Why generations and not deletes.  A hit is one EVAL that reads the
 * counter and the entry under it, atomically.  On a miss the edge keeps
 * the generation it read, sends the command, and stores the worker's
 * answer under THAT generation.  A writer (backend/catalog/catalog_cache.c) bumps
 * the counter after its commit and before its reply.  So the generation a
 * reader saw was read before its worker's snapshot; if a write committed
 * in between, the counter has moved on and the entry is filed under a
 * generation nobody reads any more.  A delete-based scheme would let that
 * slow reader write the old row back after the delete, for good.  Once an
 * admin's change is acknowledged, every later read misses or finds an
 * entry filled after the commit.
 *
 * HTTP.  Cached answers carry ETag (md5 of the body) and Cache-Control
 * (chat_cache_max_age; 0 means "public, no-cache": browsers and CDNs may
 * keep the copy but must revalidate, and a revalidation with a matching
 * If-None-Match is a 304 without a body).  With chat_cache off the same
 * headers are sent; only Redis is left out.
 *
 * Failures.  If the lookup fails (Redis down, a script error) the request
 * goes to the worker as usual and nothing is stored; if storing fails,
 * the answer is still sent.  The cache only ever saves work.
 *
 * What it does not do: cache anything per user, anything but 200
 * answers, or decide what a write invalidates (the backend does).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_md5.h>

#include "chat_protocol.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


#define NGX_CHAT_ETAG_LEN   18          /* '"' 16 hex '"' */


typedef enum {
    NGX_CHAT_CACHE_BOOK = 1,            /* under the book's generation */
    NGX_CHAT_CACHE_LISTS                /* under the lists' generation */
} ngx_chat_cache_kind_e;


typedef struct {
    const char             *op;
    ngx_chat_cache_kind_e   kind;
} ngx_chat_cache_op_t;


typedef struct {
    ngx_http_request_t     *r;
    const char             *op;
    ngx_chat_caller_t      *caller;
    ngx_str_t               body;       /* the command body, pool copy */
    ngx_str_t               gen_key;    /* NUL-terminated */
    ngx_str_t               prefix;     /* entry key without generation */
    ngx_str_t               gen;        /* seen at lookup; empty: none */
} ngx_chat_cache_ctx_t;


static ngx_int_t ngx_chat_cache_lookup(ngx_chat_cache_ctx_t *cc,
    ngx_chat_pending_t *p);
static void ngx_chat_cache_looked_up(redisAsyncContext *ac, void *reply,
    void *privdata);
static ngx_int_t ngx_chat_cache_forward(ngx_chat_cache_ctx_t *cc,
    ngx_chat_pending_t *p);
static void ngx_chat_cache_answer(ngx_chat_pending_t *p, ngx_uint_t status,
    u_char *body, size_t len);
static void ngx_chat_cache_store(ngx_chat_cache_ctx_t *cc, u_char *etag,
    u_char *body, size_t len);
static void ngx_chat_cache_stored(redisAsyncContext *ac, void *reply,
    void *privdata);
static ngx_int_t ngx_chat_cache_send(ngx_http_request_t *r, u_char *etag,
    u_char *body, size_t len);
static void ngx_chat_cache_etag(u_char *etag, u_char *body, size_t len);


static const ngx_chat_cache_op_t  ngx_chat_cache_ops[] = {
    { "catalog.book", NGX_CHAT_CACHE_BOOK },
    { "catalog.reviews", NGX_CHAT_CACHE_BOOK },
    { "catalog.search", NGX_CHAT_CACHE_LISTS },
    { "catalog.suggest", NGX_CHAT_CACHE_LISTS },
    { "catalog.browse", NGX_CHAT_CACHE_LISTS },
    { "catalog.categories", NGX_CHAT_CACHE_LISTS },
    { "catalog.author", NGX_CHAT_CACHE_LISTS },
    { NULL, 0 }
};


ngx_int_t
ngx_chat_cache_handle(ngx_http_request_t *r, ngx_chat_pending_t *p,
    const char *op, ngx_chat_caller_t *caller, ngx_str_t *body, int64_t id)
{
    u_char                     *s, hash[16], hex[32];
    ngx_md5_t                   md5;
    ngx_chat_cache_ctx_t       *cc;
    ngx_chat_main_conf_t       *cmcf;
    const ngx_chat_cache_op_t  *co;

    for (co = ngx_chat_cache_ops; co->op; co++) {
        if (ngx_strcmp(co->op, op) == 0) {
            break;
        }
    }

    if (co->op == NULL
        || (co->kind == NGX_CHAT_CACHE_BOOK && id <= 0))
    {
        return NGX_DECLINED;
    }

    cc = ngx_pcalloc(r->pool, sizeof(ngx_chat_cache_ctx_t));
    if (cc == NULL) {
        return NGX_ERROR;
    }

    cc->r = r;
    cc->op = op;
    cc->caller = caller;

    cc->body.data = ngx_pstrdup(r->pool, body);
    if (cc->body.data == NULL) {
        return NGX_ERROR;
    }
    cc->body.len = body->len;

    p->data = cc;
    p->answer = ngx_chat_cache_answer;

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    if (!cmcf->cache) {
        return ngx_chat_cache_forward(cc, p);
    }

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, op, ngx_strlen(op));
    ngx_md5_update(&md5, "\n", 1);
    ngx_md5_update(&md5, body->data, body->len);
    ngx_md5_final(hash, &md5);
    ngx_hex_dump(hex, hash, 16);

    s = ngx_pnalloc(r->pool, 2 * (sizeof(CHAT_CACHE_BOOK_PREFIX) + 96));
    if (s == NULL) {
        return NGX_ERROR;
    }

    cc->gen_key.data = s;

    if (co->kind == NGX_CHAT_CACHE_BOOK) {
        s = ngx_sprintf(s, CHAT_CACHE_BOOK_PREFIX "%L}:gen%Z", id);
        cc->gen_key.len = s - cc->gen_key.data - 1;
        cc->prefix.data = s;
        s = ngx_sprintf(s, CHAT_CACHE_BOOK_PREFIX "%L}:%*s:v%Z", id,
                        (size_t) 32, hex);

    } else {
        s = ngx_sprintf(s, CHAT_CACHE_LISTS_PREFIX "%c}:gen%Z", hex[0]);
        cc->gen_key.len = s - cc->gen_key.data - 1;
        cc->prefix.data = s;
        s = ngx_sprintf(s, CHAT_CACHE_LISTS_PREFIX "%c}:%*s:v%Z", hex[0],
                        (size_t) 32, hex);
    }

    cc->prefix.len = s - cc->prefix.data - 1;

    return ngx_chat_cache_lookup(cc, p);
}


/* EVAL the lookup; NGX_DONE when parked, else forwarded at once */
static ngx_int_t
ngx_chat_cache_lookup(ngx_chat_cache_ctx_t *cc, ngx_chat_pending_t *p)
{
    const char        *argv[3];
    size_t             argvlen[3];
    ngx_chat_redis_t  *rc;

    rc = ngx_chat_bus_redis(ngx_chat_gateway(cc->r));

    if (rc == NULL || !ngx_chat_redis_usable(rc)
        || ngx_chat_bus_park(p, cc->r->connection->log) != NGX_OK)
    {
        return ngx_chat_cache_forward(cc, p);
    }

    argv[0] = "1";
    argv[1] = (const char *) cc->gen_key.data;
    argv[2] = (const char *) cc->prefix.data;

    argvlen[0] = 1;
    argvlen[1] = cc->gen_key.len;
    argvlen[2] = cc->prefix.len;

    if (ngx_chat_redis_script(rc, &chat_script_cache_lookup,
                              ngx_chat_cache_looked_up,
                              (void *) (uintptr_t) p->id, 3, argv, argvlen)
        != NGX_OK)
    {
        ngx_chat_bus_cancel(p);
        return ngx_chat_cache_forward(cc, p);
    }

    return NGX_DONE;
}


static void
ngx_chat_cache_looked_up(redisAsyncContext *ac, void *reply, void *privdata)
{
    u_char                *nl;
    ngx_int_t              rc;
    redisReply            *rr = reply, *g, *v;
    ngx_chat_pending_t    *p;
    ngx_chat_cache_ctx_t  *cc;

    p = ngx_chat_bus_unpark((uint64_t) (uintptr_t) privdata);
    if (p == NULL) {
        return;                 /* timed out or the client left */
    }

    cc = p->data;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements != 2
        || rr->element[0]->type != REDIS_REPLY_STRING)
    {
        if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, cc->r->connection->log, 0,
                          "chat cache: lookup failed: %*s",
                          (size_t) rr->len, rr->str);
        }

        rc = ngx_chat_cache_forward(cc, p);
        if (rc != NGX_DONE) {
            ngx_http_finalize_request(cc->r, rc);
        }
        return;
    }

    g = rr->element[0];
    v = rr->element[1];

    if (v->type == REDIS_REPLY_STRING && v->len > NGX_CHAT_ETAG_LEN
        && v->str[NGX_CHAT_ETAG_LEN] == '\n')
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cc->r->connection->log, 0,
                       "chat cache: hit \"%V\"", &cc->prefix);

        nl = (u_char *) v->str + NGX_CHAT_ETAG_LEN;
        ngx_http_finalize_request(cc->r,
            ngx_chat_cache_send(cc->r, (u_char *) v->str, nl + 1,
                                v->len - NGX_CHAT_ETAG_LEN - 1));
        return;
    }

    /* a miss: remember the generation this read belongs to */
    cc->gen.data = ngx_pnalloc(cc->r->pool, g->len);
    if (cc->gen.data != NULL && g->len <= NGX_INT64_LEN) {
        ngx_memcpy(cc->gen.data, g->str, g->len);
        cc->gen.len = g->len;
    }

    rc = ngx_chat_cache_forward(cc, p);
    if (rc != NGX_DONE) {
        ngx_http_finalize_request(cc->r, rc);
    }
}


/* Sends the command to a worker; NGX_DONE, or what to finalize with. */
static ngx_int_t
ngx_chat_cache_forward(ngx_chat_cache_ctx_t *cc, ngx_chat_pending_t *p)
{
    ngx_int_t  rc;

    rc = ngx_chat_bus_send(ngx_chat_gateway(cc->r), p, cc->r->connection->log,
                           cc->op, cc->caller, NULL, &cc->body);

    if (rc == NGX_OK) {
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED) {
        return ngx_chat_send_error(cc->r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   "the command bus (redis) is unavailable");
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static void
ngx_chat_cache_answer(ngx_chat_pending_t *p, ngx_uint_t status, u_char *body,
    size_t len)
{
    u_char                 etag[NGX_CHAT_ETAG_LEN];
    ngx_chat_cache_ctx_t  *cc = p->data;

    if (status != NGX_HTTP_OK) {
        ngx_chat_http_retry_after(cc->r, p->retry_after);
        ngx_chat_finalize_json(cc->r, status, body, len);
        return;
    }

    ngx_chat_cache_etag(etag, body, len);

    if (cc->gen.len) {
        ngx_chat_cache_store(cc, etag, body, len);
    }

    ngx_http_finalize_request(cc->r,
                              ngx_chat_cache_send(cc->r, etag, body, len));
}


/* SET <prefix><gen> "<etag>\n<body>" PX ttl, without waiting for it */
static void
ngx_chat_cache_store(ngx_chat_cache_ctx_t *cc, u_char *etag, u_char *body,
    size_t len)
{
    u_char                *key, *value, *last, ttl[NGX_INT_T_LEN];
    const char            *argv[5];
    size_t                 argvlen[5];
    ngx_chat_redis_t      *rc;
    ngx_chat_main_conf_t  *cmcf;

    rc = ngx_chat_bus_redis(ngx_chat_gateway(cc->r));
    if (rc == NULL || !ngx_chat_redis_usable(rc)) {
        return;
    }

    cmcf = ngx_http_get_module_main_conf(cc->r, ngx_chat_module);

    key = ngx_pnalloc(cc->r->pool, cc->prefix.len + cc->gen.len);
    value = ngx_pnalloc(cc->r->pool, NGX_CHAT_ETAG_LEN + 1 + len);
    if (key == NULL || value == NULL) {
        return;
    }

    last = ngx_cpymem(key, cc->prefix.data, cc->prefix.len);
    ngx_memcpy(last, cc->gen.data, cc->gen.len);

    last = ngx_cpymem(value, etag, NGX_CHAT_ETAG_LEN);
    *last++ = '\n';
    ngx_memcpy(last, body, len);

    argv[0] = "SET";
    argv[1] = (const char *) key;
    argv[2] = (const char *) value;
    argv[3] = "PX";
    argv[4] = (const char *) ttl;

    argvlen[0] = 3;
    argvlen[1] = cc->prefix.len + cc->gen.len;
    argvlen[2] = NGX_CHAT_ETAG_LEN + 1 + len;
    argvlen[3] = 2;
    argvlen[4] = ngx_sprintf(ttl, "%M", cmcf->cache_ttl) - ttl;

    (void) ngx_chat_redis_command(rc, ngx_chat_cache_stored, NULL, 5, argv,
                                  argvlen);
}


static void
ngx_chat_cache_stored(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply  *rr = reply;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat cache: store failed: %*s", (size_t) rr->len,
                      rr->str);
    }
}


/* A 200 with ETag and Cache-Control, or a 304 when If-None-Match has it */
static ngx_int_t
ngx_chat_cache_send(ngx_http_request_t *r, u_char *etag, u_char *body,
    size_t len)
{
    u_char                *cc_value;
    ngx_str_t              e, control;
    ngx_table_elt_t       *inm, *h;
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    e.data = etag;
    e.len = NGX_CHAT_ETAG_LEN;

    if (cmcf->cache_max_age == 0) {
        ngx_str_set(&control, "public, no-cache");

    } else {
        cc_value = ngx_pnalloc(r->pool, sizeof("public, max-age=")
                                        + NGX_TIME_T_LEN);
        if (cc_value == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        control.data = cc_value;
        control.len = ngx_sprintf(cc_value, "public, max-age=%T",
                                  cmcf->cache_max_age) - cc_value;
    }

    inm = ngx_chat_http_header(r, "If-None-Match");

    if (inm != NULL
        && ngx_strlcasestrn(inm->value.data, inm->value.data + inm->value.len,
                            etag, NGX_CHAT_ETAG_LEN - 1) != NULL)
    {
        r->headers_out.status = NGX_HTTP_NOT_MODIFIED;
        r->headers_out.content_length_n = -1;
        r->header_only = 1;

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "ETag");
        h->value = e;

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "Cache-Control");
        h->value = control;

        return ngx_http_send_header(r);
    }

    return ngx_chat_send_json_cached(r, NGX_HTTP_OK, body, len, &control,
                                     &e);
}


/* '"' + the first 16 hex digits of the body's md5 + '"' */
static void
ngx_chat_cache_etag(u_char *etag, u_char *body, size_t len)
{
    u_char     hash[16];
    ngx_md5_t  md5;

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, body, len);
    ngx_md5_final(hash, &md5);

    etag[0] = '"';
    ngx_hex_dump(etag + 1, hash, 8);
    etag[NGX_CHAT_ETAG_LEN - 1] = '"';
}
