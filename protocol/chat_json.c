/*
 * chat_json.c: the strict JSON checker (see chat_json.h for the rules).
 *
 * Two passes over the bytes.  The first is chat_utf8.c over the whole
 * text: JSON text is UTF-8, and outside strings only ASCII may appear
 * anyway.  The second walks the grammar without recursion: a stack of
 * open containers (at most CHAT_JSON_MAX_DEPTH, so a hostile nesting
 * cannot exhaust the C stack) and, for duplicate keys, the keys of every
 * object still open.  When an object closes its keys are sorted by their
 * unescaped bytes and compared neighbour to neighbour, O(k log k) for k
 * keys however they are spelled, and dropped.  Nothing is decoded into
 * memory: keys are compared by reading both escaped spellings side by
 * side.
 *
 * What it does not do: build values (cJSON does that next, on text this
 * has accepted), judge what a field means, or cap sizes (the callers cap
 * bodies and messages before they get here).
 */

#include <stdlib.h>
#include <string.h>

#include "chat_json.h"
#include "chat_utf8.h"


#define CHAT_JSON_LOCAL_KEYS  64


typedef struct {
    const char     *start;
    const char     *p;
    const char     *end;
    unsigned        flags;
    const char     *at;                     /* where the fault is */

    /* keys of the open objects: pointers just past their opening quote */
    const char    **keys;
    size_t          nkeys;
    size_t          size;
    const char     *local[CHAT_JSON_LOCAL_KEYS];

    int             depth;
    unsigned char   kind[CHAT_JSON_MAX_DEPTH];    /* '{' or '[' */
    size_t          first[CHAT_JSON_MAX_DEPTH];   /* an object's first key */
} chat_json_scan_t;


/* one key read back unescaped, a byte at a time */
typedef struct {
    const char     *p;
    unsigned char   buf[4];
    int             n;
    int             i;
} chat_json_key_t;


static chat_json_rc_t chat_json_scan(chat_json_scan_t *s);
static chat_json_rc_t chat_json_string(chat_json_scan_t *s);
static chat_json_rc_t chat_json_number(chat_json_scan_t *s);
static chat_json_rc_t chat_json_literal(chat_json_scan_t *s);
static chat_json_rc_t chat_json_key_add(chat_json_scan_t *s);
static chat_json_rc_t chat_json_keys_unique(chat_json_scan_t *s);
static int chat_json_hex4(const char *p, unsigned *cp);
static int chat_json_key_next(chat_json_key_t *k);
static int chat_json_key_cmp(const char *a, const char *b);
static int chat_json_key_order(const void *a, const void *b);


#define chat_json_ws(c)  ((c) == ' ' || (c) == '\t' || (c) == '\n'          \
                          || (c) == '\r')
#define chat_json_digit(c)  ((c) >= '0' && (c) <= '9')


chat_json_rc_t
chat_json_check(const char *p, size_t len, unsigned flags, size_t *where)
{
    size_t            bad;
    chat_utf8_t       u;
    chat_json_rc_t    rc;
    chat_json_scan_t  s;

    chat_utf8_init(&u);

    if (chat_utf8_feed(&u, (const unsigned char *) p, len, &bad)
        != CHAT_UTF8_OK)
    {
        if (where != NULL) {
            *where = bad;
        }
        return CHAT_JSON_BAD_UTF8;
    }

    if (chat_utf8_finish(&u) != CHAT_UTF8_OK) {
        if (where != NULL) {
            /* the truncated sequence starts within its last 3 bytes */
            for (bad = len; bad > 0
                            && ((unsigned char) p[bad - 1] & 0xc0) == 0x80;
                 bad--)
            {
                /* back over continuation bytes */
            }
            *where = bad > 0 ? bad - 1 : 0;
        }
        return CHAT_JSON_BAD_UTF8;
    }

    s.start = p;
    s.p = p;
    s.end = p + len;
    s.flags = flags;
    s.at = p;
    s.keys = s.local;
    s.nkeys = 0;
    s.size = CHAT_JSON_LOCAL_KEYS;
    s.depth = 0;

    rc = chat_json_scan(&s);

    if (s.keys != s.local) {
        free(s.keys);
    }

    if (rc != CHAT_JSON_OK && where != NULL) {
        *where = (size_t) (s.at - s.start);
    }

    return rc;
}


