/*
 * demo_covers.c: `chat-backend demo-covers [N]`: plausible covers for the
 * demo catalog, drawn here, never downloaded.
 *
 * Each cover is an SVG (a colour from the book's id, a band, the title
 * set in a serif over a few lines, the first author at the foot) that
 * libvips renders; the result goes through the same path as an admin's
 * upload: the large JPEG into the store by its hash, both sizes published
 * as covers/<hash>-l.jpg and -s.jpg, the book's cover columns set.  Only
 * the first N books without a cover by title (the store's default order,
 * so its first pages; the stack asks for 200) get one, so `make run` stays
 * fast (60 take a second); a re-run draws only what is missing.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "media.h"
#include "media_image.h"
#include "media_store.h"


#define CHAT_COVER_LINE   16        /* characters per title line */
#define CHAT_COVER_LINES  5


/* s XML-escaped onto the end of buf (at most size bytes in all) */
static void
chat_cover_escape(char *buf, size_t size, const char *s, size_t n)
{
    size_t       len, i;
    const char  *rep;
    char         one[2];

    len = strlen(buf);

    for (i = 0; i < n && s[i]; i++) {
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        default:
            one[0] = s[i];
            one[1] = '\0';
            rep = one;
        }

        if (len + strlen(rep) + 1 >= size) {
            return;
        }
        memcpy(buf + len, rep, strlen(rep) + 1);
        len += strlen(rep);
    }
}


/* The SVG of a cover, into buf. */
static void
chat_cover_svg(char *buf, size_t size, long id, const char *title,
    const char *author)
{
    int          hue, line, y;
    size_t       len, take, n;
    const char  *p, *end;

    hue = (int) ((id * 47) % 360);

    snprintf(buf, size,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" "
        "height=\"600\" viewBox=\"0 0 400 600\">"
        "<rect width=\"400\" height=\"600\" fill=\"hsl(%d,45%%,32%%)\"/>"
        "<rect y=\"390\" width=\"400\" height=\"10\" "
        "fill=\"hsl(%d,60%%,70%%)\"/>"
        "<rect x=\"24\" y=\"24\" width=\"352\" height=\"552\" fill=\"none\" "
        "stroke=\"hsl(%d,40%%,80%%)\" stroke-width=\"2\"/>",
        hue, (hue + 180) % 360, hue);

    /* the title in lines of whole words */
    p = title;
    end = title + strlen(title);
    y = 110;

    for (line = 0; line < CHAT_COVER_LINES && p < end; line++) {
        while (*p == ' ') {
            p++;
        }

        n = (size_t) (end - p);
        take = n <= CHAT_COVER_LINE ? n : CHAT_COVER_LINE;
        if (take < n) {
            while (take > 0 && p[take] != ' ') {
                take--;
            }
            if (take == 0) {
                take = CHAT_COVER_LINE;
            }
        }

        /* never cut a UTF-8 sequence */
        while (take < n && ((unsigned char) p[take] & 0xc0) == 0x80) {
            take++;
        }

        len = strlen(buf);
        snprintf(buf + len, size - len,
                 "<text x=\"200\" y=\"%d\" text-anchor=\"middle\" "
                 "font-family=\"DejaVu Serif, serif\" font-size=\"34\" "
                 "font-weight=\"bold\" fill=\"#fff\">", y);
        chat_cover_escape(buf, size, p, take);
        len = strlen(buf);
        snprintf(buf + len, size - len, "</text>");

        p += take;
        y += 46;
    }

    len = strlen(buf);
    snprintf(buf + len, size - len,
             "<text x=\"200\" y=\"470\" text-anchor=\"middle\" "
             "font-family=\"DejaVu Sans, sans-serif\" font-size=\"22\" "
             "fill=\"hsl(%d,40%%,88%%)\">", hue);
    chat_cover_escape(buf, size, author, 40);
    len = strlen(buf);
    snprintf(buf + len, size - len, "</text></svg>");
}


