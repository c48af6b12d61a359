/*
 * fuzz_utf8.c: libFuzzer harness for the incremental UTF-8 validator
 * (protocol/chat_utf8.c) and the backend's one-sequence decoder
 * chat_utf8_next() (backend/auth/validate.c).
 *
 * An input is a few bytes saying how to cut the stream, then the stream:
 *
 *   [0]       k = 1 + [0] % 8: how many piece lengths follow
 *   [1..k]    piece lengths, each byte % 33 (0 feeds an empty piece), used
 *             in turn and again from the first; all zero means 1-byte pieces
 *   [k+1..]   the bytes to validate
 *
 * The verdict of chat_utf8_feed/finish over the whole buffer in one call,
 * over the fuzzer's pieces (each copied into a buffer of exactly its size,
 * so a read past a piece is an ASan report), chat_utf8_valid(), and a walk
 * with chat_utf8_next() must all equal the verdict of a slow reference
 * below that works from the definition of UTF-8 in RFC 3629 rather than
 * from a table of byte ranges.  "First bad offset" is the first byte that
 * no valid stream could contain: the first byte whose prefix (up to and
 * including it) cannot be completed to valid UTF-8.  One call and the
 * pieces must name the same one.  Any disagreement is abort().
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_utf8.h"
#include "validate.h"


#define MAX_PIECE_LENGTHS  8
#define MAX_PIECE          32


#define fail(what)  fail_at(__LINE__, what)

static void
fail_at(int line, const char *what)
{
    fprintf(stderr, "fuzz_utf8.c:%d: %s\n", line, what);
    abort();
}


typedef struct {
    int     ok;         /* complete, valid UTF-8 */
    int     bad_seen;   /* some byte no valid stream could contain */
    size_t  bad;        /* its offset */
} verdict_t;


/* ---------------------------------------------------------------- */
/* the reference, from RFC 3629 section 3                            */

/*
 * A sequence of n bytes is a lead byte with n - 1 high one bits and a zero
 * (0xxxxxxx for n = 1), then n - 1 bytes 10xxxxxx; the x bits, high first,
 * are the code point.  It must be the shortest form (at least seq_min[n]),
 * at most U+10FFFF, and not a UTF-16 surrogate D800..DFFF.
 */

static const uint32_t  seq_min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
static const uint32_t  seq_max[5] = { 0, 0x7f, 0x7ff, 0xffff, 0x10ffff };


/* the length a lead byte announces, 0 when it is not a lead byte */
static unsigned
ref_seq_len(unsigned char c)
{
    if ((c & 0x80) == 0x00) {
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        return 2;
    }
    if ((c & 0xf0) == 0xe0) {
        return 3;
    }
    if ((c & 0xf8) == 0xf0) {
        return 4;
    }
    return 0;
}


static uint32_t
ref_lead_bits(unsigned char c, unsigned n)
{
    return n == 1 ? c : c & ((1u << (7 - n)) - 1);
}


static int
ref_scalar_ok(uint32_t cp, unsigned n)
{
    return cp >= seq_min[n] && cp <= seq_max[n]
           && !(cp >= 0xd800 && cp <= 0xdfff);
}


/*
 * Whether k of the n bytes of a sequence, whose bits so far are cp, can
 * still be completed: the code points they allow are one interval, and
 * some value in it must be one an n-byte sequence may carry.
 */
static int
ref_prefix_ok(uint32_t cp, unsigned k, unsigned n)
{
    unsigned  rest;
    uint32_t  lo, hi;

    rest = 6 * (n - k);
    lo = cp << rest;
    hi = lo | ((1u << rest) - 1);

    if (lo < seq_min[n]) {
        lo = seq_min[n];
    }
    if (hi > seq_max[n]) {
        hi = seq_max[n];
    }

    return lo <= hi && !(lo >= 0xd800 && hi <= 0xdfff);
}


static verdict_t
ref_verdict(const unsigned char *p, size_t len)
{
    size_t     i;
    unsigned   n, k;
    uint32_t   cp;
    verdict_t  v;

    v.ok = 0;
    v.bad_seen = 0;
    v.bad = 0;
    n = 0;
    k = 0;
    cp = 0;

    for (i = 0; i < len; i++) {

        if (k == n) {
            /* a sequence starts here */
            n = ref_seq_len(p[i]);
            if (n == 0) {
                goto bad;
            }
            cp = ref_lead_bits(p[i], n);
            k = 1;

        } else {
            if ((p[i] & 0xc0) != 0x80) {
                goto bad;
            }
            cp = cp << 6 | (p[i] & 0x3f);
            k++;
        }

        if (!ref_prefix_ok(cp, k, n)) {
            goto bad;
        }
    }

    v.ok = (k == n);
    return v;

bad:

    v.bad_seen = 1;
    v.bad = i;
    return v;
}


/* One complete sequence at s: its length and code point, or 0. */
static size_t
ref_decode_one(const unsigned char *s, size_t avail, uint32_t *cp)
{
    unsigned  n, k;
    uint32_t  v;

    n = ref_seq_len(s[0]);
    if (n == 0 || avail < n) {
        return 0;
    }

    v = ref_lead_bits(s[0], n);
    for (k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80) {
            return 0;
        }
        v = v << 6 | (s[k] & 0x3f);
    }

    if (!ref_scalar_ok(v, n)) {
        return 0;
    }

    *cp = v;
    return n;
}


/* ---------------------------------------------------------------- */
/* the validator under test                                          */


