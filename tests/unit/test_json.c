/*
 * test_json.c: the strict JSON checker (chat_json.c) and the strict query
 * parameters (chat_query.c).  Each finding of the input review is a case
 * here: \u0000 and raw NUL, raw control characters, duplicate keys (also
 * spelled differently), invalid UTF-8, numbers that are not plain
 * integers; and every well-formed document a client really sends passes.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_json.h"
#include "chat_query.h"
#include "unit.h"


#define S(s)  s, sizeof(s) - 1

#define CHECK_JSON(s, flags, want)                                          \
    CHECK(chat_json_check(S(s), flags, NULL) == (want))

#define ALL  (CHAT_JSON_OBJECT | CHAT_JSON_INTEGERS)


static void
test_well_formed(void)
{
    CHECK_JSON("{}", ALL, CHAT_JSON_OK);
    CHECK_JSON(" \t\r\n{ } \n", ALL, CHAT_JSON_OK);
    CHECK_JSON("{\"client_msg_id\":\"m1\",\"text\":\"hi\"}", ALL,
               CHAT_JSON_OK);
    CHECK_JSON("{\"a\":[1,-2,0,[],{}],\"b\":{\"c\":null,\"d\":true,"
               "\"e\":false}}", ALL, CHAT_JSON_OK);
    /* escapes, including every short one and a surrogate pair */
    CHECK_JSON("{\"t\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 "
               "\\uD83D\\uDE00 \\u0001\"}", ALL, CHAT_JSON_OK);
    /* UTF-8 as it is, and DEL, which JSON allows raw */
    CHECK_JSON("{\"t\":\"unicode \xe2\x9c\x93 \xe8\xa1\xa8 "
               "\xf0\x9f\x99\x82 \x7f\"}", ALL, CHAT_JSON_OK);
    /* the largest integers a double carries exactly */
    CHECK_JSON("{\"n\":9007199254740991,\"m\":-9007199254740991}", ALL,
               CHAT_JSON_OK);
    /* same key in different objects, and keys that only look alike */
    CHECK_JSON("{\"a\":{\"a\":1},\"b\":[{\"a\":1},{\"a\":2}]}", ALL,
               CHAT_JSON_OK);
    CHECK_JSON("{\"a\":1,\"A\":2,\"a \":3,\"\\u0061b\":4}", ALL,
               CHAT_JSON_OK);
    /* without flags: any value, any number */
    CHECK_JSON("[1.5e3, -0, 1E+2, 0.0]", 0, CHAT_JSON_OK);
    CHECK_JSON("\"text\"", 0, CHAT_JSON_OK);
    CHECK_JSON("null", 0, CHAT_JSON_OK);
}


static void
test_syntax(void)
{
    CHECK_JSON("", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("   ", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\"}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":1,}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":[1,]}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{a:1}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{'a':1}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{} {}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{}x", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":tru}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":nul}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":\"x}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":\"\\x\"}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":\"\\u12\"}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":\"\\u12g4\"}", ALL, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":\"\\", ALL, CHAT_JSON_SYNTAX);
    /* numbers RFC 8259 does not have, with or without the integer rule */
    CHECK_JSON("{\"a\":01}", 0, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":+1}", 0, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":1.}", 0, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":.5}", 0, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":1e}", 0, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":-}", 0, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":NaN}", 0, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":Infinity}", 0, CHAT_JSON_SYNTAX);
    CHECK_JSON("{\"a\":0x10}", 0, CHAT_JSON_SYNTAX);
    /* a byte-order mark is not white space */
    CHECK_JSON("\xef\xbb\xbf{}", 0, CHAT_JSON_SYNTAX);
    /* only objects where an object is wanted */
    CHECK_JSON("[]", ALL, CHAT_JSON_NOT_OBJECT);
    CHECK_JSON("\"{}\"", ALL, CHAT_JSON_NOT_OBJECT);
    CHECK_JSON("1", ALL, CHAT_JSON_NOT_OBJECT);
}


