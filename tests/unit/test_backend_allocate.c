/*
 * test_backend_allocate.c: backend/orders/allocate.c, which warehouses a
 * checkout's lines are served from.
 */

#include "allocate.h"
#include "unit.h"


static chat_take_t  out[16];
static size_t       nout;
static int64_t      avail;


static void
test_region_first(void)
{
    chat_want_t       lines[] = { { 7, 2 } };
    chat_stock_row_t  rows[] = { { 7, 1, 5, 0 }, { 7, 2, 5, 1 } };

    CHECK(chat_allocate(lines, 1, rows, 2, out, &nout, &avail) == -1);
    CHECK(nout == 1);
    CHECK(out[0].book_id == 7 && out[0].warehouse_id == 2
          && out[0].quantity == 2);
}


static void
test_split_region_then_others(void)
{
    chat_want_t       lines[] = { { 7, 6 } };
    chat_stock_row_t  rows[] = { { 7, 1, 3, 0 }, { 7, 2, 2, 1 },
                                 { 7, 3, 4, 0 } };

    CHECK(chat_allocate(lines, 1, rows, 3, out, &nout, &avail) == -1);
    CHECK(nout == 3);
    /* region: warehouse 2 gives its 2; then 1 gives 3, then 3 gives 1 */
    CHECK(out[0].warehouse_id == 2 && out[0].quantity == 2);
    CHECK(out[1].warehouse_id == 1 && out[1].quantity == 3);
    CHECK(out[2].warehouse_id == 3 && out[2].quantity == 1);
}


static void
test_several_books(void)
{
    chat_want_t       lines[] = { { 3, 1 }, { 5, 2 }, { 9, 1 } };
    chat_stock_row_t  rows[] = { { 3, 1, 1, 0 }, { 4, 1, 50, 1 },
                                 { 5, 1, 1, 0 }, { 5, 2, 1, 0 },
                                 { 9, 2, 8, 1 } };

    CHECK(chat_allocate(lines, 3, rows, 5, out, &nout, &avail) == -1);
    CHECK(nout == 4);
    CHECK(out[0].book_id == 3 && out[0].quantity == 1);
    CHECK(out[1].book_id == 5 && out[1].warehouse_id == 1);
    CHECK(out[2].book_id == 5 && out[2].warehouse_id == 2);
    CHECK(out[3].book_id == 9 && out[3].quantity == 1);
}


static void
test_short(void)
{
    chat_want_t       lines[] = { { 3, 1 }, { 5, 4 }, { 9, 1 } };
    chat_stock_row_t  rows[] = { { 3, 1, 1, 0 }, { 5, 1, 1, 0 },
                                 { 5, 2, 2, 1 }, { 9, 2, 8, 1 } };

    CHECK(chat_allocate(lines, 3, rows, 4, out, &nout, &avail) == 1);
    CHECK(avail == 3);

    /* a book without any row */
    lines[1].quantity = 1;
    lines[1].book_id = 6;
    CHECK(chat_allocate(lines, 3, rows, 4, out, &nout, &avail) == 1);
    CHECK(avail == 0);

    /* empty rows never count */
    rows[0].available = 0;
    CHECK(chat_allocate(lines, 1, rows, 4, out, &nout, &avail) == 0);
}


int
main(void)
{
    UNIT_RUN(test_region_first);
    UNIT_RUN(test_split_region_then_others);
    UNIT_RUN(test_several_books);
    UNIT_RUN(test_short);

    return UNIT_SUMMARY();
}
