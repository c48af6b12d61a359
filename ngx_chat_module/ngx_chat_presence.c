/*
 * ngx_chat_presence.c: this worker's users in Redis' presence registry,
 * and the online transitions they cause.
 *
 * The registry (ngx_chat_registry.c) calls ngx_chat_presence_announce at
 * three moments: a user's first local client (online), every refresh
 * (online again, every chat_presence_ttl / 3) and the user's last local
 * client leaving (offline).  Each is one Lua script, atomic in Redis:
 *
 *   online:  HSET chat:online:{uid} <our reply stream> <now ms>
 *            PEXPIRE chat:online:{uid} <ttl>
 *            ZADD chat:presence:due GT <now + ttl> uid
 *            if uid is not in chat:presence:on: XADD chat:presence:changes
 *                uid <uid> status online ts <now>      (the transition)
 *            HSET chat:presence:on uid <now>           (last seen)
 *   offline: HDEL chat:online:{uid} <our reply stream>
 *            if uid is in chat:presence:on:
 *                HSET chat:presence:on uid <now>
 *                ZADD chat:presence:due <now + grace> uid
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
 * chat:presence:changes into presence events and users.last_seen), or keep
 * the local map of clients (ngx_chat_registry.c).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_protocol.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


#define NGX_CHAT_PRESENCE_DUE      CHAT_PRESENCE_DUE_KEY
#define NGX_CHAT_PRESENCE_ON       CHAT_PRESENCE_ON_KEY
#define NGX_CHAT_PRESENCE_CHANGES  CHAT_PRESENCE_CHANGES_KEY


/* KEYS: online hash, due zset, on hash, changes stream;
 * ARGV: gateway stream, uid, ttl ms */
static const char  ngx_chat_presence_up_lua[] =
    "redis.replicate_commands() "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local nows = string.format('%d', now) "
    "redis.call('HSET', KEYS[1], ARGV[1], nows) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[3]) "
    "redis.call('ZADD', KEYS[2], 'GT', "
    "           string.format('%d', now + tonumber(ARGV[3])), ARGV[2]) "
    "if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then "
    "  redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', "
    "             'uid', ARGV[2], 'status', 'online', 'ts', nows) "
    "end "
    "redis.call('HSET', KEYS[3], ARGV[2], nows) "
    "return 1";

/* KEYS: as above; ARGV: gateway stream, uid, grace ms */
static const char  ngx_chat_presence_down_lua[] =
    "redis.replicate_commands() "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('HDEL', KEYS[1], ARGV[1]) "
    "if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then "
    "  redis.call('HSET', KEYS[3], ARGV[2], string.format('%d', now)) "
    "  redis.call('ZADD', KEYS[2], "
    "             string.format('%d', now + tonumber(ARGV[3])), ARGV[2]) "
    "end "
    "return 1";


static ngx_chat_main_conf_t  *ngx_chat_presence_conf;
static ngx_log_t             *ngx_chat_presence_log;


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
ngx_chat_presence_announce(int64_t uid, ngx_uint_t online)
{
    u_char             key[64], id[NGX_INT64_LEN], ms[NGX_INT64_LEN];
    u_char            *klast, *ilast, *mlast;
    ngx_str_t         *gw;
    const char        *argv[10];
    size_t             argvlen[10];
    ngx_chat_redis_t  *rc;

    rc = ngx_chat_bus_redis();
    gw = ngx_chat_bus_reply_stream();

    if (rc == NULL || gw == NULL || ngx_chat_presence_conf == NULL
        || !ngx_chat_redis_usable(rc))
    {
        /* the reconnect re-announces everyone */
        return;
    }

    klast = ngx_snprintf(key, sizeof(key), CHAT_ONLINE_PREFIX "%L}", uid);
    ilast = ngx_sprintf(id, "%L", uid);
    mlast = ngx_sprintf(ms, "%M", online ? ngx_chat_presence_conf->presence_ttl
                                         : ngx_chat_presence_conf
                                               ->presence_grace);

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = online ? ngx_chat_presence_up_lua : ngx_chat_presence_down_lua;
    argvlen[1] = online ? sizeof(ngx_chat_presence_up_lua) - 1
                        : sizeof(ngx_chat_presence_down_lua) - 1;
    argv[2] = "4";
    argvlen[2] = 1;
    argv[3] = (const char *) key;
    argvlen[3] = klast - key;
    argv[4] = NGX_CHAT_PRESENCE_DUE;
    argvlen[4] = sizeof(NGX_CHAT_PRESENCE_DUE) - 1;
    argv[5] = NGX_CHAT_PRESENCE_ON;
    argvlen[5] = sizeof(NGX_CHAT_PRESENCE_ON) - 1;
    argv[6] = NGX_CHAT_PRESENCE_CHANGES;
    argvlen[6] = sizeof(NGX_CHAT_PRESENCE_CHANGES) - 1;
    argv[7] = (const char *) gw->data;
    argvlen[7] = gw->len;
    argv[8] = (const char *) id;
    argvlen[8] = ilast - id;
    argv[9] = (const char *) ms;
    argvlen[9] = mlast - ms;

    (void) ngx_chat_redis_command(rc, ngx_chat_presence_done, NULL, 10, argv,
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
