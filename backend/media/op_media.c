/*
 * op_media.c: uploads, downloads and covers, the workers' side.
 *
 *   media.upload       {sha256, size, content_type, name}      -> 201
 *                      {"attachment": {id, url, content_type, size,
 *                      name, thumb_url?}}
 *   media.get          {attachment_id, size?: "thumb"}         -> 200
 *                      {sha256, content_type, name, inline}
 *   admin.book.cover   {book_id, sha256, size, content_type}   -> 200
 *                      {"book": {... cover_url, cover_thumb_url}}
 *
 * The bytes never travel on the bus.  The edge took the body to disk,
 * recognised its type from its first bytes, hashed it and moved it into
 * the store (ngx_chat_media.c); these commands carry only what it found.
 * media.upload records the upload for its user (within the quota) and
 * queues an image for its thumbnail; media.get is the download's
 * authorization: the uploader, or a member of a conversation the
 * attachment was sent in, gets the file's name in the store, everyone
 * else 404 whether or not it exists (the edge then has nginx serve the
 * file itself); admin.book.cover makes the cover's two sizes once and
 * publishes them.
 *
 * Thumbnails are made off the interactive path: an upload answers at
 * once, and the admin lane's thumbnail task (every second) makes the
 * pending ones, a few at a time.  Until then an image's thumb_url
 * answers the original.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "chat_media.h"
#include "chat_utf8.h"
#include "conv_input.h"
#include "log.h"
#include "media.h"
#include "media_image.h"
#include "media_store.h"


/* a chat thumbnail fits in this box */
#define CHAT_MEDIA_THUMB_BOX     320

/* a cover: the page's size and the list's */
#define CHAT_MEDIA_COVER_W       400
#define CHAT_MEDIA_COVER_H       600
#define CHAT_MEDIA_COVER_THUMB_W 160
#define CHAT_MEDIA_COVER_THUMB_H 240

/* The worker's store (503 when there is none) and the edge's report of
 * a file it stored: sha256 (in the store), its size and type.  1, or 0
 * after a 4xx or 503, or -1. */
static int
chat_media_stored_input(chat_op_ctx_t *ctx, chat_media_store_t *store,
    const char **sha, int64_t *size, const char **type)
{
    int  rc;

    if (ctx->cfg->media_root == NULL) {
        return chat_op_error(ctx, 503, "unavailable",
                             "uploads are not configured (--media-root)")
               == 0 ? 0 : -1;
    }

    chat_media_store_local(store, ctx->cfg->media_root);

    *sha = chat_op_string(ctx, "sha256");
    *type = *sha ? chat_op_string(ctx, "content_type") : NULL;
    if (*type == NULL) {
        return ctx->reply ? 0 : -1;
    }

    rc = chat_op_integer(ctx, "size", 1, 1, size);
    if (rc != 1) {
        return rc;
    }

    if (!chat_media_sha256_valid(*sha, strlen(*sha))) {
        return chat_op_invalid(ctx, "sha256 must be 64 lowercase hex "
                                    "digits") == 0 ? 0 : -1;
    }

    if (!chat_media_type_allowed(*type)) {
        return chat_op_error(ctx, 415, "unsupported_type",
                             "this type of file is not accepted") == 0
               ? 0 : -1;
    }

    rc = store->ops->exists(store, *sha);
    if (rc < 0) {
        return -1;
    }
    if (rc == 0) {
        return chat_op_invalid(ctx, "no such file in the store") == 0
               ? 0 : -1;
    }

    return 1;
}


