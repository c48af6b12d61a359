/*
 * chat_scripts.c: every Lua script the edge and the backend run in
 * Redis, written once (chat_scripts.h lists them with their KEYS and
 * ARGV).  Key and field names come from chat_keys.h, pasted into the
 * text, so a script cannot spell a key differently from the C code.
 *
 * The pieces several scripts share are Lua fragments defined once below
 * and pasted at the top of each script that needs them: Redis' clock
 * (CHAT_LUA_NOW), the presence registration (CHAT_LUA_REGISTER: the
 * WebSocket's gateway and the long-poll session register the same way)
 * and the fan-out rule (CHAT_LUA_ONLINE, the Lua form of chat_online.c).
 *
 * Times are Redis' own clock (TIME), so the edges, the sweeper and the
 * due scores agree whatever the hosts' clocks say.  Scripts that write
 * after TIME start with redis.replicate_commands() (needed before Redis
 * 5, a no-op since), so their effects are replicated, not the script.
 */

#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "chat_keys.h"
#include "chat_online.h"
#include "chat_scripts.h"


#define CHAT_STR(x)   #x
#define CHAT_XSTR(x)  CHAT_STR(x)


/* now (ms) and nows (its decimal text) from Redis' clock */
#define CHAT_LUA_NOW                                                        \
    "local t = redis.call('TIME') "                                         \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "\
    "local nows = string.format('%d', now) "

/*
 * register(field, uid, ttl): the stream field serves uid, refreshed now;
 * the hash lives ttl ms; the user's due time for the sweeper moves to at
 * least now + ttl; and an "online" transition is written when the user
 * was not online (a refresh publishes nothing).
 * KEYS[1..4]: chat:online:{uid}, chat:presence:due, chat:presence:on,
 * chat:presence:changes.
 */
#define CHAT_LUA_REGISTER                                                   \
    "local function register(field, uid, ttl) "                             \
    "  redis.call('HSET', KEYS[1], field, nows) "                           \
    "  redis.call('PEXPIRE', KEYS[1], ttl) "                                \
    "  redis.call('ZADD', KEYS[2], 'GT', "                                  \
    "             string.format('%d', now + tonumber(ttl)), uid) "          \
    "  if redis.call('HEXISTS', KEYS[3], uid) == 0 then "                   \
    "    redis.call('XADD', KEYS[4], 'MAXLEN', '~', '"                      \
                   CHAT_PRESENCE_CHANGES_MAXLEN "', '*', "                  \
    "               '" CHAT_F_PRESENCE_UID "', uid, "                       \
    "               '" CHAT_F_PRESENCE_STATUS "', 'online', "               \
    "               '" CHAT_F_PRESENCE_TS "', nows) "                       \
    "  end "                                                                \
    "  redis.call('HSET', KEYS[3], uid, nows) "                             \
    "end "

/*
 * The fan-out rule (chat_online.h): routable(name) and
 * fresh(name, value, now), as chat_online.c decides them.
 */
#define CHAT_LUA_ONLINE                                                     \
    "local function routable(name) "                                        \
    "  local g = '" CHAT_GW_STREAM_PREFIX "' "                              \
    "  if string.sub(name, 1, #g) == g then "                               \
    "    return #name > #g + 1 "                                            \
    "           and #name <= " CHAT_XSTR(CHAT_MAX_GW_LEN) " "               \
    "           and string.sub(name, -1) == '}' "                           \
    "           and not string.find(name, string.char(0), 1, true) "        \
    "  end "                                                                \
    "  local p = '" CHAT_POLL_STREAM_PREFIX "' "                            \
    "  if string.sub(name, 1, #p) ~= p then return false end "              \
    "  local uid, sid = string.match(string.sub(name, #p + 1), "            \
    "                                '^(%d+)}:([0-9a-f]+)$') "              \
    "  return uid ~= nil and #uid <= 19 "                                   \
    "         and #sid == " CHAT_XSTR(CHAT_POLL_SID_LEN) " "                \
    "end "                                                                  \
    "local function fresh(name, value, now) "                               \
    "  if not routable(name) or #value == 0 or #value > 15 "                \
    "     or string.find(value, '[^0-9]') then "                            \
    "    return false "                                                     \
    "  end "                                                                \
    "  return now - tonumber(value) <= " CHAT_ONLINE_STALE_STR " "          \
    "end "


chat_script_t  chat_script_presence_up = {
    "presence up",
    "redis.replicate_commands() "
    CHAT_LUA_NOW
    CHAT_LUA_REGISTER
    "register(ARGV[1], ARGV[2], ARGV[3]) "
    "return 1",
    ""
};


