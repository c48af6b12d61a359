/*
 * ngx_chat_media.c: files through the edge: uploads in, downloads out.
 *
 * Uploads (the content handler of `chat_media_upload`):
 *   POST /api/v1/uploads?name=...            any signed-in user
 *   PUT  /api/v1/admin/books/{id}/cover      admins
 * nginx reads the body to a temporary file under client_body_temp_path
 * (the location's client_max_body_size caps it: past it nginx answers
 * 413, in the API's shape through chat_error_page).  Then, here: the type
 * from the file's first bytes against the allow-list (chat_media.c: not
 * the name, not the client's Content-Type; 415 otherwise), the SHA-256 of
 * the bytes, and a rename of the temporary file into the store under
 * chat_media_root as blobs/ab/<sha256> (the same bytes twice are one
 * file).  Only then does a command go on the bus, carrying the hash, the
 * size, the type and the name: megabytes never cross Redis.  The worker
 * records the upload (media.upload) or makes the cover (admin.book.cover)
 * and its answer is the client's.  A refused file leaves nothing: nginx
 * deletes its temporary file when the request ends.
 *
 * The temporary file and the store should be on one filesystem (then the
 * move is a rename); otherwise the file is copied.  The file is flushed
 * (fdatasync) before the rename, so a row never outlives its file.
 * Hashing, the flush and the copy are plain reads and writes on the nginx
 * worker: a 25 MB upload costs it some 50 ms of CPU and a flush once, the
 * price of not having a second process in the path.  A thread pool (aio
 * threads) is the way out if it ever shows.
 *
 * Downloads (GET /api/v1/attachments/{id}[?size=thumb], a route of the
 * API, ngx_chat_api.c): a worker decides (media.get: the uploader, or a
 * member of a conversation the attachment was sent in; 404 to everyone
 * else, exactly as for an id that does not exist) and answers the file's
 * hash, type and name; the edge then sets Content-Type,
 * Content-Disposition (inline for images, attachment for the rest) and
 * Cache-Control, and redirects internally to chat_media_internal
 * (location ... { internal; alias <chat_media_root>/; }), where nginx's
 * own static handler sends the bytes: sendfile, Range, ETag,
 * If-None-Match and Last-Modified come from nginx, not from us.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "chat_media.h"
#include "chat_query.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


/* after the location's chat_api_prefix (ngx_chat_api_path) */
#define NGX_CHAT_MEDIA_UPLOADS      "/uploads"
#define NGX_CHAT_MEDIA_COVER_PRE    "/admin/books/"
#define NGX_CHAT_MEDIA_COVER_POST   "/cover"
#define NGX_CHAT_MEDIA_DOWNLOADS    "/attachments/"

/* what the browser may keep: the bytes behind an id never change, but
 * access can end (leaving a conversation), so private and a day */
#define NGX_CHAT_MEDIA_CACHE        "private, max-age=86400"


typedef struct {
    const char          *op;
    int64_t              book_id;      /* covers */
    ngx_uint_t           images_only;
    ngx_chat_caller_t    caller;
} ngx_chat_media_ctx_t;


static void ngx_chat_media_body_read(ngx_http_request_t *r);
static ngx_uint_t ngx_chat_media_route(ngx_http_request_t *r,
    ngx_chat_media_ctx_t *ctx, const char **code, const char **message);
static ngx_int_t ngx_chat_media_hash(ngx_http_request_t *r, ngx_fd_t fd,
    off_t size, u_char *hex);
static ngx_int_t ngx_chat_media_store(ngx_http_request_t *r,
    ngx_temp_file_t *tf, off_t size, u_char *hex);
static ngx_int_t ngx_chat_media_mkdirs(u_char *path, ngx_log_t *log);
static ngx_int_t ngx_chat_media_copy(ngx_fd_t from, off_t size, u_char *to,
    ngx_log_t *log);
static void ngx_chat_media_download_answer(ngx_chat_pending_t *p,
    ngx_uint_t status, u_char *body, size_t len);