int
chat_op_media_upload(chat_op_ctx_t *ctx)
{
    int                  rc;
    char                 u[24], sz[24], quota[24];
    long                 chars;
    int64_t              size;
    PGresult            *res;
    const char          *sha, *type, *name, *values[7];
    chat_media_store_t   store;

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_media_stored_input(ctx, &store, &sha, &size, &type);
    }
    if (rc != 1) {
        return rc;
    }

    name = chat_op_string(ctx, "name");
    if (name == NULL) {
        return ctx->reply ? 0 : -1;
    }

    chars = chat_utf8_valid((const unsigned char *) name, strlen(name))
            ? chat_catalog_text_chars(name) : -1;
    if (chars < 1 || chars > CHAT_MEDIA_NAME_MAX || strchr(name, '\n')
        || strchr(name, '/') || strchr(name, '\\'))
    {
        return chat_op_invalid(ctx, "name must be 1 to 255 characters "
                                    "without slashes or line breaks");
    }

    values[0] = chat_i64(u, ctx->cmd->uid);
    values[1] = sha;
    values[2] = chat_i64(sz, size);
    values[3] = type;
    values[4] = name;
    values[5] = chat_media_type_is_image(type) ? "pending" : "none";
    values[6] = chat_i64(quota, ctx->cfg->media_quota_bytes);

    /* the quota under a lock of the user's row: two uploads at once
     * cannot both squeeze under it */
    res = chat_db_query_prepared(ctx->db,
        "WITH me AS (SELECT id FROM users WHERE id = $1::bigint "
        "            FOR UPDATE), "
        "used AS (SELECT coalesce(sum(size), 0) AS n FROM attachments "
        "         WHERE uploader_id = $1::bigint), "
        "ins AS (INSERT INTO attachments (uploader_id, sha256, size, "
        "                                 content_type, name, thumb_state) "
        "        SELECT $1::bigint, $2::text, $3::bigint, $4::text, "
        "               $5::text, $6::text FROM me, used "
        "        WHERE used.n + $3::bigint <= $7::bigint "
        "        RETURNING attachment_json(attachments)::text AS j) "
        "SELECT j FROM ins",
        7, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_error(ctx, 413, "quota_exceeded",
                             "your uploads would exceed your storage quota");
    }

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL
        || cJSON_AddItemToObject(ctx->reply, "attachment",
                                 cJSON_Parse(PQgetvalue(res, 0, 0)))
           == 0)
    {
        PQclear(res);
        return -1;
    }

    PQclear(res);
    ctx->status = 201;
    return 0;
}


int
chat_op_media_get(chat_op_ctx_t *ctx)
{
    int           rc, thumb;
    char          id[24], u[24];
    int64_t       aid;
    PGresult     *res;
    const char   *values[2], *sha, *type, *name;
    const cJSON  *size;

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "attachment_id", 1, 1, &aid);
    }
    if (rc != 1) {
        return rc;
    }

    size = cJSON_GetObjectItemCaseSensitive(ctx->body, "size");
    thumb = cJSON_IsString(size) && strcmp(size->valuestring, "thumb") == 0;
    if (size != NULL && !thumb) {
        return chat_op_invalid(ctx, "size must be \"thumb\" or absent");
    }

    values[0] = chat_i64(id, aid);
    values[1] = chat_i64(u, ctx->cmd->uid);

    res = chat_db_query_prepared(ctx->db,
        "SELECT a.sha256, a.content_type, a.name, a.thumb_sha256 "
        "FROM attachments a "
        "WHERE a.id = $1 "
        "  AND (a.uploader_id = $2 "
        "       OR EXISTS (SELECT 1 FROM attachment_links l "
        "                  JOIN conversation_members m "
        "                    ON m.conversation_id = l.conversation_id "
        "                   AND m.user_id = $2 "
        "                  WHERE l.attachment_id = a.id))",
        2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_error(ctx, 404, "not_found", "no such attachment");
    }

    sha = PQgetvalue(res, 0, 0);
    type = PQgetvalue(res, 0, 1);
    name = PQgetvalue(res, 0, 2);

    if (thumb && !PQgetisnull(res, 0, 3)) {
        sha = PQgetvalue(res, 0, 3);
        type = "image/jpeg";
    }

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL
        || cJSON_AddStringToObject(ctx->reply, "sha256", sha) == NULL
        || cJSON_AddStringToObject(ctx->reply, "content_type", type) == NULL
        || cJSON_AddStringToObject(ctx->reply, "name", name) == NULL
        || cJSON_AddBoolToObject(ctx->reply, "inline",
                                 chat_media_type_is_image(type)) == NULL)
    {
        PQclear(res);
        return -1;
    }

    PQclear(res);
    ctx->status = 200;
    return 0;
}