/* the user stays online until the sweeper finds no field refreshed
 * within the TTL, checked after the grace: a reconnect within the grace
 * is no event at all */
chat_script_t  chat_script_presence_down = {
    "presence down",
    "redis.replicate_commands() "
    CHAT_LUA_NOW
    "redis.call('HDEL', KEYS[1], ARGV[1]) "
    "if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then "
    "  redis.call('HSET', KEYS[3], ARGV[2], nows) "
    "  redis.call('ZADD', KEYS[2], "
    "             string.format('%d', now + tonumber(ARGV[3])), ARGV[2]) "
    "end "
    "return 1",
    ""
};


/*
 * Opens a session: a first entry (so the stream exists and has a
 * position), and registers it.  Unless the user already has that many
 * live sessions: the session fields of the online hash the fan-out still
 * serves are counted, so the cap holds across every worker and every
 * edge; then 0 and nothing is written.
 */
chat_script_t  chat_script_poll_open = {
    "poll open",
    "redis.replicate_commands() "
    CHAT_LUA_NOW
    CHAT_LUA_REGISTER
    CHAT_LUA_ONLINE
    "local live = 0 "
    "local p = '" CHAT_POLL_STREAM_PREFIX "' "
    "local h = redis.call('HGETALL', KEYS[1]) "
    "for i = 1, #h, 2 do "
    "  if string.sub(h[i], 1, #p) == p and fresh(h[i], h[i + 1], now) then "
    "    live = live + 1 "
    "  end "
    "end "
    "if live >= tonumber(ARGV[4]) then return 0 end "
    "local id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', "
    "                      '" CHAT_GW_STREAM_MAXLEN "', '*', "
    "                      '" CHAT_F_POLL_MARK "', '') "
    "redis.call('EXPIRE', KEYS[5], ARGV[3]) "
    "register(KEYS[5], ARGV[1], ARGV[2]) "
    "return id",
    ""
};


/*
 * Reads a session after the cursor.  Trimming removes the oldest
 * entries: while the cursor's own entry is there, nothing after it is
 * gone; when it is gone and more came after it, some of those may be
 * gone too.  The client then gets a fresh marker's id, an entry that
 * exists, to go on from.  A session unpolled for longer than the lapse
 * may have been skipped by the fan-out: expired too.
 */
chat_script_t  chat_script_poll_read = {
    "poll read",
    "redis.replicate_commands() "
    CHAT_LUA_NOW
    CHAT_LUA_REGISTER
    "if redis.call('EXISTS', KEYS[5]) == 0 then return {'unknown'} end "
    "local seen = tonumber(redis.call('HGET', KEYS[1], KEYS[5])) "
    "register(KEYS[5], ARGV[1], ARGV[2]) "
    "redis.call('EXPIRE', KEYS[5], ARGV[3]) "
    "local info = redis.call('XINFO', 'STREAM', KEYS[5]) "
    "local last = '0-0' "
    "for i = 1, #info, 2 do "
    "  if info[i] == 'last-generated-id' then last = info[i + 1] end "
    "end "
    "local function later(a, b) "
    "  local am, as = string.match(a, '^(%d+)-(%d+)$') "
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$') "
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), "
    "                   tonumber(bs) "
    "  if am ~= bm then return am > bm end "
    "  return as > bs "
    "end "
    "local here = redis.call('XRANGE', KEYS[5], ARGV[4], ARGV[4]) "
    "if seen == nil or now - seen > tonumber(ARGV[6]) "
    "   or (#here == 0 and later(last, ARGV[4])) then "
    "  return {'expired', redis.call('XADD', KEYS[5], 'MAXLEN', '~', "
    "                     '" CHAT_GW_STREAM_MAXLEN "', '*', "
    "                     '" CHAT_F_POLL_MARK "', '')} "
    "end "
    "local out = {'ok', last} "
    "for _, e in ipairs(redis.call('XRANGE', KEYS[5], '(' .. ARGV[4], '+', "
    "                               'COUNT', ARGV[5])) do "
    "  out[#out + 1] = e[1] "
    "  out[#out + 1] = e[2][1] "
    "  out[#out + 1] = e[2][2] "
    "end "
    "return out",
    ""
};


/*
 * A typing indicator, atomic: a non-member is dropped, a second one
 * within the interval too; then, for every other member who has not
 * blocked the typist and whom the typist has not blocked, the fields the
 * fan-out rule counts, grouped by stream, one XADD per stream as the
 * workers fan out (chat_protocol.h).  The members' blocked sets and
 * online hashes are found from the members set, so they cannot be
 * declared in KEYS (protocol/README.md, cluster blockers).
 */
