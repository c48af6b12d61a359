/*
 * chat_query.c: strict query parameters (rules in chat_query.h).
 *
 * A parameter is what lies between two "&" (or an end); its name is what
 * comes before the first "=", its value what follows it.  A parameter
 * without "=" has a name and no value: it is checked, never found by
 * chat_query_get (nginx's $arg_ does not find it either).  Decoding never
 * makes anything longer, so out needs no more room than the input.
 */

#include <string.h>

#include "chat_query.h"
#include "chat_utf8.h"


static int
chat_query_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* nginx's ngx_strncasecmp folds A-Z only; so does this */
static unsigned char
chat_query_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}


/*
 * Decodes into out (when not NULL) and judges the result: a malformed
 * escape before anything else, then text that is not UTF-8, then the first
 * NUL or control character.
 */
chat_query_rc_t
chat_query_decode(const char *p, size_t len, char *out, size_t *out_len)
{
    int              hi, lo, utf8;
    size_t           i, n;
    chat_utf8_t      u;
    unsigned char    c;
    chat_query_rc_t  bad;

    chat_utf8_init(&u);
    utf8 = 1;
    bad = CHAT_QUERY_OK;
    n = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) p[i];

        if (c == '%') {
            if (len - i < 3
                || (hi = chat_query_hex((unsigned char) p[i + 1])) < 0
                || (lo = chat_query_hex((unsigned char) p[i + 2])) < 0)
            {
                *out_len = 0;
                return CHAT_QUERY_BAD_ESCAPE;
            }

            c = (unsigned char) (hi << 4 | lo);
            i += 2;
        }

        if (out != NULL) {
            out[n] = (char) c;
        }
        n++;

        if (chat_utf8_feed(&u, &c, 1, NULL) != CHAT_UTF8_OK) {
            utf8 = 0;
        }

        if (bad == CHAT_QUERY_OK && (c < 0x20 || c == 0x7f)) {
            bad = c == 0 ? CHAT_QUERY_NUL : CHAT_QUERY_CONTROL;
        }
    }

    *out_len = n;

    if (!utf8 || chat_utf8_finish(&u) != CHAT_UTF8_OK) {
        return CHAT_QUERY_BAD_UTF8;
    }

    return bad;
}


chat_query_rc_t
chat_query_check(const char *args, size_t len, size_t *where)
{
    size_t            n;
    const char       *p, *end, *amp;
    chat_query_rc_t   rc;

    if (len == 0) {
        return CHAT_QUERY_OK;           /* nginx leaves args.data NULL */
    }

    p = args;
    end = args + len;

    while (p < end) {
        amp = memchr(p, '&', (size_t) (end - p));
        if (amp == NULL) {
            amp = end;
        }

        /* name and value alike: "=" is an ordinary byte to decoding */
        rc = chat_query_decode(p, (size_t) (amp - p), NULL, &n);
        if (rc != CHAT_QUERY_OK) {
            if (where != NULL) {
                *where = (size_t) (p - args);
            }
            return rc;
        }

        p = amp + 1;
    }

    return CHAT_QUERY_OK;
}


chat_query_rc_t
chat_query_get(const char *args, size_t len, const char *name,
    size_t name_len, char *out, size_t *out_len)
{
    size_t       i;
    const char  *p, *end, *amp, *value, *value_end;

    *out_len = 0;

    if (len == 0) {
        return CHAT_QUERY_ABSENT;
    }

    p = args;
    end = args + len;
    value = NULL;
    value_end = NULL;

    while (p < end) {
        amp = memchr(p, '&', (size_t) (end - p));
        if (amp == NULL) {
            amp = end;
        }

        if ((size_t) (amp - p) > name_len && p[name_len] == '=') {
            for (i = 0; i < name_len; i++) {
                if (chat_query_lower((unsigned char) p[i])
                    != chat_query_lower((unsigned char) name[i]))
                {
                    break;
                }
            }

            if (i == name_len) {
                if (value != NULL) {
                    return CHAT_QUERY_REPEATED;
                }

                value = p + name_len + 1;
                value_end = amp;
            }
        }

        p = amp + 1;
    }

    if (value == NULL) {
        return CHAT_QUERY_ABSENT;
    }

    return chat_query_decode(value, (size_t) (value_end - value), out,
                             out_len);
}


const char *
chat_query_code(chat_query_rc_t rc)
{
    switch (rc) {
    case CHAT_QUERY_REPEATED:   return "duplicate_parameter";
    case CHAT_QUERY_BAD_UTF8:   return "invalid_utf8";
    case CHAT_QUERY_NUL:        return "nul_character";
    case CHAT_QUERY_CONTROL:    return "control_character";
    default:                    return "invalid_query";
    }
}


const char *
chat_query_reason(chat_query_rc_t rc)
{
    switch (rc) {
    case CHAT_QUERY_OK:
        return "well-formed";
    case CHAT_QUERY_ABSENT:
        return "the parameter is absent";
    case CHAT_QUERY_REPEATED:
        return "a query parameter is given twice";
    case CHAT_QUERY_BAD_ESCAPE:
        return "a \"%\" in the query is not followed by two hex digits";
    case CHAT_QUERY_BAD_UTF8:
        return "the query string does not decode to valid UTF-8";
    case CHAT_QUERY_NUL:
        return "the query string decodes to a NUL character";
    default:
        return "the query string decodes to a control character";
    }
}
