/*
 * isbn.h: ISBN-10 and ISBN-13 validation and normalisation.  Pure code,
 * see isbn.c.
 */

#ifndef CHAT_ISBN_H
#define CHAT_ISBN_H

#include <stddef.h>

#define CHAT_ISBN13_LEN  13

/*
 * Reads an ISBN-10 or ISBN-13 from s (len bytes), ignoring hyphens and
 * spaces, checks its check digit, and writes the ISBN-13 form (13 digits
 * and a NUL) to out.  ISBN-10 becomes 978 + its first nine digits + a
 * fresh ISBN-13 check digit.  Returns 0, or -1 when s is not a valid
 * ISBN (wrong length, a stray character, a bad check digit, or an
 * ISBN-13 whose prefix is not 978 or 979).
 */
int chat_isbn_normalize(const char *s, size_t len,
    char out[CHAT_ISBN13_LEN + 1]);

/*
 * 1 when s looks like an attempt at an ISBN: only digits, hyphens,
 * spaces and a final X, with 10 or 13 digits (X counted) in all.  Search
 * uses it to tell an ISBN lookup from words.
 */
int chat_isbn_shaped(const char *s, size_t len);

#endif /* CHAT_ISBN_H */
