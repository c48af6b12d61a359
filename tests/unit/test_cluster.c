/*
 * test_cluster.c: Redis Cluster's rules (protocol/chat_cluster.c): key to
 * slot on published vectors and against a real redis-server's CLUSTER
 * KEYSLOT (a cluster-enabled one of its own, redis_server.h: no stack
 * needed; no redis-server is a failure, not a skip), which argument is
 * a command's first key, the slot map from CLUSTER NODES text, and
 * MOVED/ASK parsing.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "chat_cluster.h"
#include "redis_server.h"
#include "unit.h"

#define SLOT(s)  chat_cluster_slot(s, sizeof(s) - 1)


/* ------------------------------------------------------------------------
 * Key to slot
 * --------------------------------------------------------------------- */

static void
test_slot_vectors(void)
{
    /* the cluster specification's examples and Redis' own tests */
    CHECK(SLOT("foo") == 12182);
    CHECK(SLOT("bar") == 5061);
    CHECK(SLOT("somekey") == 11058);
    CHECK(SLOT("hello") == 866);
    CHECK(SLOT("123456789") == (0x31C3 & 16383));   /* CRC16 check value */
    CHECK(SLOT("") == 0);

    /* hash tags: the first '{' and the next '}', not empty */
    CHECK(SLOT("{user1000}.following") == SLOT("{user1000}.followers"));
    CHECK(SLOT("{user1000}.following") == 3443);
    CHECK(SLOT("foo{bar}{zap}") == SLOT("bar"));
    CHECK(SLOT("foo{{bar}}zap") == SLOT("{bar"));
    CHECK(SLOT("foo{}{bar}") == 8363);              /* empty tag: whole key */
    CHECK(SLOT("{}") == 15257);
    CHECK(SLOT("a{b") == 13340);                    /* no '}': whole key */

    /* a command shard's stream hashes by its shard number */
    CHECK(SLOT("chat:cmd:chat:{0}") == SLOT("0"));
}


/* ------------------------------------------------------------------------
 * Against a real Redis
 * --------------------------------------------------------------------- */

/* a cluster-enabled node of its own, no slots yet (test_map_from_redis
 * gives it every one) */
static const char *const    cluster[] = {
    "cluster-enabled yes", "cluster-config-file nodes.conf", NULL
};
static unit_redis_server_t  server;
static redisContext        *redis;


/* CLUSTER KEYSLOT of 2000 keys, some with tags, some binary, against
 * ours */
static void
test_slot_against_redis(void)
{
    int           i, j, n, bad;
    char          key[40];
    redisReply   *r;

    srand(14);
    bad = 0;

    for (i = 0; i < 2000; i++) {
        n = 1 + rand() % (int) (sizeof(key) - 1);
        for (j = 0; j < n; j++) {
            /* braces often, so tags of every shape turn up */
            key[j] = (char) (rand() % 8 == 0 ? "{}"[rand() % 2]
                                             : rand() % 256);
        }

        r = redisCommand(redis, "CLUSTER KEYSLOT %b", key, (size_t) n);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            CHECK(!"CLUSTER KEYSLOT answered");
            freeReplyObject(r);
            return;
        }

        if ((unsigned) r->integer != chat_cluster_slot(key, (size_t) n)) {
            bad++;
        }
        freeReplyObject(r);
    }

    CHECK(bad == 0);
}


/* the real CLUSTER NODES text of Redis 7 parses: a node on port 0 has
 * no address (":0@..."), so this one's is patched in before parsing */
static void
test_map_from_redis(void)
{
    char                *text, *colon;
    size_t               n;
    redisReply          *r;
    chat_cluster_map_t  *map;

    r = redisCommand(redis, "CLUSTER ADDSLOTSRANGE 0 16383");
    CHECK(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);

    r = redisCommand(redis, "CLUSTER NODES");
    CHECK(r != NULL && r->type == REDIS_REPLY_STRING);
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return;
    }

    map = malloc(sizeof(*map));
    text = malloc(r->len + 32);
    colon = strstr(r->str, " :0@");
    CHECK(map != NULL && text != NULL && colon != NULL);

    if (map != NULL && text != NULL && colon != NULL) {
        n = (size_t) (colon + 1 - r->str);
        memcpy(text, r->str, n);
        n += (size_t) sprintf(text + n, "127.0.0.1:7000");
        memcpy(text + n, colon + 3, r->len - (size_t) (colon + 3 - r->str));
        n += r->len - (size_t) (colon + 3 - r->str);

        CHECK(chat_cluster_map_parse(map, text, n) == CHAT_CLUSTER_SLOTS);
        CHECK(map->nodes == 1 && map->node[0].port == 7000);
    }

    free(text);
    free(map);
    freeReplyObject(r);
}


/* ------------------------------------------------------------------------
 * The first key of a command
 * --------------------------------------------------------------------- */

