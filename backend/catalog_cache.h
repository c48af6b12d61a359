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

/* The generation keys a catalog write must bump, from its op, body and
 * final reply (so a replay bumps the same ones).  Writes *book (0: none)
 * and *lists (1: the list generation).  Pure. */
void chat_catalog_cache_touched(const char *op, const cJSON *body,
    int status, const char *reply, int64_t *book, int *lists);

/*
 * INCRs the generations touched by the finished CHAT_OP_CATALOG jobs of
 * jobs[0..n).  Must run after their commit and before their replies are
 * sent.  0, or -1 when Redis failed (then no reply may be sent: the
 * entries stay pending and their replay bumps again).
 */
int chat_catalog_cache_bump(chat_bus_t *bus, chat_job_t **jobs, size_t n);

#endif /* CHAT_CATALOG_CACHE_H */
