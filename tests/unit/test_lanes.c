/*
 * test_lanes.c: the lanes contract (chat_lanes.c): every writing op has
 * the lane it is sized for, reads default to the read lane, stream names
 * and the limits the backend publishes round-trip.
 */

#include <string.h>

#include "chat_lanes.h"
#include "chat_token.h"
#include "unit.h"

#define LANE(op)  chat_lane_of_op(op, sizeof(op) - 1)


static void
test_ops(void)
{
    CHECK(LANE("msg.send") == CHAT_LANE_CHAT);
    CHECK(LANE("conv.read") == CHAT_LANE_CHAT);
    CHECK(LANE("conv.create") == CHAT_LANE_CHAT);
    CHECK(LANE("msg.edit") == CHAT_LANE_CHAT);
    CHECK(LANE("msg.delete") == CHAT_LANE_CHAT);
    CHECK(LANE("msg.search") == CHAT_LANE_READ);
    CHECK(LANE("user.find") == CHAT_LANE_READ);
    CHECK(LANE("auth.register") == CHAT_LANE_AUTH);
    CHECK(LANE("auth.login") == CHAT_LANE_AUTH);
    CHECK(LANE("order.checkout") == CHAT_LANE_ORDERS);
    CHECK(LANE("cart.item.put") == CHAT_LANE_ORDERS);
    CHECK(LANE("admin.order.refund") == CHAT_LANE_ADMIN);
    CHECK(LANE("admin.book.create") == CHAT_LANE_ADMIN);

    /* reads, and anything unknown */
    CHECK(LANE("msg.history") == CHAT_LANE_READ);
    CHECK(LANE("sync") == CHAT_LANE_READ);
    CHECK(LANE("catalog.search") == CHAT_LANE_READ);
    CHECK(LANE("catalog.suggest") == CHAT_LANE_READ);
    CHECK(LANE("cart.get") == CHAT_LANE_READ);
    CHECK(LANE("no.such.op") == CHAT_LANE_READ);

    /* a prefix of a name is not the name */
    CHECK(chat_lane_of_op("msg.send", 7) == CHAT_LANE_READ);
}


static void
test_names(void)
{
    int   i;
    char  buf[64];

    for (i = 0; i < CHAT_LANE_COUNT; i++) {
        CHECK(chat_lane_by_name(chat_lane_name(i),
                                strlen(chat_lane_name(i))) == i);
    }
    CHECK(chat_lane_name(CHAT_LANE_COUNT) == NULL);
    CHECK(chat_lane_by_name("chatx", 5) == -1);
    CHECK(chat_lane_by_name("cha", 3) == -1);

    CHECK(chat_lane_stream(buf, sizeof(buf), CHAT_LANE_AUTH, 3)
          == strlen("chat:cmd:auth:{3}"));
    CHECK(strcmp(buf, "chat:cmd:auth:{3}") == 0);
    CHECK(chat_lane_stream(buf, 8, CHAT_LANE_AUTH, 3) == 0);
    CHECK(chat_lane_stream(buf, sizeof(buf), CHAT_LANE_COUNT, 0) == 0);
}


static void
test_limits(void)
{
    char                 buf[160];
    size_t               n;
    chat_lane_limits_t   in = { 64, 30000, 2, 4, 281474976710655, 45000,
                                15000 };
    chat_lane_limits_t   out;

    n = chat_lane_limits_format(buf, sizeof(buf), &in);
    CHECK(n > 0 && strcmp(buf, "queue=64 timeout=30000 retry=2 wait=15000 "
                               "shards=4 keyid=281474976710655 "
                               "presence_ttl=45000") == 0);
    CHECK(chat_lane_limits_parse(buf, n, &out) == 0);
    CHECK(out.queue == 64 && out.timeout_ms == 30000 && out.retry_s == 2);
    CHECK(out.shards == 4 && out.key_id == 281474976710655);
    CHECK(out.presence_ttl_ms == 45000 && out.wait_ms == 15000);

    /* an older pool publishes no wait: 0, no wait bound */
    CHECK(chat_lane_limits_parse("queue=64 timeout=30000 retry=2", 30, &out)
          == 0);
    CHECK(out.queue == 64 && out.wait_ms == 0);

    /* any order, unknown fields skipped, missing ones 0 */
    CHECK(chat_lane_limits_parse("retry=5 future=1 queue=7", 24, &out) == 0);
    CHECK(out.queue == 7 && out.retry_s == 5 && out.timeout_ms == 0);
    CHECK(chat_lane_limits_parse("", 0, &out) == 0);
    CHECK(out.queue == 0);

    /* not numbers */
    CHECK(chat_lane_limits_parse("queue=x", 7, &out) == -1);
    CHECK(chat_lane_limits_parse("queue=", 6, &out) == -1);
    CHECK(chat_lane_limits_parse("queue=1a", 8, &out) == -1);
    CHECK(chat_lane_limits_parse("queue", 5, &out) == -1);
    CHECK(chat_lane_limits_parse("queue=99999999999999999999", 26, &out)
          == -1);
    CHECK(chat_lane_limits_parse("queue=-1", 8, &out) == -1);
}


