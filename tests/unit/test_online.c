/*
 * test_online.c: the shared wire contract's Redis side (protocol/):
 * the key builders (chat_keys.h), the fan-out rule in C
 * (chat_online.c) and in Lua (chat_scripts.c) on one table of cases,
 * and the shared scripts themselves, on a real Redis: a redis-server of
 * its own on a Unix socket in a temporary directory, started here and
 * stopped at the end (no stack needed; no redis-server is a failure, not
 * a skip).
 */

/* fork(2), kill(2), mkdtemp(3), nanosleep(2) under -std=c11 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE  200809L
#endif

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "chat_keys.h"
#include "chat_online.h"
#include "chat_scripts.h"
#include "unit.h"


static char           dir[] = "/tmp/test_online.XXXXXX";
static char           sock[128];
static pid_t          redis_pid;
static redisContext  *redis;


/* ------------------------------------------------------------------------
 * A Redis of our own
 * --------------------------------------------------------------------- */

static void
nap_ms(long ms)
{
    struct timespec  ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}


static int
redis_start(void)
{
    int          i;
    redisReply  *r;

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    snprintf(sock, sizeof(sock), "%s/redis.sock", dir);

    redis_pid = fork();
    if (redis_pid == 0) {
        execlp("redis-server", "redis-server", "--port", "0",
               "--unixsocket", sock, "--save", "", "--appendonly", "no",
               "--dir", dir, "--logfile", "redis.log", (char *) NULL);
        perror("redis-server");
        _exit(127);
    }
    if (redis_pid < 0) {
        return -1;
    }

    for (i = 0; i < 100; i++) {                 /* up to 10 s */
        redis = redisConnectUnix(sock);
        if (redis != NULL && redis->err == 0) {
            r = redisCommand(redis, "PING");
            if (r != NULL) {
                freeReplyObject(r);
                return 0;
            }
        }
        if (redis != NULL) {
            redisFree(redis);
            redis = NULL;
        }
        nap_ms(100);
    }

    fprintf(stderr, "test_online: redis-server did not come up\n");
    return -1;
}


static void
redis_stop(void)
{
    char  path[256];

    if (redis != NULL) {
        redisFree(redis);
    }
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    snprintf(path, sizeof(path), "%s/dump.rdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/redis.log", dir);
    unlink(path);
    unlink(sock);
    rmdir(dir);
}


/* EVALSHA of a shared script with NUL-terminated args, loading it on
 * NOSCRIPT as the edge and the backend do */
static redisReply *
run(chat_script_t *s, int argc, const char **argv)
{
    int          i;
    const char  *args[32];
    redisReply  *r;

    args[0] = "EVALSHA";
    args[1] = chat_script_sha(s);
    for (i = 0; i < argc; i++) {
        args[i + 2] = argv[i];
    }

    r = redisCommandArgv(redis, argc + 2, args, NULL);
    if (r != NULL && r->type == REDIS_REPLY_ERROR
        && chat_script_noscript(r->str, r->len))
    {
        freeReplyObject(r);
        freeReplyObject(redisCommand(redis, "SCRIPT LOAD %s", s->text));
        r = redisCommandArgv(redis, argc + 2, args, NULL);
    }

    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "  %s script: %s\n", s->name, r->str);
    }

    return r;
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
        &chat_script_presence_up, &chat_script_presence_down,
        &chat_script_poll_open, &chat_script_poll_read, &chat_script_typing,
        &chat_script_presence_sweep, &chat_script_online_rule
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


static const char  *presence_keys[] = {
    "4", "chat:online:{42}", CHAT_PRESENCE_DUE_KEY, CHAT_PRESENCE_ON_KEY,
    CHAT_PRESENCE_CHANGES_KEY
};


