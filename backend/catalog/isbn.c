/*
 * isbn.c: ISBN-10 and ISBN-13, the two ways a book is numbered.
 *
 * ISBN-13: 13 digits; the weights 1,3,1,3,... over all 13 digits sum to a
 * multiple of 10.  Books carry the prefixes 978 and 979.
 * ISBN-10: 9 digits and a check character (0-9 or X for 10); the weights
 * 10,9,...,1 over all 10 sum to a multiple of 11.  Every ISBN-10 is the
 * ISBN-13 "978" + its first nine digits with a recomputed check digit,
 * which is the one form the catalog stores (books.isbn13).
 *
 * People write both with hyphens or spaces between the groups; those are
 * ignored, anything else is an error.  Pure code: no I/O, unit-tested in
 * tests/unit/test_backend_isbn.c.
 */

#include <string.h>

#include "isbn.h"


/* The digits of s without separators (X kept, as 'X'), at most max. */
static int
chat_isbn_digits(const char *s, size_t len, char *out, size_t max,
    size_t *n)
{
    size_t  i;
    char    c;

    *n = 0;

    for (i = 0; i < len; i++) {
        c = s[i];

        if (c == '-' || c == ' ') {
            continue;
        }

        if (c == 'x') {
            c = 'X';
        }

        if (!((c >= '0' && c <= '9') || c == 'X') || *n == max) {
            return -1;
        }

        out[(*n)++] = c;
    }

    return 0;
}


static char
chat_isbn13_check(const char *d)
{
    int  i, sum;

    sum = 0;
    for (i = 0; i < 12; i++) {
        sum += (d[i] - '0') * ((i % 2) ? 3 : 1);
    }

    return (char) ('0' + (10 - sum % 10) % 10);
}


int
chat_isbn_normalize(const char *s, size_t len, char out[CHAT_ISBN13_LEN + 1])
{
    int     i, sum;
    char    d[CHAT_ISBN13_LEN];
    size_t  n;

    if (chat_isbn_digits(s, len, d, sizeof(d), &n) != 0) {
        return -1;
    }

    if (n == 10) {
        sum = 0;
        for (i = 0; i < 10; i++) {
            if (d[i] == 'X') {
                if (i != 9) {
                    return -1;
                }
                sum += 10;
                continue;
            }
            sum += (d[i] - '0') * (10 - i);
        }

        if (sum % 11 != 0) {
            return -1;
        }

        memcpy(out, "978", 3);
        memcpy(out + 3, d, 9);
        out[12] = chat_isbn13_check(out);
        out[13] = '\0';
        return 0;
    }

    if (n != 13) {
        return -1;
    }

    for (i = 0; i < 13; i++) {
        if (d[i] == 'X') {
            return -1;
        }
    }

    if (memcmp(d, "978", 3) != 0 && memcmp(d, "979", 3) != 0) {
        return -1;
    }

    if (chat_isbn13_check(d) != d[12]) {
        return -1;
    }

    memcpy(out, d, 13);
    out[13] = '\0';

    return 0;
}


int
chat_isbn_shaped(const char *s, size_t len)
{
    char    d[CHAT_ISBN13_LEN];
    size_t  n, i;

    if (chat_isbn_digits(s, len, d, sizeof(d), &n) != 0) {
        return 0;
    }

    for (i = 0; i + 1 < n; i++) {
        if (d[i] == 'X') {
            return 0;
        }
    }

    return n == 10 || (n == 13 && d[12] != 'X');
}