static verdict_t
feed_whole(const unsigned char *p, size_t len)
{
    size_t          bad;
    verdict_t       v;
    chat_utf8_t     u;
    chat_utf8_rc_t  rc;

    v.ok = 0;
    v.bad_seen = 0;
    v.bad = 0;

    chat_utf8_init(&u);
    bad = (size_t) -1;
    rc = chat_utf8_feed(&u, p, len, &bad);

    if (rc == CHAT_UTF8_INVALID) {
        if (bad >= len) {
            fail("INVALID with an offset outside the input");
        }
        if (chat_utf8_finish(&u) != CHAT_UTF8_INVALID) {
            fail("finish after INVALID is not INVALID");
        }
        v.bad_seen = 1;
        v.bad = bad;
        return v;
    }

    if (rc != CHAT_UTF8_OK) {
        fail("feed returned neither OK nor INVALID");
    }

    v.ok = (chat_utf8_finish(&u) == CHAT_UTF8_OK);
    return v;
}


static verdict_t
feed_pieces(const unsigned char *p, size_t len, const unsigned char *lens,
    size_t nlens)
{
    size_t          off, n, bad, turn, total;
    verdict_t       v;
    chat_utf8_t     u;
    chat_utf8_rc_t  rc;
    unsigned char  *piece;

    v.ok = 0;
    v.bad_seen = 0;
    v.bad = 0;

    total = 0;
    for (turn = 0; turn < nlens; turn++) {
        total += lens[turn] % (MAX_PIECE + 1);
    }

    chat_utf8_init(&u);
    turn = 0;
    off = 0;

    /* one more turn past the end: an empty feed after the last byte */
    for ( ;; ) {
        n = total == 0 ? 1 : lens[turn++ % nlens] % (MAX_PIECE + 1);
        if (n > len - off) {
            n = len - off;
        }

        piece = malloc(n ? n : 1);
        if (piece == NULL) {
            fail("out of memory");
        }
        memcpy(piece, p + off, n);

        bad = (size_t) -1;
        rc = chat_utf8_feed(&u, piece, n, &bad);
        free(piece);

        if (rc == CHAT_UTF8_INVALID) {
            if (v.bad_seen) {
                /* failed for good: later feeds say so at offset 0 */
                if (bad != 0) {
                    fail("a failed validator gave a non-zero offset");
                }

            } else {
                if (bad >= n) {
                    fail("INVALID with an offset outside the piece");
                }
                v.bad_seen = 1;
                v.bad = off + bad;
            }

        } else if (rc != CHAT_UTF8_OK || v.bad_seen) {
            fail("a failed validator accepted more bytes");
        }

        off += n;
        if (off == len && n == 0) {
            break;
        }
    }

    v.ok = !v.bad_seen && chat_utf8_finish(&u) == CHAT_UTF8_OK;

    if (v.bad_seen && chat_utf8_finish(&u) != CHAT_UTF8_INVALID) {
        fail("finish after INVALID is not INVALID");
    }

    return v;
}


/* ---------------------------------------------------------------- */
/* the backend's decoder: one sequence at every offset               */


static void
check_next(const unsigned char *p, size_t len, int valid)
{
    size_t          i, n, want, avail;
    unsigned        cp;
    uint32_t        ref_cp;
    unsigned char  *buf, win[4];

    /*
     * At most four bytes from i (all a sequence can take) in a buffer of
     * exactly that size: a read past avail is an ASan report.
     */
    for (i = 0; i < len; i++) {
        avail = len - i < 4 ? len - i : 4;
        memcpy(win, p + i, avail);
        buf = malloc(avail);
        if (buf == NULL) {
            fail("out of memory");
        }
        memcpy(buf, win, avail);

        cp = 0xdeadbeef;
        n = chat_utf8_next(buf, avail, &cp);
        free(buf);
        ref_cp = 0;
        want = ref_decode_one(win, avail, &ref_cp);

        if (n != want || (n > 0 && cp != ref_cp)) {
            fail("chat_utf8_next differs from the reference decoder");
        }
    }

    /* walking it sequence by sequence reads the string iff it is valid */
    for (i = 0; i < len; i += n) {
        n = chat_utf8_next(p + i, len - i, &cp);
        if (n == 0) {
            break;
        }
    }

    if ((i == len) != valid) {
        fail("chat_utf8_next walk and chat_utf8_valid disagree");
    }
}


static void
compare(const verdict_t *a, const verdict_t *b, const char *what)
{
    if (a->ok != b->ok || a->bad_seen != b->bad_seen
        || (a->bad_seen && a->bad != b->bad))
    {
        fprintf(stderr, "verdicts differ: %s: ok %d/%d, bad %s%zu/%s%zu\n",
                what, a->ok, b->ok, a->bad_seen ? "@" : "-", a->bad,
                b->bad_seen ? "@" : "-", b->bad);
        abort();
    }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             valid;
    size_t          nlens;
    verdict_t       ref, whole, pieces;
    const uint8_t  *lens;

    if (size < 1) {
        return 0;
    }

    nlens = 1 + data[0] % MAX_PIECE_LENGTHS;
    if (size < 1 + nlens) {
        return 0;
    }
    lens = data + 1;
    data += 1 + nlens;
    size -= 1 + nlens;

    ref = ref_verdict(data, size);
    whole = feed_whole(data, size);
    pieces = feed_pieces(data, size, lens, nlens);
    valid = chat_utf8_valid(data, size);

    compare(&whole, &ref, "one feed vs reference");
    compare(&pieces, &whole, "pieces vs one feed");

    if (valid != ref.ok) {
        fail("chat_utf8_valid differs from the reference");
    }

    check_next(data, size, valid);

    return 0;
}