/* One size of a cover, published as covers/<sha>-<suffix>.jpg.  0, or -1
 * with *why set for the client (NULL: our failure). */
static int
chat_media_cover_size(const chat_media_store_t *store, const char *path,
    const char *sha, const char *suffix, int w, int h, const char **why)
{
    int      rc, ow, oh;
    char     name[128];
    void    *jpeg;
    size_t   len;

    if (chat_media_image_resize(path, w, h, &jpeg, &len, &ow, &oh, why)
        != 0)
    {
        return -1;
    }

    chat_media_cover_name(name, sizeof(name), "", sha, suffix);
    rc = store->ops->publish(store, name, jpeg, len);
    chat_media_image_free(jpeg);

    if (rc != 0) {
        *why = NULL;
        return -1;
    }

    return 0;
}


/*
 * The book's cover columns first (0 rows: no such live book, 404), then
 * the two sizes made and published: a refused image answers 400 and the
 * update rolls back with it; the names are known before the files exist
 * (the original's hash), and nobody sees them before the commit.
 */
int
chat_op_admin_book_cover(chat_op_ctx_t *ctx)
{
    int                  rc;
    char                 id[24], path[4096], large[256], small[256];
    cJSON               *book;
    int64_t              bid, size;
    PGresult            *res;
    const char          *sha, *type, *why, *values[4];
    chat_media_store_t   store;

    rc = chat_catalog_require_admin(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "book_id", 1, 1, &bid);
    }
    if (rc == 1) {
        rc = chat_media_stored_input(ctx, &store, &sha, &size, &type);
    }
    if (rc != 1) {
        return rc;
    }

    if (!chat_media_type_is_image(type)) {
        return chat_op_error(ctx, 415, "unsupported_type",
                             "a cover must be a JPEG, PNG, GIF or WebP "
                             "image");
    }

    chat_media_cover_name(large, sizeof(large), CHAT_MEDIA_PUBLIC_PREFIX,
                          sha, "l");
    chat_media_cover_name(small, sizeof(small), CHAT_MEDIA_PUBLIC_PREFIX,
                          sha, "s");

    values[0] = chat_i64(id, bid);
    values[1] = sha;
    values[2] = large;
    values[3] = small;

    res = chat_db_query_prepared(ctx->db,
        "UPDATE books SET cover_sha256 = $2, cover_url = $3, "
        "                 cover_thumb_url = $4, updated_at = now() "
        "WHERE id = $1 AND deleted_at IS NULL RETURNING id",
        4, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }
    rc = PQntuples(res);
    PQclear(res);

    if (rc == 0) {
        return chat_op_error(ctx, 404, "not_found", "no such book");
    }

    if (store.ops->local(&store, sha, path, sizeof(path)) != 0) {
        return -1;
    }

    if (chat_media_cover_size(&store, path, sha, "l", CHAT_MEDIA_COVER_W,
                              CHAT_MEDIA_COVER_H, &why) != 0
        || chat_media_cover_size(&store, path, sha, "s",
                                 CHAT_MEDIA_COVER_THUMB_W,
                                 CHAT_MEDIA_COVER_THUMB_H, &why) != 0)
    {
        if (why == NULL) {
            return -1;
        }

        return chat_op_error(ctx, 400, why,
                             strcmp(why, "image_too_large") == 0
                             ? "the image has too many pixels"
                             : "the image could not be read");
    }

    if (chat_catalog_book_json(ctx, bid, &book) != 1) {
        return -1;
    }

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL) {
        cJSON_Delete(book);
        return -1;
    }
    cJSON_AddItemToObject(ctx->reply, "book", book);

    ctx->status = 200;
    return 0;
}


