/*
 * ngx_chat_presence.c: this worker's users in Redis' presence registry,
 * and the online transitions they cause.
 *
 * The registry (ngx_chat_registry.c) calls ngx_chat_presence_announce at
 * three moments: a user's first local client (online), every refresh
 * (online again, every chat_presence_ttl / 3) and the user's last local
 * client leaving (offline).  Each is one Lua script, atomic in Redis
 * (protocol/chat_scripts.c, shared with the long-poll sessions, which
 * register the same way), run by SHA.  Each is two commands, pipelined:
 * one on the user's slot, one on the user's presence shard's
 * (chat:presence:{p<n>}:*, n = chat_presence_shard(uid)); a Redis
 * Cluster keeps them apart, and chat_scripts.c says why the split keeps
 * the sweeper right:
 *
 *   online:  HSET chat:online:{uid} <our reply stream> <now ms>
 *            PEXPIRE chat:online:{uid} <ttl>
 *          then, on the shard:
 *            ZADD due GT <now + ttl> uid
 *            if uid is not in on: XADD changes
 *                uid <uid> status online ts <now>      (the transition)
 *            HSET on uid <now>                         (last seen)
 *   offline: HDEL chat:online:{uid} <our reply stream>
 *          then, on the shard:
 *            if uid is in on:
 *                HSET on uid <now>
 *                ZADD due <now + grace> uid
 *
 * So "online" is published at once, and only on a transition (a refresh
 * publishes nothing).  "Offline" is never published here: the backend's
 * presence sweeper (backend/presence/presence.c) looks at every user whose due
 * time has passed, and declares offline only those with no gateway field
 * refreshed within the TTL.  That one rule covers both a clean leave
 * (checked after chat_presence_grace, so a reconnect within the grace is
 * no event at all: flapping is coalesced) and a crashed nginx worker (its
 * fields stop being refreshed, the due time passes, the user goes offline
 * within chat_presence_ttl plus the sweeper's half-second tick), without
 * anything having to run in the process that died.
 *
 * Times are Redis' own clock (TIME), so the edge, the sweeper and the
 * due scores agree whatever the hosts' clocks say.
 *
 * What it does not do: tell anyone (the backend's presence process turns
 * the shards' changes streams into presence events and users.last_seen), or keep
 * the local map of clients (ngx_chat_registry.c).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_protocol.h"
#include "chat_scripts.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


static ngx_chat_main_conf_t  *ngx_chat_presence_conf;
static ngx_log_t             *ngx_chat_presence_log;


static void ngx_chat_presence_online(ngx_chat_redis_t *rc, int64_t uid,
    ngx_str_t *gw);
static void ngx_chat_presence_leave(ngx_chat_redis_t *rc, int64_t uid,
    ngx_str_t *gw);
static void ngx_chat_presence_done(redisAsyncContext *ac, void *reply,
    void *privdata);


ngx_int_t
ngx_chat_presence_init_process(ngx_cycle_t *cycle, ngx_chat_main_conf_t *cmcf)
{
    ngx_chat_presence_conf = cmcf;
    ngx_chat_presence_log = cycle->log;

    return NGX_OK;
}


/* A third of the TTL: two refreshes may be lost before a user lapses. */
ngx_msec_t
ngx_chat_presence_refresh_interval(void)
{
    return ngx_chat_presence_conf ? ngx_chat_presence_conf->presence_ttl / 3
                                  : CHAT_ONLINE_REFRESH_MS;
}


void
ngx_chat_presence_announce(ngx_chat_gateway_t *gw, int64_t uid,
    ngx_uint_t online)
{
    ngx_chat_redis_t  *rc;

    /* in the user's application's Redis, under the gateway's stream */
    rc = ngx_chat_bus_redis(gw);

    if (rc == NULL || ngx_chat_presence_conf == NULL
        || !ngx_chat_redis_usable(rc))
    {
        /* the reconnect re-announces everyone */
        return;
    }

    /* the user's half first, then the shard's: pipelined on the one
     * connection, no wait between them (chat_scripts.c: either order
     * keeps the sweeper right, so a cluster may run them apart) */
    if (online) {
        ngx_chat_presence_online(rc, uid, &gw->reply_stream);

    } else {
        ngx_chat_presence_leave(rc, uid, &gw->reply_stream);
    }

    ngx_chat_presence_shard(rc, uid, online,
                            online ? ngx_chat_presence_conf->presence_ttl
                                   : ngx_chat_presence_conf->presence_grace);
}


