/*
 * test_backend_card.c: backend/orders/card.c, the checks a card gets before
 * stock is reserved for it: Luhn, lengths, expiry, cvc.
 */

#include <string.h>

#include "card.h"
#include "unit.h"


static void
test_luhn(void)
{
    CHECK(chat_card_luhn("4242424242424242"));
    CHECK(chat_card_luhn("4000000000000002"));
    CHECK(chat_card_luhn("4000000000009995"));
    CHECK(chat_card_luhn("79927398713"));
    CHECK(!chat_card_luhn("4242424242424241"));
    CHECK(!chat_card_luhn("79927398710"));
    CHECK(!chat_card_luhn(""));
    CHECK(!chat_card_luhn("4242 4242"));
}


static void
test_card_good(void)
{
    CHECK(chat_card_check("4242424242424242", 12, 2030, "123", 2026, 11)
          == NULL);
    /* this month still counts */
    CHECK(chat_card_check("4242424242424242", 11, 2026, "1234", 2026, 11)
          == NULL);
}


static void
test_card_bad(void)
{
    /* length and characters */
    CHECK(chat_card_check("42424242424", 12, 2030, "123", 2026, 11) != NULL);
    CHECK(chat_card_check("42424242424242424242", 12, 2030, "123", 2026, 11)
          != NULL);
    CHECK(chat_card_check("4242-4242-4242-4242", 12, 2030, "123", 2026, 11)
          != NULL);
    CHECK(chat_card_check("", 12, 2030, "123", 2026, 11) != NULL);
    /* Luhn */
    CHECK(chat_card_check("4242424242424241", 12, 2030, "123", 2026, 11)
          != NULL);
    /* month */
    CHECK(chat_card_check("4242424242424242", 0, 2030, "123", 2026, 11)
          != NULL);
    CHECK(chat_card_check("4242424242424242", 13, 2030, "123", 2026, 11)
          != NULL);
    /* expired */
    CHECK(chat_card_check("4242424242424242", 10, 2026, "123", 2026, 11)
          != NULL);
    CHECK(chat_card_check("4242424242424242", 12, 2025, "123", 2026, 11)
          != NULL);
    /* cvc */
    CHECK(chat_card_check("4242424242424242", 12, 2030, "12", 2026, 11)
          != NULL);
    CHECK(chat_card_check("4242424242424242", 12, 2030, "12a", 2026, 11)
          != NULL);
    CHECK(chat_card_check("4242424242424242", 12, 2030, "12345", 2026, 11)
          != NULL);
}


static void
test_normalize(void)
{
    char  out[20];

    CHECK(chat_card_number_normalize("4242 4242 4242 4242", out, sizeof(out))
          == 0);
    CHECK(strcmp(out, "4242424242424242") == 0);
    CHECK(chat_card_number_normalize("4000-0000-0000-0002", out, sizeof(out))
          == 0);
    CHECK(strcmp(out, "4000000000000002") == 0);
    CHECK(chat_card_number_normalize("4242x4242", out, sizeof(out)) == -1);
    CHECK(chat_card_number_normalize("12345678901234567890", out, sizeof(out))
          == -1);
    CHECK(chat_card_number_normalize("", out, sizeof(out)) == 0);
    CHECK(out[0] == '\0');
}


int
main(void)
{
    UNIT_RUN(test_luhn);
    UNIT_RUN(test_card_good);
    UNIT_RUN(test_card_bad);
    UNIT_RUN(test_normalize);

    return UNIT_SUMMARY();
}
