/*
 * test_online.c: the shared wire contract's Redis side (protocol/):
 * the key builders (chat_keys.h), the fan-out rule in C
 * (chat_online.c) and in Lua (chat_scripts.c) on one table of cases,
 * and the shared scripts themselves, on a real Redis: a redis-server of
 * its own (redis_server.h), started here and stopped at the end (no
 * stack needed; no redis-server is a failure, not a skip).
 *
 * That Redis is a Redis Cluster of one node holding every slot, so it
 * refuses what a real cluster refuses: a script or command whose keys
 * are in different slots (CROSSSLOT).  A single node does not refuse a
 * script touching a key it was not handed (a real cluster does when that
 * key lives on another node), so every product script also runs as an
 * ACL user allowed only the keys of one hash tag (run_tagged): a key
 * outside it is refused ("can't access", NOPERM).  Both together are "one slot", checked on every
 * script the edge and the backend send (test_one_slot).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "chat_keys.h"
#include "chat_online.h"
#include "chat_scripts.h"
#include "redis_server.h"
#include "unit.h"


static unit_redis_server_t  server;
static redisContext        *redis;
static redisContext        *tagged;     /* as the user "tagged" (run_tagged) */


/* ------------------------------------------------------------------------
 * A Redis of our own
 * --------------------------------------------------------------------- */

/* Starts a one-node cluster holding every slot (redis_server.h), and
 * the user "tagged" allowed everything for now.  0 or -1. */
static int
redis_start(void)
{
    int          i;
    redisReply  *r;
    static const char *const  cluster[] = {
        "cluster-enabled yes", "cluster-config-file nodes.conf", NULL
    };

    if (unit_redis_server_start(&server, "test_online", cluster) != 0) {
        return -1;
    }

    redis = unit_redis_server_connect(&server);
    if (redis == NULL) {
        fprintf(stderr, "test_online: cannot connect to redis-server\n");
        return -1;
    }

    freeReplyObject(redisCommand(redis, "CLUSTER ADDSLOTSRANGE 0 16383"));

    for (i = 0; i < 100; i++) {                 /* up to 10 s */
        r = redisCommand(redis, "CLUSTER INFO");
        if (r != NULL && r->type == REDIS_REPLY_STRING
            && strstr(r->str, "cluster_state:ok") != NULL)
        {
            freeReplyObject(r);
            break;
        }
        freeReplyObject(r);
        unit_redis_nap_ms(100);
    }

    r = redisCommand(redis, "ACL SETUSER tagged on >tagged +@all");
    freeReplyObject(r);
    tagged = unit_redis_server_connect(&server);
    r = tagged ? redisCommand(tagged, "AUTH tagged tagged") : NULL;
    if (i == 100 || r == NULL || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        fprintf(stderr, "test_online: the one-node cluster is not ready\n");
        return -1;
    }
    freeReplyObject(r);

    return 0;
}


static void
redis_stop(void)
{
    if (redis != NULL) {
        redisFree(redis);
    }
    if (tagged != NULL) {
        redisFree(tagged);
    }
    unit_redis_server_stop(&server);
}


/* EVALSHA of a shared script with NUL-terminated args on connection c,
 * loading it on NOSCRIPT as the edge and the backend do */
static redisReply *
run_on(redisContext *c, chat_script_t *s, int argc, const char **argv)
{
    int          i;
    const char  *args[40];
    redisReply  *r;

    args[0] = "EVALSHA";
    args[1] = chat_script_sha(s);
    for (i = 0; i < argc; i++) {
        args[i + 2] = argv[i];
    }

    r = redisCommandArgv(c, argc + 2, args, NULL);
    if (r != NULL && r->type == REDIS_REPLY_ERROR
        && chat_script_noscript(r->str, r->len))
    {
        freeReplyObject(r);
        freeReplyObject(redisCommand(c, "SCRIPT LOAD %s", s->text));
        r = redisCommandArgv(c, argc + 2, args, NULL);
    }

    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "  %s script: %s\n", s->name, r->str);
    }

    return r;
}


static redisReply *
run(chat_script_t *s, int argc, const char **argv)
{
    return run_on(redis, s, argc, argv);
}


/* run_on as a user allowed only keys with the hash tag {tag}: a script
 * reaching any other key is refused (NOPERM), as a cluster would refuse
 * a key on another node */
