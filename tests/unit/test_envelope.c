/*
 * test_envelope.c: the edge's command envelope has every field the backend
 * expects, in XADD form, and refuses what must never reach Redis; the
 * optional request id goes along only when set.
 */

#include <string.h>

#include "chat_envelope.h"
#include "chat_protocol.h"
#include "unit.h"

#define B(s)  { s, sizeof(s) - 1 }


static chat_envelope_t
good_envelope(void)
{
    chat_envelope_t  e = {
        .key = B("u7:order-1"),
        .op = B("auth.register"),
        .role = B("user"),
        .gw = B("chat:gw:{host:1:ab}"),
        .body = B("{\"a\":1}"),
        .rid = B("5f2b0c1a9e8d7c6b5a4f3e2d1c0b9a88"),
        .uid = 7,
        .req = 18446744073709551615ULL,
        .ts = 1800000000123LL,
    };

    return e;
}


static const char *
field(const char **argv, const size_t *len, int argc, const char *name,
    size_t *value_len)
{
    int  i;

    for (i = 6; i + 1 < argc; i += 2) {
        if (len[i] == strlen(name) && memcmp(argv[i], name, len[i]) == 0) {
            *value_len = len[i + 1];
            return argv[i + 1];
        }
    }
    return NULL;
}


#define CHECK_FIELD(name, expect)                                           \
    do {                                                                    \
        size_t       vl = 0;                                                \
        const char  *v = field(argv, len, argc, name, &vl);                 \
        CHECK(v != NULL && vl == strlen(expect)                             \
              && memcmp(v, expect, vl) == 0);                               \
    } while (0)


static void
test_layout(void)
{
    int                      argc;
    size_t                   len[CHAT_ENVELOPE_ARGC];
    const char              *argv[CHAT_ENVELOPE_ARGC];
    chat_envelope_t          e = good_envelope();
    chat_envelope_numbers_t  nums;

    argc = chat_envelope_argv(&e, "chat:cmd:{3}", "1000", &nums, argv, len);
    CHECK(argc == CHAT_ENVELOPE_ARGC);
    CHECK(strcmp(argv[0], "XADD") == 0);
    CHECK(strncmp(argv[1], "chat:cmd:{3}", len[1]) == 0);
    CHECK(strncmp(argv[2], "MAXLEN", len[2]) == 0);
    CHECK(strncmp(argv[3], "~", len[3]) == 0);
    CHECK(strncmp(argv[4], "1000", len[4]) == 0);
    CHECK(strncmp(argv[5], "*", len[5]) == 0);

    CHECK_FIELD(CHAT_F_VERSION, CHAT_PROTOCOL_VERSION);
    CHECK_FIELD(CHAT_F_KEY, "u7:order-1");
    CHECK_FIELD(CHAT_F_OP, "auth.register");
    CHECK_FIELD(CHAT_F_UID, "7");
    CHECK_FIELD(CHAT_F_ROLE, "user");
    CHECK_FIELD(CHAT_F_GW, "chat:gw:{host:1:ab}");
    CHECK_FIELD(CHAT_F_REQ, "18446744073709551615");
    CHECK_FIELD(CHAT_F_TS, "1800000000123");
    CHECK_FIELD(CHAT_F_BODY, "{\"a\":1}");
    CHECK_FIELD(CHAT_F_RID, "5f2b0c1a9e8d7c6b5a4f3e2d1c0b9a88");

    /* no request id: no field */
    e.rid.len = 0;
    argc = chat_envelope_argv(&e, "chat:cmd:{3}", "1000", &nums, argv, len);
    CHECK(argc == CHAT_ENVELOPE_ARGC - 2);
    {
        size_t  vl;
        CHECK(field(argv, len, argc, CHAT_F_RID, &vl) == NULL);
    }
}


