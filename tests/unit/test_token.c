/*
 * test_token.c: the HS256 verifier refuses everything but a well-formed,
 * unexpired token that we signed.  Forged tokens are built by hand here
 * (header and payload JSON, then base64url and HMAC with OpenSSL directly)
 * so the tests do not lean on the signer they are checking.
 */

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "chat_token.h"
#include "unit.h"

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-test";
#define SECRET_LEN (sizeof(secret) - 1)
#define NOW 1800000000LL


/* plain base64url with optional '=' padding, independent of chat_token.c */
static size_t
b64url(const unsigned char *in, size_t len, char *out, int pad)
{
    size_t  n;
    int     i;

    n = (size_t) EVP_EncodeBlock((unsigned char *) out, in, (int) len);
    for (i = 0; (size_t) i < n; i++) {
        if (out[i] == '+') {
            out[i] = '-';
        } else if (out[i] == '/') {
            out[i] = '_';
        }
    }
    if (!pad) {
        while (n > 0 && out[n - 1] == '=') {
            n--;
        }
    }
    out[n] = '\0';
    return n;
}


/* header.payload.mac with HMAC-SHA256 over the first two parts */
static void
forge(const char *header, const char *payload, int pad, char *out)
{
    size_t         n;
    unsigned int   mac_len;
    unsigned char  mac[32];

    n = b64url((const unsigned char *) header, strlen(header), out, pad);
    out[n++] = '.';
    n += b64url((const unsigned char *) payload, strlen(payload), out + n,
                pad);
    HMAC(EVP_sha256(), secret, (int) SECRET_LEN, (unsigned char *) out, n,
         mac, &mac_len);
    out[n++] = '.';
    b64url(mac, mac_len, out + n, pad);
}


/* signs a token of session "s1" that ends with the token */
static int
sign(const unsigned char *key, size_t key_len, int64_t uid, const char *role,
    int64_t iat, int64_t exp, char *out, size_t size)
{
    chat_token_claims_t  c;

    memset(&c, 0, sizeof(c));
    c.uid = uid;
    if (strlen(role) >= sizeof(c.role)) {
        return -1;
    }
    strcpy(c.role, role);
    strcpy(c.sid, "s1");
    c.iat = iat;
    c.exp = exp;
    c.sxp = exp;

    return chat_token_sign(key, key_len, &c, out, size);
}


static chat_token_status_t
verify(const char *token, chat_token_claims_t *claims)
{
    return chat_token_verify(secret, SECRET_LEN, token, strlen(token), NOW,
                             claims);
}


#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
/* the sign-in session every token must name */
#define SESSION ",\"sid\":\"s1\",\"sxp\":1950000000"
#define GOOD_CLAIMS                                                         \
    "{\"sub\":\"42\",\"role\":\"admin\",\"iat\":1,\"exp\":1900000000" SESSION "}"


static void
test_signed_token_verifies(void)
{
    char                 token[CHAT_TOKEN_MAX_LEN];
    chat_token_claims_t  c;

    CHECK(sign(secret, SECRET_LEN, 7, "user", NOW, NOW + 60,
                          token, sizeof(token)) > 0);
    CHECK(verify(token, &c) == CHAT_TOKEN_OK);
    CHECK(c.uid == 7);
    CHECK(strcmp(c.role, "user") == 0);
    CHECK(c.exp == NOW + 60);
}


static void
test_forged_good_token_verifies(void)
{
    char                 token[CHAT_TOKEN_MAX_LEN];
    chat_token_claims_t  c;

    forge(HS256, GOOD_CLAIMS, 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_OK);
    CHECK(c.uid == 42);
    CHECK(strcmp(c.role, "admin") == 0);
}


static void
test_alg_none_refused(void)
{
    char                 token[CHAT_TOKEN_MAX_LEN], *dot;
    chat_token_claims_t  c;

    forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD_CLAIMS, 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_BAD_ALG);

    /* the classic form: empty signature part */
    dot = strrchr(token, '.');
    dot[1] = '\0';
    CHECK(verify(token, &c) == CHAT_TOKEN_BAD_ALG);
}


static void
test_other_algs_refused(void)
{
    char                 token[CHAT_TOKEN_MAX_LEN];
    chat_token_claims_t  c;

    forge("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", GOOD_CLAIMS, 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_BAD_ALG);

    forge("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", GOOD_CLAIMS, 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_BAD_ALG);

    forge("{\"alg\":\"hs256\"}", GOOD_CLAIMS, 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_BAD_ALG);

    forge("{\"typ\":\"JWT\"}", GOOD_CLAIMS, 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_BAD_ALG);
}