static redisReply *
run_tagged(const char *tag, chat_script_t *s, int argc, const char **argv)
{
    char  acl[128];

    snprintf(acl, sizeof(acl), "~*{%s}*", tag);
    freeReplyObject(redisCommand(redis, "ACL SETUSER tagged resetkeys %s",
                                 acl));

    return run_on(tagged, s, argc, argv);
}


static long long
run_tagged_int(const char *tag, chat_script_t *s, int argc,
    const char **argv)
{
    long long    n;
    redisReply  *r;

    r = run_tagged(tag, s, argc, argv);
    n = (r != NULL && r->type == REDIS_REPLY_INTEGER) ? r->integer : -999;
    freeReplyObject(r);

    return n;
}


static long long
run_int(chat_script_t *s, int argc, const char **argv)
{
    long long    n;
    redisReply  *r;

    r = run(s, argc, argv);
    n = (r != NULL && r->type == REDIS_REPLY_INTEGER) ? r->integer : -999;
    freeReplyObject(r);

    return n;
}


static long long
cmd_int(const char *fmt, const char *a, const char *b)
{
    long long    n;
    redisReply  *r;

    r = redisCommand(redis, fmt, a, b);
    n = (r != NULL && r->type == REDIS_REPLY_INTEGER) ? r->integer : -999;
    freeReplyObject(r);

    return n;
}


/* Redis' clock in ms, as the scripts read it */
static long long
redis_now(void)
{
    long long    ms;
    redisReply  *r;

    r = redisCommand(redis, "TIME");
    ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);

    return ms;
}


/* ------------------------------------------------------------------------
 * Keys
 * --------------------------------------------------------------------- */

/* the part a Redis Cluster hashes: between the first '{' and the next
 * '}', when not empty */
static void
hash_tag(const char *key, char *out, size_t size)
{
    const char  *o, *c;

    o = strchr(key, '{');
    c = o ? strchr(o + 1, '}') : NULL;

    if (o == NULL || c == NULL || c == o + 1) {
        snprintf(out, size, "%s", key);
    } else {
        snprintf(out, size, "%.*s", (int) (c - o - 1), o + 1);
    }
}


static void
test_keys(void)
{
    char  k[CHAT_KEY_MAX], t1[64], t2[64];

    CHECK(chat_key_online(k, sizeof(k), 42) == 16
          && strcmp(k, "chat:online:{42}") == 0);
    CHECK(chat_key_blocked(k, sizeof(k), 7) > 0
          && strcmp(k, "chat:blocked:{7}") == 0);
    CHECK(chat_key_members(k, sizeof(k), 9) > 0
          && strcmp(k, "chat:members:{9}") == 0);
    CHECK(chat_key_typing(k, sizeof(k), 9, 42) > 0
          && strcmp(k, "chat:typing:{9}:42") == 0);
    CHECK(chat_key_gw(k, sizeof(k), "h:1:ab", 6) > 0
          && strcmp(k, "chat:gw:{h:1:ab}") == 0);

    /* the poll session's stream: the uid is the hash tag (as documented
     * and as built), the sid after it, exactly CHAT_POLL_SID_LEN bytes */
    CHECK(chat_key_poll(k, sizeof(k), 42, "0123456789abcdefXX") > 0
          && strcmp(k, "chat:poll:{42}:0123456789abcdef") == 0);

    /* a user's keys share a cluster slot; a conversation's too */
    chat_key_poll(k, sizeof(k), 42, "0123456789abcdef");
    hash_tag(k, t1, sizeof(t1));
    chat_key_online(k, sizeof(k), 42);
    hash_tag(k, t2, sizeof(t2));
    CHECK(strcmp(t1, "42") == 0 && strcmp(t2, "42") == 0);
    chat_key_blocked(k, sizeof(k), 42);
    hash_tag(k, t2, sizeof(t2));
    CHECK(strcmp(t1, t2) == 0);
    chat_key_members(k, sizeof(k), 9);
    hash_tag(k, t1, sizeof(t1));
    chat_key_typing(k, sizeof(k), 9, 42);
    hash_tag(k, t2, sizeof(t2));
    CHECK(strcmp(t1, "9") == 0 && strcmp(t2, "9") == 0);

    /* too small a buffer: -1, never a cut key */
    CHECK(chat_key_online(k, 10, 42) == -1);
    CHECK(chat_key_online(k, 16, 42) == -1);
    CHECK(chat_key_online(k, 17, 42) == 16);
}


