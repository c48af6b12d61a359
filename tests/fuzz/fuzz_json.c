/*
 * fuzz_json.c: libFuzzer harness for what a client's HTTP request carries
 * besides headers: JSON bodies and WebSocket messages
 * (protocol/chat_json.c) and query strings (chat_query.c).
 *
 * The input's first byte picks what the rest is:
 *   bit 0 clear: a JSON text; bit 1 adds CHAT_JSON_OBJECT, bit 2
 *                CHAT_JSON_INTEGERS.
 *   bit 0 set:   a query string; the bytes up to the first "\n" are the
 *                parameter name to look up (at most 16), the rest the
 *                query string.
 *
 * JSON is checked three ways:
 *   - against a slow reference written here from RFC 8259 and chat_json.h
 *     (recursive descent, strings decoded into buffers, duplicate keys
 *     found by comparing every pair): the same verdict and the same
 *     offset;
 *   - an accepted text is read by cJSON (as the edge and the backend then
 *     do) and must read the same: every string exactly as long as the
 *     reference decoded it (nothing cut at a NUL), no object with two
 *     equal keys, and under CHAT_JSON_INTEGERS every number an integer of
 *     at most 2^53 - 1 that is not -0;
 *   - cJSON's printing of an accepted text is accepted again (the edge
 *     forwards what cJSON prints), without the integer rule.
 * Queries: chat_query_get against a reference decoder and a reference
 * lookup, and chat_query_check against checking every parameter with the
 * reference.  Any disagreement is abort().
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chat_json.h"
#include "chat_query.h"
#include "chat_utf8.h"


/* ------------------------------------------------------------------------
 * The JSON reference
 * --------------------------------------------------------------------- */

typedef struct {
    const unsigned char  *start;
    const unsigned char  *p;
    const unsigned char  *end;
    unsigned              flags;
    size_t                at;
    int                   rc;

    /* every string decoded, in reading order, for the cJSON comparison */
    size_t               *lens;
    size_t                nlens;
    size_t                size;
} ref_t;


static int ref_value(ref_t *r, int depth);


static int
ref_fail(ref_t *r, const unsigned char *at, int rc)
{
    r->at = (size_t) (at - r->start);
    r->rc = rc;
    return -1;
}


/* a byte that cannot come next: NUL is named, anything else is syntax */
static int
ref_unexpected(ref_t *r)
{
    return ref_fail(r, r->p,
                    r->p < r->end && *r->p == 0 ? CHAT_JSON_NUL
                                                : CHAT_JSON_SYNTAX);
}


static void
ref_ws(ref_t *r)
{
    while (r->p < r->end
           && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n'
               || *r->p == '\r'))
    {
        r->p++;
    }
}


static int
ref_hex(const unsigned char *p, const unsigned char *end, unsigned *v)
{
    int       i;
    unsigned  d;

    if (end - p < 4) {
        return 0;
    }

    *v = 0;
    for (i = 0; i < 4; i++) {
        if (p[i] >= '0' && p[i] <= '9') {
            d = p[i] - '0';
        } else if (p[i] >= 'a' && p[i] <= 'f') {
            d = p[i] - 'a' + 10;
        } else if (p[i] >= 'A' && p[i] <= 'F') {
            d = p[i] - 'A' + 10;
        } else {
            return 0;
        }
        *v = *v * 16 + d;
    }

    return 1;
}


static size_t
ref_utf8_put(unsigned cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char) (0xc0 | (cp >> 6));
        out[1] = (unsigned char) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char) (0xe0 | (cp >> 12));
        out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char) (0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char) (0xf0 | (cp >> 18));
    out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char) (0x80 | (cp & 0x3f));
    return 4;
}


