/*
 * allocate.h: which warehouses a checkout takes its copies from.  Pure (no
 * Redis, no PostgreSQL): unit-tested in tests/unit/test_backend_allocate.c.
 * See allocate.c.
 */

#ifndef CHAT_ALLOCATE_H
#define CHAT_ALLOCATE_H

#include <stddef.h>
#include <stdint.h>

/* one cart line: this many copies of this book */
typedef struct {
    int64_t  book_id;
    int64_t  quantity;
} chat_want_t;

/* one stock row with copies to spare */
typedef struct {
    int64_t  book_id;
    int64_t  warehouse_id;
    int64_t  available;     /* on_hand - reserved */
    int      in_region;     /* the warehouse is in the shopper's region */
} chat_stock_row_t;

/* what to reserve: copies of a book from a warehouse */
typedef struct {
    int64_t  book_id;
    int64_t  warehouse_id;
    int64_t  quantity;
} chat_take_t;

/*
 * Covers lines[0..n) (sorted by book_id) from rows[0..nrows) (sorted by
 * book_id, then warehouse_id): for each line the shopper's region first,
 * then the other warehouses, each group in warehouse order, taking what
 * each row has until the line is covered.  Writes at most nrows takes
 * to out, *nout of them.  Returns -1 when every line is covered, else
 * the index of the first line that is not, with *available set to the
 * copies that line could get.
 */
long chat_allocate(const chat_want_t *lines, size_t n,
    const chat_stock_row_t *rows, size_t nrows, chat_take_t *out,
    size_t *nout, int64_t *available);

#endif /* CHAT_ALLOCATE_H */