/* ------------------------------------------------------------------------
 * The fan-out rule: C and Lua on one table
 * --------------------------------------------------------------------- */

typedef struct {
    const char  *name;
    const char  *value;
    long long    now;
    int          fresh;
} rule_case_t;

#define NOW   1700000000000LL
#define GW    "chat:gw:{host:12:abcd}"
#define POLL  "chat:poll:{42}:0123456789abcdef"

static const rule_case_t  rule_cases[] = {
    { GW, "1700000000000", NOW, 1 },
    { GW, "1700000000000", NOW + CHAT_ONLINE_STALE_MS, 1 },
    { GW, "1700000000000", NOW + CHAT_ONLINE_STALE_MS + 1, 0 },
    { GW, "1700000050000", NOW, 1 },                        /* clock skew */
    { GW, "", NOW, 0 },
    { GW, "12x", NOW, 0 },
    { GW, "-5", NOW, 0 },
    { GW, "1234567890123456", NOW, 0 },                     /* 16 digits */
    { "chat:gw:{}", "1700000000000", NOW, 0 },              /* no id */
    { "chat:gw:{a", "1700000000000", NOW, 0 },
    { "xchat:gw:{a}", "1700000000000", NOW, 0 },
    { "chat:workers", "1700000000000", NOW, 0 },
    { "chat:online:{42}", "1700000000000", NOW, 0 },
    { POLL, "1700000000000", NOW, 1 },
    { POLL, "1700000000000", NOW + CHAT_ONLINE_STALE_MS + 1, 0 },
    { "chat:poll:{}:0123456789abcdef", "1700000000000", NOW, 0 },
    { "chat:poll:{42}:0123456789abcde", "1700000000000", NOW, 0 },
    { "chat:poll:{42}:0123456789abcdef0", "1700000000000", NOW, 0 },
    { "chat:poll:{42}:0123456789ABCDEF", "1700000000000", NOW, 0 },
    { "chat:poll:{4x}:0123456789abcdef", "1700000000000", NOW, 0 },
    { "chat:poll:{42}0123456789abcdef", "1700000000000", NOW, 0 },
    { "chat:poll:{42}:users", "1700000000000", NOW, 0 },
    { "chat:poll:{12345678901234567890}:0123456789abcdef", "1700000000000",
      NOW, 0 },                                             /* 20 digits */
    { "chat:poll:{1234567890123456789}:0123456789abcdef", "1700000000000",
      NOW, 1 },                                             /* 19 digits */
};


static void
test_rule_c(void)
{
    size_t              i;
    const rule_case_t  *c;

    for (i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
        c = &rule_cases[i];
        if (chat_online_field_fresh(c->name, strlen(c->name), c->value,
                                    strlen(c->value), c->now)
            != c->fresh)
        {
            fprintf(stderr, "  C rule: case %zu (%s = %s) wrong\n", i,
                    c->name, c->value);
            unit_current_failed = 1;
        }
    }

    /* a long enough gateway id is refused, not read past */
    {
        char  name[CHAT_MAX_GW_LEN + 2];

        memset(name, 'a', sizeof(name));
        memcpy(name, CHAT_GW_STREAM_PREFIX, sizeof(CHAT_GW_STREAM_PREFIX) - 1);
        name[CHAT_MAX_GW_LEN - 1] = '}';
        CHECK(chat_online_field_routable(name, CHAT_MAX_GW_LEN));
        name[CHAT_MAX_GW_LEN] = '}';
        CHECK(!chat_online_field_routable(name, CHAT_MAX_GW_LEN + 1));
    }
}


static void
test_rule_lua(void)
{
    size_t              i;
    char                now[24];
    const char         *argv[4];
    const rule_case_t  *c;

    for (i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
        c = &rule_cases[i];
        snprintf(now, sizeof(now), "%lld", c->now);
        argv[0] = "0";
        argv[1] = c->name;
        argv[2] = c->value;
        argv[3] = now;

        if (run_int(&chat_script_online_rule, 4, argv) != c->fresh) {
            fprintf(stderr, "  Lua rule: case %zu (%s = %s) wrong\n", i,
                    c->name, c->value);
            unit_current_failed = 1;
        }
    }
}


