/*
 * test_backend_isbn.c: backend/catalog/isbn.c (ISBN-10/13 check digits and the
 * ISBN-13 normal form) and backend/catalog/catalog_cursor.c (keyset cursors).
 */

#include <string.h>

#include "catalog_cursor.h"
#include "isbn.h"
#include "unit.h"


static char  out[CHAT_ISBN13_LEN + 1];


#define NORM(s)  chat_isbn_normalize(s, strlen(s), out)


static void
test_isbn13_valid(void)
{
    CHECK(NORM("9780306406157") == 0);
    CHECK(strcmp(out, "9780306406157") == 0);

    CHECK(NORM("978-0-306-40615-7") == 0);
    CHECK(strcmp(out, "9780306406157") == 0);

    CHECK(NORM("978 0 306 40615 7") == 0);
    CHECK(strcmp(out, "9780306406157") == 0);

    CHECK(NORM("9791090636071") == 0);                 /* 979 prefix */
}


static void
test_isbn13_invalid(void)
{
    CHECK(NORM("9780306406158") == -1);                /* check digit */
    CHECK(NORM("978-0-306-40615-X") == -1);
    CHECK(NORM("9770306406157") == -1);                /* not 978/979 */
    CHECK(NORM("978030640615") == -1);                 /* 12 digits */
    CHECK(NORM("97803064061570") == -1);               /* 14 digits */
    CHECK(NORM("978.0306406157") == -1);               /* stray char */
    CHECK(NORM("") == -1);
}


static void
test_isbn10_to_13(void)
{
    CHECK(NORM("0306406152") == 0);
    CHECK(strcmp(out, "9780306406157") == 0);

    CHECK(NORM("0-306-40615-2") == 0);
    CHECK(strcmp(out, "9780306406157") == 0);

    CHECK(NORM("080442957X") == 0);                    /* X: ten */
    CHECK(strcmp(out, "9780804429573") == 0);

    CHECK(NORM("080442957x") == 0);
    CHECK(strcmp(out, "9780804429573") == 0);
}


static void
test_isbn10_invalid(void)
{
    CHECK(NORM("0306406153") == -1);                   /* check digit */
    CHECK(NORM("03064061X2") == -1);                   /* X not last */
    CHECK(NORM("X306406152") == -1);
}


static void
test_isbn_shaped(void)
{
    CHECK(chat_isbn_shaped("978-0-306-40615-7", 17));
    CHECK(chat_isbn_shaped("0306406153", 10));         /* bad, but shaped */
    CHECK(chat_isbn_shaped("080442957X", 10));
    CHECK(!chat_isbn_shaped("1984", 4));
    CHECK(!chat_isbn_shaped("dragon", 6));
    CHECK(!chat_isbn_shaped("12345678901", 11));
}


static void
test_cursor_round_trip(void)
{
    char                   text[CHAT_CURSOR_TEXT_MAX + 1];
    chat_catalog_cursor_t  c;

    CHECK(chat_catalog_cursor_encode("title", "A | B | C", 42, text,
                                     sizeof(text)) == 0);
    CHECK(chat_catalog_cursor_decode(text, strlen(text), "title", &c) == 0);
    CHECK(strcmp(c.order, "title") == 0);
    CHECK(strcmp(c.key, "A | B | C") == 0);
    CHECK(c.id == 42);

    CHECK(chat_catalog_cursor_encode("price", "", 7, text,
                                     sizeof(text)) == 0);
    CHECK(chat_catalog_cursor_decode(text, strlen(text), "price", &c) == 0);
    CHECK(c.key[0] == '\0' && c.id == 7);
}


static void
test_cursor_refused(void)
{
    char                   text[CHAT_CURSOR_TEXT_MAX + 1];
    chat_catalog_cursor_t  c;

    CHECK(chat_catalog_cursor_encode("title", "x", 1, text,
                                     sizeof(text)) == 0);
    /* made for another order */
    CHECK(chat_catalog_cursor_decode(text, strlen(text), "price", &c) == -1);
    /* not base64, empty, truncated */
    CHECK(chat_catalog_cursor_decode("!!", 2, "title", &c) == -1);
    CHECK(chat_catalog_cursor_decode("", 0, "title", &c) == -1);
    CHECK(chat_catalog_cursor_decode(text, 3, "title", &c) == -1);
    /* "v2|title|x|1", "v1|title|x|0", "v1|title|x" */
    CHECK(chat_catalog_cursor_decode("djJ8dGl0bGV8eHwx", 16, "title", &c)
          == -1);
    CHECK(chat_catalog_cursor_decode("djF8dGl0bGV8eHww", 16, "title", &c)
          == -1);
    CHECK(chat_catalog_cursor_decode("djF8dGl0bGV8eA", 14, "title", &c)
          == -1);
    CHECK(chat_catalog_cursor_encode("title", "x", 0, text,
                                     sizeof(text)) == -1);
}


int
main(void)
{
    UNIT_RUN(test_isbn13_valid);
    UNIT_RUN(test_isbn13_invalid);
    UNIT_RUN(test_isbn10_to_13);
    UNIT_RUN(test_isbn10_invalid);
    UNIT_RUN(test_isbn_shaped);
    UNIT_RUN(test_cursor_round_trip);
    UNIT_RUN(test_cursor_refused);

    return UNIT_SUMMARY();
}