static ngx_int_t ngx_chat_media_disposition(ngx_http_request_t *r,
    const char *name, ngx_uint_t inl);


ngx_int_t
ngx_chat_media_upload_handler(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_str_t              token;
    ngx_uint_t             status;
    const char            *why, *code;
    ngx_chat_media_ctx_t  *ctx;
    ngx_chat_main_conf_t  *cmcf;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_chat_media_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = ngx_chat_media_route(r, ctx, &code, &why);
    if (status != NGX_HTTP_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return ngx_chat_send_error(r, status, code, why);
    }

    /* who: a verified token, an admin's for covers */
    if (ngx_chat_bearer_token(r, &token) != NGX_OK) {
        why = "a bearer token is required";
        goto unauthorized;
    }

    rc = ngx_chat_authenticate_token(r, &token, &ctx->caller, &why);

    if (rc == NGX_DECLINED) {
        goto unauthorized;
    }

    if (rc != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return rc == NGX_BUSY
               ? ngx_chat_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "unavailable", why)
               : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->images_only
        && !(ctx->caller.role.len == 5
             && ngx_strncmp(ctx->caller.role.data, "admin", 5) == 0))
    {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return ngx_chat_send_error(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                   "this needs the admin role");
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    if (cmcf->media_root.len == 0) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return ngx_chat_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   "uploads are not configured "
                                   "(chat_media_root)");
    }

    ngx_http_set_ctx(r, ctx, ngx_chat_module);

    /* the body to a file nginx deletes when the request ends, unless we
     * moved it into the store first */
    r->request_body_in_file_only = 1;
    r->request_body_in_persistent_file = 1;
    r->request_body_in_clean_file = 1;
    /* a file is the plan here, not news: nginx says so at info */
    r->request_body_file_log_level = NGX_LOG_INFO;

    rc = ngx_http_read_client_request_body(r, ngx_chat_media_body_read);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;

unauthorized:

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_chat_send_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized", why);
}


/* Which upload this is, from the method and path: 200 with ctx filled,
 * or the status (404, 405, 400 for a bad query) with its code and
 * message. */
static ngx_uint_t
ngx_chat_media_route(ngx_http_request_t *r, ngx_chat_media_ctx_t *ctx,
    const char **code, const char **message)
{
    u_char           *p, *end;
    size_t            where, pre, post;
    ngx_int_t         id;
    ngx_str_t         path;
    chat_query_rc_t   qrc;

    qrc = chat_query_check((const char *) r->args.data, r->args.len, &where);
    if (qrc != CHAT_QUERY_OK) {
        *code = chat_query_code(qrc);
        *message = chat_query_reason(qrc);
        return NGX_HTTP_BAD_REQUEST;
    }

    *code = "not_found";
    *message = "no such endpoint";

    if (ngx_chat_api_path(r, &path) != NGX_OK) {
        return NGX_HTTP_NOT_FOUND;
    }

    *code = "method_not_allowed";
    *message = "this method is not allowed here";

    if (path.len == sizeof(NGX_CHAT_MEDIA_UPLOADS) - 1
        && ngx_strncmp(path.data, NGX_CHAT_MEDIA_UPLOADS, path.len) == 0)
    {
        if (r->method != NGX_HTTP_POST) {
            return NGX_HTTP_NOT_ALLOWED;
        }

        ctx->op = "media.upload";
        return NGX_HTTP_OK;
    }

    pre = sizeof(NGX_CHAT_MEDIA_COVER_PRE) - 1;
    post = sizeof(NGX_CHAT_MEDIA_COVER_POST) - 1;
    end = path.data + path.len;

    if (path.len > pre + post
        && ngx_strncmp(path.data, NGX_CHAT_MEDIA_COVER_PRE, pre) == 0
        && ngx_strncmp(end - post, NGX_CHAT_MEDIA_COVER_POST, post) == 0)
    {
        p = path.data + pre;
        id = (end - post - p <= 18 && *p != '0')
             ? ngx_atoi(p, end - post - p) : NGX_ERROR;

        if (id > 0) {
            if (r->method != NGX_HTTP_PUT) {
                return NGX_HTTP_NOT_ALLOWED;
            }

            ctx->op = "admin.book.cover";
            ctx->book_id = id;
            ctx->images_only = 1;
            return NGX_HTTP_OK;
        }
    }

    *code = "not_found";
    *message = "no such endpoint";
    return NGX_HTTP_NOT_FOUND;
}