static void
test_anonymous(void)
{
    size_t                   len[CHAT_ENVELOPE_ARGC];
    const char              *argv[CHAT_ENVELOPE_ARGC];
    chat_envelope_t          e = good_envelope();
    chat_envelope_numbers_t  nums;
    int                      argc;

    e.uid = 0;
    e.role.len = 0;
    argc = chat_envelope_argv(&e, "s", "1", &nums, argv, len);
    CHECK(argc == CHAT_ENVELOPE_ARGC);
    CHECK_FIELD(CHAT_F_UID, "0");
    CHECK_FIELD(CHAT_F_ROLE, "");

    /* a user id without a role, or a role without a user, is refused */
    e.uid = 5;
    CHECK(chat_envelope_argv(&e, "s", "1", &nums, argv, len) == -1);
    e = good_envelope();
    e.uid = 0;
    CHECK(chat_envelope_argv(&e, "s", "1", &nums, argv, len) == -1);
}


static void
test_body_with_binary_bytes_kept_whole(void)
{
    int                      argc;
    size_t                   len[CHAT_ENVELOPE_ARGC], vl;
    const char              *argv[CHAT_ENVELOPE_ARGC], *v;
    static const char        body[] = "{\"t\":\"a\0b\"}";
    chat_envelope_t          e = good_envelope();
    chat_envelope_numbers_t  nums;

    e.body.data = body;
    e.body.len = sizeof(body) - 1;
    argc = chat_envelope_argv(&e, "s", "1", &nums, argv, len);
    v = field(argv, len, argc, CHAT_F_BODY, &vl);
    CHECK(v == body && vl == sizeof(body) - 1);
}


static void
test_invalid_refused(void)
{
    char                     big[CHAT_MAX_KEY_LEN + 2];
    size_t                   len[CHAT_ENVELOPE_ARGC];
    const char              *argv[CHAT_ENVELOPE_ARGC];
    chat_envelope_t          e;
    chat_envelope_numbers_t  nums;

#define REFUSED(mutation)                                                   \
    do {                                                                    \
        e = good_envelope();                                                \
        mutation;                                                           \
        CHECK(chat_envelope_argv(&e, "s", "1", &nums, argv, len) == -1);    \
    } while (0)

    memset(big, 'k', sizeof(big));

    REFUSED(e.key.len = 0);
    REFUSED((e.key.data = big, e.key.len = CHAT_MAX_KEY_LEN + 1));
    REFUSED(e.op.len = 0);
    REFUSED((e.op.data = "Auth.Register", e.op.len = 13));
    REFUSED((e.op.data = "auth register", e.op.len = 13));
    REFUSED((e.op.data = big, e.op.len = CHAT_MAX_OP_LEN + 1));
    REFUSED((e.role.data = "root", e.role.len = 4));
    REFUSED(e.gw.len = 0);
    REFUSED(e.body.len = 0);
    REFUSED(e.uid = -1);
    REFUSED((e.rid.data = "a b", e.rid.len = 3));
    REFUSED((e.rid.data = "x\r\nforged: line", e.rid.len = 16));
    REFUSED(e.rid.len = CHAT_MAX_RID_LEN + 1);

#undef REFUSED

    /* the longest key is fine */
    e = good_envelope();
    e.key.data = big;
    e.key.len = CHAT_MAX_KEY_LEN;
    CHECK(chat_envelope_argv(&e, "s", "1", &nums, argv, len)
          == CHAT_ENVELOPE_ARGC);
}


static void
test_shard(void)
{
    unsigned  i, s, seen[8] = { 0 };
    char      key[32];

    CHECK(chat_envelope_shard("anything", 8, 1) == 0);
    CHECK(chat_envelope_shard("anything", 8, 0) == 0);
    CHECK(chat_envelope_shard("abc", 3, 8) == chat_envelope_shard("abc", 3, 8));

    /* 1,000 keys land in range and reach every one of 8 shards */
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "g:host:%u", i);
        s = chat_envelope_shard(key, strlen(key), 8);
        CHECK(s < 8);
        if (s < 8) {
            seen[s]++;
        }
    }
    for (i = 0; i < 8; i++) {
        CHECK(seen[i] > 60);
    }
}


int
main(void)
{
    UNIT_RUN(test_layout);
    UNIT_RUN(test_anonymous);
    UNIT_RUN(test_body_with_binary_bytes_kept_whole);
    UNIT_RUN(test_invalid_refused);
    UNIT_RUN(test_shard);
    return UNIT_SUMMARY();
}
