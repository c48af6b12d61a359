/*
 * test_backend_password.c: backend/auth/password.c.  Round trips at the real
 * parameters (N = 2^14, p = 5: a few hundred ms each), at the earlier
 * defaults (N = 2^17, p = 1: still verified) and at cheap ones, wrong
 * passwords, every way a stored string can be damaged, and parameters or
 * algorithms the verifier must refuse.
 */

#include <stdio.h>
#include <string.h>

#include "unit.h"
#include "password.h"


#define PW      "correct horse battery staple"
#define PW_LEN  (sizeof(PW) - 1)


static void
test_roundtrip_default_params(void)
{
    char  h[CHAT_PASSWORD_HASH_SIZE];

    CHECK(chat_password_hash(PW, PW_LEN, h, sizeof(h)) == 0);
    CHECK(strncmp(h, "$scrypt$ln=14,r=8,p=5$", 22) == 0);
    CHECK(chat_password_verify(PW, PW_LEN, h) == 1);
    CHECK(chat_password_verify("wrong password", 14, h) == 0);

    /* hashes stored with the earlier defaults still log in */
    CHECK(chat_password_hash_params(PW, PW_LEN, 17, 8, 1, h, sizeof(h)) == 0);
    CHECK(strncmp(h, "$scrypt$ln=17,r=8,p=1$", 22) == 0);
    CHECK(chat_password_verify(PW, PW_LEN, h) == 1);
    CHECK(chat_password_verify("wrong password", 14, h) == 0);
}


static void
test_salt_is_random(void)
{
    char  a[CHAT_PASSWORD_HASH_SIZE], b[CHAT_PASSWORD_HASH_SIZE];

    CHECK(chat_password_hash_params(PW, PW_LEN, 10, 8, 1, a, sizeof(a)) == 0);
    CHECK(chat_password_hash_params(PW, PW_LEN, 10, 8, 1, b, sizeof(b)) == 0);
    CHECK(strcmp(a, b) != 0);
    CHECK(chat_password_verify(PW, PW_LEN, a) == 1);
    CHECK(chat_password_verify(PW, PW_LEN, b) == 1);
}


static void
test_wrong_password(void)
{
    char  h[CHAT_PASSWORD_HASH_SIZE];

    CHECK(chat_password_hash_params(PW, PW_LEN, 10, 8, 1, h, sizeof(h)) == 0);
    CHECK(chat_password_verify(PW, PW_LEN - 1, h) == 0);
    CHECK(chat_password_verify("Correct horse battery staple", PW_LEN, h)
          == 0);
    CHECK(chat_password_verify("", 0, h) == 0);
}


static void
test_binary_password(void)
{
    char        h[CHAT_PASSWORD_HASH_SIZE];
    const char  pw[] = { 'a', 0, 'b', (char) 0xff };

    CHECK(chat_password_hash_params(pw, sizeof(pw), 10, 1, 1, h, sizeof(h))
          == 0);
    CHECK(chat_password_verify(pw, sizeof(pw), h) == 1);
    CHECK(chat_password_verify(pw, 1, h) == 0);
}


static void
test_tampered_string(void)
{
    char    h[CHAT_PASSWORD_HASH_SIZE], t[CHAT_PASSWORD_HASH_SIZE];
    char   *salt, *hash;
    size_t  len;

    CHECK(chat_password_hash_params(PW, PW_LEN, 10, 8, 1, h, sizeof(h)) == 0);
    len = strlen(h);
    salt = strchr(h + 8, '$') + 1;
    hash = strchr(salt, '$') + 1;

    /* a changed hash character: a mismatch, not an error */
    strcpy(t, h);
    t[hash - h + 3] = t[hash - h + 3] == 'A' ? 'B' : 'A';
    CHECK(chat_password_verify(PW, PW_LEN, t) == 0);

    /* a changed salt character: a mismatch */
    strcpy(t, h);
    t[salt - h + 2] = t[salt - h + 2] == 'A' ? 'B' : 'A';
    CHECK(chat_password_verify(PW, PW_LEN, t) == 0);

    /* a changed parameter: a different derivation, a mismatch */
    strcpy(t, h);
    t[strlen("$scrypt$ln=10,r=")] = '4';
    CHECK(chat_password_verify(PW, PW_LEN, t) == 0);

    /* truncated anywhere: malformed */
    strcpy(t, h);
    t[len - 1] = '\0';
    CHECK(chat_password_verify(PW, PW_LEN, t) == -1);

    strcpy(t, h);
    t[hash - h - 1] = '\0';
    CHECK(chat_password_verify(PW, PW_LEN, t) == -1);

    /* foreign characters, padding, trailing junk: malformed */
    strcpy(t, h);
    t[hash - h + 1] = '*';
    CHECK(chat_password_verify(PW, PW_LEN, t) == -1);

    snprintf(t, sizeof(t), "%s=", h);
    CHECK(chat_password_verify(PW, PW_LEN, t) == -1);

    snprintf(t, sizeof(t), "%s$", h);
    CHECK(chat_password_verify(PW, PW_LEN, t) == -1);

    CHECK(chat_password_verify(PW, PW_LEN, "") == -1);
    CHECK(chat_password_verify(PW, PW_LEN, "$scrypt$") == -1);
    CHECK(chat_password_verify(PW, PW_LEN, PW) == -1);
}