/* ------------------------------------------------------------------------
 * The scripts
 * --------------------------------------------------------------------- */

/* every script compiles, and Redis' SHA1 of it is ours (EVALSHA finds
 * what SCRIPT LOAD stored) */
static void
test_scripts_load(void)
{
    size_t          i;
    redisReply     *r;
    chat_script_t  *all[] = {
        &chat_script_online_up, &chat_script_presence_up,
        &chat_script_presence_down, &chat_script_poll_open,
        &chat_script_poll_read, &chat_script_typing,
        &chat_script_typing_target, &chat_script_presence_due,
        &chat_script_presence_sweep, &chat_script_stream_depth,
        &chat_script_dead_letters, &chat_script_cache_lookup,
        &chat_script_logout, &chat_script_revocations_load,
        &chat_script_online_rule
    };

    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        r = redisCommand(redis, "SCRIPT LOAD %s", all[i]->text);
        CHECK(r != NULL && r->type == REDIS_REPLY_STRING);
        if (r != NULL && r->type == REDIS_REPLY_STRING) {
            CHECK(strcmp(r->str, chat_script_sha(all[i])) == 0);
        } else if (r != NULL && r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "  %s: %s\n", all[i]->name, r->str);
        }
        freeReplyObject(r);
    }

    CHECK(chat_script_noscript("NOSCRIPT No matching script", 27));
    CHECK(!chat_script_noscript("ERR NOSCRIPT", 12));
    CHECK(!chat_script_noscript("NOSCRI", 6));
}


/* after SCRIPT FLUSH (a restarted or failed-over Redis) the runner's
 * NOSCRIPT path loads the script again */
static void
test_noscript_reload(void)
{
    redisReply  *r;
    const char  *argv[4] = { "0", GW, "1700000000000", "1700000000000" };

    freeReplyObject(redisCommand(redis, "SCRIPT FLUSH"));
    r = redisCommand(redis, "SCRIPT EXISTS %s",
                     chat_script_sha(&chat_script_online_rule));
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1
          && r->element[0]->integer == 0);
    freeReplyObject(r);

    CHECK(run_int(&chat_script_online_rule, 4, argv) == 1);
}


/* user 42's presence shard: 42 % 16 */
#define DUE      "chat:presence:{p10}:due"
#define ON       "chat:presence:{p10}:on"
#define CHANGES  "chat:presence:{p10}:changes"


/* the sweeper's two steps for one shard, as backend/presence does them:
 * the due uids, each one's newest routable refresh, the decision */
static long long
sweep(const char *ttl)
{
    char          newest[8][24];
    size_t        i, j;
    long long     best, v;
    redisReply   *due, *h;
    const char   *argv[5 + 16];
    int           argc;
    const char   *dargv[3] = { "1", DUE, "1000" };

    due = run_tagged("p10", &chat_script_presence_due, 3, dargv);
    if (due == NULL || due->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(due);
        return -999;
    }

    argv[0] = "3";
    argv[1] = DUE;
    argv[2] = ON;
    argv[3] = CHANGES;
    argv[4] = ttl;
    argc = 5;

    for (i = 0; i < due->elements && i < 8; i++) {
        h = redisCommand(redis, "HGETALL chat:online:{%s}",
                         due->element[i]->str);
        best = 0;
        for (j = 0; h != NULL && j + 1 < h->elements; j += 2) {
            if (chat_online_field_routable(h->element[j]->str,
                                           h->element[j]->len))
            {
                v = atoll(h->element[j + 1]->str);
                best = v > best ? v : best;
            }
        }
        freeReplyObject(h);
        snprintf(newest[i], sizeof(newest[i]), "%lld", best);
        argv[argc++] = due->element[i]->str;
        argv[argc++] = newest[i];
    }

    v = run_tagged_int("p10", &chat_script_presence_sweep, argc, argv);
    freeReplyObject(due);

    return v;
}


