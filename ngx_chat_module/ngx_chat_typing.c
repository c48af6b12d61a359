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
 *   HGETALL chat:online:{member}              gateways refreshed within
 *                                             chat_presence_ttl
 *   XADD <gateway stream> MAXLEN ~ 10000 * ev <typing event> uids <csv>
 *                                             one per gateway, as workers
 *                                             fan out (chat_protocol.h)
 *
 * so the gateways deliver it like any event.  The event is
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
 * In a Redis Cluster the script would touch keys of several slots; there
 * the same steps would run from here as two pipelined round trips.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_protocol.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"


#define NGX_CHAT_STR(x)          #x
#define NGX_CHAT_XSTR(x)         NGX_CHAT_STR(x)
#define NGX_CHAT_TYPING_GW_TTL   NGX_CHAT_XSTR(CHAT_GW_STREAM_TTL_SEC)


/* KEYS: members set, rate key; ARGV: uid, interval ms, fresh ms, event */
static const char  ngx_chat_typing_lua[] =
    "redis.replicate_commands() "
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end "
    "if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then "
    "  return -2 "
    "end "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local fresh = now - tonumber(ARGV[3]) "
    "local routes, order = {}, {} "
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  if m ~= ARGV[1] "
    "     and redis.call('SISMEMBER', '" CHAT_BLOCKED_PREFIX "' .. m .. '}', "
    "                    ARGV[1]) == 0 "
    "     and redis.call('SISMEMBER', '" CHAT_BLOCKED_PREFIX "' .. ARGV[1] "
    "                    .. '}', m) == 0 then "
    "    local h = redis.call('HGETALL', '" CHAT_ONLINE_PREFIX "' .. m .. '}') "
    "    for i = 1, #h, 2 do "
    "      if string.sub(h[i], 1, 9) == '" CHAT_GW_STREAM_PREFIX "' "
    "         and (tonumber(h[i + 1]) or 0) >= fresh then "
    "        if routes[h[i]] then "
    "          routes[h[i]] = routes[h[i]] .. ',' .. m "
    "        else "
    "          routes[h[i]] = m "
    "          order[#order + 1] = h[i] "
    "        end "
    "      end "
    "    end "
    "  end "
    "end "
    "for _, gw in ipairs(order) do "
    "  redis.call('XADD', gw, 'MAXLEN', '~', '" CHAT_GW_STREAM_MAXLEN "', "
    "             '*', '" CHAT_F_EVENT "', ARGV[4], "
    "             '" CHAT_F_UIDS "', routes[gw]) "
    "  redis.call('EXPIRE', gw, " NGX_CHAT_TYPING_GW_TTL ") "
    "end "
    "return #order";


static void ngx_chat_typing_done(redisAsyncContext *ac, void *reply,
    void *privdata);


void
ngx_chat_typing(int64_t uid, int64_t conversation_id, ngx_log_t *log)
{
    u_char                 members[64], rate[96], id[NGX_INT64_LEN];
    u_char                 interval[NGX_INT64_LEN], fresh[NGX_INT64_LEN];
    u_char                 event[160];
    u_char                *mlast, *rlast, *ilast, *nlast, *flast, *elast;
    const char            *argv[9];
    size_t                 argvlen[9];
    ngx_chat_redis_t      *rc;
    ngx_chat_main_conf_t  *cmcf;

    rc = ngx_chat_bus_redis();
    cmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_chat_module);

    if (rc == NULL || cmcf == NULL || !ngx_chat_redis_usable(rc)) {
        /* ephemeral: a typing indicator lost to an outage is no loss */
        return;
    }

    mlast = ngx_sprintf(members, "chat:members:{%L}", conversation_id);
    rlast = ngx_sprintf(rate, "chat:typing:{%L}:%L", conversation_id, uid);
    ilast = ngx_sprintf(id, "%L", uid);
    nlast = ngx_sprintf(interval, "%M", cmcf->typing_interval);
    flast = ngx_sprintf(fresh, "%M", cmcf->presence_ttl);
    elast = ngx_sprintf(event,
                        "{\"type\":\"typing\",\"conversation_id\":%L,"
                        "\"user_id\":%L,\"expires_in_ms\":%M}",
                        conversation_id, uid, 3 * cmcf->typing_interval);

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_chat_typing_lua;
    argvlen[1] = sizeof(ngx_chat_typing_lua) - 1;
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = (const char *) members;
    argvlen[3] = mlast - members;
    argv[4] = (const char *) rate;
    argvlen[4] = rlast - rate;
    argv[5] = (const char *) id;
    argvlen[5] = ilast - id;
    argv[6] = (const char *) interval;
    argvlen[6] = nlast - interval;
    argv[7] = (const char *) fresh;
    argvlen[7] = flast - fresh;
    argv[8] = (const char *) event;
    argvlen[8] = elast - event;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "chat typing: user %L in conversation %L", uid,
                   conversation_id);

    (void) ngx_chat_redis_command(rc, ngx_chat_typing_done, NULL, 9, argv,
                                  argvlen);
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