/* online up on chat:online:{uid}: field gw refreshed now */
static void
ngx_chat_presence_online(ngx_chat_redis_t *rc, int64_t uid, ngx_str_t *gw)
{
    int          klen;
    char         key[CHAT_KEY_MAX];
    u_char       ms[NGX_INT64_LEN];
    const char  *argv[4];
    size_t       argvlen[4];

    klen = chat_key_online(key, sizeof(key), uid);

    argv[0] = "1";
    argvlen[0] = 1;
    argv[1] = key;
    argvlen[1] = klen;
    argv[2] = (const char *) gw->data;
    argvlen[2] = gw->len;
    argv[3] = (const char *) ms;
    argvlen[3] = ngx_sprintf(ms, "%M", ngx_chat_presence_conf->presence_ttl)
                 - ms;

    (void) ngx_chat_redis_script(rc, &chat_script_online_up,
                                 ngx_chat_presence_done, NULL, 4, argv,
                                 argvlen);
}


/* HDEL chat:online:{uid} gw: this worker no longer serves the user */
static void
ngx_chat_presence_leave(ngx_chat_redis_t *rc, int64_t uid, ngx_str_t *gw)
{
    int          klen;
    char         key[CHAT_KEY_MAX];
    const char  *argv[3];
    size_t       argvlen[3];

    klen = chat_key_online(key, sizeof(key), uid);

    argv[0] = "HDEL";
    argvlen[0] = 4;
    argv[1] = key;
    argvlen[1] = klen;
    argv[2] = (const char *) gw->data;
    argvlen[2] = gw->len;

    (void) ngx_chat_redis_command(rc, ngx_chat_presence_done, NULL, 3, argv,
                                  argvlen);
}


void
ngx_chat_presence_shard(ngx_chat_redis_t *rc, int64_t uid, ngx_uint_t online,
    ngx_msec_t ms)
{
    char         due[CHAT_KEY_MAX], on[CHAT_KEY_MAX], changes[CHAT_KEY_MAX];
    u_char       id[NGX_INT64_LEN], msb[NGX_INT64_LEN];
    unsigned     shard;
    const char  *argv[6];
    size_t       argvlen[6];

    shard = chat_presence_shard(uid);

    argv[0] = online ? "3" : "2";
    argvlen[0] = 1;
    argv[1] = due;
    argvlen[1] = chat_key_presence(due, sizeof(due), shard, CHAT_PRESENCE_DUE);
    argv[2] = on;
    argvlen[2] = chat_key_presence(on, sizeof(on), shard, CHAT_PRESENCE_ON);
    argv[3] = changes;
    argvlen[3] = chat_key_presence(changes, sizeof(changes), shard,
                                   CHAT_PRESENCE_CHANGES);
    argv[4] = (const char *) id;
    argvlen[4] = ngx_sprintf(id, "%L", uid) - id;
    argv[5] = (const char *) msb;
    argvlen[5] = ngx_sprintf(msb, "%M", ms) - msb;

    if (online) {
        (void) ngx_chat_redis_script(rc, &chat_script_presence_up,
                                     ngx_chat_presence_done, NULL, 6, argv,
                                     argvlen);
        return;
    }

    /* down declares due and on only: its ARGV follow them */
    argv[3] = argv[4];
    argvlen[3] = argvlen[4];
    argv[4] = argv[5];
    argvlen[4] = argvlen[5];

    (void) ngx_chat_redis_script(rc, &chat_script_presence_down,
                                 ngx_chat_presence_done, NULL, 5, argv,
                                 argvlen);
}


static void
ngx_chat_presence_done(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply  *rr = reply;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_presence_log, 0,
                      "chat: presence script failed: %*s",
                      (size_t) rr->len, rr->str);
    }
}