static void
test_presence(void)
{
    char         k[CHAT_KEY_MAX];
    const char  *online[4] = { "1", "chat:online:{42}", GW, "60000" };
    const char  *up[6] = { "3", DUE, ON, CHANGES, "42", "60000" };
    const char  *down[5] = { "2", DUE, ON, "42", "1" };

    /* the shard's keys as the builder spells them, one tag */
    CHECK(chat_presence_shard(42) == 10);
    CHECK(chat_key_presence(k, sizeof(k), 10, CHAT_PRESENCE_DUE) > 0
          && strcmp(k, DUE) == 0);
    CHECK(chat_key_presence(k, sizeof(k), 10, CHAT_PRESENCE_CHANGES) > 0
          && strcmp(k, CHANGES) == 0);

    freeReplyObject(redisCommand(redis, "FLUSHALL"));

    /* the first registration is a transition, the refresh is not */
    CHECK(run_tagged_int("42", &chat_script_online_up, 4, online) == 1);
    CHECK(run_tagged_int("p10", &chat_script_presence_up, 6, up) == 1);
    CHECK(run_tagged_int("42", &chat_script_online_up, 4, online) == 1);
    CHECK(run_tagged_int("p10", &chat_script_presence_up, 6, up) == 0);
    CHECK(cmd_int("XLEN %s", CHANGES, NULL) == 1);
    CHECK(cmd_int("HEXISTS %s %s", "chat:online:{42}", GW) == 1);
    CHECK(cmd_int("HEXISTS %s %s", ON, "42") == 1);
    CHECK(cmd_int("ZCARD %s", DUE, NULL) == 1);

    /* a sweep before the due time: nothing */
    CHECK(sweep("60000") == 0);

    /* leaving: the field goes, the user stays online until the sweep */
    freeReplyObject(redisCommand(redis, "HDEL chat:online:{42} %s", GW));
    CHECK(run_tagged_int("p10", &chat_script_presence_down, 5, down) == 1);
    CHECK(cmd_int("HEXISTS %s %s", ON, "42") == 1);

    /* the sweep, past the grace: offline once */
    unit_redis_nap_ms(20);
    CHECK(sweep("1") == 1);
    CHECK(sweep("1") == 0);
    CHECK(cmd_int("XLEN %s", CHANGES, NULL) == 2);
    CHECK(cmd_int("HEXISTS %s %s", ON, "42") == 0);
    CHECK(cmd_int("ZCARD %s", DUE, NULL) == 0);

    /* registered again between the sweep's read and its decision: the
     * decision sees the due time moved and leaves the user online */
    CHECK(run_tagged_int("p10", &chat_script_presence_up, 6, up) == 1);
    freeReplyObject(redisCommand(redis, "ZADD %s 1 42", DUE));
    {
        const char  *decide[7] = { "3", DUE, ON, CHANGES, "1", "42", "0" };

        /* due in the past, no refresh: offline */
        CHECK(run_tagged_int("p10", &chat_script_presence_sweep, 7, decide)
              == 1);
        /* an edge registers (due now + TTL), then a stale decision */
        CHECK(run_tagged_int("p10", &chat_script_presence_up, 6, up) == 1);
        CHECK(run_tagged_int("p10", &chat_script_presence_sweep, 7, decide)
              == 0);
        CHECK(cmd_int("HEXISTS %s %s", ON, "42") == 1);
    }
}


static void
test_poll_sessions(void)
{
    const char  *open[6] = { "2", "chat:online:{42}", POLL, "60000", "300",
                             "1" };
    const char  *read[8] = { "2", "chat:online:{42}", POLL, "60000", "300",
                             NULL, "10", "60000" };
    redisReply  *r;

    freeReplyObject(redisCommand(redis, "FLUSHALL"));

    r = run_tagged("42", &chat_script_poll_open, 6, open);
    CHECK(r != NULL && r->type == REDIS_REPLY_STRING);  /* the first id */

    /* registered like a gateway on the user's slot; the shard's half is
     * the caller's second command */
    CHECK(cmd_int("HEXISTS %s %s", "chat:online:{42}", POLL) == 1);
    CHECK(cmd_int("XLEN %s", POLL, NULL) == 1);
    CHECK(cmd_int("EXISTS %s", CHANGES, NULL) == 0);

    /* a read from the first id: nothing after it yet */
    read[5] = (r != NULL && r->type == REDIS_REPLY_STRING) ? r->str : "0-0";
    {
        redisReply  *g = run_tagged("42", &chat_script_poll_read, 8, read);

        CHECK(g != NULL && g->type == REDIS_REPLY_ARRAY && g->elements == 2
              && strcmp(g->element[0]->str, "ok") == 0);
        freeReplyObject(g);
    }
    freeReplyObject(r);

    /* the cap counts the live session */
    open[2] = "chat:poll:{42}:fedcba9876543210";
    CHECK(run_tagged_int("42", &chat_script_poll_open, 6, open) == 0);
    CHECK(cmd_int("EXISTS %s", open[2], NULL) == 0);
}


