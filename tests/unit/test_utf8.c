/*
 * test_utf8.c: the incremental UTF-8 validator.  Every class RFC 3629
 * forbids is refused at the byte that makes it impossible, whatever the
 * chunking; valid sequences pass split at every point; and every string of
 * up to three bytes gets the same verdict as a slow decoder written here
 * from the RFC's table.
 */

#include <stdint.h>
#include <string.h>

#include "chat_utf8.h"
#include "unit.h"


typedef struct {
    const char  *bytes;
    size_t       len;
    size_t       bad;           /* offset of the offending byte */
} bad_case_t;

#define S(s)  s, sizeof(s) - 1

static const bad_case_t bad_cases[] = {
    /* overlong */
    { S("\xc0\x80"), 0 },
    { S("\xc1\xbf"), 0 },
    { S("\xe0\x80\x80"), 1 },
    { S("\xe0\x9f\xbf"), 1 },
    { S("\xf0\x80\x80\x80"), 1 },
    { S("\xf0\x8f\xbf\xbf"), 1 },
    /* surrogates */
    { S("\xed\xa0\x80"), 1 },
    { S("\xed\xbf\xbf"), 1 },
    { S("\xed\xa0\x80\xed\xb0\x80"), 1 },
    /* beyond U+10FFFF */
    { S("\xf4\x90\x80\x80"), 1 },
    { S("\xf4\xbf\xbf\xbf"), 1 },
    { S("\xf5\x80\x80\x80"), 0 },
    { S("\xf7\xbf\xbf\xbf"), 0 },
    { S("\xf8\x88\x80\x80\x80"), 0 },
    { S("\xfe"), 0 },
    { S("\xff"), 0 },
    /* stray continuation bytes */
    { S("\x80"), 0 },
    { S("\xbf"), 0 },
    { S("a\x80"), 1 },
    { S("\xc3\xa9\xa9"), 2 },
    { S("\xe2\x82\xac\x80"), 3 },
    /* truncated, then something that is not a continuation */
    { S("\xc3" "A"), 1 },
    { S("\xc3\xc3\xa9"), 1 },
    { S("\xe2\x82" "A"), 2 },
    { S("\xe2\x82\xe2\x82\xac"), 2 },
    { S("\xf0\x9f\x98" "A"), 3 },
    { S("\xf0\x9f\x98\xf0"), 3 },
    { S("\xf0\x9f" "\x00"), 2 },
    /* failure deep in ASCII, past the word-at-a-time skip */
    { S("abcdefghijklmnopqrstuvwxyz\xff" "abcdefgh"), 26 },
    { S("abcdefghijklmnop\xc3\xa9" "abcdefghijklmnop\xc0"), 34 }
};

static const char *const good_cases[] = {
    "",
    "plain ASCII, \x01 and \x7f included",
    "\xc2\x80",
    "\xdf\xbf",
    "caf\xc3\xa9",
    "\xe0\xa0\x80",
    "\xe1\x80\x80",
    "\xe2\x82\xac",
    "\xed\x9f\xbf",             /* just below the surrogates */
    "\xee\x80\x80",             /* just above them */
    "\xef\xbf\xbf",
    "\xf0\x90\x80\x80",
    "\xf0\x9f\x98\x80",
    "\xf3\xbf\xbf\xbf",
    "\xf4\x8f\xbf\xbf",         /* U+10FFFF */
    "mixed: a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z, then 16 ASCII bytes!"
};

#define NGOOD  (sizeof(good_cases) / sizeof(good_cases[0]))
#define NBAD   (sizeof(bad_cases) / sizeof(bad_cases[0]))