static void
test_depth(void)
{
    char    buf[2 * (CHAT_JSON_MAX_DEPTH + 1) + 1];
    size_t  i, n;

    /* exactly the limit passes, one more is refused */
    for (n = CHAT_JSON_MAX_DEPTH; n <= CHAT_JSON_MAX_DEPTH + 1; n++) {
        for (i = 0; i < n; i++) {
            buf[i] = '[';
            buf[2 * n - 1 - i] = ']';
        }
        CHECK(chat_json_check(buf, 2 * n, 0, NULL)
              == (n <= CHAT_JSON_MAX_DEPTH ? CHAT_JSON_OK
                                           : CHAT_JSON_TOO_DEEP));
    }

    /* a hostile depth is one quick refusal, not a deep recursion */
    {
        size_t   big = 1 << 20;
        char    *p = malloc(big);

        CHECK(p != NULL);
        if (p != NULL) {
            memset(p, '[', big);
            CHECK(chat_json_check(p, big, 0, NULL) == CHAT_JSON_TOO_DEEP);
            free(p);
        }
    }
}


static void
test_nul(void)
{
    size_t  where;

    /* the review's cases: "z\u0000one" was stored as "z" */
    CHECK_JSON("{\"client_msg_id\":\"z\\u0000one\",\"text\":\"x\"}", ALL,
               CHAT_JSON_NUL);
    CHECK_JSON("{\"text\":\"a\\u0000b\"}", ALL, CHAT_JSON_NUL);
    CHECK_JSON("{\"password\":\"secret\\u0000whatever\"}", ALL,
               CHAT_JSON_NUL);
    CHECK_JSON("{\"t\":\"\\u0000\"}", ALL, CHAT_JSON_NUL);
    CHECK_JSON("{\"t\":\"\\u00001\"}", ALL, CHAT_JSON_NUL);
    /* in a key too */
    CHECK_JSON("{\"te\\u0000xt\":\"a\"}", ALL, CHAT_JSON_NUL);
    /* an escaped backslash, then text: no NUL */
    CHECK_JSON("{\"t\":\"a\\\\u0000b\"}", ALL, CHAT_JSON_OK);
    CHECK_JSON("{\"t\":\"a\\\\\\u0000b\"}", ALL, CHAT_JSON_NUL);
    CHECK_JSON("{\"t\":\"u0000\"}", ALL, CHAT_JSON_OK);

    /* a raw NUL: in a string, between tokens, after the end */
    CHECK(chat_json_check(S("{\"t\":\"a\0b\"}"), ALL, &where)
          == CHAT_JSON_NUL && where == 7);
    CHECK(chat_json_check(S("{\"t\":\0\"a\"}"), ALL, &where)
          == CHAT_JSON_NUL && where == 5);
    CHECK(chat_json_check(S("{}\0"), ALL, &where) == CHAT_JSON_NUL
          && where == 2);
    CHECK(chat_json_check(S("\0{}"), ALL, &where) == CHAT_JSON_NUL
          && where == 0);

    CHECK(chat_json_check(S("{\"t\":\"ab\\u0000\"}"), ALL, &where)
          == CHAT_JSON_NUL && where == 8);
}


static void
test_control(void)
{
    size_t         where;
    char           buf[16];
    unsigned char  c;

    for (c = 1; c < 0x20; c++) {
        memcpy(buf, "{\"t\":\"a?b\"}", 11);
        buf[7] = (char) c;
        CHECK(chat_json_check(buf, 11, ALL, &where) == CHAT_JSON_CONTROL
              && where == 7);
    }

    /* escaped they are fine; raw tab/newline between tokens are white
     * space; other controls there are just bad syntax */
    CHECK_JSON("{\"t\":\"line\\nbreak\\ttab\\u001f\"}", ALL, CHAT_JSON_OK);
    CHECK_JSON("{\n\t\"t\":\r\n1}", ALL, CHAT_JSON_OK);
    CHECK_JSON("{\x0b\"t\":1}", ALL, CHAT_JSON_SYNTAX);
}


