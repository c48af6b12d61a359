/*
 * card.h: the checks a card gets before any stock is reserved for it.
 * Pure (no Redis, no PostgreSQL): unit-tested in
 * tests/unit/test_backend_card.c.  See card.c.
 */

#ifndef CHAT_CARD_H
#define CHAT_CARD_H

#include <stddef.h>
#include <stdint.h>

/*
 * Copies the digits of a card number as people type it ("4242 4242-4242
 * 4242": spaces and hyphens dropped) into out (size bytes with the NUL).
 * 0, or -1 when in has any other character or too many digits.
 */
int chat_card_number_normalize(const char *in, char *out, size_t size);

/* 1 when digits (only '0'..'9', NUL-terminated) pass the Luhn check. */
int chat_card_luhn(const char *digits);

/*
 * NULL when the card may be sent to the provider, else why not (a
 * sentence for a 400): number of 12..19 digits passing Luhn, month
 * 1..12, a year/month not before now_year/now_month, cvc of 3 or 4
 * digits.
 */
const char *chat_card_check(const char *number, int64_t exp_month,
    int64_t exp_year, const char *cvc, int now_year, int now_month);

#endif /* CHAT_CARD_H */
