/*
 * fuzz_redact.c: libFuzzer harness for the log redaction of request lines
 * (protocol/chat_redact.c), which sees every request line a client
 * can send.
 *
 * The input is a request line.  Checked against the rules in
 * chat_redact.h, from a reference written here:
 *   - the copy always fits chat_redact_bound(), and nothing is written
 *     past the size given (ASan);
 *   - no value of an access_token or ticket parameter (any case), as
 *     ngx_http_arg() would find it in the query, survives: each such
 *     parameter of the output reads CHAT_REDACTED;
 *   - the output with those values put back is the input: nothing else
 *     changed;
 *   - when chat_redact_needed() says there is nothing to hide, nothing
 *     changed;
 *   - redacting the output again changes nothing.
 * Any breach is abort().
 */

#include <stdint.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

#include "chat_redact.h"


static int
same_name(const char *p, size_t len, const char *name)
{
    size_t  i;

    if (len != strlen(name)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (tolower((unsigned char) p[i]) != name[i]) {
            return 0;
        }
    }

    return 1;
}


static int
secret_name(const char *p, size_t len)
{
    return same_name(p, len, "access_token") || same_name(p, len, "ticket");
}


/* Puts the values of in back into out's hidden parameters, into back. */
static size_t
restore(const char *in, size_t in_len, const char *out, size_t out_len,
    char *back)
{
    size_t       n, name_len;
    const char  *ip, *iend, *op, *oend, *iq, *oq, *amp, *eq, *oamp;

    n = 0;
    iend = in + in_len;
    oend = out + out_len;

    iq = memchr(in, '?', in_len);
    if (iq == NULL) {
        memcpy(back, out, out_len);
        return out_len;
    }

    oq = memchr(out, '?', out_len);
    if (oq == NULL || oq - out != iq - in) {
        abort();
    }

    memcpy(back, out, (size_t) (oq + 1 - out));
    n = (size_t) (oq + 1 - out);

    ip = iq + 1;
    op = oq + 1;

    /* walk the output's parameters; a hidden one takes the input's value */
    while (op < oend && *op != ' ' && *op != '#') {
        for (oamp = op; oamp < oend && *oamp != '&' && *oamp != ' '
                        && *oamp != '#'; oamp++)
        {
            /* void */
        }
        for (amp = ip; amp < iend && *amp != '&' && *amp != ' '
                       && *amp != '#'; amp++)
        {
            /* void */
        }

        eq = memchr(op, '=', (size_t) (oamp - op));
        name_len = eq ? (size_t) (eq - op) : 0;

        if (eq != NULL && secret_name(op, name_len)) {
            if ((size_t) (oamp - eq - 1) != sizeof(CHAT_REDACTED) - 1
                || memcmp(eq + 1, CHAT_REDACTED, sizeof(CHAT_REDACTED) - 1))
            {
                abort();        /* a credential survived */
            }
            memcpy(back + n, ip, (size_t) (amp - ip));
            n += (size_t) (amp - ip);

        } else {
            memcpy(back + n, op, (size_t) (oamp - op));
            n += (size_t) (oamp - op);
        }

        op = oamp;
        ip = amp;

        if (op < oend && *op == '&') {
            back[n++] = '&';
            op++;
            ip++;
        }
    }

    memcpy(back + n, op, (size_t) (oend - op));
    n += (size_t) (oend - op);

    return n;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          n, again;
    char        *out, *out2, *back;
    size_t       bound;
    const char  *in = (const char *) data;

    bound = chat_redact_bound(size);
    out = malloc(bound);
    out2 = malloc(chat_redact_bound(bound));
    back = malloc(2 * bound + size + 16);
    if (out == NULL || out2 == NULL || back == NULL) {
        abort();
    }

    n = chat_redact_query(in, size, out, bound);
    if (n < 0 || (size_t) n > bound) {
        abort();
    }

    if (restore(in, size, out, (size_t) n, back) != size
        || memcmp(back, in, size) != 0)
    {
        abort();                /* something other than a value changed */
    }

    /* nothing to hide: nothing changed (a value already hidden may
     * come back the same) */
    if (!chat_redact_needed(in, size)
        && ((size_t) n != size || memcmp(out, in, size) != 0))
    {
        abort();
    }

    again = chat_redact_query(out, (size_t) n, out2,
                              chat_redact_bound((size_t) n));
    if (again != n || memcmp(out, out2, (size_t) n) != 0) {
        abort();
    }

    free(out);
    free(out2);
    free(back);

    return 0;
}