/* What a byte that cannot come next is: a NUL is always named as such. */
static chat_json_rc_t
chat_json_unexpected(chat_json_scan_t *s)
{
    s->at = s->p;

    if (s->p < s->end && *s->p == '\0') {
        return CHAT_JSON_NUL;
    }

    return CHAT_JSON_SYNTAX;
}


static void
chat_json_skip_ws(chat_json_scan_t *s)
{
    while (s->p < s->end && chat_json_ws(*s->p)) {
        s->p++;
    }
}


static chat_json_rc_t
chat_json_scan(chat_json_scan_t *s)
{
    chat_json_rc_t  rc;

    chat_json_skip_ws(s);

    if (s->p == s->end) {
        s->at = s->p;
        return CHAT_JSON_SYNTAX;
    }

    if ((s->flags & CHAT_JSON_OBJECT) && *s->p != '{') {
        s->at = s->p;
        return *s->p == '\0' ? CHAT_JSON_NUL : CHAT_JSON_NOT_OBJECT;
    }

value:

    if (s->p == s->end) {
        return chat_json_unexpected(s);
    }

    switch (*s->p) {

    case '{':
    case '[':
        if (s->depth == CHAT_JSON_MAX_DEPTH) {
            s->at = s->p;
            return CHAT_JSON_TOO_DEEP;
        }

        s->kind[s->depth] = (unsigned char) *s->p;
        s->first[s->depth] = s->nkeys;
        s->depth++;
        s->p++;

        chat_json_skip_ws(s);

        if (s->p < s->end && *s->p == (s->kind[s->depth - 1] == '{' ? '}'
                                                                    : ']'))
        {
            s->depth--;
            s->p++;
            goto after;
        }

        if (s->kind[s->depth - 1] == '[') {
            goto value;
        }

        goto member;

    case '"':
        rc = chat_json_string(s);
        break;

    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        rc = chat_json_number(s);
        break;

    case 't':
    case 'f':
    case 'n':
        rc = chat_json_literal(s);
        break;

    default:
        return chat_json_unexpected(s);
    }

    if (rc != CHAT_JSON_OK) {
        return rc;
    }

after:

    chat_json_skip_ws(s);

    if (s->depth == 0) {
        return s->p == s->end ? CHAT_JSON_OK : chat_json_unexpected(s);
    }

    if (s->p == s->end) {
        return chat_json_unexpected(s);
    }

    if (*s->p == ',') {
        s->p++;
        chat_json_skip_ws(s);

        if (s->kind[s->depth - 1] == '[') {
            goto value;
        }

        goto member;
    }

    if (*s->p == (s->kind[s->depth - 1] == '{' ? '}' : ']')) {

        if (s->kind[s->depth - 1] == '{') {
            rc = chat_json_keys_unique(s);
            if (rc != CHAT_JSON_OK) {
                return rc;
            }
        }

        s->depth--;
        s->p++;
        goto after;
    }

    return chat_json_unexpected(s);

member:

    /* "key" : value */

    if (s->p == s->end || *s->p != '"') {
        return chat_json_unexpected(s);
    }

    rc = chat_json_key_add(s);
    if (rc != CHAT_JSON_OK) {
        return rc;
    }

    rc = chat_json_string(s);
    if (rc != CHAT_JSON_OK) {
        return rc;
    }

    chat_json_skip_ws(s);

    if (s->p == s->end || *s->p != ':') {
        return chat_json_unexpected(s);
    }

    s->p++;
    chat_json_skip_ws(s);

    goto value;
}