static void
test_every_flipped_mac_bit_refused(void)
{
    int                  bit, bad;
    char                 token[CHAT_TOKEN_MAX_LEN], copy[CHAT_TOKEN_MAX_LEN];
    char                *mac;
    size_t               i, n;
    chat_token_claims_t  c;
    unsigned char        raw[64];
    static const char    alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    forge(HS256, GOOD_CLAIMS, 0, token);
    mac = strrchr(token, '.') + 1;
    n = strlen(mac);

    /* flip each of the 256 MAC bits by re-encoding the flipped bytes */
    bad = 0;
    for (bit = 0; bit < 256; bit++) {
        for (i = 0; i < n; i++) {
            raw[i] = (unsigned char) (strchr(alphabet, mac[i]) - alphabet);
        }
        raw[bit / 6] ^= (unsigned char) (0x20 >> (bit % 6));
        strcpy(copy, token);
        for (i = 0; i < n; i++) {
            copy[mac - token + i] = alphabet[raw[i]];
        }
        if (verify(copy, &c) == CHAT_TOKEN_OK) {
            bad++;
        }
    }
    CHECK(bad == 0);
}


static void
test_payload_tamper_refused(void)
{
    char                 token[CHAT_TOKEN_MAX_LEN], other[CHAT_TOKEN_MAX_LEN];
    char                 spliced[2 * CHAT_TOKEN_MAX_LEN];
    chat_token_claims_t  c;

    forge(HS256, GOOD_CLAIMS, 0, token);
    forge(HS256, "{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1900000000" SESSION "}", 0,
          other);

    /* header+payload of one token with the MAC of another */
    strcpy(spliced, other);
    strcpy(strrchr(spliced, '.'), strrchr(token, '.'));
    CHECK(verify(spliced, &c) == CHAT_TOKEN_BAD_SIGNATURE);

    /* right token, wrong secret */
    CHECK(chat_token_verify((const unsigned char *)
                            "another-secret-of-32-bytes-or-more!!", 36,
                            token, strlen(token), NOW, &c)
          == CHAT_TOKEN_BAD_SIGNATURE);
}


static void
test_padding_variants_refused(void)
{
    char                 token[CHAT_TOKEN_MAX_LEN], copy[CHAT_TOKEN_MAX_LEN];
    chat_token_claims_t  c;

    /* padded base64url everywhere, MAC computed over the padded text */
    forge(HS256, GOOD_CLAIMS, 1, token);
    CHECK(strchr(token, '=') != NULL);
    CHECK(verify(token, &c) == CHAT_TOKEN_MALFORMED);

    /* a valid token with "=" appended to the MAC */
    forge(HS256, GOOD_CLAIMS, 0, token);
    strcpy(copy, token);
    strcat(copy, "=");
    CHECK(verify(copy, &c) != CHAT_TOKEN_OK);

    /* standard base64 characters instead of URL-safe ones */
    strcpy(copy, token);
    copy[strlen(copy) - 2] = '+';
    CHECK(verify(copy, &c) != CHAT_TOKEN_OK);

    /* non-canonical trailing bits: last MAC char 43 chars -> 2 spare bits */
    strcpy(copy, token);
    copy[strlen(copy) - 1] |= 0;
    {
        char  *last = copy + strlen(copy) - 1;
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int    v = (int) (strchr(alphabet, *last) - alphabet);

        *last = alphabet[v ^ 1];
    }
    CHECK(verify(copy, &c) != CHAT_TOKEN_OK);

    /* whitespace and stray separators */
    strcpy(copy, " ");
    strcat(copy, token);
    CHECK(verify(copy, &c) == CHAT_TOKEN_MALFORMED);
    strcpy(copy, token);
    strcat(copy, ".");
    CHECK(verify(copy, &c) == CHAT_TOKEN_MALFORMED);
}


static void
test_expiry(void)
{
    char                 token[CHAT_TOKEN_MAX_LEN];
    chat_token_claims_t  c;

    forge(HS256, "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1799999999" SESSION "}", 0,
          token);
    CHECK(verify(token, &c) == CHAT_TOKEN_EXPIRED);

    /* exp == now is already expired */
    forge(HS256, "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1800000000" SESSION "}", 0,
          token);
    CHECK(verify(token, &c) == CHAT_TOKEN_EXPIRED);

    forge(HS256, "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1800000001" SESSION "}", 0,
          token);
    CHECK(verify(token, &c) == CHAT_TOKEN_OK);
}


