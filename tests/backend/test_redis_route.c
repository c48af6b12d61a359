/*
 * test_redis_route.c: the backend's Redis client (backend/engine/
 * redis_route.c) against a real Redis: a Redis Cluster when the stack
 * is one (CHAT_STACK_REDIS=cluster), else a single server, where the
 * same calls must give the same answers.  Pipelines keep their order
 * across masters, MULTI/EXEC lands on its key's master, SCRIPT LOAD
 * after a NOSCRIPT reaches the node that ran the script, the bus's read
 * over streams on several masters merges their entries, a command
 * spanning slots is an error reply and not a lost connection.
 *
 *   CHAT_REDIS_PORT=... REDISCLI_AUTH=... tests/unit/bin/test_redis_route
 *
 * Built and run by `make -C backend test-route` (tests/run.sh cluster,
 * with the stack up).  Its keys are rt:* and are deleted at the end.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_cluster.h"
#include "log.h"
#include "redis_route.h"
#include "unit.h"

#define KEYS  40


static chat_router_t  rt;
static int            cluster;


static int
is_status(redisReply *r, const char *s)
{
    return r != NULL && r->type == REDIS_REPLY_STATUS
           && strcmp(r->str, s) == 0;
}


static void
test_connect(void)
{
    CHECK(chat_router_ok(&rt));
    CHECK(rt.cluster == cluster);
    if (cluster) {
        CHECK(rt.nodes == 3);
    } else {
        CHECK(rt.nodes == 1);
    }
}


/* 40 SETs, then 40 GETs, all pipelined: every reply in its command's
 * place, whichever master each went to */
static void
test_pipeline_order(void)
{
    int          i, used[CHAT_CLUSTER_MAX_NODES] = { 0 }, masters;
    char         key[32];
    void        *reply;
    redisReply  *r;

    for (i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "rt:{%d}", i);
        CHECK(chat_router_appendf(&rt, "SET %s v%d", key, i) == REDIS_OK);
        if (cluster) {
            used[rt.map->owner[chat_cluster_slot(key, strlen(key))]] = 1;
        }
    }
    for (i = 0; i < KEYS; i++) {
        CHECK(chat_router_get_reply(&rt, &reply) == REDIS_OK);
        CHECK(is_status(reply, "OK"));
        freeReplyObject(reply);
    }

    for (i = 0; i < KEYS; i++) {
        CHECK(chat_router_appendf(&rt, "GET rt:{%d}", i) == REDIS_OK);
    }
    for (i = 0; i < KEYS; i++) {
        char  want[16];

        CHECK(chat_router_get_reply(&rt, &reply) == REDIS_OK);
        r = reply;
        snprintf(want, sizeof(want), "v%d", i);
        CHECK(r != NULL && r->type == REDIS_REPLY_STRING
              && strcmp(r->str, want) == 0);
        freeReplyObject(r);
    }

    masters = 0;
    for (i = 0; i < CHAT_CLUSTER_MAX_NODES; i++) {
        masters += used[i];
    }
    CHECK(!cluster || masters == 3);
}


/* a transaction on a key of each master: MULTI goes where its key goes */
static void
test_multi(void)
{
    int          i, k;
    char         key[32];
    void        *reply;
    redisReply  *r;

    for (k = 0; k < 6; k++) {
        snprintf(key, sizeof(key), "rt:set:{%d}", k);
        CHECK(chat_router_appendf(&rt, "MULTI") == REDIS_OK);
        CHECK(chat_router_appendf(&rt, "DEL %s", key) == REDIS_OK);
        CHECK(chat_router_appendf(&rt, "SADD %s a b", key) == REDIS_OK);
        CHECK(chat_router_appendf(&rt, "EXPIRE %s 60", key) == REDIS_OK);
        CHECK(chat_router_appendf(&rt, "EXEC") == REDIS_OK);

        CHECK(chat_router_get_reply(&rt, &reply) == REDIS_OK);
        CHECK(is_status(reply, "OK"));
        freeReplyObject(reply);
        for (i = 0; i < 3; i++) {
            CHECK(chat_router_get_reply(&rt, &reply) == REDIS_OK);
            CHECK(is_status(reply, "QUEUED"));
            freeReplyObject(reply);
        }
        CHECK(chat_router_get_reply(&rt, &reply) == REDIS_OK);
        r = reply;
        CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3);
        freeReplyObject(r);

        r = chat_router_commandf(&rt, "SCARD %s", key);
        CHECK(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 2);
        freeReplyObject(r);
    }
}


/* EVALSHA of a script no node has: NOSCRIPT; the SCRIPT LOAD that
 * follows (keyless) must reach the same node, or the next EVALSHA fails
 * again (bus.c's chat_bus_script does exactly this) */