/* A string from its opening quote; s->p ends past the closing one. */
static chat_json_rc_t
chat_json_string(chat_json_scan_t *s)
{
    unsigned char   c;
    unsigned        cp, lo;
    const char     *esc;

    s->p++;

    while (s->p < s->end) {
        c = (unsigned char) *s->p;

        if (c == '"') {
            s->p++;
            return CHAT_JSON_OK;
        }

        if (c < 0x20) {
            s->at = s->p;
            return c == 0 ? CHAT_JSON_NUL : CHAT_JSON_CONTROL;
        }

        if (c != '\\') {
            s->p++;
            continue;
        }

        esc = s->p;

        if (s->end - s->p < 2) {
            s->at = s->end;
            return CHAT_JSON_SYNTAX;
        }

        switch (s->p[1]) {

        case '"': case '\\': case '/':
        case 'b': case 'f': case 'n': case 'r': case 't':
            s->p += 2;
            continue;

        case 'u':
            break;

        default:
            s->at = esc;
            return CHAT_JSON_SYNTAX;
        }

        if (s->end - s->p < 6 || !chat_json_hex4(s->p + 2, &cp)) {
            s->at = esc;
            return CHAT_JSON_SYNTAX;
        }

        s->p += 6;

        if (cp == 0) {
            s->at = esc;
            return CHAT_JSON_NUL;
        }

        if (cp >= 0xdc00 && cp <= 0xdfff) {
            s->at = esc;
            return CHAT_JSON_BAD_UTF8;          /* a low half alone */
        }

        if (cp >= 0xd800 && cp <= 0xdbff) {
            /* a high half must be followed by an escaped low half */
            if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u'
                || !chat_json_hex4(s->p + 2, &lo)
                || lo < 0xdc00 || lo > 0xdfff)
            {
                s->at = esc;
                return CHAT_JSON_BAD_UTF8;
            }

            s->p += 6;
        }
    }

    s->at = s->end;
    return CHAT_JSON_SYNTAX;
}


static chat_json_rc_t
chat_json_number(chat_json_scan_t *s)
{
    int64_t      v;
    const char  *start, *int_end;

    start = s->p;

    if (*s->p == '-') {
        s->p++;
    }

    if (s->p == s->end || !chat_json_digit(*s->p)) {
        return chat_json_unexpected(s);
    }

    if (*s->p == '0') {
        s->p++;

    } else {
        while (s->p < s->end && chat_json_digit(*s->p)) {
            s->p++;
        }
    }

    int_end = s->p;

    if (s->p < s->end && *s->p == '.') {
        s->p++;

        if (s->p == s->end || !chat_json_digit(*s->p)) {
            return chat_json_unexpected(s);
        }

        while (s->p < s->end && chat_json_digit(*s->p)) {
            s->p++;
        }
    }

    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;

        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) {
            s->p++;
        }

        if (s->p == s->end || !chat_json_digit(*s->p)) {
            return chat_json_unexpected(s);
        }

        while (s->p < s->end && chat_json_digit(*s->p)) {
            s->p++;
        }
    }

    if (s->p - start > CHAT_JSON_MAX_NUMBER) {
        s->at = start;
        return CHAT_JSON_LONG_NUMBER;
    }

    if ((s->flags & CHAT_JSON_INTEGERS)
        && (int_end != s->p
            || chat_json_integer_text(start, (size_t) (int_end - start), &v)
               != 0))
    {
        s->at = start;
        return CHAT_JSON_NOT_INTEGER;
    }

    return CHAT_JSON_OK;
}


static chat_json_rc_t
chat_json_literal(chat_json_scan_t *s)
{
    size_t       n;
    const char  *word;

    word = *s->p == 't' ? "true" : *s->p == 'f' ? "false" : "null";
    n = strlen(word);

    if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
        s->at = s->p;
        return CHAT_JSON_SYNTAX;
    }

    s->p += n;
    return CHAT_JSON_OK;
}


