/*
 * chat_utf8.c: UTF-8 validation one byte at a time, with the state carried
 * between calls so a code point may be split across any number of feeds.
 *
 * A lead byte fixes how many continuation bytes follow and the range the
 * first of them must fall in; every later one is 80..BF.  Narrowing that
 * first range is what rejects, at the earliest possible byte, everything
 * RFC 3629 forbids:
 *
 *   C0, C1              always overlong: refused as lead bytes
 *   E0 80..9F           overlong three-byte forms
 *   ED A0..BF           UTF-16 surrogates U+D800..U+DFFF
 *   F0 80..8F           overlong four-byte forms
 *   F4 90..BF, F5..FF   beyond U+10FFFF
 *   80..BF as a lead    a stray continuation byte
 *
 * and a lead byte arriving while continuation bytes are owed fails at that
 * lead byte.  Runs of ASCII are skipped eight bytes at a time.
 *
 * What it does not do: decode code points, repair input, or judge
 * noncharacters (U+FFFE and friends are valid UTF-8).
 */

#include <stdint.h>
#include <string.h>

#include "chat_utf8.h"


#define CHAT_UTF8_FAILED  0xff


void
chat_utf8_init(chat_utf8_t *u)
{
    u->need = 0;
    u->lo = 0x80;
    u->hi = 0xbf;
}


chat_utf8_rc_t
chat_utf8_feed(chat_utf8_t *u, const unsigned char *p, size_t len,
    size_t *bad)
{
    size_t         i;
    uint64_t       word;
    unsigned char  c;

    if (u->need == CHAT_UTF8_FAILED) {
        if (bad != NULL) {
            *bad = 0;
        }
        return CHAT_UTF8_INVALID;
    }

    i = 0;

    while (i < len) {
        c = p[i];

        if (u->need > 0) {
            if (c < u->lo || c > u->hi) {
                goto invalid;
            }
            u->need--;
            u->lo = 0x80;
            u->hi = 0xbf;
            i++;
            continue;
        }

        if (c < 0x80) {
            i++;

            /* text is mostly ASCII: skip it a word at a time */
            while (len - i >= sizeof(word)) {
                memcpy(&word, p + i, sizeof(word));
                if (word & 0x8080808080808080ULL) {
                    break;
                }
                i += sizeof(word);
            }
            continue;
        }

        if (c < 0xc2) {
            goto invalid;       /* stray continuation, or C0/C1 overlong */

        } else if (c < 0xe0) {
            u->need = 1;

        } else if (c < 0xf0) {
            u->need = 2;
            if (c == 0xe0) {
                u->lo = 0xa0;
            } else if (c == 0xed) {
                u->hi = 0x9f;
            }

        } else if (c < 0xf5) {
            u->need = 3;
            if (c == 0xf0) {
                u->lo = 0x90;
            } else if (c == 0xf4) {
                u->hi = 0x8f;
            }

        } else {
            goto invalid;
        }

        i++;
    }

    return CHAT_UTF8_OK;

invalid:

    u->need = CHAT_UTF8_FAILED;
    if (bad != NULL) {
        *bad = i;
    }
    return CHAT_UTF8_INVALID;
}


chat_utf8_rc_t
chat_utf8_finish(const chat_utf8_t *u)
{
    return u->need == 0 ? CHAT_UTF8_OK : CHAT_UTF8_INVALID;
}


int
chat_utf8_valid(const unsigned char *p, size_t len)
{
    chat_utf8_t  u;

    chat_utf8_init(&u);

    return chat_utf8_feed(&u, p, len, NULL) == CHAT_UTF8_OK
           && chat_utf8_finish(&u) == CHAT_UTF8_OK;
}