static void
ngx_chat_media_body_read(ngx_http_request_t *r)
{
    char                  *text;
    u_char                 head[CHAT_MEDIA_SNIFF_LEN], hex[65], *name;
    cJSON                 *json;
    off_t                  size;
    size_t                 name_len;
    ssize_t                n;
    ngx_int_t              rc;
    ngx_str_t              body;
    const char            *type;
    chat_query_rc_t        qrc;
    ngx_temp_file_t       *tf;
    ngx_chat_pending_t    *p;
    ngx_chat_media_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_chat_module);

    tf = r->request_body ? r->request_body->temp_file : NULL;
    size = tf ? tf->file.offset : 0;

    if (tf == NULL || size <= 0) {
        ngx_chat_finalize_error(r, NGX_HTTP_BAD_REQUEST, "empty_body",
                                "the file is empty");
        return;
    }

    /* the name shown to others: ?name=, at most 255 bytes, no path in it
     * (a decoded value is never longer than the query) */
    name = ngx_pnalloc(r->pool, r->args.len + sizeof("cover"));
    if (name == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    qrc = chat_query_get((const char *) r->args.data, r->args.len, "name", 4,
                         (char *) name, &name_len);

    if (qrc == CHAT_QUERY_ABSENT) {
        name_len = ngx_sprintf(name, "%s", ctx->images_only ? "cover"
                                                            : "file")
                   - name;

    } else if (qrc != CHAT_QUERY_OK || name_len == 0
               || name_len > CHAT_MEDIA_NAME_MAX
               || ngx_strlchr(name, name + name_len, '/')
               || ngx_strlchr(name, name + name_len, '\\'))
    {
        ngx_chat_finalize_error(r, NGX_HTTP_BAD_REQUEST, "invalid_query",
                                "name must be 1 to 255 bytes of text "
                                "without slashes");
        return;
    }

    name[name_len] = '\0';

    /* the type, from the bytes alone */
    n = ngx_read_file(&tf->file, head, ngx_min((off_t) sizeof(head), size),
                      0);
    if (n <= 0) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    type = chat_media_sniff(head, (size_t) n, (const char *) name, name_len,
                            (off_t) n == size);

    if (type == NULL || (ctx->images_only && !chat_media_type_is_image(type)))
    {
        ngx_chat_finalize_error(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                "unsupported_type",
                                ctx->images_only
                                ? "a cover must be a JPEG, PNG, GIF or WebP "
                                  "image"
                                : "this type of file is not accepted: "
                                  "images (JPEG, PNG, GIF, WebP), PDF, "
                                  "plain text and office documents are");
        return;
    }

    if (ngx_chat_media_hash(r, tf->file.fd, size, hex) != NGX_OK
        || ngx_chat_media_store(r, tf, size, hex) != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* what the worker records: metadata only */
    json = cJSON_CreateObject();
    if (json == NULL
        || cJSON_AddStringToObject(json, "sha256", (char *) hex) == NULL
        || cJSON_AddNumberToObject(json, "size", (double) size) == NULL
        || cJSON_AddStringToObject(json, "content_type", type) == NULL
        || cJSON_AddStringToObject(json, "name", (char *) name) == NULL
        || (ctx->book_id
            && cJSON_AddNumberToObject(json, "book_id",
                                       (double) ctx->book_id) == NULL)
        || (text = cJSON_PrintUnformatted(json)) == NULL)
    {
        cJSON_Delete(json);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cJSON_Delete(json);

    body.data = (u_char *) text;
    body.len = ngx_strlen(text);

    p = ngx_chat_http_pending(r);
    rc = p ? ngx_chat_bus_send(ngx_chat_gateway(r), p, r->connection->log,
                               ctx->op, &ctx->caller, NULL, &body)
           : NGX_ERROR;
    cJSON_free(text);

    if (rc == NGX_OK) {
        /* read_client_request_body's reference keeps the request */
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_chat_finalize_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "unavailable",
                                "the command bus (redis) is unavailable");
        return;
    }

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
}


/* The SHA-256 of the file's size bytes as 64 hex digits (NUL-ended). */
static ngx_int_t
ngx_chat_media_hash(ngx_http_request_t *r, ngx_fd_t fd, off_t size,
    u_char *hex)
{
    u_char         buf[65536], md[EVP_MAX_MD_SIZE];
    off_t          off;
    ssize_t        n;
    ngx_uint_t     i;
    unsigned int   mdlen;
    EVP_MD_CTX    *md_ctx;

    md_ctx = EVP_MD_CTX_new();
    if (md_ctx == NULL || EVP_DigestInit_ex(md_ctx, EVP_sha256(), NULL) != 1)
    {
        EVP_MD_CTX_free(md_ctx);
        return NGX_ERROR;
    }

    for (off = 0; off < size; off += n) {
        n = pread(fd, buf, (size_t) ngx_min((off_t) sizeof(buf), size - off),
                  off);
        if (n <= 0 || EVP_DigestUpdate(md_ctx, buf, (size_t) n) != 1) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, ngx_errno,
                          "chat: reading an upload failed");
            EVP_MD_CTX_free(md_ctx);
            return NGX_ERROR;
        }
    }

    if (EVP_DigestFinal_ex(md_ctx, md, &mdlen) != 1 || mdlen != 32) {
        EVP_MD_CTX_free(md_ctx);
        return NGX_ERROR;
    }

    EVP_MD_CTX_free(md_ctx);

    for (i = 0; i < 32; i++) {
        ngx_sprintf(hex + i * 2, "%02xd", md[i]);
    }
    hex[64] = '\0';

    return NGX_OK;
}