static void
test_utf8(void)
{
    size_t  where;

    CHECK(chat_json_check(S("{\"q\":\"\xff\"}"), ALL, &where)
          == CHAT_JSON_BAD_UTF8 && where == 6);
    CHECK(chat_json_check(S("{\"q\":\"\xc0\xaf\"}"), ALL, &where)
          == CHAT_JSON_BAD_UTF8 && where == 6);
    CHECK(chat_json_check(S("{\"q\":\"\xed\xa0\x80\"}"), ALL, &where)
          == CHAT_JSON_BAD_UTF8 && where == 7);
    /* cut off at the end */
    CHECK(chat_json_check(S("{\"q\":1}\xe2\x82"), ALL, &where)
          == CHAT_JSON_BAD_UTF8 && where == 7);
    /* UTF-8 is judged first, wherever the other faults are */
    CHECK_JSON("{\"t\":\"\\u0000\",\"q\":\"\x80\"}", ALL, CHAT_JSON_BAD_UTF8);
    /* escaped lone surrogates are no characters either */
    CHECK_JSON("{\"t\":\"\\ud800\"}", ALL, CHAT_JSON_BAD_UTF8);
    CHECK_JSON("{\"t\":\"\\uDBFF x\"}", ALL, CHAT_JSON_BAD_UTF8);
    CHECK_JSON("{\"t\":\"\\udc00\"}", ALL, CHAT_JSON_BAD_UTF8);
    CHECK_JSON("{\"t\":\"\\ud800\\u0041\"}", ALL, CHAT_JSON_BAD_UTF8);
    CHECK_JSON("{\"t\":\"\\ud800\\ud800\"}", ALL, CHAT_JSON_BAD_UTF8);
    CHECK_JSON("{\"t\":\"\\udbff\\udfff\"}", ALL, CHAT_JSON_OK);
}


static void
test_duplicates(void)
{
    size_t  where;
    char   *p, *q;
    int     i;

    /* the review's case: the first one won */
    CHECK(chat_json_check(S("{\"client_msg_id\":\"m\",\"text\":\"FIRST\","
                            "\"text\":\"SECOND\"}"), ALL, &where)
          == CHAT_JSON_DUPLICATE_KEY && where == 36);

    CHECK_JSON("{\"a\":1,\"a\":1}", ALL, CHAT_JSON_DUPLICATE_KEY);
    CHECK_JSON("{\"a\":1,\"b\":2,\"c\":3,\"b\":4}", ALL,
               CHAT_JSON_DUPLICATE_KEY);
    /* the same key spelled another way */
    CHECK_JSON("{\"text\":1,\"t\\u0065xt\":2}", ALL, CHAT_JSON_DUPLICATE_KEY);
    CHECK_JSON("{\"\\u00e9\":1,\"\xc3\xa9\":2}", ALL,
               CHAT_JSON_DUPLICATE_KEY);
    CHECK_JSON("{\"\\/\":1,\"/\":2}", ALL, CHAT_JSON_DUPLICATE_KEY);
    CHECK_JSON("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", ALL,
               CHAT_JSON_DUPLICATE_KEY);
    CHECK_JSON("{\"\":1,\"\":2}", ALL, CHAT_JSON_DUPLICATE_KEY);
    /* nested, and after a nested object closed */
    CHECK_JSON("{\"p\":{\"token\":\"a\",\"token\":\"b\"}}", ALL,
               CHAT_JSON_DUPLICATE_KEY);
    CHECK_JSON("{\"a\":{\"x\":1,\"y\":2},\"b\":1,\"a\":2}", ALL,
               CHAT_JSON_DUPLICATE_KEY);
    CHECK_JSON("[{\"a\":1},{\"a\":1,\"a\":1}]", 0, CHAT_JSON_DUPLICATE_KEY);

    /* where: the first key that repeats an earlier one */
    CHECK(chat_json_check(S("{\"b\":1,\"a\":1,\"b\":1,\"a\":1}"), ALL,
                          &where)
          == CHAT_JSON_DUPLICATE_KEY && where == 13);

    /* many keys (past the local array), the repeat at the very end */
    p = malloc(20000 * 24 + 64);
    CHECK(p != NULL);
    if (p == NULL) {
        return;
    }

    q = p;
    *q++ = '{';
    for (i = 0; i < 20000; i++) {
        q += sprintf(q, "\"k%d\":%d,", i, i);
    }
    q += sprintf(q, "\"k%d\":0}", 20000);
    CHECK(chat_json_check(p, (size_t) (q - p), ALL, NULL) == CHAT_JSON_OK);

    q[-1] = ',';
    q += sprintf(q, "\"k17\":1}");
    CHECK(chat_json_check(p, (size_t) (q - p), ALL, NULL)
          == CHAT_JSON_DUPLICATE_KEY);

    free(p);
}


