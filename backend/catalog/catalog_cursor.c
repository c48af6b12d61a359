/*
 * catalog_cursor.c: keyset cursors for catalog lists (browse, search,
 * reviews).
 *
 * A page ends at a row; the next page starts strictly after that row's
 * (sort key, id) in the list's order, so rows inserted meanwhile never
 * shift a page the way OFFSET would: every row that exists for the whole
 * walk is returned exactly once.  The cursor carries the order it was
 * made for, so a cursor of the price order handed to the title order is
 * refused rather than misread.
 *
 * The text is URL-safe base64 of "v1|<order>|<key>|<id>".  The key may
 * itself contain "|" (a title): it is everything between the second "|"
 * and the last one.  Opaque to clients, but not secret: a forged cursor
 * can only name a position in a list anyone may read.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_cursor.h"
#include "chat_base64.h"


int
chat_catalog_cursor_encode(const char *order, const char *key, int64_t id,
    char *out, size_t out_size)
{
    int     n;
    char    plain[CHAT_CURSOR_KEY_MAX + 64];
    size_t  olen;

    olen = strlen(order);
    if (olen == 0 || olen >= sizeof(((chat_catalog_cursor_t *) 0)->order)
        || strchr(order, '|') != NULL || strlen(key) > CHAT_CURSOR_KEY_MAX
        || id <= 0)
    {
        return -1;
    }

    n = snprintf(plain, sizeof(plain), "v1|%s|%s|%lld", order, key,
                 (long long) id);
    if (n < 0 || (size_t) n >= sizeof(plain)) {
        return -1;
    }

    return chat_b64_encode(CHAT_B64_URL, (const unsigned char *) plain,
                           (size_t) n, out, out_size) < 0 ? -1 : 0;
}


int
chat_catalog_cursor_decode(const char *s, size_t len, const char *expect,
    chat_catalog_cursor_t *c)
{
    int            n;
    char          *end;
    size_t         olen, klen;
    long long      id;
    unsigned char  plain[CHAT_CURSOR_KEY_MAX + 64];
    const char    *p, *order, *bar, *last;

    if (len == 0 || len > CHAT_CURSOR_TEXT_MAX) {
        return -1;
    }

    n = chat_b64_decode(CHAT_B64_URL, s, len, plain, sizeof(plain) - 1);
    if (n < 0) {
        return -1;
    }

    if (memchr(plain, '\0', (size_t) n) != NULL) {
        return -1;
    }
    plain[n] = '\0';

    p = (const char *) plain;
    if (strncmp(p, "v1|", 3) != 0) {
        return -1;
    }

    order = p + 3;
    bar = strchr(order, '|');
    last = strrchr(p, '|');
    if (bar == NULL || last == bar) {
        return -1;
    }

    olen = (size_t) (bar - order);
    klen = (size_t) (last - bar - 1);
    if (olen == 0 || olen >= sizeof(c->order) || klen > CHAT_CURSOR_KEY_MAX) {
        return -1;
    }

    if (strlen(expect) != olen || memcmp(expect, order, olen) != 0) {
        return -1;
    }

    if (last[1] < '1' || last[1] > '9') {
        return -1;
    }

    id = strtoll(last + 1, &end, 10);
    if (*end != '\0' || id <= 0 || end - (last + 1) > 16) {
        return -1;
    }

    memcpy(c->order, order, olen);
    c->order[olen] = '\0';
    memcpy(c->key, bar + 1, klen);
    c->key[klen] = '\0';
    c->id = (int64_t) id;

    return 0;
}
