/*
 * allocate.c: choosing warehouses for a checkout's lines.
 *
 * The checkout (op_checkout.c) locks the stock rows of its books in
 * (book_id, warehouse_id) order and hands them here with what each has to
 * spare.  A line is served from the shopper's region first (shorter
 * shipping), then from anywhere else; within each group the lower
 * warehouse id first, so the choice is deterministic.  A line is split
 * over warehouses only when one row cannot cover it.  Either every line
 * is covered or the checkout is refused out of stock: nothing partial.
 */

#include "allocate.h"


long
chat_allocate(const chat_want_t *lines, size_t n,
    const chat_stock_row_t *rows, size_t nrows, chat_take_t *out,
    size_t *nout, int64_t *available)
{
    int      pass;
    size_t   i, j, first, k;
    int64_t  need, take;

    *nout = 0;
    k = 0;
    first = 0;

    for (i = 0; i < n; i++) {
        need = lines[i].quantity;

        /* rows are sorted like lines: skip to this book's run */
        while (first < nrows && rows[first].book_id < lines[i].book_id) {
            first++;
        }

        for (pass = 0; pass < 2 && need > 0; pass++) {
            for (j = first; j < nrows && rows[j].book_id == lines[i].book_id
                            && need > 0; j++)
            {
                if ((rows[j].in_region != 0) != (pass == 0)
                    || rows[j].available <= 0)
                {
                    continue;
                }

                take = rows[j].available < need ? rows[j].available : need;
                need -= take;

                out[k].book_id = lines[i].book_id;
                out[k].warehouse_id = rows[j].warehouse_id;
                out[k].quantity = take;
                k++;
            }
        }

        if (need > 0) {
            *nout = k;
            *available = lines[i].quantity - need;
            return (long) i;
        }
    }

    *nout = k;
    return -1;
}