static void
test_script_load_follows(void)
{
    int          k;
    char         key[32], sha[64], text[96];
    redisReply  *r;

    for (k = 0; k < 6; k++) {
        snprintf(key, sizeof(key), "rt:{%d}", k);
        /* a script of its own each time, so only this LOAD has it */
        snprintf(text, sizeof(text),
                 "return redis.call('GET', KEYS[1]) -- rt %d %d", k,
                 rand());

        r = chat_router_commandf(&rt, "EVALSHA %s 1 %s",
                                 "0123456789012345678901234567890123456789",
                                 key);
        CHECK(r != NULL && r->type == REDIS_REPLY_ERROR
              && strncmp(r->str, "NOSCRIPT", 8) == 0);
        freeReplyObject(r);

        r = chat_router_commandf(&rt, "SCRIPT LOAD %s", text);
        CHECK(r != NULL && r->type == REDIS_REPLY_STRING && r->len == 40);
        snprintf(sha, sizeof(sha), "%s", r ? r->str : "");
        freeReplyObject(r);

        r = chat_router_commandf(&rt, "EVALSHA %s 1 %s", sha, key);
        CHECK(r != NULL && r->type == REDIS_REPLY_STRING
              && r->str[0] == 'v');
        freeReplyObject(r);
    }
}


/* the bus's read: four streams, wherever their slots are, one call */
static void
test_read_streams(void)
{
    int           i, k;
    char          streams[4][32];
    const char   *argv[9 + 8];
    size_t        lens[9 + 8];
    redisReply   *r;

    for (i = 0; i < 4; i++) {
        snprintf(streams[i], sizeof(streams[i]), "rt:s:{%d}", i);
        r = chat_router_commandf(&rt, "DEL %s", streams[i]);
        freeReplyObject(r);
        r = chat_router_commandf(&rt, "XGROUP CREATE %s g 0 MKSTREAM",
                                 streams[i]);
        CHECK(is_status(r, "OK"));
        freeReplyObject(r);
        r = chat_router_commandf(&rt, "XADD %s * n %d", streams[i], i);
        CHECK(r != NULL && r->type == REDIS_REPLY_STRING);
        freeReplyObject(r);
    }

    k = 0;
    argv[k++] = "XREADGROUP";
    argv[k++] = "GROUP";
    argv[k++] = "g";
    argv[k++] = "c";
    argv[k++] = "COUNT";
    argv[k++] = "10";
    argv[k++] = "BLOCK";
    argv[k++] = "200";
    argv[k++] = "STREAMS";
    for (i = 0; i < 4; i++) {
        argv[k++] = streams[i];
    }
    for (i = 0; i < 4; i++) {
        argv[k++] = ">";
    }
    for (i = 0; i < k; i++) {
        lens[i] = strlen(argv[i]);
    }

    /* every stream's entry, in one or (on a cluster) a few calls: the
     * first answer ends a call, later ones come with the next */
    {
        int  seen = 0, calls;

        for (calls = 0; calls < 10 && seen < 4; calls++) {
            r = chat_router_read_streams(&rt, k, argv, lens, 9, 4, 200);
            CHECK(r != NULL);
            if (r == NULL) {
                return;
            }
            if (r->type == REDIS_REPLY_ARRAY) {
                seen += (int) r->elements;
            }
            freeReplyObject(r);
        }
        CHECK(seen == 4);
    }

    /* nothing new: nil after the block */
    r = chat_router_read_streams(&rt, k, argv, lens, 9, 4, 200);
    CHECK(r != NULL && r->type == REDIS_REPLY_NIL);
    freeReplyObject(r);

    for (i = 0; i < 4; i++) {
        r = chat_router_commandf(&rt, "DEL %s", streams[i]);
        freeReplyObject(r);
    }
}


/* a command over keys of two slots: Redis' CROSSSLOT, the route stays up
 * (on one server: it simply works) */
static void
test_cross_slot(void)
{
    redisReply  *r;

    r = chat_router_commandf(&rt, "MSET rt:{1} x rt:{2} y");
    CHECK(r != NULL);
    if (cluster) {
        CHECK(r != NULL && r->type == REDIS_REPLY_ERROR
              && strncmp(r->str, "CROSSSLOT", 9) == 0);
    } else {
        CHECK(is_status(r, "OK"));
    }
    freeReplyObject(r);
    CHECK(chat_router_ok(&rt));
}


static void
cleanup(void)
{
    int          i;
    redisReply  *r;

    for (i = 0; i < KEYS; i++) {
        r = chat_router_commandf(&rt, "DEL rt:{%d} rt:set:{%d}", i, i);
        freeReplyObject(r);
    }
}


int
main(void)
{
    int          rc, port;
    const char  *p, *pass, *kind;

    p = getenv("CHAT_REDIS_PORT");
    pass = getenv("REDISCLI_AUTH");
    kind = getenv("CHAT_STACK_REDIS");
    if (p == NULL) {
        fprintf(stderr, "test_redis_route: set CHAT_REDIS_PORT "
                        "(and REDISCLI_AUTH) from conf/stack.sh env\n");
        return 2;
    }

    port = atoi(p);
    srand((unsigned) time(NULL));
    cluster = kind != NULL && strcmp(kind, "cluster") == 0;

    chat_router_init(&rt, "127.0.0.1", port, NULL,
                     pass && pass[0] ? pass : NULL);
    if (chat_router_connect(&rt) != 0) {
        fprintf(stderr, "not ok - connect: %s\n", chat_router_error(&rt));
        return 1;
    }

    UNIT_RUN(test_connect);
    UNIT_RUN(test_pipeline_order);
    UNIT_RUN(test_multi);
    UNIT_RUN(test_script_load_follows);
    UNIT_RUN(test_read_streams);
    UNIT_RUN(test_cross_slot);

    cleanup();
    rc = UNIT_SUMMARY();
    chat_router_close(&rt);

    return rc;
}
