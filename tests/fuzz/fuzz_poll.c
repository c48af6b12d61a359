/*
 * fuzz_poll.c: libFuzzer harness for the long-poll parameters
 * (ngx_chat_module/chat_poll.c), the cursor and timeout the edge takes
 * from any client's query string.
 *
 * The input's first byte picks what the rest is: even, a cursor; odd, a
 * timeout.  Each is checked against a reference written here from the
 * rules in chat_poll.h (not from the code):
 *   - a cursor is accepted exactly when the reference accepts it, and an
 *     accepted one formats back to the very same bytes (one spelling per
 *     value), with the same sid and numbers as the reference read;
 *   - a timeout is accepted exactly when it is 1-3 digits without a
 *     leading zero (or "0") and at most 120, with the reference's value.
 * Any disagreement is abort().
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_poll.h"


/* a decimal of at most 19 digits, no leading zero, below 2^63 */
static int
ref_number(const char *s, size_t len, uint64_t *v)
{
    size_t  i;

    if (len == 0 || len > 19 || (len > 1 && s[0] == '0')) {
        return 0;
    }

    *v = 0;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        *v = *v * 10 + (uint64_t) (s[i] - '0');   /* < 10^19 < 2^64 */
    }

    return *v <= UINT64_C(0x7fffffffffffffff);
}


static int
ref_cursor(const char *s, size_t len, chat_poll_cursor_t *c)
{
    size_t       i;
    const char  *dash;

    if (len < CHAT_POLL_SID_LEN + 4 || len > CHAT_POLL_CURSOR_MAX
        || s[CHAT_POLL_SID_LEN] != '_')
    {
        return 0;
    }

    for (i = 0; i < CHAT_POLL_SID_LEN; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }

    s += CHAT_POLL_SID_LEN + 1;
    len -= CHAT_POLL_SID_LEN + 1;

    dash = memchr(s, '-', len);
    if (dash == NULL) {
        return 0;
    }

    return ref_number(s, (size_t) (dash - s), &c->ms)
           && ref_number(dash + 1, len - (size_t) (dash - s) - 1, &c->seq);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  t, want;
    char                 out[CHAT_POLL_CURSOR_MAX];
    uint64_t             v;
    const char          *s;
    chat_poll_rc_t       rc;
    chat_poll_cursor_t   c, r;

    if (size < 1) {
        return 0;
    }

    s = (const char *) data + 1;
    size--;

    if ((data[0] & 1) == 0) {
        rc = chat_poll_cursor_parse(s, size, &c);

        if (size == 0) {
            if (rc != CHAT_POLL_EMPTY) {
                abort();
            }
            return 0;
        }

        want = ref_cursor(s, size, &r);

        if ((rc == CHAT_POLL_OK) != want || rc == CHAT_POLL_EMPTY) {
            abort();
        }

        if (rc == CHAT_POLL_OK) {
            if (c.ms != r.ms || c.seq != r.seq
                || memcmp(c.sid, s, CHAT_POLL_SID_LEN) != 0
                || c.sid[CHAT_POLL_SID_LEN] != '\0'
                || chat_poll_cursor_format(&c, out) != size
                || memcmp(out, s, size) != 0)
            {
                abort();
            }
        }

        return 0;
    }

    t = chat_poll_timeout_parse(s, size, 25);

    if (size == 0) {
        want = 25;
    } else if (size <= 3 && ref_number(s, size, &v) && v <= 120) {
        want = (int) v;
    } else {
        want = -1;
    }

    if (t != want) {
        abort();
    }

    return 0;
}