/* Moves the upload into the store as blobs/ab/<hex>, unless those bytes
 * are there already (then nginx deletes the temporary file). */
static ngx_int_t
ngx_chat_media_store(ngx_http_request_t *r, ngx_temp_file_t *tf, off_t size,
    u_char *hex)
{
    u_char                *path;
    char                   rel[CHAT_MEDIA_REL_PATH_LEN];
    ngx_file_info_t        fi;
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    if (chat_media_rel_path(rel, sizeof(rel), (const char *) hex) != 0) {
        return NGX_ERROR;
    }

    path = ngx_pnalloc(r->pool, cmcf->media_root.len + sizeof(rel) + 2);
    if (path == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(path, "%V/%s%Z", &cmcf->media_root, rel);

    if (ngx_file_info(path, &fi) == 0) {
        return NGX_OK;
    }

    if (ngx_chat_media_mkdirs(path, r->connection->log) != NGX_OK) {
        return NGX_ERROR;
    }

    /* on disk before a worker records it: a crash after the 201 must not
     * leave a row whose file is gone */
    if (fdatasync(tf->file.fd) != 0) {
        ngx_log_error(NGX_LOG_CRIT, r->connection->log, ngx_errno,
                      "chat: fdatasync of an upload failed");
        return NGX_ERROR;
    }

    if (ngx_rename_file(tf->file.name.data, path) == 0) {
        return NGX_OK;
    }

    if (ngx_errno != NGX_EXDEV) {
        ngx_log_error(NGX_LOG_CRIT, r->connection->log, ngx_errno,
                      "chat: moving an upload to \"%s\" failed", path);
        return NGX_ERROR;
    }

    /* another filesystem: copy (client_body_temp_path should share it) */
    return ngx_chat_media_copy(tf->file.fd, size, path, r->connection->log);
}


/* mkdir -p of path's directories, 0700 */
static ngx_int_t
ngx_chat_media_mkdirs(u_char *path, ngx_log_t *log)
{
    u_char  *p;

    for (p = path + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }

        *p = '\0';
        if (ngx_create_dir(path, 0700) == NGX_FILE_ERROR
            && ngx_errno != NGX_EEXIST)
        {
            ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                          "chat: mkdir \"%s\" failed", path);
            *p = '/';
            return NGX_ERROR;
        }
        *p = '/';
    }

    return NGX_OK;
}


