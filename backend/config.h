/*
 * config.h: the settings every part of the backend reads.  main.c fills
 * one chat_config_t from flags and environment before anything starts;
 * after that it is read-only, and each forked worker has its own copy.
 */

#ifndef CHAT_CONFIG_H
#define CHAT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_MAX_SHARDS  1024

typedef struct {
    int             workers;            /* worker processes */
    char            redis_host[256];
    int             redis_port;
    const char     *pg;                 /* libpq conninfo */
    unsigned char  *token_secret;       /* HS256 key, malloc'd */
    size_t          token_secret_len;
    int64_t         token_ttl;          /* seconds */
    int             shards;             /* command streams */
    int             max_deliveries;     /* beyond this: dead letter */
    int             claim_idle_ms;      /* pending this long: reclaim */
    int             expire_ms;          /* queued longer: answer, skip */
    int             batch;              /* XREADGROUP / XAUTOCLAIM COUNT */
    int             commit_batch;       /* most commands per transaction */
    const char     *pidfile;            /* NULL: none */

    /* orders and payments (op_order.c, reconcile.c) */
    const char     *payment_url;        /* the provider's base URL */
    int             payment_timeout_ms; /* one call to the provider */
    int             reservation_ttl_ms; /* unpaid reservations lapse */
    int             reconcile_interval_ms;  /* pending payments asked */
} chat_config_t;

#endif /* CHAT_CONFIG_H */