/* Remembers the key whose opening quote s->p is at. */
static chat_json_rc_t
chat_json_key_add(chat_json_scan_t *s)
{
    size_t        size;
    const char  **keys;

    if (s->nkeys == s->size) {
        size = s->size * 2;

        if (s->keys == s->local) {
            keys = malloc(size * sizeof(const char *));
            if (keys != NULL) {
                memcpy(keys, s->local, sizeof(s->local));
            }

        } else {
            keys = realloc(s->keys, size * sizeof(const char *));
        }

        if (keys == NULL) {
            s->at = s->p;
            return CHAT_JSON_NOMEM;
        }

        s->keys = keys;
        s->size = size;
    }

    s->keys[s->nkeys++] = s->p + 1;

    return CHAT_JSON_OK;
}


/* The innermost object closes: no key of its own may repeat. */
static chat_json_rc_t
chat_json_keys_unique(chat_json_scan_t *s)
{
    size_t        i, first, n;
    const char  **k, *repeat;

    first = s->first[s->depth - 1];
    n = s->nkeys - first;
    k = s->keys + first;
    s->nkeys = first;

    if (n < 2) {
        return CHAT_JSON_OK;
    }

    /* equal keys end up side by side, in the order they were written */
    qsort(k, n, sizeof(const char *), chat_json_key_order);

    repeat = NULL;

    for (i = 1; i < n; i++) {
        if (chat_json_key_cmp(k[i - 1], k[i]) == 0
            && (repeat == NULL || k[i] < repeat))
        {
            repeat = k[i];
        }
    }

    if (repeat == NULL) {
        return CHAT_JSON_OK;
    }

    s->at = repeat - 1;
    return CHAT_JSON_DUPLICATE_KEY;
}


static int
chat_json_hex4(const char *p, unsigned *cp)
{
    int       i;
    unsigned  c, v;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = (unsigned char) p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';
        } else if (c >= 'a' && c <= 'f') {
            c -= 'a' - 10;
        } else if (c >= 'A' && c <= 'F') {
            c -= 'A' - 10;
        } else {
            return 0;
        }

        v = v << 4 | c;
    }

    *cp = v;
    return 1;
}


/* The next byte of a checked key, unescaped, or -1 at its closing quote. */
static int
chat_json_key_next(chat_json_key_t *k)
{
    unsigned  cp, lo;

    if (k->i < k->n) {
        return k->buf[k->i++];
    }

    if (*k->p == '"') {
        return -1;
    }

    if (*k->p != '\\') {
        return (unsigned char) *k->p++;
    }

    switch (k->p[1]) {
    case 'b': k->p += 2; return '\b';
    case 'f': k->p += 2; return '\f';
    case 'n': k->p += 2; return '\n';
    case 'r': k->p += 2; return '\r';
    case 't': k->p += 2; return '\t';
    case 'u': break;
    default:  k->p += 2; return (unsigned char) k->p[-1];   /* " \ / */
    }

    (void) chat_json_hex4(k->p + 2, &cp);
    k->p += 6;

    if (cp >= 0xd800 && cp <= 0xdbff) {
        (void) chat_json_hex4(k->p + 2, &lo);
        k->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }

    /* as UTF-8, so escaped and raw spellings compare equal */
    if (cp < 0x80) {
        k->buf[0] = (unsigned char) cp;
        k->n = 1;
    } else if (cp < 0x800) {
        k->buf[0] = (unsigned char) (0xc0 | cp >> 6);
        k->buf[1] = (unsigned char) (0x80 | (cp & 0x3f));
        k->n = 2;
    } else if (cp < 0x10000) {
        k->buf[0] = (unsigned char) (0xe0 | cp >> 12);
        k->buf[1] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
        k->buf[2] = (unsigned char) (0x80 | (cp & 0x3f));
        k->n = 3;
    } else {
        k->buf[0] = (unsigned char) (0xf0 | cp >> 18);
        k->buf[1] = (unsigned char) (0x80 | (cp >> 12 & 0x3f));
        k->buf[2] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
        k->buf[3] = (unsigned char) (0x80 | (cp & 0x3f));
        k->n = 4;
    }

    k->i = 1;
    return k->buf[0];
}


