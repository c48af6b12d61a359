/*
 * chat_redact.c: credentials out of logged request lines.
 *
 * Browsers cannot set headers on a WebSocket handshake, so a browser
 * authenticates /ws with its URL: "?ticket=" (single use, seconds long)
 * or, for older clients, "?access_token=" (a bearer token).  nginx logs
 * that URL wherever it logs the request: $request and $request_uri in the
 * access log, the "request:" of error log lines.  The edge logs through
 * $chat_request_safe (ngx_chat_variables.c), which is the request line
 * after this function, and scrubs the /ws handshake's own line in place.
 *
 * The query is split on '&' as ngx_http_arg() splits it, and the names
 * are compared the way it compares them (case-insensitively), so every
 * value the module would accept as a credential is one this hides.  A
 * name that is percent-encoded ("access%5Ftoken") is not hidden: the
 * module never accepts it either.
 */

#include <string.h>

#include "chat_redact.h"


static const struct {
    const char  *name;
    size_t       len;
} chat_redact_names[] = {
    { "access_token", sizeof("access_token") - 1 },
    { "ticket", sizeof("ticket") - 1 },
    { NULL, 0 }
};


static int
chat_redact_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}


/* Whether the parameter p (up to '=') is one whose value is hidden. */
static int
chat_redact_is_secret(const char *p, size_t name_len)
{
    size_t  i, j;

    for (i = 0; chat_redact_names[i].name; i++) {
        if (chat_redact_names[i].len != name_len) {
            continue;
        }

        for (j = 0; j < name_len; j++) {
            if (chat_redact_lower((unsigned char) p[j])
                != chat_redact_names[i].name[j])
            {
                break;
            }
        }

        if (j == name_len) {
            return 1;
        }
    }

    return 0;
}


/*
 * Walks in; with out == NULL only tells (1/0) whether anything would be
 * hidden, else writes the copy and returns its length (or -1).
 */
static int
chat_redact_walk(const char *in, size_t len, char *out, size_t out_size)
{
    size_t       o, hidden_len, name_len, value_len;
    const char  *p, *end, *q, *amp, *eq;

    hidden_len = sizeof(CHAT_REDACTED) - 1;
    end = in + len;
    o = 0;

#define chat_redact_copy(src, n)                                            \
    do {                                                                    \
        if (out != NULL) {                                                  \
            if (o + (n) > out_size) {                                       \
                return -1;                                                  \
            }                                                               \
            memcpy(out + o, (src), (n));                                    \
        }                                                                   \
        o += (n);                                                           \
    } while (0)

    q = memchr(in, '?', len);
    if (q == NULL) {
        if (out == NULL) {
            return 0;
        }
        chat_redact_copy(in, len);
        return (int) o;
    }

    chat_redact_copy(in, (size_t) (q + 1 - in));

    /* the query: up to a space (the protocol of a request line) or '#' */
    p = q + 1;
    for (q = p; q < end && *q != ' ' && *q != '#'; q++) {
        /* void */
    }

    while (p < q) {
        amp = memchr(p, '&', (size_t) (q - p));
        if (amp == NULL) {
            amp = q;
        }

        eq = memchr(p, '=', (size_t) (amp - p));
        name_len = eq ? (size_t) (eq - p) : 0;

        if (eq != NULL && chat_redact_is_secret(p, name_len)) {
            if (out == NULL) {
                return 1;
            }

            chat_redact_copy(p, name_len + 1);
            chat_redact_copy(CHAT_REDACTED, hidden_len);

        } else {
            value_len = (size_t) (amp - p);
            chat_redact_copy(p, value_len);
        }

        if (amp < q) {
            chat_redact_copy("&", 1);
        }

        p = amp + 1;
    }

    if (out == NULL) {
        return 0;
    }

    chat_redact_copy(q, (size_t) (end - q));

#undef chat_redact_copy

    return (int) o;
}


int
chat_redact_query(const char *in, size_t len, char *out, size_t out_size)
{
    return chat_redact_walk(in, len, out, out_size);
}


int
chat_redact_needed(const char *in, size_t len)
{
    return chat_redact_walk(in, len, NULL, 0);
}
