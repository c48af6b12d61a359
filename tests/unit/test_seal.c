/*
 * test_seal.c: a sealed field opens only with the key, the direction, the
 * op, the field and (for replies) the request it was sealed for; it never
 * shows its plain text; anything altered, truncated or in clear is
 * refused.  The key derivation is checked against RFC 5869's own vector,
 * so it does not lean on the code it checks.
 */

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chat_seal.h"
#include "unit.h"

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-test";
#define SECRET_LEN (sizeof(secret) - 1)

#define GW  "chat:gw:{host:12:abcd}"

static unsigned char  key[CHAT_SEAL_KEY_LEN];

static const chat_seal_ad_t  cmd_ad = {
    "cmd", "auth.login", 10, "", 0, "", 0
};

static const chat_seal_ad_t  reply_ad = {
    "reply", "auth.login", 10, GW, sizeof(GW) - 1, "17", 2
};


static int
opens(const chat_seal_ad_t *ad, const char *field, const char *sealed,
    char *out)
{
    return chat_seal_open(key, ad, field, sealed, strlen(sealed),
                          (unsigned char *) out, 64);
}


static void
test_derive_matches_rfc5869(void)
{
    /* RFC 5869 A.3: SHA-256, IKM 22 x 0x0b, no salt, no info, L = 42 */
    static const unsigned char  okm[42] = {
        0x8d, 0xa4, 0xe7, 0x75, 0xa5, 0x63, 0xc1, 0x8f, 0x71, 0x5f, 0x80,
        0x2a, 0x06, 0x3c, 0x5a, 0x31, 0xb8, 0xa1, 0x1f, 0x5c, 0x5e, 0xe1,
        0x87, 0x9e, 0xc3, 0x45, 0x4e, 0x5f, 0x3c, 0x73, 0x8d, 0x2d, 0x9d,
        0x20, 0x13, 0x95, 0xfa, 0xa4, 0xb6, 0x1a, 0x96, 0xc8
    };
    unsigned char  ikm[22], out[42], a[32], b[32];

    memset(ikm, 0x0b, sizeof(ikm));
    CHECK(chat_seal_derive(ikm, sizeof(ikm), "", out, sizeof(out)) == 0);
    CHECK(memcmp(out, okm, sizeof(okm)) == 0);

    /* the labels give keys apart from each other and from the secret */
    CHECK(chat_seal_derive(secret, SECRET_LEN, CHAT_SEAL_LABEL, a, 32) == 0);
    CHECK(chat_seal_derive(secret, SECRET_LEN, CHAT_SEAL_HASH_LABEL, b, 32)
          == 0);
    CHECK(memcmp(a, b, 32) != 0);
    CHECK(memcmp(a, secret, 32) != 0);
    CHECK(memcmp(a, key, 32) == 0);
}


static void
test_round_trip_and_fresh_nonce(void)
{
    int   n1, n2;
    char  s1[CHAT_SEAL_TEXT_LEN(64)], s2[CHAT_SEAL_TEXT_LEN(64)], out[64];

    n1 = chat_seal(key, &cmd_ad, "password",
                   (const unsigned char *) "hunter2-correct", 15, s1,
                   sizeof(s1));
    n2 = chat_seal(key, &cmd_ad, "password",
                   (const unsigned char *) "hunter2-correct", 15, s2,
                   sizeof(s2));

    CHECK(n1 > 0 && (size_t) n1 == strlen(s1));
    CHECK(n1 == n2);
    CHECK(strncmp(s1, CHAT_SEAL_PREFIX, 3) == 0);
    CHECK(strcmp(s1, s2) != 0);                 /* a fresh nonce each time */
    CHECK(strstr(s1, "hunter2") == NULL);

    CHECK(opens(&cmd_ad, "password", s1, out) == 15);
    CHECK(strcmp(out, "hunter2-correct") == 0);
    CHECK(opens(&cmd_ad, "password", s2, out) == 15);

    /* an empty value seals too */
    n1 = chat_seal(key, &cmd_ad, "password", (const unsigned char *) "", 0,
                   s1, sizeof(s1));
    CHECK(n1 > 0);
    CHECK(opens(&cmd_ad, "password", s1, out) == 0 && out[0] == '\0');
}