/* the streams one typing target answer names, as a csv ("" for none) */
static void
target(const char *member, char *out, size_t size)
{
    char         online[32], blocked[32];
    size_t       i, len;
    redisReply  *r;
    const char  *argv[4] = { "2", online, blocked, "1" };

    snprintf(online, sizeof(online), "chat:online:{%s}", member);
    snprintf(blocked, sizeof(blocked), "chat:blocked:{%s}", member);
    out[0] = '\0';

    r = run_tagged(member, &chat_script_typing_target, 4, argv);
    for (i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY
                && i < r->elements; i++)
    {
        len = strlen(out);
        snprintf(out + len, size - len, "%s%s", len ? "," : "",
                 r->element[i]->str);
    }
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        snprintf(out, size, "error");
    }
    freeReplyObject(r);
}


/* typing goes where the fan-out rule says: fresh gateways and poll
 * sessions, not stale fields, not members who blocked the typist, not
 * the typist; the first step answers the other members */
static void
test_typing(void)
{
    char         fresh[24], stale[24], out[256];
    const char  *argv[5];
    long long    now;
    redisReply  *r;

    freeReplyObject(redisCommand(redis, "FLUSHALL"));
    now = redis_now();
    snprintf(fresh, sizeof(fresh), "%lld", now);
    snprintf(stale, sizeof(stale), "%lld", now - CHAT_ONLINE_STALE_MS - 5000);

    freeReplyObject(redisCommand(redis, "SADD chat:members:{9} 1 2 3 4"));
    freeReplyObject(redisCommand(redis, "HSET chat:online:{2} %s %s", GW,
                                 fresh));
    freeReplyObject(redisCommand(redis, "HSET chat:online:{2} %s %s",
                                 "chat:poll:{2}:0123456789abcdef", fresh));
    freeReplyObject(redisCommand(redis, "HSET chat:online:{3} %s %s",
                                 "chat:gw:{dead}", stale));
    freeReplyObject(redisCommand(redis, "HSET chat:online:{4} %s %s",
                                 "chat:gw:{four}", fresh));
    freeReplyObject(redisCommand(redis, "SADD chat:blocked:{4} 1"));

    argv[0] = "2";
    argv[1] = "chat:members:{9}";
    argv[2] = "chat:typing:{9}:1";
    argv[3] = "1";
    argv[4] = "3000";

    r = run_tagged("9", &chat_script_typing, 5, argv);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    freeReplyObject(r);

    target("2", out, sizeof(out));
    CHECK(strcmp(out, GW ",chat:poll:{2}:0123456789abcdef") == 0
          || strcmp(out, "chat:poll:{2}:0123456789abcdef," GW) == 0);
    target("3", out, sizeof(out));
    CHECK(strcmp(out, "") == 0);                /* stale */
    target("4", out, sizeof(out));
    CHECK(strcmp(out, "") == 0);                /* blocked the typist */

    /* within the interval: rate-limited; a non-member: dropped */
    CHECK(run_tagged_int("9", &chat_script_typing, 5, argv) == -2);
    argv[3] = "77";
    argv[2] = "chat:typing:{9}:77";
    CHECK(run_tagged_int("9", &chat_script_typing, 5, argv) == -1);
}


