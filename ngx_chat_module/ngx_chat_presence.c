/*
 * ngx_chat_presence.c: this worker's users in Redis' presence registry,
 * and the online transitions they cause.
 *
 * The registry (ngx_chat_registry.c) calls ngx_chat_presence_announce at
 * three moments: a user's first local client (online), every refresh
 * (online again, every chat_presence_ttl / 3) and the user's last local
 * client leaving (offline).  Each is one Lua script, atomic in Redis
 * (protocol/chat_scripts.c, shared with the long-poll sessions, which
 * register the same way), run by SHA:
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
#include "chat_scripts.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


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
ngx_chat_presence_announce(ngx_chat_gateway_t *gw, int64_t uid,
    ngx_uint_t online)
{
    int                klen;
    char               key[CHAT_KEY_MAX];
    u_char             id[NGX_INT64_LEN], ms[NGX_INT64_LEN];
    u_char            *ilast, *mlast;
    const char        *argv[8];
    size_t             argvlen[8];
    ngx_chat_redis_t  *rc;

    /* in the user's application's Redis, under the gateway's stream */
    rc = ngx_chat_bus_redis(gw);

    if (rc == NULL || ngx_chat_presence_conf == NULL
        || !ngx_chat_redis_usable(rc))
    {
        /* the reconnect re-announces everyone */
        return;
    }

    klen = chat_key_online(key, sizeof(key), uid);
    ilast = ngx_sprintf(id, "%L", uid);
    mlast = ngx_sprintf(ms, "%M", online ? ngx_chat_presence_conf->presence_ttl
                                         : ngx_chat_presence_conf
                                               ->presence_grace);

    argv[0] = "4";
    argvlen[0] = 1;
    argv[1] = key;
    argvlen[1] = klen;
    argv[2] = CHAT_PRESENCE_DUE_KEY;
    argvlen[2] = sizeof(CHAT_PRESENCE_DUE_KEY) - 1;
    argv[3] = CHAT_PRESENCE_ON_KEY;
    argvlen[3] = sizeof(CHAT_PRESENCE_ON_KEY) - 1;
    argv[4] = CHAT_PRESENCE_CHANGES_KEY;
    argvlen[4] = sizeof(CHAT_PRESENCE_CHANGES_KEY) - 1;
    argv[5] = (const char *) gw->reply_stream.data;
    argvlen[5] = gw->reply_stream.len;
    argv[6] = (const char *) id;
    argvlen[6] = ilast - id;
    argv[7] = (const char *) ms;
    argvlen[7] = mlast - ms;

    (void) ngx_chat_redis_script(rc, online ? &chat_script_presence_up
                                            : &chat_script_presence_down,
                                 ngx_chat_presence_done, NULL, 8, argv,
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