static void
test_opens_only_where_sealed_for(void)
{
    char            s[CHAT_SEAL_TEXT_LEN(64)], out[64];
    unsigned char   other[CHAT_SEAL_KEY_LEN];
    chat_seal_ad_t  ad;

    CHECK(chat_seal(key, &reply_ad, "token", (const unsigned char *) "tok",
                    3, s, sizeof(s)) > 0);
    CHECK(opens(&reply_ad, "token", s, out) == 3);

    CHECK(opens(&reply_ad, "password", s, out) == -1);      /* field */

    ad = reply_ad;
    ad.dir = "cmd";                                          /* direction */
    CHECK(opens(&ad, "token", s, out) == -1);

    ad = reply_ad;
    ad.op = "auth.register";                                 /* op */
    ad.op_len = 13;
    CHECK(opens(&ad, "token", s, out) == -1);

    ad = reply_ad;
    ad.req = "18";                                           /* request */
    CHECK(opens(&ad, "token", s, out) == -1);

    ad = reply_ad;
    ad.gw_len--;                                             /* gateway */
    CHECK(opens(&ad, "token", s, out) == -1);

    memcpy(other, key, sizeof(other));
    other[0] ^= 1;                                           /* key */
    CHECK(chat_seal_open(other, &reply_ad, "token", s, strlen(s),
                         (unsigned char *) out, sizeof(out)) == -1);
}


static void
test_altered_truncated_or_clear_refused(void)
{
    char    s[CHAT_SEAL_TEXT_LEN(64)], bad[CHAT_SEAL_TEXT_LEN(64)], out[64];
    size_t  i, len;

    CHECK(chat_seal(key, &cmd_ad, "password",
                    (const unsigned char *) "secret-pass", 11, s, sizeof(s))
          > 0);
    len = strlen(s);

    /* every character changed in turn (to one that keeps it base64url) */
    for (i = 0; i < len; i++) {
        memcpy(bad, s, len + 1);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        CHECK(opens(&cmd_ad, "password", bad, out) == -1);
    }

    /* every truncation */
    for (i = 0; i < len; i++) {
        CHECK(chat_seal_open(key, &cmd_ad, "password", s, i,
                             (unsigned char *) out, sizeof(out)) == -1);
    }

    CHECK(opens(&cmd_ad, "password", "secret-pass", out) == -1);
    CHECK(opens(&cmd_ad, "password", "s1.", out) == -1);
    CHECK(opens(&cmd_ad, "password", "", out) == -1);
    CHECK(opens(&cmd_ad, "password", s + 3, out) == -1);    /* no prefix */

    /* an output buffer too small for the plain text */
    CHECK(chat_seal_open(key, &cmd_ad, "password", s, len,
                         (unsigned char *) out, 11) == -1);
}


static void
test_limits(void)
{
    char  *big, *text;

    big = malloc(CHAT_SEAL_MAX_PLAIN + 1);
    text = malloc(CHAT_SEAL_TEXT_LEN(CHAT_SEAL_MAX_PLAIN + 1));
    CHECK(big != NULL && text != NULL);
    if (big == NULL || text == NULL) {
        free(big);
        free(text);
        return;
    }

    memset(big, 'x', CHAT_SEAL_MAX_PLAIN + 1);

    CHECK(chat_seal(key, &cmd_ad, "password", (unsigned char *) big,
                    CHAT_SEAL_MAX_PLAIN, text,
                    CHAT_SEAL_TEXT_LEN(CHAT_SEAL_MAX_PLAIN)) > 0);
    CHECK(chat_seal(key, &cmd_ad, "password", (unsigned char *) big,
                    CHAT_SEAL_MAX_PLAIN + 1, text,
                    CHAT_SEAL_TEXT_LEN(CHAT_SEAL_MAX_PLAIN + 1)) == -1);
    /* an output too small */
    CHECK(chat_seal(key, &cmd_ad, "password", (unsigned char *) big, 10,
                    text, 20) == -1);

    free(big);
    free(text);
}


