/*
 * test_poll.c: the long-poll cursor and timeout (chat_poll.c).
 */

#include <string.h>

#include "chat_poll.h"
#include "unit.h"


#define SID "0123456789abcdef"

static chat_poll_rc_t
parse(const char *s, chat_poll_cursor_t *c)
{
    return chat_poll_cursor_parse(s, strlen(s), c);
}


static void
test_cursor_round_trip(void)
{
    char                 out[CHAT_POLL_CURSOR_MAX];
    chat_poll_cursor_t   c;
    static const char   *good[] = {
        SID "_0-0",
        SID "_1700000000000-0",
        SID "_1700000000000-17",
        SID "_9223372036854775807-9223372036854775807",
    };
    size_t               i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK(parse(good[i], &c) == CHAT_POLL_OK);
        CHECK(strcmp(c.sid, SID) == 0);
        CHECK(chat_poll_cursor_format(&c, out) == strlen(good[i]));
        CHECK(strcmp(out, good[i]) == 0);
    }

    CHECK(parse(SID "_1700000000000-17", &c) == CHAT_POLL_OK);
    CHECK(c.ms == 1700000000000ULL && c.seq == 17);
}


static void
test_cursor_refusals(void)
{
    chat_poll_cursor_t   c;
    size_t               i;
    static const char   *bad[] = {
        "x",
        SID,                                    /* no id */
        SID "_",
        SID "-1-0",                             /* wrong separator */
        SID "_1",                               /* no seq */
        SID "_1-",
        SID "_-1-0",                            /* sign */
        SID "_+1-0",
        SID "_01-0",                            /* leading zero */
        SID "_1-00",
        SID "_1-0 ",                            /* trailing */
        SID "_1-0x",
        SID "_9223372036854775808-0",           /* 2^63 */
        SID "_1-18446744073709551616",          /* 2^64 */
        "0123456789ABCDEF_1-0",                 /* upper case hex */
        "0123456789abcde_1-0",                  /* short sid */
        "0123456789abcdefa_1-0",                /* long sid */
        "0123456789abcdeg_1-0",
        SID "_1-0" "0000000000000000000000000000000000000000000000000",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &c) != CHAT_POLL_INVALID) {
            fprintf(stderr, "  accepted: \"%s\"\n", bad[i]);
            CHECK(0);
        }
    }

    CHECK(chat_poll_cursor_parse("", 0, &c) == CHAT_POLL_EMPTY);

    /* a NUL inside the given length is not the end */
    CHECK(chat_poll_cursor_parse(SID "_1-0\0" "5", 21, &c) == CHAT_POLL_INVALID);
}


static void
test_timeout(void)
{
    CHECK(chat_poll_timeout_parse("", 0, 25) == 25);
    CHECK(chat_poll_timeout_parse("0", 1, 25) == 0);
    CHECK(chat_poll_timeout_parse("30", 2, 25) == 30);
    CHECK(chat_poll_timeout_parse("120", 3, 25) == 120);
    CHECK(chat_poll_timeout_parse("121", 3, 25) == -1);
    CHECK(chat_poll_timeout_parse("-1", 2, 25) == -1);
    CHECK(chat_poll_timeout_parse("05", 2, 25) == -1);
    CHECK(chat_poll_timeout_parse("1.5", 3, 25) == -1);
    CHECK(chat_poll_timeout_parse("99999999999999999999999", 23, 25) == -1);
    CHECK(chat_poll_timeout_parse("abc", 3, 25) == -1);
}


int
main(void)
{
    UNIT_RUN(test_cursor_round_trip);
    UNIT_RUN(test_cursor_refusals);
    UNIT_RUN(test_timeout);
    return UNIT_SUMMARY();
}