/* the edge's readings and the catalog cache's lookup, each on one tag */
static void
test_edge_scripts(void)
{
    redisReply  *r;
    const char  *depth[3] = { "1", "chat:cmd:chat:{0}", "workers" };
    const char  *dlq[2] = { "1", "chat:dlq" };
    const char  *look[3] = { "1", "cat:{la}:gen", "cat:{la}:abc:v" };
    char         k[CHAT_KEY_MAX];

    freeReplyObject(redisCommand(redis, "FLUSHALL"));
    freeReplyObject(redisCommand(redis, "XADD chat:cmd:chat:{0} * a 1"));
    freeReplyObject(redisCommand(redis, "XGROUP CREATE chat:cmd:chat:{0} "
                                        "workers 0"));
    freeReplyObject(redisCommand(redis, "XADD chat:cmd:chat:{0} * a 2"));

    /* two unread: length 2, none pending, depth 2 (the lag); the first
     * was added just now, so it has waited well under a minute */
    r = run_tagged("0", &chat_script_stream_depth, 3, depth);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4
          && r->element[0]->integer == 2 && r->element[1]->integer == 0
          && r->element[2]->integer == 2 && r->element[3]->integer >= 0
          && r->element[3]->integer < 60000);
    freeReplyObject(r);

    /* both read (pending now), with the group's read counter set wrong,
     * as Redis 7.0 leaves it after a restart: its lag says 2 though
     * nothing is unread, and the depth is the 2 pending (the lag, capped
     * at the length, made it 4) */
    freeReplyObject(redisCommand(redis, "XREADGROUP GROUP workers w "
                                        "STREAMS chat:cmd:chat:{0} >"));
    freeReplyObject(redisCommand(redis, "XGROUP SETID chat:cmd:chat:{0} "
                                        "workers $ ENTRIESREAD 0"));
    r = run_tagged("0", &chat_script_stream_depth, 3, depth);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4
          && r->element[0]->integer == 2 && r->element[1]->integer == 2
          && r->element[2]->integer == 2 && r->element[3]->integer == 0);
    freeReplyObject(r);

    /* past the entries counted one by one (ARGV[2]), Redis's lag: three
     * unread, two counted, the lag's 3 taken.  A lag set wrong by hand
     * is never taken for more than the stream holds beyond the pending
     * ones, and never when fewer than ARGV[2] are unread. */
    {
        const char  *few[4] = { "1", "chat:cmd:chat:{2}", "workers", "2" };

        freeReplyObject(redisCommand(redis, "XGROUP CREATE chat:cmd:chat:{2}"
                                            " workers 0 MKSTREAM"));
        freeReplyObject(redisCommand(redis, "XADD chat:cmd:chat:{2} 5-1 a 1"));
        freeReplyObject(redisCommand(redis, "XADD chat:cmd:chat:{2} 5-2 a 2"));
        freeReplyObject(redisCommand(redis, "XADD chat:cmd:chat:{2} 5-3 a 3"));
        r = run_tagged("2", &chat_script_stream_depth, 4, few);
        CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4
              && r->element[0]->integer == 3 && r->element[2]->integer == 3);
        freeReplyObject(r);

        /* two unread, the lag says 3 (nothing read): at most the 3 held */
        freeReplyObject(redisCommand(redis, "XGROUP SETID chat:cmd:chat:{2} "
                                            "workers 5-1 ENTRIESREAD 0"));
        r = run_tagged("2", &chat_script_stream_depth, 4, few);
        CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4
              && r->element[2]->integer >= 2 && r->element[2]->integer <= 3);
        freeReplyObject(r);

        /* none unread, the lag says 3: counted, 0 */
        freeReplyObject(redisCommand(redis, "XGROUP SETID chat:cmd:chat:{2} "
                                            "workers $ ENTRIESREAD 0"));
        r = run_tagged("2", &chat_script_stream_depth, 4, few);
        CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4
              && r->element[2]->integer == 0);
        freeReplyObject(r);
    }

    /* nothing unread has waited 0; an entry added at 1 ms past the epoch
     * (an id given by hand) has waited since then, read or not by the
     * time the group gets to it */
    freeReplyObject(redisCommand(redis, "DEL chat:cmd:chat:{1}"));
    freeReplyObject(redisCommand(redis, "XADD chat:cmd:chat:{1} 1-1 a 1"));
    freeReplyObject(redisCommand(redis, "XGROUP CREATE chat:cmd:chat:{1} "
                                        "workers 0"));
    depth[1] = "chat:cmd:chat:{1}";
    r = run_tagged("1", &chat_script_stream_depth, 3, depth);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4
          && r->element[2]->integer == 1
          && r->element[3]->integer > 1700000000000LL);
    freeReplyObject(r);
    depth[1] = "chat:cmd:chat:{0}";

    /* no dead letters yet: {0, 0}, and the one tag-less key alone */
    freeReplyObject(redisCommand(redis, "ACL SETUSER tagged resetkeys "
                                        "~chat:dlq"));
    r = run_on(tagged, &chat_script_dead_letters, 2, dlq);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2
          && r->element[0]->integer == 0);
    freeReplyObject(r);

    /* the list shard's counter and its page, one tag */
    CHECK(chat_key_cache_lists_gen(k, sizeof(k), 10) > 0
          && strcmp(k, "cat:{la}:gen") == 0);
    freeReplyObject(redisCommand(redis, "SET cat:{la}:gen 3"));
    freeReplyObject(redisCommand(redis, "SET cat:{la}:abc:v3 page"));
    r = run_tagged("la", &chat_script_cache_lookup, 3, look);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2
          && strcmp(r->element[0]->str, "3") == 0
          && r->element[1]->type == REDIS_REPLY_STRING
          && strcmp(r->element[1]->str, "page") == 0);
    freeReplyObject(r);
}