/* A string at r->p; its decoded bytes go to a new buffer in *out. */
static int
ref_string(ref_t *r, unsigned char **out, size_t *out_len)
{
    size_t                n;
    unsigned              cp, lo;
    unsigned char        *buf;
    const unsigned char  *esc;

    /* decoding never grows the text */
    buf = malloc((size_t) (r->end - r->p) + 1);
    if (buf == NULL) {
        abort();
    }

    n = 0;
    r->p++;

    for ( ;; ) {
        if (r->p == r->end) {
            free(buf);
            return ref_fail(r, r->end, CHAT_JSON_SYNTAX);
        }

        if (*r->p == '"') {
            r->p++;
            break;
        }

        if (*r->p == 0) {
            free(buf);
            return ref_fail(r, r->p, CHAT_JSON_NUL);
        }

        if (*r->p < 0x20) {
            free(buf);
            return ref_fail(r, r->p, CHAT_JSON_CONTROL);
        }

        if (*r->p != '\\') {
            buf[n++] = *r->p++;
            continue;
        }

        esc = r->p;

        if (r->end - r->p < 2) {
            free(buf);
            return ref_fail(r, r->end, CHAT_JSON_SYNTAX);
        }

        r->p += 2;

        switch (esc[1]) {
        case '"':  buf[n++] = '"'; continue;
        case '\\': buf[n++] = '\\'; continue;
        case '/':  buf[n++] = '/'; continue;
        case 'b':  buf[n++] = '\b'; continue;
        case 'f':  buf[n++] = '\f'; continue;
        case 'n':  buf[n++] = '\n'; continue;
        case 'r':  buf[n++] = '\r'; continue;
        case 't':  buf[n++] = '\t'; continue;
        case 'u':  break;
        default:
            free(buf);
            return ref_fail(r, esc, CHAT_JSON_SYNTAX);
        }

        if (!ref_hex(r->p, r->end, &cp)) {
            free(buf);
            return ref_fail(r, esc, CHAT_JSON_SYNTAX);
        }
        r->p += 4;

        if (cp == 0) {
            free(buf);
            return ref_fail(r, esc, CHAT_JSON_NUL);
        }

        if (cp >= 0xdc00 && cp <= 0xdfff) {
            free(buf);
            return ref_fail(r, esc, CHAT_JSON_BAD_UTF8);
        }

        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u'
                || !ref_hex(r->p + 2, r->end, &lo)
                || lo < 0xdc00 || lo > 0xdfff)
            {
                free(buf);
                return ref_fail(r, esc, CHAT_JSON_BAD_UTF8);
            }
            r->p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }

        n += ref_utf8_put(cp, buf + n);
    }

    if (r->nlens == r->size) {
        r->size = r->size ? 2 * r->size : 64;
        r->lens = realloc(r->lens, r->size * sizeof(size_t));
        if (r->lens == NULL) {
            abort();
        }
    }
    r->lens[r->nlens++] = n;

    *out = buf;
    *out_len = n;
    return 0;
}


static int
ref_digits(ref_t *r)
{
    if (r->p == r->end || *r->p < '0' || *r->p > '9') {
        return ref_unexpected(r);
    }
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        r->p++;
    }
    return 0;
}


static int
ref_number(ref_t *r)
{
    int                   plain;
    size_t                i, digits;
    const unsigned char  *start, *d;
    unsigned long long    v;

    start = r->p;

    if (*r->p == '-') {
        r->p++;
    }

    d = r->p;

    if (r->p < r->end && *r->p == '0') {
        r->p++;
    } else if (ref_digits(r) != 0) {
        return -1;
    }

    digits = (size_t) (r->p - d);
    plain = 1;

    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (ref_digits(r) != 0) {
            return -1;
        }
        plain = 0;
    }

    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-')) {
            r->p++;
        }
        if (ref_digits(r) != 0) {
            return -1;
        }
        plain = 0;
    }

    if (r->p - start > 63) {
        return ref_fail(r, start, CHAT_JSON_LONG_NUMBER);
    }

    if (!(r->flags & CHAT_JSON_INTEGERS)) {
        return 0;
    }

    if (plain) {
        if (digits > 16) {
            plain = 0;
        } else {
            v = 0;
            for (i = 0; i < digits; i++) {
                v = v * 10 + (unsigned long long) (d[i] - '0');
            }
            plain = v <= 9007199254740991ULL && !(start != d && v == 0);
        }
    }

    return plain ? 0 : ref_fail(r, start, CHAT_JSON_NOT_INTEGER);
}


static int
ref_word(ref_t *r, const char *w)
{
    size_t  n = strlen(w);

    if ((size_t) (r->end - r->p) < n || memcmp(r->p, w, n) != 0) {
        return ref_fail(r, r->p, CHAT_JSON_SYNTAX);
    }
    r->p += n;
    return 0;
}