static void
test_unknown_parameters_rejected(void)
{
    char         h[CHAT_PASSWORD_HASH_SIZE], t[CHAT_PASSWORD_HASH_SIZE];
    const char  *rest;
    size_t       i;
    const char  *heads[] = {
        "$argon2id$ln=10,r=8,p=1$",     /* another algorithm */
        "$SCRYPT$ln=10,r=8,p=1$",
        "$scrypt$ln=10,r=8,p=1,x=2$",   /* unknown parameter */
        "$scrypt$n=1024,r=8,p=1$",
        "$scrypt$r=8,ln=10,p=1$",       /* wrong order */
        "$scrypt$ln=10,r=8$",           /* missing p */
        "$scrypt$ln=9,r=8,p=1$",        /* too cheap */
        "$scrypt$ln=21,r=8,p=1$",       /* too expensive */
        "$scrypt$ln=20,r=16,p=1$",      /* 2 GiB of memory */
        "$scrypt$ln=10,r=0,p=1$",
        "$scrypt$ln=10,r=8,p=0$",
        "$scrypt$ln=10,r=8,p=17$",
        "$scrypt$ln=010,r=8,p=1$",      /* leading zero */
        "$scrypt$ln=10,r=8,p=-1$",
        "$scrypt$ln=,r=8,p=1$",
    };

    CHECK(chat_password_hash_params(PW, PW_LEN, 10, 8, 1, h, sizeof(h)) == 0);
    rest = strchr(h + 8, '$') + 1;      /* "<salt>$<hash>" */

    for (i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        snprintf(t, sizeof(t), "%s%s", heads[i], rest);
        if (chat_password_verify(PW, PW_LEN, t) != -1) {
            fprintf(stderr, "  accepted: %s\n", t);
            CHECK(0);
        }
    }

    /* hashing refuses the same out-of-range parameters */
    CHECK(chat_password_hash_params(PW, PW_LEN, 9, 8, 1, h, sizeof(h)) == -1);
    CHECK(chat_password_hash_params(PW, PW_LEN, 10, 0, 1, h, sizeof(h)) == -1);
}


static void
test_short_salt_or_hash_rejected(void)
{
    /* 6-byte salt, then a 12-byte hash: both under the minimums */
    CHECK(chat_password_verify(PW, PW_LEN,
              "$scrypt$ln=10,r=8,p=1$AAAAAAAA$"
              "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") == -1);
    CHECK(chat_password_verify(PW, PW_LEN,
              "$scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
              "AAAAAAAAAAAAAAAA") == -1);
}


static void
test_small_buffer(void)
{
    char  h[40];

    CHECK(chat_password_hash_params(PW, PW_LEN, 10, 8, 1, h, sizeof(h)) == -1);
    CHECK(h[0] == '\0');
}


int
main(void)
{
    UNIT_RUN(test_roundtrip_default_params);
    UNIT_RUN(test_salt_is_random);
    UNIT_RUN(test_wrong_password);
    UNIT_RUN(test_binary_password);
    UNIT_RUN(test_tampered_string);
    UNIT_RUN(test_unknown_parameters_rejected);
    UNIT_RUN(test_short_salt_or_hash_rejected);
    UNIT_RUN(test_small_buffer);

    chat_password_cleanup();

    return UNIT_SUMMARY();
}