/* A slow reference straight from the RFC 3629 table: decode, then judge. */
static int
ref_valid(const unsigned char *p, size_t len)
{
    size_t    i, k, n;
    uint32_t  cp, min;

    for (i = 0; i < len; i += n) {
        if (p[i] < 0x80) {
            n = 1;
            continue;
        }

        if ((p[i] & 0xe0) == 0xc0) {
            n = 2; cp = p[i] & 0x1f; min = 0x80;
        } else if ((p[i] & 0xf0) == 0xe0) {
            n = 3; cp = p[i] & 0x0f; min = 0x800;
        } else if ((p[i] & 0xf8) == 0xf0) {
            n = 4; cp = p[i] & 0x07; min = 0x10000;
        } else {
            return 0;
        }

        if (len - i < n) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = cp << 6 | (p[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


/* Feeds p in pieces cut at the given offsets; returns -1 or the bad offset */
static long
feed_split(const unsigned char *p, size_t len, const size_t *cuts,
    size_t ncuts, int *finished_ok)
{
    size_t       i, from, to, bad;
    chat_utf8_t  u;

    chat_utf8_init(&u);
    from = 0;

    for (i = 0; i <= ncuts; i++) {
        to = (i < ncuts) ? cuts[i] : len;
        if (chat_utf8_feed(&u, p + from, to - from, &bad) != CHAT_UTF8_OK) {
            *finished_ok = 0;
            return (long) (from + bad);
        }
        from = to;
    }

    *finished_ok = (chat_utf8_finish(&u) == CHAT_UTF8_OK);
    return -1;
}


static void
test_valid_sequences(void)
{
    size_t  i;

    for (i = 0; i < NGOOD; i++) {
        CHECK(chat_utf8_valid((const unsigned char *) good_cases[i],
                              strlen(good_cases[i])));
    }
}


static void
test_valid_split_everywhere(void)
{
    int                   ok;
    size_t                i, a, b, len, cuts[2];
    const unsigned char  *p;

    for (i = 0; i < NGOOD; i++) {
        p = (const unsigned char *) good_cases[i];
        len = strlen(good_cases[i]);

        for (a = 0; a <= len; a++) {
            for (b = a; b <= len; b++) {
                cuts[0] = a;
                cuts[1] = b;
                CHECK(feed_split(p, len, cuts, 2, &ok) == -1);
                CHECK(ok);
            }
        }
    }
}


static void
test_one_byte_feeds(void)
{
    size_t               i, k, bad;
    chat_utf8_t          u;
    static const char    s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";

    chat_utf8_init(&u);
    for (k = 0; k < sizeof(s) - 1; k++) {
        CHECK(chat_utf8_feed(&u, (const unsigned char *) s + k, 1, &bad)
              == CHAT_UTF8_OK);
        /* mid-character after a lead or inner continuation byte */
        i = (unsigned char) s[k];
        if (i == 0xc3 || i == 0xe2 || i == 0x82 || i == 0xf0 || i == 0x9f
            || i == 0x98)
        {
            CHECK(chat_utf8_finish(&u) == CHAT_UTF8_INVALID);
        } else {
            CHECK(chat_utf8_finish(&u) == CHAT_UTF8_OK);
        }
    }
}


static void
test_invalid_classes_at_the_bad_byte(void)
{
    size_t                i, bad;
    chat_utf8_t           u;
    const bad_case_t     *c;

    for (i = 0; i < NBAD; i++) {
        c = &bad_cases[i];
        chat_utf8_init(&u);
        bad = 9999;
        CHECK(chat_utf8_feed(&u, (const unsigned char *) c->bytes, c->len,
                             &bad) == CHAT_UTF8_INVALID);
        if (bad != c->bad) {
            fprintf(stderr, "  case %zu: bad at %zu, expected %zu\n",
                    i, bad, c->bad);
        }
        CHECK(bad == c->bad);
        CHECK(!chat_utf8_valid((const unsigned char *) c->bytes, c->len));
        CHECK(!ref_valid((const unsigned char *) c->bytes, c->len));
    }
}


/* the failure lands on the same byte however the input is cut */
static void
test_invalid_split_everywhere(void)
{
    int                   ok;
    size_t                i, a, b, cuts[2];
    const bad_case_t     *c;

    for (i = 0; i < NBAD; i++) {
        c = &bad_cases[i];

        for (a = 0; a <= c->len; a++) {
            for (b = a; b <= c->len; b++) {
                cuts[0] = a;
                cuts[1] = b;
                CHECK(feed_split((const unsigned char *) c->bytes, c->len,
                                 cuts, 2, &ok) == (long) c->bad);
                CHECK(!ok);
            }
        }
    }
}


static void
test_truncated_at_end(void)
{
    size_t             i;
    chat_utf8_t        u;
    static const char *const cut[] = {
        "\xc3", "\xe2", "\xe2\x82", "\xf0", "\xf0\x9f", "\xf0\x9f\x98",
        "ok \xe2\x82"
    };

    for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
        chat_utf8_init(&u);
        CHECK(chat_utf8_feed(&u, (const unsigned char *) cut[i],
                             strlen(cut[i]), NULL) == CHAT_UTF8_OK);
        CHECK(chat_utf8_finish(&u) == CHAT_UTF8_INVALID);
        CHECK(!chat_utf8_valid((const unsigned char *) cut[i],
                               strlen(cut[i])));
    }
}


static void
test_failure_is_sticky(void)
{
    size_t       bad;
    chat_utf8_t  u;

    chat_utf8_init(&u);
    CHECK(chat_utf8_feed(&u, (const unsigned char *) "ab\xff", 3, &bad)
          == CHAT_UTF8_INVALID);
    CHECK(bad == 2);

    bad = 77;
    CHECK(chat_utf8_feed(&u, (const unsigned char *) "fine", 4, &bad)
          == CHAT_UTF8_INVALID);
    CHECK(bad == 0);
    CHECK(chat_utf8_feed(&u, NULL, 0, NULL) == CHAT_UTF8_INVALID);
    CHECK(chat_utf8_finish(&u) == CHAT_UTF8_INVALID);
}


/* every position of a bad byte in a long ASCII run, word skip included */
static void
test_bad_byte_at_every_offset(void)
{
    size_t         len, at, bad;
    chat_utf8_t    u;
    unsigned char  buf[64];

    for (len = 1; len <= sizeof(buf); len++) {
        for (at = 0; at < len; at++) {
            memset(buf, 'x', len);
            buf[at] = 0x80;
            chat_utf8_init(&u);
            CHECK(chat_utf8_feed(&u, buf, len, &bad) == CHAT_UTF8_INVALID);
            CHECK(bad == at);
        }
    }
}


/* all strings of 1, 2 and 3 bytes against the reference decoder */
static void
test_exhaustive_short_strings(void)
{
    unsigned       a, b, c;
    unsigned long  mismatches;
    unsigned char  s[3];

    mismatches = 0;

    for (a = 0; a < 256; a++) {
        s[0] = (unsigned char) a;
        mismatches += chat_utf8_valid(s, 1) != ref_valid(s, 1);

        for (b = 0; b < 256; b++) {
            s[1] = (unsigned char) b;
            mismatches += chat_utf8_valid(s, 2) != ref_valid(s, 2);

            for (c = 0; c < 256; c++) {
                s[2] = (unsigned char) c;
                mismatches += chat_utf8_valid(s, 3) != ref_valid(s, 3);
            }
        }
    }

    CHECK(mismatches == 0);
}


/* every four-byte string with a lead byte from F0 up */
static void
test_exhaustive_four_byte_leads(void)
{
    unsigned       a, b, c, d;
    unsigned long  mismatches, valid;
    unsigned char  s[4];

    mismatches = 0;
    valid = 0;

    for (a = 0xf0; a < 0x100; a++) {
        s[0] = (unsigned char) a;
        for (b = 0x80; b < 0xc0; b++) {
            s[1] = (unsigned char) b;
            for (c = 0x7f; c < 0xc1; c++) {
                s[2] = (unsigned char) c;
                for (d = 0x7f; d < 0xc1; d++) {
                    s[3] = (unsigned char) d;
                    valid += chat_utf8_valid(s, 4);
                    mismatches += chat_utf8_valid(s, 4) != ref_valid(s, 4);
                }
            }
        }
    }

    CHECK(mismatches == 0);
    CHECK(valid == 0x100000);    /* U+10000..U+10FFFF, each once */
}


int
main(void)
{
    UNIT_RUN(test_valid_sequences);
    UNIT_RUN(test_valid_split_everywhere);
    UNIT_RUN(test_one_byte_feeds);
    UNIT_RUN(test_invalid_classes_at_the_bad_byte);
    UNIT_RUN(test_invalid_split_everywhere);
    UNIT_RUN(test_truncated_at_end);
    UNIT_RUN(test_failure_is_sticky);
    UNIT_RUN(test_bad_byte_at_every_offset);
    UNIT_RUN(test_exhaustive_short_strings);
    UNIT_RUN(test_exhaustive_four_byte_leads);

    return UNIT_SUMMARY();
}