static int
key_of(int argc, const char *const *argv)
{
    return chat_cluster_key_index(argc, argv, NULL);
}


static void
test_key_index(void)
{
    const char *const xadd[] = { "XADD", "s", "*", "f", "v" };
    const char *const evalsha[] = { "EVALSHA", "abc", "2", "k1", "k2", "a" };
    const char *const eval0[] = { "EVAL", "return 1", "0", "a" };
    const char *const evalbad[] = { "EVALSHA", "abc" };
    const char *const xrg[] = { "XREADGROUP", "GROUP", "g", "c", "COUNT",
                                "1", "BLOCK", "10", "streams", "s1", "s2",
                                ">", ">" };
    const char *const xrnone[] = { "XREAD", "COUNT", "1", "STREAMS" };
    const char *const xgroup[] = { "XGROUP", "CREATE", "s", "g", "0" };
    const char *const xinfo[] = { "XINFO", "GROUPS", "s" };
    const char *const multi[] = { "multi" };
    const char *const load[] = { "SCRIPT", "LOAD", "return 1" };
    const char *const ping[] = { "PING" };
    const char *const hset[] = { "HSET", "h", "f", "v" };
    const size_t lens[] = { 7, 3, 1, 2, 2, 1 };

    CHECK(key_of(5, xadd) == 1);
    CHECK(key_of(6, evalsha) == 3);
    CHECK(chat_cluster_key_index(6, evalsha, lens) == 3);
    CHECK(key_of(4, eval0) == -1);
    CHECK(key_of(2, evalbad) == -1);
    CHECK(key_of(13, xrg) == 9);
    CHECK(key_of(4, xrnone) == -1);
    CHECK(key_of(5, xgroup) == 2);
    CHECK(key_of(3, xinfo) == 2);
    CHECK(key_of(1, multi) == -1);
    CHECK(key_of(3, load) == -1);
    CHECK(key_of(1, ping) == -1);
    CHECK(key_of(4, hset) == 1);
    CHECK(key_of(0, hset) == -1);
}


/* ------------------------------------------------------------------------
 * The slot map
 * --------------------------------------------------------------------- */

/* CLUSTER NODES of a 3+3 cluster after one failover: 30002 failed and
 * its replica 30005 took over; a slot migrating from 30001 to 30003 */
static const char  nodes_text[] =
    "07c37dfeb2352 127.0.0.1:30004@40004 slave e7d1eecce10fd 0 1426238317239"
    " 4 connected\n"
    "67ed2db8d6773 127.0.0.1:30002@40002,host-b master,fail - 1426238316232"
    " 1426238315232 2 disconnected\n"
    "292f8b365bb7e 127.0.0.1:30003@40003 master - 0 1426238318243 3 "
    "connected 10923-16383\n"
    "6ec23923021cf 127.0.0.1:30005@40005 master - 0 1426238316232 5 "
    "connected 5461-10922\n"
    "824fe116063bc 127.0.0.1:30001@40001 myself,master - 0 0 1 connected"
    " 0-5460 [93->-292f8b365bb7e]\r\n"
    "2938205e12de3 127.0.0.1:30006@40006 slave,fail? 292f8b365bb7e 0"
    " 1426238317741 6 connected\n";


static void
test_map_parse(void)
{
    int                  i;
    chat_cluster_map_t  *map;

    map = malloc(sizeof(*map));
    CHECK(map != NULL);
    if (map == NULL) {
        return;
    }

    CHECK(chat_cluster_map_parse(map, nodes_text, sizeof(nodes_text) - 1)
          == CHAT_CLUSTER_SLOTS);
    CHECK(map->nodes == 3);

    i = map->owner[0];
    CHECK(i < map->nodes && map->node[i].port == 30001
          && strcmp(map->node[i].host, "127.0.0.1") == 0);
    CHECK(map->owner[93] == map->owner[0]);     /* still serves, ASKs */
    CHECK(map->node[map->owner[5461]].port == 30005);
    CHECK(map->node[map->owner[10922]].port == 30005);
    CHECK(map->node[map->owner[16383]].port == 30003);
    CHECK(chat_cluster_map_find(map, "127.0.0.1", 30005) >= 0);
    CHECK(chat_cluster_map_find(map, "127.0.0.1", 30002) == -1);

    /* half a cluster: slots nobody serves are NO_NODE */
    CHECK(chat_cluster_map_parse(map,
              "a 10.0.0.1:7000@17000 master - 0 0 1 connected 0-99 200\n",
              56) == 101);
    CHECK(map->owner[100] == CHAT_CLUSTER_NO_NODE);
    CHECK(map->owner[200] == 0);

    /* what it refuses */
    CHECK(chat_cluster_map_parse(map, "a b c\n", 6) == -1);
    CHECK(chat_cluster_map_parse(map,
              "a 1.2.3.4:7000@1 master - 0 0 1 connected 16384\n", 48) == -1);
    CHECK(chat_cluster_map_parse(map,
              "a 1.2.3.4:7000@1 master - 0 0 1 connected 9-3\n", 46) == -1);
    CHECK(chat_cluster_map_parse(map,
              "a 1.2.3.4:x@1 master - 0 0 1 connected 1\n", 41) == -1);
    CHECK(chat_cluster_map_parse(map, "", 0) == 0);

    free(map);
}