static void
test_integers(void)
{
    size_t   where;
    int64_t  v;

    /* the review's case: 1e2 was read as 100 */
    CHECK(chat_json_check(S("{\"user_id\":1e2}"), ALL, &where)
          == CHAT_JSON_NOT_INTEGER && where == 11);
    CHECK_JSON("{\"seq\":1.0}", ALL, CHAT_JSON_NOT_INTEGER);
    CHECK_JSON("{\"seq\":-0}", ALL, CHAT_JSON_NOT_INTEGER);
    CHECK_JSON("{\"seq\":1E+2}", ALL, CHAT_JSON_NOT_INTEGER);
    CHECK_JSON("{\"seq\":0.5}", ALL, CHAT_JSON_NOT_INTEGER);
    CHECK_JSON("{\"seq\":9007199254740992}", ALL, CHAT_JSON_NOT_INTEGER);
    CHECK_JSON("{\"seq\":-9007199254740992}", ALL, CHAT_JSON_NOT_INTEGER);
    CHECK_JSON("{\"seq\":12345678901234567890123}", ALL,
               CHAT_JSON_NOT_INTEGER);
    /* in arrays and nested objects too (member_ids, cursors) */
    CHECK_JSON("{\"member_ids\":[1,2.5]}", ALL, CHAT_JSON_NOT_INTEGER);
    CHECK_JSON("{\"cursors\":{\"7\":1e1}}", ALL, CHAT_JSON_NOT_INTEGER);
    /* too long for cJSON to read, with or without the rule */
    CHECK_JSON("{\"n\":0.00000000000000000000000000000000000000000000000000000"
               "000000001}", 0, CHAT_JSON_LONG_NUMBER);              /* 64 */
    CHECK_JSON("{\"n\":0.0000000000000000000000000000000000000000000000000000"
               "000000001}", 0, CHAT_JSON_OK);                       /* 63 */
    /* the same numbers are fine JSON without the rule */
    CHECK_JSON("{\"seq\":1e2,\"x\":-0,\"y\":9007199254740993}", 0,
               CHAT_JSON_OK);

    CHECK(chat_json_integer_text(S("0"), &v) == 0 && v == 0);
    CHECK(chat_json_integer_text(S("42"), &v) == 0 && v == 42);
    CHECK(chat_json_integer_text(S("-42"), &v) == 0 && v == -42);
    CHECK(chat_json_integer_text(S("9007199254740991"), &v) == 0
          && v == CHAT_JSON_MAX_INTEGER);
    CHECK(chat_json_integer_text(S("9007199254740992"), &v) == -1);
    CHECK(chat_json_integer_text(S("99999999999999999"), &v) == -1);
    CHECK(chat_json_integer_text(S(""), &v) == -1);
    CHECK(chat_json_integer_text(S("-"), &v) == -1);
    CHECK(chat_json_integer_text(S("-0"), &v) == -1);
    CHECK(chat_json_integer_text(S("007"), &v) == -1);
    CHECK(chat_json_integer_text(S("+7"), &v) == -1);
    CHECK(chat_json_integer_text(S("7 "), &v) == -1);
    CHECK(chat_json_integer_text(S("1e2"), &v) == -1);
}


static void
test_codes(void)
{
    CHECK(strcmp(chat_json_code(CHAT_JSON_SYNTAX), "invalid_json") == 0);
    CHECK(strcmp(chat_json_code(CHAT_JSON_NOT_OBJECT), "invalid_json") == 0);
    CHECK(strcmp(chat_json_code(CHAT_JSON_TOO_DEEP), "invalid_json") == 0);
    CHECK(strcmp(chat_json_code(CHAT_JSON_BAD_UTF8), "invalid_utf8") == 0);
    CHECK(strcmp(chat_json_code(CHAT_JSON_NUL), "nul_character") == 0);
    CHECK(strcmp(chat_json_code(CHAT_JSON_CONTROL), "control_character")
          == 0);
    CHECK(strcmp(chat_json_code(CHAT_JSON_DUPLICATE_KEY), "duplicate_key")
          == 0);
    CHECK(strcmp(chat_json_code(CHAT_JSON_NOT_INTEGER), "invalid_number")
          == 0);
    CHECK(chat_json_reason(CHAT_JSON_NUL)[0] != '\0');
}


#define GET(args, name, want, value)                                        \
    do {                                                                    \
        char    out_[64];                                                   \
        size_t  n_;                                                         \
        CHECK(chat_query_get(S(args), S(name), out_, &n_) == (want));       \
        if ((want) == CHAT_QUERY_OK) {                                      \
            CHECK(n_ == sizeof(value) - 1                                   \
                  && memcmp(out_, value, n_) == 0);                         \
        }                                                                   \
    } while (0)