static int
chat_json_key_cmp(const char *a, const char *b)
{
    int              ca, cb;
    chat_json_key_t  ka, kb;

    ka.p = a;
    ka.n = ka.i = 0;
    kb.p = b;
    kb.n = kb.i = 0;

    for ( ;; ) {
        ca = chat_json_key_next(&ka);
        cb = chat_json_key_next(&kb);

        if (ca != cb) {
            return ca < cb ? -1 : 1;
        }

        if (ca == -1) {
            return 0;
        }
    }
}


/* qsort order: by unescaped bytes, equal keys by where they were written */
static int
chat_json_key_order(const void *a, const void *b)
{
    int          rc;
    const char  *ka, *kb;

    ka = *(const char *const *) a;
    kb = *(const char *const *) b;

    rc = chat_json_key_cmp(ka, kb);
    if (rc != 0) {
        return rc;
    }

    return ka < kb ? -1 : ka > kb ? 1 : 0;
}


int
chat_json_integer_text(const char *p, size_t len, int64_t *out)
{
    size_t   i, neg;
    int64_t  v;

    neg = len > 0 && p[0] == '-';

    /* 16 digits hold 2^53 - 1 = 9007199254740991 */
    if (len == neg || len - neg > 16 || (p[neg] == '0' && len - neg > 1)) {
        return -1;
    }

    v = 0;

    for (i = neg; i < len; i++) {
        if (!chat_json_digit(p[i])) {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
    }

    if (v > CHAT_JSON_MAX_INTEGER || (neg && v == 0)) {
        return -1;                          /* too large, or -0 */
    }

    *out = neg ? -v : v;
    return 0;
}


const char *
chat_json_code(chat_json_rc_t rc)
{
    switch (rc) {
    case CHAT_JSON_OK:            return "ok";
    case CHAT_JSON_BAD_UTF8:      return "invalid_utf8";
    case CHAT_JSON_NUL:           return "nul_character";
    case CHAT_JSON_CONTROL:       return "control_character";
    case CHAT_JSON_DUPLICATE_KEY: return "duplicate_key";
    case CHAT_JSON_LONG_NUMBER:   return "invalid_number";
    case CHAT_JSON_NOT_INTEGER:   return "invalid_number";
    case CHAT_JSON_NOMEM:         return "internal";
    default:                      return "invalid_json";
    }
}


const char *
chat_json_reason(chat_json_rc_t rc)
{
    switch (rc) {
    case CHAT_JSON_OK:
        return "well-formed";
    case CHAT_JSON_SYNTAX:
        return "the JSON is not one well-formed value";
    case CHAT_JSON_NOT_OBJECT:
        return "the JSON must be one object";
    case CHAT_JSON_TOO_DEEP:
        return "the JSON nests deeper than 64 levels";
    case CHAT_JSON_BAD_UTF8:
        return "the text is not valid UTF-8 (or a \\u escape names a lone "
               "surrogate)";
    case CHAT_JSON_NUL:
        return "a NUL character, raw or as \\u0000, is not allowed";
    case CHAT_JSON_CONTROL:
        return "a raw control character in a string must be escaped";
    case CHAT_JSON_DUPLICATE_KEY:
        return "an object names the same key twice";
    case CHAT_JSON_LONG_NUMBER:
        return "a number is longer than 63 characters";
    case CHAT_JSON_NOT_INTEGER:
        return "numbers must be plain integers of at most 2^53 - 1 "
               "(no fraction, exponent or -0)";
    default:
        return "out of memory";
    }
}