chat_script_t  chat_script_typing = {
    "typing",
    "redis.replicate_commands() "
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end "
    "if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then "
    "  return -2 "
    "end "
    CHAT_LUA_NOW
    CHAT_LUA_ONLINE
    "local routes, order = {}, {} "
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  if m ~= ARGV[1] "
    "     and redis.call('SISMEMBER', '" CHAT_BLOCKED_PREFIX "' .. m .. '}', "
    "                    ARGV[1]) == 0 "
    "     and redis.call('SISMEMBER', KEYS[3], m) == 0 then "
    "    local h = redis.call('HGETALL', '" CHAT_ONLINE_PREFIX "' .. m .. '}') "
    "    for i = 1, #h, 2 do "
    "      if fresh(h[i], h[i + 1], now) then "
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
    "for _, s in ipairs(order) do "
    "  redis.call('XADD', s, 'MAXLEN', '~', '" CHAT_GW_STREAM_MAXLEN "', "
    "             '*', '" CHAT_F_EVENT "', ARGV[3], "
    "             '" CHAT_F_UIDS "', routes[s]) "
    "  redis.call('EXPIRE', s, " CHAT_XSTR(CHAT_GW_STREAM_TTL_SEC) ") "
    "end "
    "return #order",
    ""
};


/*
 * The sweeper: a field of a stream that may serve the user (the fan-out
 * rule's names) refreshed within the TTL means still online: the due
 * time moves to that refresh + TTL.  None means offline: the user leaves
 * the due set and chat:presence:on, the stale hash is deleted, and an
 * offline transition with the last time seen is written, all at once, so
 * a user is declared offline once, and an edge announcing them online at
 * the same moment is ordered before or after, never between.  The online
 * hashes are found from the due set: not declarable in KEYS
 * (protocol/README.md, cluster blockers).
 */
chat_script_t  chat_script_presence_sweep = {
    "presence sweep",
    "redis.replicate_commands() "
    CHAT_LUA_NOW
    CHAT_LUA_ONLINE
    "local ttl = tonumber(ARGV[1]) "
    "local n = 0 "
    "for _, uid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, "
    "                                'LIMIT', 0, ARGV[2])) do "
    "  local key = '" CHAT_ONLINE_PREFIX "' .. uid .. '}' "
    "  local h = redis.call('HGETALL', key) "
    "  local newest = 0 "
    "  for i = 1, #h, 2 do "
    "    if routable(h[i]) then "
    "      local v = tonumber(h[i + 1]) or 0 "
    "      if v > newest then newest = v end "
    "    end "
    "  end "
    "  if newest + ttl > now then "
    "    redis.call('ZADD', KEYS[1], string.format('%d', newest + ttl), uid) "
    "  else "
    "    redis.call('ZREM', KEYS[1], uid) "
    "    redis.call('DEL', key) "
    "    local seen = tonumber(redis.call('HGET', KEYS[2], uid)) "
    "    if seen then "
    "      redis.call('HDEL', KEYS[2], uid) "
    "      if newest > seen then seen = newest end "
    "      redis.call('XADD', KEYS[3], 'MAXLEN', '~', '"
                     CHAT_PRESENCE_CHANGES_MAXLEN "', '*', "
    "                 '" CHAT_F_PRESENCE_UID "', uid, "
    "                 '" CHAT_F_PRESENCE_STATUS "', 'offline', "
    "                 '" CHAT_F_PRESENCE_TS "', string.format('%d', seen)) "
    "      n = n + 1 "
    "    end "
    "  end "
    "end "
    "return n",
    ""
};


chat_script_t  chat_script_online_rule = {
    "online rule",
    CHAT_LUA_ONLINE
    "if fresh(ARGV[1], ARGV[2], tonumber(ARGV[3])) then return 1 end "
    "return 0",
    ""
};


const char *
chat_script_sha(chat_script_t *s)
{
    size_t         i;
    unsigned char  md[SHA_DIGEST_LENGTH];

    if (s->sha[0] == '\0') {
        SHA1((const unsigned char *) s->text, strlen(s->text), md);

        for (i = 0; i < SHA_DIGEST_LENGTH; i++) {
            snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
        }
    }

    return s->sha;
}


int
chat_script_noscript(const char *err, size_t len)
{
    return len >= 8 && memcmp(err, "NOSCRIPT", 8) == 0;
}
