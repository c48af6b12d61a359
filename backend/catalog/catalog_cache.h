/*
 * catalog_cache.h: the worker's half of the edge's catalog cache: bumping
 * generations after catalog writes.  See catalog_cache.c.
 */

#ifndef CHAT_CATALOG_CACHE_H
#define CHAT_CATALOG_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "command.h"

/* The touches hooks of the ops that change cached pages (ops.h): lists
 * only; a book (the body's book_id) and lists; a book and lists when the
 * reply says stock_status_changed; every book of the reply's order. */
void chat_catalog_touches_lists(const cJSON *body, int status,
    const char *reply, chat_touched_t *t);
void chat_catalog_touches_book(const cJSON *body, int status,
    const char *reply, chat_touched_t *t);
void chat_catalog_touches_stock(const cJSON *body, int status,
    const char *reply, chat_touched_t *t);
void chat_catalog_touches_order(const cJSON *body, int status,
    const char *reply, chat_touched_t *t);
/* lists and the books the reply names in touched_book_ids (a category or
 * an author renamed, moved or merged) */
void chat_catalog_touches_named(const cJSON *body, int status,
    const char *reply, chat_touched_t *t);

/*
 * The catalog area's before_reply hook (area.h): INCRs the generations
 * touched by the finished jobs of jobs[0..n) that have a touches hook.  Must run after their commit and before their replies are
 * sent.  0, or -1 when Redis failed (then no reply may be sent: the
 * entries stay pending and their replay bumps again).
 */
int chat_catalog_cache_bump(chat_bus_t *bus, chat_job_t **jobs, size_t n);

#endif /* CHAT_CATALOG_CACHE_H */
