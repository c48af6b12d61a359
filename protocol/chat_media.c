/*
 * chat_media.c: the upload allow-list and its sniffer, and the store's
 * layout.  See chat_media.h.
 *
 * Allowed, recognised by their magic bytes:
 *   images      JPEG, PNG, GIF, WebP (shown inline, thumbnailed)
 *   documents   PDF; ZIP containers, named by their extension when it is
 *               one of the office formats (.docx .xlsx .pptx .odt .ods
 *               .odp), else application/zip
 *   text        UTF-8 without NUL or control characters other than tab,
 *               newline, carriage return and form feed, in the first
 *               CHAT_MEDIA_SNIFF_LEN bytes
 * Refused: everything else, SVG included (it carries scripts) and HTML
 * (it is text, but starts with markup a browser would run if it ever
 * sniffed it: downloads carry nosniff, and "<" first is refused anyway).
 */

#include <string.h>

#include "chat_media.h"
#include "chat_utf8.h"


typedef struct {
    const char  *ext;
    const char  *type;
} chat_media_office_t;

static const chat_media_office_t  chat_media_office[] = {
    { ".docx", "application/vnd.openxmlformats-officedocument."
               "wordprocessingml.document" },
    { ".xlsx", "application/vnd.openxmlformats-officedocument."
               "spreadsheetml.sheet" },
    { ".pptx", "application/vnd.openxmlformats-officedocument."
               "presentationml.presentation" },
    { ".odt", "application/vnd.oasis.opendocument.text" },
    { ".ods", "application/vnd.oasis.opendocument.spreadsheet" },
    { ".odp", "application/vnd.oasis.opendocument.presentation" },
    { NULL, NULL }
};

static const char *const  chat_media_images[] = {
    "image/jpeg", "image/png", "image/gif", "image/webp", NULL
};

static const char *const  chat_media_others[] = {
    "application/pdf", "application/zip", "text/plain; charset=utf-8", NULL
};


static int
chat_media_has_suffix(const char *name, size_t len, const char *ext)
{
    size_t  i, n;

    n = strlen(ext);
    if (name == NULL || len < n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        char  c = name[len - n + i];

        if (c >= 'A' && c <= 'Z') {
            c = (char) (c - 'A' + 'a');
        }
        if (c != ext[i]) {
            return 0;
        }
    }

    return 1;
}


/* UTF-8 text: a sequence cut by the end of an incomplete window is fine */
static int
chat_media_is_text(const unsigned char *head, size_t len, int complete)
{
    size_t  i, cut;

    if (len == 0 || head[0] == '<') {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (head[i] < 0x20 && head[i] != '\t' && head[i] != '\n'
            && head[i] != '\r' && head[i] != '\f')
        {
            return 0;
        }
        if (head[i] == 0x7f) {
            return 0;
        }
    }

    for (cut = 0; cut <= (complete ? 0 : 3) && cut < len; cut++) {
        if (chat_utf8_valid(head, len - cut)) {
            return 1;
        }
    }

    return 0;
}


const char *
chat_media_sniff(const unsigned char *head, size_t len, const char *name,
    size_t name_len, int complete)
{
    const chat_media_office_t  *o;

    if (len >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff) {
        return "image/jpeg";
    }

    if (len >= 8 && memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0) {
        return "image/png";
    }

    if (len >= 6 && (memcmp(head, "GIF87a", 6) == 0
                     || memcmp(head, "GIF89a", 6) == 0))
    {
        return "image/gif";
    }

    if (len >= 12 && memcmp(head, "RIFF", 4) == 0
        && memcmp(head + 8, "WEBP", 4) == 0)
    {
        return "image/webp";
    }

    if (len >= 5 && memcmp(head, "%PDF-", 5) == 0) {
        return "application/pdf";
    }

    if (len >= 4 && memcmp(head, "PK\x03\x04", 4) == 0) {
        for (o = chat_media_office; o->ext; o++) {
            if (chat_media_has_suffix(name, name_len, o->ext)) {
                return o->type;
            }
        }
        return "application/zip";
    }

    if (chat_media_is_text(head, len, complete)) {
        return "text/plain; charset=utf-8";
    }

    return NULL;
}


int
chat_media_type_is_image(const char *type)
{
    const char *const  *t;

    for (t = chat_media_images; *t; t++) {
        if (strcmp(*t, type) == 0) {
            return 1;
        }
    }

    return 0;
}


int
chat_media_type_allowed(const char *type)
{
    const char *const           *t;
    const chat_media_office_t   *o;

    if (chat_media_type_is_image(type)) {
        return 1;
    }

    for (t = chat_media_others; *t; t++) {
        if (strcmp(*t, type) == 0) {
            return 1;
        }
    }

    for (o = chat_media_office; o->ext; o++) {
        if (strcmp(o->type, type) == 0) {
            return 1;
        }
    }

    return 0;
}


int
chat_media_sha256_valid(const char *s, size_t len)
{
    size_t  i;

    if (len != 64) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }

    return 1;
}


int
chat_media_rel_path(char *buf, size_t size, const char *sha256)
{
    if (size < CHAT_MEDIA_REL_PATH_LEN
        || !chat_media_sha256_valid(sha256, strlen(sha256)))
    {
        return -1;
    }

    memcpy(buf, "blobs/", 6);
    buf[6] = sha256[0];
    buf[7] = sha256[1];
    buf[8] = '/';
    memcpy(buf + 9, sha256, 64);
    buf[73] = '\0';

    return 0;
}