/* the edge refuses a lane whose pool reads other shards or holds another
 * secret; what an older pool did not publish is not held against it */
static void
test_agreement(void)
{
    char                 why[256];
    chat_lane_limits_t   pub = { 64, 30000, 2, 4, 12345, 0, 0 };
    chat_lane_limits_t   old = { 64, 30000, 2, 0, 0, 0, 0 };

    CHECK(chat_lane_limits_agree(&pub, 4, 12345, why, sizeof(why)) == 1);
    CHECK(why[0] == '\0');
    CHECK(chat_lane_limits_agree(&old, 8, 999, why, sizeof(why)) == 1);

    CHECK(chat_lane_limits_agree(&pub, 8, 12345, why, sizeof(why)) == 0);
    CHECK(strstr(why, "4 command stream shards") != NULL);
    CHECK(strstr(why, "writes 8") != NULL);

    CHECK(chat_lane_limits_agree(&pub, 4, 54321, why, sizeof(why)) == 0);
    CHECK(strstr(why, "secret") != NULL);

    /* a short buffer is cut, never overrun */
    CHECK(chat_lane_limits_agree(&pub, 8, 12345, why, 8) == 0);
    CHECK(strlen(why) == 7);
}


/* the presence TTL is compared too (the edge warns on a mismatch); a pool
 * that did not publish one is not held to it, and the TTL is no part of
 * the refusing check */
static void
test_presence_ttl(void)
{
    char                 why[256];
    chat_lane_limits_t   pub = { 64, 30000, 2, 4, 12345, 6000, 0 };
    chat_lane_limits_t   old = { 64, 30000, 2, 4, 12345, 0, 0 };

    CHECK(chat_lane_presence_ttl_agree(&pub, 6000, why, sizeof(why)) == 1);
    CHECK(why[0] == '\0');
    CHECK(chat_lane_presence_ttl_agree(&old, 45000, why, sizeof(why)) == 1);

    CHECK(chat_lane_presence_ttl_agree(&pub, 45000, why, sizeof(why)) == 0);
    CHECK(strstr(why, "presence TTL is 6000 ms") != NULL);
    CHECK(strstr(why, "edge's 45000 ms") != NULL);

    CHECK(chat_lane_limits_agree(&pub, 4, 12345, why, sizeof(why)) == 1);
}


/* the secret's fingerprint: stable, 48 bits, differs between secrets */
static void
test_key_id(void)
{
    const unsigned char  a[] = "0123456789abcdef0123456789abcdef";
    const unsigned char  b[] = "0123456789abcdef0123456789abcdeF";
    int64_t              ia, ib;

    ia = chat_token_key_id(a, 32);
    ib = chat_token_key_id(b, 32);
    CHECK(ia > 0 && ia < ((int64_t) 1 << 48));
    CHECK(ia == chat_token_key_id(a, 32));
    CHECK(ia != ib);
}


int
main(void)
{
    UNIT_RUN(test_ops);
    UNIT_RUN(test_names);
    UNIT_RUN(test_limits);
    UNIT_RUN(test_presence_ttl);
    UNIT_RUN(test_agreement);
    UNIT_RUN(test_key_id);
    return UNIT_SUMMARY();
}
