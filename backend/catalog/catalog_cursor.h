/*
 * catalog_cursor.h: the opaque next_cursor of catalog lists.  Pure code,
 * see catalog_cursor.c.
 */

#ifndef CHAT_CATALOG_CURSOR_H
#define CHAT_CATALOG_CURSOR_H

#include <stddef.h>
#include <stdint.h>

/* a title is at most 500 characters (2000 bytes of UTF-8) */
#define CHAT_CURSOR_KEY_MAX   2048
#define CHAT_CURSOR_TEXT_MAX  (((CHAT_CURSOR_KEY_MAX + 64) * 4) / 3 + 4)

/* The position after the last row of a page: which order it belongs to,
 * that row's sort key (as PostgreSQL prints it) and its id. */
typedef struct {
    char     order[16];
    char     key[CHAT_CURSOR_KEY_MAX + 1];
    int64_t  id;
} chat_catalog_cursor_t;

/*
 * Writes the cursor for (order, key, id) to out (URL-safe base64 of
 * "v1|<order>|<key>|<id>").  Returns 0, or -1 when order or key is too
 * long or out too small.
 */
int chat_catalog_cursor_encode(const char *order, const char *key,
    int64_t id, char *out, size_t out_size);

/*
 * Decodes s (len bytes) into c.  Returns 0, or -1 when s is not a cursor
 * this code made (bad base64, wrong version, missing parts, an id that is
 * not a positive integer, a key with a NUL), or it was made for another
 * order than expect.
 */
int chat_catalog_cursor_decode(const char *s, size_t len, const char *expect,
    chat_catalog_cursor_t *c);

#endif /* CHAT_CATALOG_CURSOR_H */
