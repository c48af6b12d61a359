/*
 * ngx_chat_typing.c: typing indicators, ephemeral from end to end.
 *
 * A `typing {conversation_id}` frame never reaches PostgreSQL or the
 * durable command streams.  It is one Lua script in Redis, atomic:
 *
 *   SISMEMBER chat:members:{cid} uid          not a member: dropped
 *   SET chat:typing:{cid}:<uid> 1 NX PX <chat_typing_interval>
 *                                             already set: rate-limited,
 *                                             dropped
 *   SMEMBERS chat:members:{cid}, and for every other member
 *   SISMEMBER chat:blocked:{member} uid, and
 *   SISMEMBER chat:blocked:{uid} member       either blocked the other:
 *                                             skipped
 *   HGETALL chat:online:{member}              the fields the fan-out
 *                                             rule counts (gateways and
 *                                             poll sessions refreshed
 *                                             within 60 s, chat_online.h),
 *                                             as the workers' fan-out
 *   XADD <stream> MAXLEN ~ 10000 * ev <typing event> uids <csv>
 *                                             one per stream, as workers
 *                                             fan out (chat_protocol.h)
 *
 * so the gateways and long polls deliver it like any event.  The script
 * is chat_script_typing (protocol/chat_scripts.c), run by SHA.  The event is
 * {"type":"typing","conversation_id","user_id","expires_in_ms"}: a client
 * shows the indicator for expires_in_ms (three intervals) unless another
 * one renews it; nothing has to say "stopped typing".  A user typing
 * steadily sends at most one delivery per interval per conversation,
 * whatever their clients send.
 *
 * chat:members:{cid} is a cache of conversation_members (those who
 * accepted the conversation: a request's recipient neither sends nor
 * receives typing until they answer) written by the
 * backend after each membership commit and rebuilt by its presence
 * process when Redis lost it (backend/presence/membership_cache.c).  Typing is
 * fire and forget: the client gets no answer, and a frame for a
 * conversation the user is not in is dropped, which tells them nothing.
 *
 * The members' blocked sets and online hashes are read from inside the
 * script, so it touches keys it cannot declare: in a Redis Cluster the
 * same steps would run from here as two pipelined round trips
 * (protocol/README.md, cluster blockers).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_protocol.h"
#include "chat_scripts.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


static void ngx_chat_typing_done(redisAsyncContext *ac, void *reply,
    void *privdata);


void
ngx_chat_typing(ngx_chat_gateway_t *gw, int64_t uid, int64_t conversation_id,
    ngx_log_t *log)
{
    int                    mlen, rlen, blen;
    char                   members[CHAT_KEY_MAX], rate[CHAT_KEY_MAX];
    char                   blocked[CHAT_KEY_MAX];
    u_char                 id[NGX_INT64_LEN], interval[NGX_INT64_LEN];
    u_char                 event[160];
    u_char                *ilast, *nlast, *elast;
    const char            *argv[7];
    size_t                 argvlen[7];
    ngx_chat_redis_t      *rc;
    ngx_chat_main_conf_t  *cmcf;

    rc = ngx_chat_bus_redis(gw);
    cmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_chat_module);

    if (rc == NULL || cmcf == NULL || !ngx_chat_redis_usable(rc)) {
        /* ephemeral: a typing indicator lost to an outage is no loss */
        return;
    }

    mlen = chat_key_members(members, sizeof(members), conversation_id);
    rlen = chat_key_typing(rate, sizeof(rate), conversation_id, uid);
    blen = chat_key_blocked(blocked, sizeof(blocked), uid);
    ilast = ngx_sprintf(id, "%L", uid);
    nlast = ngx_sprintf(interval, "%M", cmcf->typing_interval);
    elast = ngx_sprintf(event,
                        "{\"type\":\"typing\",\"conversation_id\":%L,"
                        "\"user_id\":%L,\"expires_in_ms\":%M}",
                        conversation_id, uid, 3 * cmcf->typing_interval);

    argv[0] = "3";
    argvlen[0] = 1;
    argv[1] = members;
    argvlen[1] = mlen;
    argv[2] = rate;
    argvlen[2] = rlen;
    argv[3] = blocked;
    argvlen[3] = blen;
    argv[4] = (const char *) id;
    argvlen[4] = ilast - id;
    argv[5] = (const char *) interval;
    argvlen[5] = nlast - interval;
    argv[6] = (const char *) event;
    argvlen[6] = elast - event;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "chat typing: user %L in conversation %L", uid,
                   conversation_id);

    (void) ngx_chat_redis_script(rc, &chat_script_typing, ngx_chat_typing_done,
                                 NULL, 7, argv, argvlen);
}


static void
ngx_chat_typing_done(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply  *rr = reply;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: typing script failed: %*s",
                      (size_t) rr->len, rr->str);
    }
}
