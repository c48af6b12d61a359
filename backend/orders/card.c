/*
 * card.c: what the backend checks about a card itself.
 *
 * The provider decides whether a card pays; we only refuse what cannot
 * be a card (wrong length, a failed Luhn check, a past expiry, a cvc that
 * is not 3 or 4 digits) before reserving stock for it, so a typo costs a
 * 400 and never a reservation.  The number is only looked at here and in
 * the call to the provider: it is never stored or logged (orders keep the
 * last four digits).
 */

#include <string.h>

#include "card.h"


int
chat_card_number_normalize(const char *in, char *out, size_t size)
{
    size_t  n;

    n = 0;

    for (; *in; in++) {
        if (*in == ' ' || *in == '-') {
            continue;
        }

        if (*in < '0' || *in > '9' || n + 1 >= size) {
            return -1;
        }

        out[n++] = *in;
    }

    out[n] = '\0';
    return 0;
}


int
chat_card_luhn(const char *digits)
{
    int     sum, d, alt;
    size_t  i, n;

    n = strlen(digits);
    sum = 0;
    alt = 0;

    for (i = n; i > 0; i--) {
        if (digits[i - 1] < '0' || digits[i - 1] > '9') {
            return 0;
        }

        d = digits[i - 1] - '0';

        if (alt) {
            d *= 2;
            if (d > 9) {
                d -= 9;
            }
        }

        sum += d;
        alt = !alt;
    }

    return n > 0 && sum % 10 == 0;
}


static int
chat_card_digits(const char *s, size_t min, size_t max)
{
    size_t  n;

    n = strspn(s, "0123456789");

    return s[n] == '\0' && n >= min && n <= max;
}


const char *
chat_card_check(const char *number, int64_t exp_month, int64_t exp_year,
    const char *cvc, int now_year, int now_month)
{
    if (!chat_card_digits(number, 12, 19)) {
        return "payment.card_number must be 12 to 19 digits";
    }

    if (!chat_card_luhn(number)) {
        return "payment.card_number is not a valid card number";
    }

    if (exp_month < 1 || exp_month > 12) {
        return "payment.exp_month must be 1 to 12";
    }

    if (exp_year < now_year || exp_year > now_year + 50
        || (exp_year == now_year && exp_month < now_month))
    {
        return "the card has expired (payment.exp_year/exp_month)";
    }

    if (!chat_card_digits(cvc, 3, 4)) {
        return "payment.cvc must be 3 or 4 digits";
    }

    return NULL;
}