typedef struct {
    unsigned char  *bytes;
    size_t          len;
    size_t          at;         /* the opening quote */
} ref_key_t;


static int
ref_object(ref_t *r, int depth)
{
    int             rc;
    size_t          i, k, n, size, repeat;
    ref_key_t      *keys;
    const unsigned char  *quote;

    keys = NULL;
    n = size = 0;
    rc = 0;

    r->p++;
    ref_ws(r);

    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return 0;
    }

    for ( ;; ) {
        if (r->p == r->end || *r->p != '"') {
            rc = ref_unexpected(r);
            goto done;
        }

        if (n == size) {
            size = size ? 2 * size : 8;
            keys = realloc(keys, size * sizeof(ref_key_t));
            if (keys == NULL) {
                abort();
            }
        }

        quote = r->p;
        if (ref_string(r, &keys[n].bytes, &keys[n].len) != 0) {
            rc = -1;
            goto done;
        }
        keys[n].at = (size_t) (quote - r->start);
        n++;

        ref_ws(r);
        if (r->p == r->end || *r->p != ':') {
            rc = ref_unexpected(r);
            goto done;
        }
        r->p++;
        ref_ws(r);

        if (ref_value(r, depth) != 0) {
            rc = -1;
            goto done;
        }

        ref_ws(r);

        if (r->p < r->end && *r->p == ',') {
            r->p++;
            ref_ws(r);
            continue;
        }

        if (r->p < r->end && *r->p == '}') {
            break;
        }

        rc = ref_unexpected(r);
        goto done;
    }

    /* every pair: the first key that repeats an earlier one */
    repeat = SIZE_MAX;
    for (i = 0; i < n && repeat == SIZE_MAX; i++) {
        for (k = 0; k < i; k++) {
            if (keys[k].len == keys[i].len
                && memcmp(keys[k].bytes, keys[i].bytes, keys[i].len) == 0)
            {
                repeat = keys[i].at;
                break;
            }
        }
    }

    if (repeat != SIZE_MAX) {
        r->at = repeat;
        r->rc = CHAT_JSON_DUPLICATE_KEY;
        rc = -1;
        goto done;
    }

    r->p++;

done:

    for (i = 0; i < n; i++) {
        free(keys[i].bytes);
    }
    free(keys);

    return rc;
}


static int
ref_array(ref_t *r, int depth)
{
    r->p++;
    ref_ws(r);

    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return 0;
    }

    for ( ;; ) {
        if (ref_value(r, depth) != 0) {
            return -1;
        }

        ref_ws(r);

        if (r->p < r->end && *r->p == ',') {
            r->p++;
            ref_ws(r);
            continue;
        }

        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return 0;
        }

        return ref_unexpected(r);
    }
}


static int
ref_value(ref_t *r, int depth)
{
    size_t          n;
    unsigned char  *s;

    if (r->p == r->end) {
        return ref_unexpected(r);
    }

    switch (*r->p) {
    case '{':
    case '[':
        if (depth == CHAT_JSON_MAX_DEPTH) {
            return ref_fail(r, r->p, CHAT_JSON_TOO_DEEP);
        }
        return *r->p == '{' ? ref_object(r, depth + 1)
                            : ref_array(r, depth + 1);
    case '"':
        if (ref_string(r, &s, &n) != 0) {
            return -1;
        }
        free(s);
        return 0;
    case 't':
        return ref_word(r, "true");
    case 'f':
        return ref_word(r, "false");
    case 'n':
        return ref_word(r, "null");
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) {
            return ref_number(r);
        }
        return ref_unexpected(r);
    }
}