/* Draws, stores and records the cover of one book.  0, or -1. */
static int
chat_cover_draw(chat_db_t *db, const chat_media_store_t *store, long id,
    const char *title, const char *author)
{
    int          rc;
    char         svg[8192], sha[65], large[256], small[256], idbuf[24];
    void        *big, *thumb;
    size_t       big_len, thumb_len;
    PGresult    *res;
    const char  *values[4];

    chat_cover_svg(svg, sizeof(svg), id, title, author);

    big = thumb = NULL;
    rc = -1;

    if (chat_media_image_from_svg(svg, strlen(svg), 400, &big, &big_len) != 0
        || chat_media_image_from_svg(svg, strlen(svg), 160, &thumb,
                                     &thumb_len) != 0
        || store->ops->put(store, big, big_len, sha) != 0)
    {
        goto done;
    }

    chat_media_cover_name(large, sizeof(large), "", sha, "l");
    chat_media_cover_name(small, sizeof(small), "", sha, "s");

    if (store->ops->publish(store, large, big, big_len) != 0
        || store->ops->publish(store, small, thumb, thumb_len) != 0)
    {
        goto done;
    }

    chat_media_cover_name(large, sizeof(large), CHAT_MEDIA_PUBLIC_PREFIX, sha,
                          "l");
    chat_media_cover_name(small, sizeof(small), CHAT_MEDIA_PUBLIC_PREFIX, sha,
                          "s");
    snprintf(idbuf, sizeof(idbuf), "%ld", id);

    values[0] = idbuf;
    values[1] = sha;
    values[2] = large;
    values[3] = small;

    res = chat_db_query(db,
        "UPDATE books SET cover_sha256 = $2, cover_url = $3, "
        "                 cover_thumb_url = $4 "
        "WHERE id = $1 AND cover_sha256 IS NULL",
        4, values, NULL, NULL);
    if (res != NULL) {
        PQclear(res);
        rc = 0;
    }

done:

    if (big != NULL) {
        chat_media_image_free(big);
    }
    if (thumb != NULL) {
        chat_media_image_free(thumb);
    }
    return rc;
}


int
chat_media_demo_covers(const chat_config_t *cfg, long limit)
{
    int                  i, n, made;
    char                 lim[24];
    chat_db_t            db;
    PGresult            *res;
    const char          *values[1];
    chat_media_store_t   store;

    if (cfg->media_root == NULL) {
        chat_log_error("demo-covers: no --media-root");
        return 1;
    }

    chat_media_store_local(&store, cfg->media_root);
    chat_media_image_allow_svg();
    chat_db_init(&db, cfg->pg, "chat-backend demo-covers");

    if (chat_db_connect(&db) != 0) {
        return 1;
    }

    snprintf(lim, sizeof(lim), "%ld", limit);
    values[0] = lim;

    /* the books the store's first pages show: its default order, title */
    res = chat_db_query(&db,
        "SELECT b.id, b.title, coalesce((SELECT au.name FROM book_authors ba "
        "  JOIN authors au ON au.id = ba.author_id WHERE ba.book_id = b.id "
        "  ORDER BY ba.position, au.id LIMIT 1), '') "
        "FROM books b WHERE b.cover_sha256 IS NULL AND b.deleted_at IS NULL "
        "ORDER BY b.title, b.id LIMIT $1",
        1, values, NULL, NULL);
    if (res == NULL) {
        chat_db_close(&db);
        return 1;
    }

    n = PQntuples(res);
    made = 0;

    for (i = 0; i < n; i++) {
        if (chat_cover_draw(&db, &store, strtol(PQgetvalue(res, i, 0), NULL,
                                                10),
                            PQgetvalue(res, i, 1), PQgetvalue(res, i, 2))
            == 0)
        {
            made++;
        }
    }

    PQclear(res);

    chat_db_close(&db);

    printf("demo-covers: drew %d of %d\n", made, n);
    return made == n ? 0 : 1;
}