int
chat_media_message_attachments(chat_op_ctx_t *ctx, char **csv)
{
    int           n, i, j;
    char          buf[24];
    int64_t       ids[CHAT_MEDIA_MAX_PER_MESSAGE];
    PGresult     *res;
    const char   *values[2];
    const cJSON  *list, *item;

    *csv = NULL;

    list = cJSON_GetObjectItemCaseSensitive(ctx->body, "attachments");

    if (list == NULL || (cJSON_IsArray(list)
                         && cJSON_GetArraySize(list) == 0))
    {
        *csv = strdup("{}");
        return *csv ? 1 : -1;
    }

    n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;

    if (n < 0 || n > CHAT_MEDIA_MAX_PER_MESSAGE) {
        return chat_op_invalid(ctx, "attachments must be an array of up to "
                                    "10 attachment ids") == 0 ? 0 : -1;
    }

    i = 0;
    cJSON_ArrayForEach(item, list) {
        if (chat_json_integer(item, 1, CHAT_INT_MAX, &ids[i]) != 0) {
            return chat_op_invalid(ctx, "attachments must be attachment "
                                        "ids") == 0 ? 0 : -1;
        }
        for (j = 0; j < i; j++) {
            if (ids[j] == ids[i]) {
                return chat_op_invalid(ctx, "an attachment is named "
                                            "twice") == 0 ? 0 : -1;
            }
        }
        i++;
    }

    *csv = chat_db_int_array(ids, (size_t) n);
    if (*csv == NULL) {
        return -1;
    }

    values[0] = *csv;
    values[1] = chat_i64(buf, ctx->cmd->uid);

    res = chat_db_query_prepared(ctx->db,
        "SELECT count(*) FROM attachments "
        "WHERE id = ANY ($1::bigint[]) AND uploader_id = $2",
        2, values, NULL, NULL);
    if (res == NULL) {
        free(*csv);
        *csv = NULL;
        return -1;
    }

    j = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);

    if (j != n) {
        free(*csv);
        *csv = NULL;
        return chat_op_error(ctx, 400, "invalid_attachment",
                             "an attachment is not one of your uploads")
               == 0 ? 0 : -1;
    }

    return 1;
}


/*
 * The thumbnail task: the pending images, oldest first, a few per run.
 * Another admin worker may make the same one at the same time: the file
 * is content-addressed and the update checks the state, so that only
 * costs the work twice.
 */
void
chat_media_thumbnails(chat_db_t *db, const chat_config_t *cfg)
{
    int                  i, n, w, h;
    char                 path[4096], sha[65], ws[24], hs[24];
    void                *jpeg;
    size_t               len;
    PGresult            *res, *upd;
    const char          *why, *values[4];
    chat_media_store_t   store;

    if (cfg->media_root == NULL) {
        return;
    }

    chat_media_store_local(&store, cfg->media_root);

    res = chat_db_query(db,
        /* a few per run: the lane's other work goes on between runs */
        "SELECT id, sha256 FROM attachments WHERE thumb_state = 'pending' "
        "ORDER BY id LIMIT 4",
        0, NULL, NULL, NULL);
    if (res == NULL) {
        return;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        values[0] = PQgetvalue(res, i, 0);
        jpeg = NULL;

        if (store.ops->local(&store, PQgetvalue(res, i, 1), path,
                             sizeof(path)) != 0
            || chat_media_image_resize(path, CHAT_MEDIA_THUMB_BOX,
                                       CHAT_MEDIA_THUMB_BOX, &jpeg, &len,
                                       &w, &h, &why) != 0
            || store.ops->put(&store, jpeg, len, sha) != 0)
        {
            chat_log_warn("media: no thumbnail for attachment %s",
                          values[0]);
            upd = chat_db_query(db,
                "UPDATE attachments SET thumb_state = 'failed' "
                "WHERE id = $1 AND thumb_state = 'pending'",
                1, values, NULL, NULL);

        } else {
            values[1] = sha;
            values[2] = chat_i64(ws, w);
            values[3] = chat_i64(hs, h);
            upd = chat_db_query(db,
                "UPDATE attachments SET thumb_state = 'ready', "
                "       thumb_sha256 = $2, width = $3, height = $4 "
                "WHERE id = $1 AND thumb_state = 'pending'",
                4, values, NULL, NULL);
        }

        if (jpeg != NULL) {
            chat_media_image_free(jpeg);
        }
        PQclear(upd);
    }

    PQclear(res);
}