/* The verdict chat_json.h promises, worked out the slow way. */
static int
ref_check(ref_t *r, const unsigned char *p, size_t len, unsigned flags)
{
    memset(r, 0, sizeof(*r));
    r->start = r->p = p;
    r->end = p + len;
    r->flags = flags;

    /* UTF-8 first (its offsets are fuzz_utf8.c's business) */
    if (!chat_utf8_valid(p, len)) {
        return r->rc = CHAT_JSON_BAD_UTF8;
    }

    ref_ws(r);

    if (r->p == r->end) {
        r->at = len;
        return r->rc = CHAT_JSON_SYNTAX;
    }

    if ((flags & CHAT_JSON_OBJECT) && *r->p != '{') {
        r->at = (size_t) (r->p - r->start);
        return r->rc = *r->p == 0 ? CHAT_JSON_NUL : CHAT_JSON_NOT_OBJECT;
    }

    if (ref_value(r, 0) != 0) {
        return r->rc;
    }

    ref_ws(r);

    if (r->p != r->end) {
        ref_unexpected(r);
        return r->rc;
    }

    return r->rc = CHAT_JSON_OK;
}


/* cJSON's reading of an accepted text must be the text's */
static size_t  cjson_string_index;

static void
same_reading(const cJSON *item, const ref_t *r, unsigned flags)
{
    double        d;
    const cJSON  *c, *o;

    for ( ; item != NULL; item = item->next) {

        if (item->string != NULL) {
            /* keys come before their values in reading order */
            if (cjson_string_index >= r->nlens
                || strlen(item->string) != r->lens[cjson_string_index++])
            {
                abort();
            }
        }

        if (cJSON_IsString(item)) {
            if (cjson_string_index >= r->nlens
                || strlen(item->valuestring)
                   != r->lens[cjson_string_index++])
            {
                abort();
            }
        }

        if (cJSON_IsNumber(item) && (flags & CHAT_JSON_INTEGERS)) {
            d = item->valuedouble;
            if (d != floor(d) || fabs(d) > 9007199254740991.0
                || (d == 0 && signbit(d)))
            {
                abort();
            }
        }

        if (cJSON_IsObject(item)) {
            for (c = item->child; c != NULL; c = c->next) {
                for (o = item->child; o != c; o = o->next) {
                    if (strcmp(o->string, c->string) == 0) {
                        abort();
                    }
                }
            }
        }

        if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
            same_reading(item->child, r, flags);
        }
    }
}


static void
fuzz_json(const unsigned char *p, size_t len, unsigned flags)
{
    char            *printed, *copy;
    cJSON           *json;
    size_t           where;
    ref_t            r;
    chat_json_rc_t   rc;

    /* an exact-size copy: any read past the end is an ASan report */
    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, p, len);

    where = (size_t) -1;
    rc = chat_json_check(copy, len, flags, &where);

    if ((int) rc != ref_check(&r, p, len, flags)) {
        abort();
    }

    if (rc != CHAT_JSON_OK && rc != CHAT_JSON_BAD_UTF8 && where != r.at) {
        abort();
    }

    if (rc == CHAT_JSON_BAD_UTF8 && where > len) {
        abort();
    }

    if (rc == CHAT_JSON_OK) {
        json = cJSON_ParseWithLength(copy, len);
        if (json == NULL) {
            abort();
        }

        cjson_string_index = 0;
        same_reading(json, &r, flags);
        if (cjson_string_index != r.nlens) {
            abort();
        }

        printed = cJSON_PrintUnformatted(json);
        if (printed == NULL
            || chat_json_check(printed, strlen(printed),
                               flags & CHAT_JSON_OBJECT, NULL)
               != CHAT_JSON_OK)
        {
            abort();
        }

        cJSON_free(printed);
        cJSON_Delete(json);
    }

    free(r.lens);
    free(copy);
}


/* ------------------------------------------------------------------------
 * The query reference
 * --------------------------------------------------------------------- */

static int
ref_xdigit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
           || (c >= 'A' && c <= 'F');
}


static int
ref_query_value(const unsigned char *p, size_t len, unsigned char *out,
    size_t *n)
{
    size_t    i;
    unsigned  hi, lo;
    int       bad;

    *n = 0;

    for (i = 0; i < len; i++) {
        if (p[i] != '%') {
            out[(*n)++] = p[i];
            continue;
        }
        if (len - i < 3 || !ref_xdigit(p[i + 1]) || !ref_xdigit(p[i + 2])) {
            return CHAT_QUERY_BAD_ESCAPE;
        }
        hi = p[i + 1] <= '9' ? p[i + 1] - '0' : (p[i + 1] | 0x20) - 'a' + 10;
        lo = p[i + 2] <= '9' ? p[i + 2] - '0' : (p[i + 2] | 0x20) - 'a' + 10;
        out[(*n)++] = (unsigned char) (hi * 16 + lo);
        i += 2;
    }

    if (!chat_utf8_valid(out, *n)) {
        return CHAT_QUERY_BAD_UTF8;
    }

    bad = CHAT_QUERY_OK;
    for (i = 0; i < *n && bad == CHAT_QUERY_OK; i++) {
        if (out[i] == 0) {
            bad = CHAT_QUERY_NUL;
        } else if (out[i] < 0x20 || out[i] == 0x7f) {
            bad = CHAT_QUERY_CONTROL;
        }
    }

    return bad;
}