/* from's size bytes into a temporary beside to, fsync'ed and renamed */
static ngx_int_t
ngx_chat_media_copy(ngx_fd_t from, off_t size, u_char *to, ngx_log_t *log)
{
    u_char    buf[65536], tmp[NGX_MAX_PATH];
    off_t     off;
    ssize_t   n;
    ngx_fd_t  fd;

    ngx_snprintf(tmp, sizeof(tmp) - 1, "%s.%P%Z", to, ngx_pid);

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE, 0600);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "chat: open \"%s\" failed", tmp);
        return NGX_ERROR;
    }

    for (off = 0; off < size; off += n) {
        n = pread(from, buf, (size_t) ngx_min((off_t) sizeof(buf), size - off),
                  off);
        if (n <= 0 || ngx_write_fd(fd, buf, (size_t) n) != n) {
            goto failed;
        }
    }

    if (fsync(fd) != 0) {
        goto failed;
    }

    ngx_close_file(fd);

    if (ngx_rename_file(tmp, to) != 0) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "chat: rename to \"%s\" failed", to);
        ngx_delete_file(tmp);
        return NGX_ERROR;
    }

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                  "chat: copying an upload to \"%s\" failed", tmp);
    ngx_close_file(fd);
    ngx_delete_file(tmp);
    return NGX_ERROR;
}


/*
 * GET /api/v1/attachments/{id}[?size=thumb] (a route of ngx_chat_api.c):
 * asks a worker whether the caller may have it (media.get), and answers
 * in ngx_chat_media_download_answer.
 */