static void
test_json_fields(void)
{
    char          *printed;
    cJSON         *body;
    const cJSON   *pw;

    body = cJSON_Parse("{\"email\":\"a@example.com\","
                       "\"password\":\"correct horse\"}");
    CHECK(body != NULL);

    CHECK(chat_seal_json(key, &cmd_ad, chat_seal_command_fields("auth.login",
                                                                10), body)
          == 0);

    printed = cJSON_PrintUnformatted(body);
    CHECK(printed != NULL && strstr(printed, "correct horse") == NULL);
    CHECK(printed != NULL && strstr(printed, "a@example.com") != NULL);
    cJSON_free(printed);

    CHECK(chat_seal_open_json(key, &cmd_ad,
                              chat_seal_command_fields("auth.login", 10),
                              body) == 0);
    pw = cJSON_GetObjectItemCaseSensitive(body, "password");
    CHECK(cJSON_IsString(pw) && strcmp(pw->valuestring, "correct horse") == 0);

    /* now in clear again: opening it a second time is refused */
    CHECK(chat_seal_open_json(key, &cmd_ad,
                              chat_seal_command_fields("auth.login", 10),
                              body) == -1);
    cJSON_Delete(body);

    /* not a string: neither sealed nor opened */
    body = cJSON_Parse("{\"password\":12}");
    CHECK(chat_seal_json(key, &cmd_ad, chat_seal_command_fields("auth.login",
                                                                10), body)
          == -1);
    CHECK(chat_seal_open_json(key, &cmd_ad,
                              chat_seal_command_fields("auth.login", 10),
                              body) == -1);
    cJSON_Delete(body);

    /* absent: nothing to do */
    body = cJSON_Parse("{\"email\":\"a@example.com\"}");
    CHECK(chat_seal_json(key, &cmd_ad, chat_seal_command_fields("auth.login",
                                                                10), body)
          == 0);
    CHECK(chat_seal_open_json(key, &cmd_ad,
                              chat_seal_command_fields("auth.login", 10),
                              body) == 0);
    cJSON_Delete(body);
}


static void
test_tables(void)
{
    const char *const  *f;

    f = chat_seal_command_fields("auth.register", 13);
    CHECK(f != NULL && strcmp(f[0], "password") == 0 && f[1] == NULL);
    f = chat_seal_command_fields("auth.login", 10);
    CHECK(f != NULL && strcmp(f[0], "password") == 0);
    CHECK(chat_seal_command_fields("auth.log", 8) == NULL);
    CHECK(chat_seal_command_fields("msg.send", 8) == NULL);

    f = chat_seal_reply_fields("auth.login", 10);
    CHECK(f != NULL && strcmp(f[0], "token") == 0 && f[1] == NULL);
    CHECK(chat_seal_reply_fields("auth.register", 13) != NULL);
    CHECK(chat_seal_reply_fields("user.me", 7) == NULL);
}


int
main(void)
{
    if (chat_seal_derive(secret, SECRET_LEN, CHAT_SEAL_LABEL, key,
                         sizeof(key)) != 0)
    {
        fprintf(stderr, "key derivation failed\n");
        return 1;
    }

    UNIT_RUN(test_derive_matches_rfc5869);
    UNIT_RUN(test_round_trip_and_fresh_nonce);
    UNIT_RUN(test_opens_only_where_sealed_for);
    UNIT_RUN(test_altered_truncated_or_clear_refused);
    UNIT_RUN(test_limits);
    UNIT_RUN(test_json_fields);
    UNIT_RUN(test_tables);

    return UNIT_SUMMARY();
}