static unsigned char
ref_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}


static void
fuzz_query(const unsigned char *p, size_t len)
{
    int                   want, found;
    char                 *args, *out;
    size_t                i, k, nlen, alen, n, rn, seg, where;
    unsigned char        *ref;
    const unsigned char  *nl, *a, *amp, *vstart, *vend;
    chat_query_rc_t       rc;

    nl = memchr(p, '\n', len < 17 ? len : 17);
    if (nl == NULL) {
        return;
    }

    nlen = (size_t) (nl - p);
    alen = len - nlen - 1;

    args = malloc(alen ? alen : 1);
    out = malloc(alen ? alen : 1);
    ref = malloc(alen ? alen : 1);
    if (args == NULL || out == NULL || ref == NULL) {
        abort();
    }
    memcpy(args, nl + 1, alen);
    a = (const unsigned char *) args;

    /* the lookup: "name=" compared with A-Z folded, at most once */
    found = 0;
    vstart = vend = NULL;
    want = CHAT_QUERY_ABSENT;

    for (i = 0; i <= alen; i = seg + 1) {
        amp = memchr(a + i, '&', alen - i);
        seg = amp ? (size_t) (amp - a) : alen;

        if (seg - i > nlen && a[i + nlen] == '=') {
            for (k = 0; k < nlen; k++) {
                if (ref_lower(a[i + k]) != ref_lower(p[k])) {
                    break;
                }
            }
            if (k == nlen) {
                if (found++) {
                    want = CHAT_QUERY_REPEATED;
                }
                if (found == 1) {
                    vstart = a + i + nlen + 1;
                    vend = a + seg;
                }
            }
        }

        if (seg == alen) {
            break;
        }
    }

    rn = 0;
    if (found == 1) {
        want = ref_query_value(vstart, (size_t) (vend - vstart), ref, &rn);
    }

    rc = chat_query_get(args, alen, (const char *) p, nlen, out, &n);

    if ((int) rc != want) {
        abort();
    }

    if (rc == CHAT_QUERY_OK && (n != rn || memcmp(out, ref, n) != 0)) {
        abort();
    }

    /* the whole check: the first parameter the reference refuses */
    want = CHAT_QUERY_OK;
    where = 0;

    for (i = 0; i <= alen; i = seg + 1) {
        amp = memchr(a + i, '&', alen - i);
        seg = amp ? (size_t) (amp - a) : alen;

        if (seg > i) {
            want = ref_query_value(a + i, seg - i, ref, &rn);
            if (want != CHAT_QUERY_OK) {
                where = i;
                break;
            }
        }

        if (seg == alen) {
            break;
        }
    }

    k = (size_t) -1;
    rc = chat_query_check(args, alen, &k);

    if ((int) rc != want || (rc != CHAT_QUERY_OK && k != where)) {
        abort();
    }

    /* what the check passed, the lookup never refuses for its bytes */
    if (rc == CHAT_QUERY_OK) {
        rc = chat_query_get(args, alen, (const char *) p, nlen, out, &n);
        if (rc != CHAT_QUERY_OK && rc != CHAT_QUERY_ABSENT
            && rc != CHAT_QUERY_REPEATED)
        {
            abort();
        }
    }

    free(args);
    free(out);
    free(ref);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }

    if (data[0] & 1) {
        fuzz_query(data + 1, size - 1);

    } else {
        fuzz_json(data + 1, size - 1,
                  ((data[0] & 2) ? CHAT_JSON_OBJECT : 0)
                  | ((data[0] & 4) ? CHAT_JSON_INTEGERS : 0));
    }

    return 0;
}