ngx_int_t
ngx_chat_media_download_handler(ngx_http_request_t *r,
    ngx_chat_caller_t *caller)
{
    u_char              *p, *value;
    size_t               len;
    ngx_int_t            rc, id;
    ngx_str_t            body, path;
    const char          *size;
    chat_query_rc_t      qrc;
    ngx_chat_pending_t  *pending;

    /* the route matched "<chat_api_prefix>/attachments/<id>" */
    id = NGX_ERROR;
    if (ngx_chat_api_path(r, &path) == NGX_OK
        && path.len > sizeof(NGX_CHAT_MEDIA_DOWNLOADS) - 1)
    {
        p = path.data + sizeof(NGX_CHAT_MEDIA_DOWNLOADS) - 1;
        id = ngx_atoi(p, path.data + path.len - p);
    }

    if (id <= 0) {
        return ngx_chat_send_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                   "no such attachment");
    }

    /* a decoded value is never longer than the query */
    value = ngx_pnalloc(r->pool, r->args.len + 1);
    if (value == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = NULL;
    qrc = chat_query_get((const char *) r->args.data, r->args.len, "size", 4,
                         (char *) value, &len);

    if (qrc == CHAT_QUERY_OK && len == 5
        && ngx_strncmp(value, "thumb", 5) == 0)
    {
        size = ",\"size\":\"thumb\"";

    } else if (qrc != CHAT_QUERY_ABSENT) {
        return ngx_chat_send_error(r, NGX_HTTP_BAD_REQUEST, "invalid_query",
                                   "size must be \"thumb\" or absent");
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 64);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = p;
    body.len = ngx_sprintf(p, "{\"attachment_id\":%i%s}", id,
                           size ? size : "") - p;

    pending = ngx_chat_http_pending(r);
    if (pending == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pending->answer = ngx_chat_media_download_answer;

    rc = ngx_chat_bus_send(ngx_chat_gateway(r), pending, r->connection->log,
                           "media.get", caller, NULL, &body);

    if (rc == NGX_OK) {
        /* the answer comes later: keep the request until then */
        r->main->count++;
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED) {
        return ngx_chat_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   "the command bus (redis) is unavailable");
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/* The worker's word on a download: an error as it is, or the file by an
 * internal redirect to chat_media_internal. */
static void
ngx_chat_media_download_answer(ngx_chat_pending_t *p, ngx_uint_t status,
    u_char *body, size_t len)
{
    char                  rel[CHAT_MEDIA_REL_PATH_LEN];
    cJSON                *json;
    ngx_str_t             uri;
    const cJSON          *sha, *type, *name, *inl;
    ngx_table_elt_t      *h;
    ngx_http_request_t   *r;
    ngx_chat_main_conf_t *cmcf;

    r = p->data;

    if (status != NGX_HTTP_OK) {
        ngx_chat_http_retry_after(r, p->retry_after);
        ngx_chat_finalize_json(r, status, body, len);
        return;
    }

    json = cJSON_ParseWithLength((const char *) body, len);
    sha = cJSON_GetObjectItemCaseSensitive(json, "sha256");
    type = cJSON_GetObjectItemCaseSensitive(json, "content_type");
    name = cJSON_GetObjectItemCaseSensitive(json, "name");
    inl = cJSON_GetObjectItemCaseSensitive(json, "inline");

    if (!cJSON_IsString(sha) || !cJSON_IsString(type) || !cJSON_IsString(name)
        || chat_media_rel_path(rel, sizeof(rel), sha->valuestring) != 0)
    {
        cJSON_Delete(json);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    uri.len = cmcf->media_internal.len + ngx_strlen(rel);
    uri.data = ngx_pnalloc(r->pool, uri.len);
    r->headers_out.content_type.len = ngx_strlen(type->valuestring);
    r->headers_out.content_type.data =
        ngx_pnalloc(r->pool, r->headers_out.content_type.len);
    h = ngx_list_push(&r->headers_out.headers);

    if (uri.data == NULL || r->headers_out.content_type.data == NULL
        || h == NULL
        || ngx_chat_media_disposition(r, name->valuestring,
                                      cJSON_IsTrue(inl)) != NGX_OK)
    {
        cJSON_Delete(json);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memcpy(ngx_cpymem(uri.data, cmcf->media_internal.data,
                          cmcf->media_internal.len),
               rel, ngx_strlen(rel));
    ngx_memcpy(r->headers_out.content_type.data, type->valuestring,
               r->headers_out.content_type.len);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    cJSON_Delete(json);

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, NGX_CHAT_MEDIA_CACHE);

    /* the static handler of the internal location sends the file (and
     * keeps the type set here: ngx_http_set_content_type leaves it) */
    (void) ngx_http_internal_redirect(r, &uri, NULL);
    ngx_http_finalize_request(r, NGX_DONE);
}


/*
 * Content-Disposition: inline for images, attachment for everything else
 * (a PDF or a text file is saved, never rendered on our origin), with the
 * name twice: an ASCII fallback and RFC 5987's UTF-8 filename*.
 */
static ngx_int_t
ngx_chat_media_disposition(ngx_http_request_t *r, const char *name,
    ngx_uint_t inl)
{
    u_char           *v, *q;
    size_t            n, i;
    ngx_table_elt_t  *h;

    n = ngx_strlen(name);

    /* "attachment; filename=\"" + n + "\"; filename*=UTF-8''" + 3n */
    v = ngx_pnalloc(r->pool, 64 + n * 4);
    h = ngx_list_push(&r->headers_out.headers);
    if (v == NULL || h == NULL) {
        return NGX_ERROR;
    }

    q = ngx_sprintf(v, "%s; filename=\"", inl ? "inline" : "attachment");

    for (i = 0; i < n; i++) {
        u_char  c = (u_char) name[i];

        *q++ = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : '_';
    }

    q = ngx_cpymem(q, "\"; filename*=UTF-8''", 20);

    for (i = 0; i < n; i++) {
        u_char  c = (u_char) name[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')
        {
            *q++ = c;
        } else {
            q = ngx_sprintf(q, "%%%02XD", c);
        }
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Content-Disposition");
    h->value.data = v;
    h->value.len = q - v;

    return NGX_OK;
}
