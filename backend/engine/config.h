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

#include "chat_lanes.h"
#include "chat_seal.h"

/* one lane's pool (lanes.c explains each) */
typedef struct {
    int             procs;
    int             batch;
    int             commit_batch;
    int             concurrency;
    int             timeout_ms;
    int             queue;
    int             wait_ms;            /* 0: half of timeout_ms */
    int             retry_s;
    int             nice;
} chat_lane_conf_t;

typedef struct {
    int             workers;            /* worker processes, all lanes */
    chat_lane_conf_t  lanes[CHAT_LANE_COUNT];
    chat_lane_t     lane;               /* a worker's own lane (lanes.c) */
    char            redis_host[256];
    int             redis_port;
    const char     *redis_user;         /* NULL: the default user */
    char           *redis_password;     /* NULL: no AUTH; malloc'd */
    const char     *pg;                 /* libpq conninfo */
    const char     *pg_replica;         /* a streaming replica's conninfo
                                           for reads (replica.c), or NULL */
    int             pg_pooler;          /* 1: CHAT_PG goes through a
                                           transaction pooler (db.c);
                                           the replica never does */
    unsigned char  *token_secret;       /* HS256 key, malloc'd */
    size_t          token_secret_len;
    int64_t         token_ttl;          /* seconds */
    unsigned char   seal_key[CHAT_SEAL_KEY_LEN];  /* the bus's sealed
                                           fields (chat_seal.c) */
    unsigned char   hash_key[CHAT_SEAL_KEY_LEN];  /* the request hash of
                                           a command with sealed fields */
    int64_t         session_ttl;        /* seconds a sign-in may last */
    int             shards;             /* command streams */
    int             max_deliveries;     /* beyond this: dead letter */
    int             claim_idle_ms;      /* pending this long: reclaim */
    int             expire_ms;          /* queued longer: answer, skip */
    int             batch;              /* XREADGROUP / XAUTOCLAIM COUNT:
                                           the worker's lane's */
    int             commit_batch;       /* most commands per transaction:
                                           the worker's lane's */
    const char     *pidfile;            /* NULL: none */

    /* orders and payments (op_order.c, reconcile.c) */
    const char     *payment_url;        /* the provider's base URL */
    int             payment_timeout_ms; /* one call to the provider */
    int             reservation_ttl_ms; /* unpaid reservations lapse */
    int             reconcile_interval_ms;  /* pending payments asked */

    /* uploads and covers (media/) */
    const char     *media_root;         /* the store; NULL: no uploads */
    int64_t         media_quota_bytes;  /* per user, over all uploads */
} chat_config_t;

#endif /* CHAT_CONFIG_H */
