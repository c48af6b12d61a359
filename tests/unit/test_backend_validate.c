/*
 * test_backend_validate.c: backend/auth/validate.c, the input rules of the
 * auth operations: e-mail normalisation, display names, password
 * lengths.
 */

#include <string.h>

#include "unit.h"
#include "validate.h"


static char  out[512];


#define EMAIL(s)  chat_email_normalize(s, strlen(s), out, sizeof(out))
#define NAME(s)   chat_display_name_normalize(s, strlen(s), out, sizeof(out))


/* the validator itself is tested in test_utf8.c; here: the rules use it */
static void
test_invalid_utf8_refused(void)
{
    CHECK(EMAIL("al\xc3@example.com") != NULL);            /* truncated */
    CHECK(EMAIL("al\xed\xa0\x80@example.com") != NULL);    /* surrogate */
    CHECK(NAME("Bob \xc0\xaf") != NULL);                   /* overlong */
    CHECK(NAME("\xff") != NULL);
    CHECK(NAME("Zo\xc3\xab") == NULL);                      /* valid */
}


static void
test_email_good(void)
{
    CHECK(EMAIL("alice@example.com") == NULL);
    CHECK(strcmp(out, "alice@example.com") == 0);

    CHECK(EMAIL("  Alice.Smith@Example.COM\n") == NULL);
    CHECK(strcmp(out, "alice.smith@example.com") == 0);

    CHECK(EMAIL("a@b") == NULL);
}


static void
test_email_bad(void)
{
    char  long_email[300];

    CHECK(EMAIL("") != NULL);
    CHECK(EMAIL("   ") != NULL);
    CHECK(EMAIL("alice") != NULL);
    CHECK(EMAIL("@example.com") != NULL);
    CHECK(EMAIL("alice@") != NULL);
    CHECK(EMAIL("a@b@c") != NULL);
    CHECK(EMAIL("al ice@example.com") != NULL);
    CHECK(EMAIL("alice@exa\tmple.com") != NULL);
    CHECK(EMAIL("alice@\xc3\x28.com") != NULL);

    memset(long_email, 'a', sizeof(long_email));
    memcpy(long_email + 250, "@b.cd", 6);               /* 255 bytes */
    CHECK(EMAIL(long_email) != NULL);
    CHECK(EMAIL(long_email + 1) == NULL);               /* 254 bytes */
}


static void
test_display_name(void)
{
    char  name[500];
    int   i;

    CHECK(NAME("  Alice  ") == NULL);
    CHECK(strcmp(out, "Alice") == 0);

    CHECK(NAME("Zo\xc3\xab \xf0\x9f\x98\x80") == NULL);

    CHECK(NAME("") != NULL);
    CHECK(NAME(" \t ") != NULL);
    CHECK(NAME("bad\xc3") != NULL);
    CHECK(NAME("new\nline") != NULL);
    CHECK(NAME("c1 \xc2\x85 control") != NULL);

    /* 100 characters of 2 bytes each pass, 101 do not */
    for (i = 0; i < 100; i++) {
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    }
    name[200] = '\0';
    CHECK(NAME(name) == NULL);

    memcpy(name + 200, "x", 2);
    CHECK(NAME(name) != NULL);
}


static void
test_password_length(void)
{
    char  pw[1100];

    memset(pw, 'p', sizeof(pw));

    CHECK(chat_password_check(pw, 7) != NULL);
    CHECK(chat_password_check(pw, 8) == NULL);
    CHECK(chat_password_check(pw, 1024) == NULL);
    CHECK(chat_password_check(pw, 1025) != NULL);
}


int
main(void)
{
    UNIT_RUN(test_invalid_utf8_refused);
    UNIT_RUN(test_email_good);
    UNIT_RUN(test_email_bad);
    UNIT_RUN(test_display_name);
    UNIT_RUN(test_password_length);

    return UNIT_SUMMARY();
}