static void
test_query_get(void)
{
    GET("q=harry", "q", CHAT_QUERY_OK, "harry");
    GET("limit=5&q=a%20b&x=1", "q", CHAT_QUERY_OK, "a b");
    GET("q=a+b", "q", CHAT_QUERY_OK, "a+b");            /* as nginx: kept */
    GET("q=", "q", CHAT_QUERY_OK, "");
    GET("Q=x", "q", CHAT_QUERY_OK, "x");                /* as $arg_q */
    GET("q=what%3Fever%26more", "q", CHAT_QUERY_OK, "what?ever&more");
    GET("q=what?ever", "q", CHAT_QUERY_OK, "what?ever");
    GET("q=%C3%A9", "q", CHAT_QUERY_OK, "\xc3\xa9");
    GET("xq=1&qx=2&q", "q", CHAT_QUERY_ABSENT, "");
    GET("", "q", CHAT_QUERY_ABSENT, "");
    /* the review's findings */
    GET("q=%ff", "q", CHAT_QUERY_BAD_UTF8, "");
    GET("q=%c3", "q", CHAT_QUERY_BAD_UTF8, "");
    GET("q=%ed%a0%80", "q", CHAT_QUERY_BAD_UTF8, "");
    GET("q=\xff", "q", CHAT_QUERY_BAD_UTF8, "");
    GET("q=a%00b", "q", CHAT_QUERY_NUL, "");
    GET("q=a%0ab", "q", CHAT_QUERY_CONTROL, "");
    GET("q=a%7f", "q", CHAT_QUERY_CONTROL, "");
    GET("q=a&q=b", "q", CHAT_QUERY_REPEATED, "");
    GET("q=a&Q=b", "q", CHAT_QUERY_REPEATED, "");
    GET("q=%", "q", CHAT_QUERY_BAD_ESCAPE, "");
    GET("q=%4", "q", CHAT_QUERY_BAD_ESCAPE, "");
    GET("q=%zz", "q", CHAT_QUERY_BAD_ESCAPE, "");
    /* a malformed escape wins over what else is wrong */
    GET("q=%ff%0a%", "q", CHAT_QUERY_BAD_ESCAPE, "");
    GET("q=%0a%ff", "q", CHAT_QUERY_BAD_UTF8, "");
    GET("q=%0a%00", "q", CHAT_QUERY_CONTROL, "");
}


static void
test_query_check(void)
{
    size_t  where;

    CHECK(chat_query_check(S(""), &where) == CHAT_QUERY_OK);
    CHECK(chat_query_check(S("q=a%20b&limit=5&flag&&=x"), &where)
          == CHAT_QUERY_OK);
    CHECK(chat_query_check(S("q=ok&utm=%ff"), &where) == CHAT_QUERY_BAD_UTF8
          && where == 5);
    CHECK(chat_query_check(S("a%00=1"), &where) == CHAT_QUERY_NUL
          && where == 0);
    CHECK(chat_query_check(S("q=1&x=%g1"), &where) == CHAT_QUERY_BAD_ESCAPE
          && where == 4);
    /* a character split by "&" is two bad parameters, not one good one */
    CHECK(chat_query_check(S("a=%c3&%a9"), &where) == CHAT_QUERY_BAD_UTF8
          && where == 0);
    CHECK(strcmp(chat_query_code(CHAT_QUERY_REPEATED), "duplicate_parameter")
          == 0);
    CHECK(strcmp(chat_query_code(CHAT_QUERY_BAD_ESCAPE), "invalid_query")
          == 0);
    CHECK(strcmp(chat_query_code(CHAT_QUERY_NUL), "nul_character") == 0);
}


int
main(void)
{
    UNIT_RUN(test_well_formed);
    UNIT_RUN(test_syntax);
    UNIT_RUN(test_depth);
    UNIT_RUN(test_nul);
    UNIT_RUN(test_control);
    UNIT_RUN(test_utf8);
    UNIT_RUN(test_duplicates);
    UNIT_RUN(test_integers);
    UNIT_RUN(test_codes);
    UNIT_RUN(test_query_get);
    UNIT_RUN(test_query_check);

    return UNIT_SUMMARY();
}