static void
test_not_before(void)
{
    char                 token[CHAT_TOKEN_MAX_LEN];
    chat_token_claims_t  c;

    /* nbf one second in the future: refused; nbf == now: valid */
    forge(HS256, "{\"sub\":\"42\",\"role\":\"user\",\"nbf\":1800000001,"
                 "\"exp\":1900000000" SESSION "}", 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_NOT_YET_VALID);

    forge(HS256, "{\"sub\":\"42\",\"role\":\"user\",\"nbf\":1800000000,"
                 "\"exp\":1900000000" SESSION "}", 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_OK);

    /* a malformed nbf is a bad claim, not something to skip */
    forge(HS256, "{\"sub\":\"42\",\"role\":\"user\",\"nbf\":\"soon\","
                 "\"exp\":1900000000" SESSION "}", 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_BAD_CLAIMS);

    /* expired wins over not-yet-valid: either way it is refused */
    forge(HS256, "{\"sub\":\"42\",\"role\":\"user\",\"nbf\":1800000005,"
                 "\"exp\":1700000000" SESSION "}", 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_EXPIRED);

    /* no nbf means no lower bound, not nbf 0 (found by fuzz_token: a time
     * before the epoch was "not valid yet" for a token without nbf) */
    forge(HS256, "{\"sub\":\"42\",\"role\":\"user\",\"exp\":10" SESSION "}", 0,
          token);
    CHECK(chat_token_verify(secret, SECRET_LEN, token, strlen(token), -1, &c)
          == CHAT_TOKEN_OK);
}


static void
test_missing_or_bad_claims(void)
{
    size_t               i;
    char                 token[CHAT_TOKEN_MAX_LEN];
    chat_token_claims_t  c;
    static const char   *bad[] = {
        "{\"sub\":\"42\",\"role\":\"user\"}",                        /* no exp */
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":\"1900000000\"}", /* string */
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1900000000.5}",
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":null}",
        "{\"role\":\"user\",\"exp\":1900000000" SESSION "}",                   /* no sub */
        "{\"sub\":42,\"role\":\"user\",\"exp\":1900000000" SESSION "}",
        "{\"sub\":\"0\",\"role\":\"user\",\"exp\":1900000000" SESSION "}",
        "{\"sub\":\"-3\",\"role\":\"user\",\"exp\":1900000000" SESSION "}",
        "{\"sub\":\"12x\",\"role\":\"user\",\"exp\":1900000000" SESSION "}",
        "{\"sub\":\"42\",\"exp\":1900000000" SESSION "}",                      /* no role */
        "{\"sub\":\"42\",\"role\":\"root\",\"exp\":1900000000" SESSION "}",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        forge(HS256, bad[i], 0, token);
        if (verify(token, &c) != CHAT_TOKEN_BAD_CLAIMS) {
            fprintf(stderr, "  accepted or misjudged: %s\n", bad[i]);
            CHECK(0);
        }
    }

    forge(HS256, "[1,2]", 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_MALFORMED);
    forge(HS256, "{not json", 0, token);
    CHECK(verify(token, &c) == CHAT_TOKEN_MALFORMED);
}


static void
test_garbage_refused(void)
{
    chat_token_claims_t  c;
    char                 big[CHAT_TOKEN_MAX_LEN + 10];

    CHECK(verify("", &c) == CHAT_TOKEN_MALFORMED);
    CHECK(verify("abc", &c) == CHAT_TOKEN_MALFORMED);
    CHECK(verify("a.b", &c) == CHAT_TOKEN_MALFORMED);
    CHECK(verify("..", &c) == CHAT_TOKEN_MALFORMED);
    CHECK(verify("a.b.c.d", &c) == CHAT_TOKEN_MALFORMED);

    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK(verify(big, &c) == CHAT_TOKEN_MALFORMED);
}


static void
test_short_secret_refused(void)
{
    char  token[CHAT_TOKEN_MAX_LEN];

    CHECK(sign((const unsigned char *) "short", 5, 1, "user", 1, 2,
                          token, sizeof(token)) == -1);
    CHECK(sign(secret, SECRET_LEN, 1, "root", 1, 2, token,
                          sizeof(token)) == -1);
    CHECK(sign(secret, SECRET_LEN, 1, "user", 1, 2, token, 20)
          == -1);
}


/*
 * Found by tests/fuzz/fuzz_token.c: the signer wrote tokens the verifier
 * refuses (iat or exp beyond 2^53 - 1, a 19-digit uid).  It now refuses to
 * sign them, and the largest values it does sign verify with their claims.
 */