/* a logout and an edge's load of the revocations, on {sessions} */
static void
test_session_scripts(void)
{
    redisReply  *r;
    const char  *logout[8] = { "2", CHAT_REVOKED_KEY, CHAT_REVOCATIONS_KEY,
                               "ab:42", "ab", "42", "99999999999999",
                               "1" };
    const char  *load[4] = { "2", CHAT_REVOKED_KEY, CHAT_REVOCATIONS_KEY,
                             "2" };

    freeReplyObject(redisCommand(redis, "FLUSHALL"));
    CHECK(run_tagged_int("sessions", &chat_script_logout, 8, logout) == 1);

    r = run_tagged("sessions", &chat_script_revocations_load, 4, load);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2
          && r->element[1]->type == REDIS_REPLY_ARRAY
          && r->element[1]->elements == 2
          && strcmp(r->element[1]->element[0]->str, "ab:42") == 0);
    freeReplyObject(r);
}


/* the check can fail: what a cluster refuses is refused here */
static void
test_one_slot_refusals(void)
{
    redisReply  *r;
    const char  *two[3] = { "2", "chat:online:{1}", "chat:online:{2}" };
    const char  *one[2] = { "1", "chat:online:{1}" };
    chat_script_t  reach = {
        "reach", "return redis.call('HLEN', 'chat:online:{2}')", ""
    };

    /* declared keys in two slots */
    r = run(&chat_script_online_rule, 3, two);
    CHECK(r != NULL && r->type == REDIS_REPLY_ERROR
          && strncmp(r->str, "CROSSSLOT", 9) == 0);
    freeReplyObject(r);

    /* a multi-key command across slots */
    r = redisCommand(redis, "XREAD STREAMS chat:poll:{1}:a chat:poll:{2}:a "
                            "0 0");
    CHECK(r != NULL && r->type == REDIS_REPLY_ERROR
          && strncmp(r->str, "CROSSSLOT", 9) == 0);
    freeReplyObject(r);

    /* a key reached from inside a script, not handed to it */
    r = run_tagged("1", &reach, 2, one);
    CHECK(r != NULL && r->type == REDIS_REPLY_ERROR
          && (strstr(r->str, "NOPERM") != NULL
              || strstr(r->str, "can't access") != NULL));
    freeReplyObject(r);
}


int
main(void)
{
    int  rc;

    UNIT_RUN(test_keys);
    UNIT_RUN(test_rule_c);

    if (redis_start() != 0) {
        redis_stop();
        fprintf(stderr, "not ok - redis-server (make deps installs it)\n");
        return 1;
    }

    UNIT_RUN(test_scripts_load);
    UNIT_RUN(test_noscript_reload);
    UNIT_RUN(test_rule_lua);
    UNIT_RUN(test_presence);
    UNIT_RUN(test_poll_sessions);
    UNIT_RUN(test_typing);
    UNIT_RUN(test_edge_scripts);
    UNIT_RUN(test_session_scripts);
    UNIT_RUN(test_one_slot_refusals);

    rc = UNIT_SUMMARY();
    redis_stop();

    return rc;
}