static void
test_redirect(void)
{
    unsigned              slot;
    chat_cluster_addr_t   a;

#define REDIR(s)  chat_cluster_redirect_parse(s, sizeof(s) - 1, &slot, &a)

    CHECK(REDIR("MOVED 3999 127.0.0.1:6381") == CHAT_CLUSTER_MOVED);
    CHECK(slot == 3999 && a.port == 6381 && strcmp(a.host, "127.0.0.1") == 0);
    CHECK(REDIR("ASK 16383 ::1:7000") == CHAT_CLUSTER_ASK);
    CHECK(slot == 16383 && a.port == 7000 && strcmp(a.host, "::1") == 0);

    CHECK(REDIR("MOVED 16384 127.0.0.1:6381") == CHAT_CLUSTER_NOT_REDIRECT);
    CHECK(REDIR("MOVED 1 127.0.0.1:0") == CHAT_CLUSTER_NOT_REDIRECT);
    CHECK(REDIR("MOVED 1 127.0.0.1:65536") == CHAT_CLUSTER_NOT_REDIRECT);
    CHECK(REDIR("MOVED 1 127.0.0.1") == CHAT_CLUSTER_NOT_REDIRECT);
    CHECK(REDIR("MOVED  127.0.0.1:1") == CHAT_CLUSTER_NOT_REDIRECT);
    CHECK(REDIR("MOVED 1 :1") == CHAT_CLUSTER_NOT_REDIRECT);
    CHECK(REDIR("ERR unknown command") == CHAT_CLUSTER_NOT_REDIRECT);
    CHECK(REDIR("CLUSTERDOWN The cluster is down")
          == CHAT_CLUSTER_NOT_REDIRECT);

#undef REDIR
}


/* ------------------------------------------------------------------------
 * Keys grouped by slot (the long-poll watcher's one XREAD per slot)
 * --------------------------------------------------------------------- */

static void
test_group_by_slot(void)
{
    size_t       i, order[6], lens[6];
    unsigned     slot_of[6];
    const char  *keys[6] = {
        "chat:poll:{7}:aa", "chat:poll:{8}:bb", "chat:poll:{7}:cc",
        "chat:poll:{9}:dd", "chat:poll:{8}:ee", "chat:poll:{7}:ff"
    };

    for (i = 0; i < 6; i++) {
        lens[i] = strlen(keys[i]);
    }

    /* three users, three slots: {7}'s sessions first in their order,
     * then {8}'s, then {9}'s */
    CHECK(chat_cluster_group_by_slot(keys, lens, 6, order, slot_of) == 3);
    CHECK(order[0] == 0 && order[1] == 2 && order[2] == 5);
    CHECK(order[3] == 1 && order[4] == 4);
    CHECK(order[5] == 3);
    CHECK(slot_of[0] == SLOT("7") && slot_of[1] == SLOT("8")
          && slot_of[3] == SLOT("9"));
    CHECK(slot_of[2] == slot_of[0] && slot_of[5] == slot_of[0]);

    /* each group's keys share a slot, and no slot is in two groups */
    for (i = 1; i < 6; i++) {
        CHECK(slot_of[order[i]] == slot_of[order[i - 1]]
              || slot_of[order[i]] != slot_of[order[0]]);
    }

    CHECK(chat_cluster_group_by_slot(keys, lens, 1, order, slot_of) == 1);
    CHECK(order[0] == 0);
    CHECK(chat_cluster_group_by_slot(keys, lens, 0, order, slot_of) == 0);
}


int
main(void)
{
    int  rc;

    UNIT_RUN(test_slot_vectors);
    UNIT_RUN(test_key_index);
    UNIT_RUN(test_map_parse);
    UNIT_RUN(test_redirect);
    UNIT_RUN(test_group_by_slot);

    if (unit_redis_server_start(&server, "test_cluster", cluster) != 0
        || (redis = unit_redis_server_connect(&server)) == NULL)
    {
        unit_redis_server_stop(&server);
        fprintf(stderr, "not ok - redis-server (make deps installs it)\n");
        return 1;
    }

    UNIT_RUN(test_slot_against_redis);
    UNIT_RUN(test_map_from_redis);

    rc = UNIT_SUMMARY();
    redisFree(redis);
    unit_redis_server_stop(&server);

    return rc;
}