static void
test_presence(void)
{
    const char  *up[8], *down[8], *sweep[6];

    freeReplyObject(redisCommand(redis, "FLUSHALL"));
    memcpy(up, presence_keys, sizeof(presence_keys));
    up[5] = GW;
    up[6] = "42";
    up[7] = "60000";

    /* the first registration is a transition, the refresh is not */
    CHECK(run_int(&chat_script_presence_up, 8, up) == 1);
    CHECK(run_int(&chat_script_presence_up, 8, up) == 1);
    CHECK(cmd_int("XLEN %s", CHAT_PRESENCE_CHANGES_KEY, NULL) == 1);
    CHECK(cmd_int("HEXISTS %s %s", "chat:online:{42}", GW) == 1);
    CHECK(cmd_int("HEXISTS %s %s", CHAT_PRESENCE_ON_KEY, "42") == 1);
    CHECK(cmd_int("ZCARD %s", CHAT_PRESENCE_DUE_KEY, NULL) == 1);

    /* leaving: the field goes, the user stays online until the sweep */
    memcpy(down, presence_keys, sizeof(presence_keys));
    down[5] = GW;
    down[6] = "42";
    down[7] = "1";
    CHECK(run_int(&chat_script_presence_down, 8, down) == 1);
    CHECK(cmd_int("HEXISTS %s %s", "chat:online:{42}", GW) == 0);
    CHECK(cmd_int("HEXISTS %s %s", CHAT_PRESENCE_ON_KEY, "42") == 1);

    /* the sweep, past the grace: offline once */
    nap_ms(20);
    sweep[0] = "3";
    sweep[1] = CHAT_PRESENCE_DUE_KEY;
    sweep[2] = CHAT_PRESENCE_ON_KEY;
    sweep[3] = CHAT_PRESENCE_CHANGES_KEY;
    sweep[4] = "1";
    sweep[5] = "1000";
    CHECK(run_int(&chat_script_presence_sweep, 6, sweep) == 1);
    CHECK(run_int(&chat_script_presence_sweep, 6, sweep) == 0);
    CHECK(cmd_int("XLEN %s", CHAT_PRESENCE_CHANGES_KEY, NULL) == 2);
    CHECK(cmd_int("HEXISTS %s %s", CHAT_PRESENCE_ON_KEY, "42") == 0);
}


static void
test_poll_sessions(void)
{
    const char  *open[10];
    redisReply  *r;

    freeReplyObject(redisCommand(redis, "FLUSHALL"));
    memcpy(open, presence_keys, sizeof(presence_keys));
    open[0] = "5";                              /* the stream, fifth */
    open[5] = POLL;
    open[6] = "42";
    open[7] = "60000";
    open[8] = "300";
    open[9] = "1";                              /* one session at most */

    r = run(&chat_script_poll_open, 10, open);
    CHECK(r != NULL && r->type == REDIS_REPLY_STRING);  /* the first id */
    freeReplyObject(r);

    /* registered like a gateway: a field, a transition */
    CHECK(cmd_int("HEXISTS %s %s", "chat:online:{42}", POLL) == 1);
    CHECK(cmd_int("XLEN %s", CHAT_PRESENCE_CHANGES_KEY, NULL) == 1);
    CHECK(cmd_int("XLEN %s", POLL, NULL) == 1);

    /* the cap counts the live session */
    open[5] = "chat:poll:{42}:fedcba9876543210";
    CHECK(run_int(&chat_script_poll_open, 10, open) == 0);
    CHECK(cmd_int("EXISTS %s", open[5], NULL) == 0);
}


/* typing goes where the fan-out rule says: fresh gateways and poll
 * sessions, not stale fields, not blocked members, not the typist */
static void
test_typing(void)
{
    char         fresh[24], stale[24];
    const char  *argv[7];
    long long    now;

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

    argv[0] = "3";
    argv[1] = "chat:members:{9}";
    argv[2] = "chat:typing:{9}:1";
    argv[3] = "chat:blocked:{1}";
    argv[4] = "1";
    argv[5] = "3000";
    argv[6] = "{\"type\":\"typing\"}";

    CHECK(run_int(&chat_script_typing, 7, argv) == 2);
    CHECK(cmd_int("XLEN %s", GW, NULL) == 1);
    CHECK(cmd_int("XLEN %s", "chat:poll:{2}:0123456789abcdef", NULL) == 1);
    CHECK(cmd_int("EXISTS %s", "chat:gw:{dead}", NULL) == 0);
    CHECK(cmd_int("EXISTS %s", "chat:gw:{four}", NULL) == 0);

    /* within the interval: rate-limited; a non-member: dropped */
    CHECK(run_int(&chat_script_typing, 7, argv) == -2);
    argv[4] = "77";
    argv[2] = "chat:typing:{9}:77";
    CHECK(run_int(&chat_script_typing, 7, argv) == -1);

    /* the typist blocked member 2: nobody left to tell */
    freeReplyObject(redisCommand(redis, "SADD chat:blocked:{1} 2"));
    argv[4] = "1";
    argv[2] = "chat:typing:{9}:1";
    freeReplyObject(redisCommand(redis, "DEL chat:typing:{9}:1"));
    CHECK(run_int(&chat_script_typing, 7, argv) == 0);
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

    rc = UNIT_SUMMARY();
    redis_stop();

    return rc;
}