static void
test_sign_only_what_verifies(void)
{
    char                 token[CHAT_TOKEN_MAX_LEN];
    chat_token_claims_t  c;
    const int64_t        safe = 9007199254740991LL;   /* 2^53 - 1 */
    const int64_t        max_uid = 999999999999999999LL;

    CHECK(sign(secret, SECRET_LEN, max_uid + 1, "user", NOW,
                          NOW + 60, token, sizeof(token)) == -1);
    CHECK(sign(secret, SECRET_LEN, 7, "user", -safe - 1, NOW + 60,
                          token, sizeof(token)) == -1);
    CHECK(sign(secret, SECRET_LEN, 7, "user", NOW, safe + 1,
                          token, sizeof(token)) == -1);

    CHECK(sign(secret, SECRET_LEN, max_uid, "admin", -safe, safe,
                          token, sizeof(token)) > 0);
    CHECK(verify(token, &c) == CHAT_TOKEN_OK);
    CHECK(c.uid == max_uid);
    CHECK(strcmp(c.role, "admin") == 0);
    CHECK(c.iat == -safe);
    CHECK(c.exp == safe);
}


/* Every token names its session; without one it could not be signed
 * out, so it is refused. */
static void
test_session_claims(void)
{
    char                 token[CHAT_TOKEN_MAX_LEN], a[32], b[32];
    size_t               i;
    chat_token_claims_t  c, in;

    static const char   *bad[] = {
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1900000000}",
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1900000000,"
        "\"sid\":\"s1\"}",                                       /* no sxp */
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1900000000,"
        "\"sxp\":1950000000}",                                    /* no sid */
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1900000000,"
        "\"sid\":\"\",\"sxp\":1950000000}",
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1900000000,"
        "\"sid\":\"a.b\",\"sxp\":1950000000}",
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1900000000,"
        "\"sid\":\"0123456789abcdef0123456789abcdef0\",\"sxp\":1950000000}",
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1900000000,"
        "\"sid\":7,\"sxp\":1950000000}",
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1900000000,"
        "\"sid\":\"s1\",\"sxp\":1899999999}",             /* ends first */
        "{\"sub\":\"42\",\"role\":\"user\",\"exp\":1900000000,"
        "\"sid\":\"s1\",\"sxp\":\"1950000000\"}",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        forge(HS256, bad[i], 0, token);
        CHECK(verify(token, &c) == CHAT_TOKEN_BAD_CLAIMS);
    }

    /* what is signed comes back */
    memset(&in, 0, sizeof(in));
    in.uid = 9;
    strcpy(in.role, "user");
    CHECK(chat_token_new_sid(in.sid, sizeof(in.sid)) == 0);
    CHECK(strlen(in.sid) == CHAT_TOKEN_SID_LEN);
    CHECK(chat_token_sid_valid(in.sid, strlen(in.sid)));
    in.iat = NOW;
    in.exp = NOW + 60;
    in.sxp = NOW + 3600;
    CHECK(chat_token_sign(secret, SECRET_LEN, &in, token, sizeof(token)) > 0);
    CHECK(verify(token, &c) == CHAT_TOKEN_OK);
    CHECK(strcmp(c.sid, in.sid) == 0);
    CHECK(c.sxp == NOW + 3600);

    /* and what could not verify is not signed */
    in.sxp = in.exp - 1;
    CHECK(chat_token_sign(secret, SECRET_LEN, &in, token, sizeof(token)) < 0);
    in.sxp = in.exp;
    strcpy(in.sid, "no spaces");
    CHECK(chat_token_sign(secret, SECRET_LEN, &in, token, sizeof(token)) < 0);
    in.sid[0] = '\0';
    CHECK(chat_token_sign(secret, SECRET_LEN, &in, token, sizeof(token)) < 0);

    /* fresh ids differ */
    CHECK(chat_token_new_sid(a, sizeof(a)) == 0);
    CHECK(chat_token_new_sid(b, sizeof(b)) == 0);
    CHECK(strcmp(a, b) != 0);
    CHECK(chat_token_new_sid(a, CHAT_TOKEN_SID_LEN) < 0);
}


int
main(void)
{
    UNIT_RUN(test_signed_token_verifies);
    UNIT_RUN(test_forged_good_token_verifies);
    UNIT_RUN(test_alg_none_refused);
    UNIT_RUN(test_other_algs_refused);
    UNIT_RUN(test_every_flipped_mac_bit_refused);
    UNIT_RUN(test_payload_tamper_refused);
    UNIT_RUN(test_padding_variants_refused);
    UNIT_RUN(test_expiry);
    UNIT_RUN(test_not_before);
    UNIT_RUN(test_missing_or_bad_claims);
    UNIT_RUN(test_garbage_refused);
    UNIT_RUN(test_short_secret_refused);
    UNIT_RUN(test_sign_only_what_verifies);
    UNIT_RUN(test_session_claims);
    return UNIT_SUMMARY();
}
