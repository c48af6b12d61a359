/*
 * chat_scripts.c: every Lua script the edge and the backend run in
 * Redis, written once (chat_scripts.h lists them with their KEYS and
 * ARGV).  Key and field names come from chat_keys.h, pasted into the
 * text, so a script cannot spell a key differently from the C code.
 *
 * The pieces several scripts share are Lua fragments defined once below
 * and pasted at the top of each script that needs them: Redis' clock
 * (CHAT_LUA_NOW), the refresh of a user's online hash (CHAT_LUA_REFRESH:
 * the WebSocket's gateway and the long-poll session register the same
 * way) and the fan-out rule (CHAT_LUA_ONLINE, the Lua form of
 * chat_online.c).
 *
 * Every script touches only the keys it is handed in KEYS, all with one
 * hash tag, so each runs on one slot of a Redis Cluster
 * (tests/unit/test_online.c runs every one on a cluster-enabled Redis,
 * which refuses anything else).
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
 * refresh(field, ttl): the stream field of the user's online hash
 * (KEYS[1], chat:online:{uid}) serves the user, refreshed now; the hash
 * lives ttl ms.  The user's half of a registration: the presence shard's
 * half is chat_script_presence_up, a second command (the two live in
 * different slots; see the presence scripts below for why the split is
 * safe).
 */
#define CHAT_LUA_REFRESH                                                    \
    "local function refresh(field, ttl) "                                   \
    "  redis.call('HSET', KEYS[1], field, nows) "                           \
    "  redis.call('PEXPIRE', KEYS[1], ttl) "                                \
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


/*
 * Presence is kept in two places that a Redis Cluster puts in different
 * slots: the user's online hash ({<uid>}) and the user's presence shard
 * ({p<n>}: due set, online set, transitions).  Each side has its own
 * script, and a registration is two commands sent back to back (the
 * edge pipelines them: no added wait).  What the split gives up is that
 * both halves happen at one instant; it is safe because the sweeper
 * decides from the shard alone at the last step: a user is declared
 * offline only if, inside chat_script_presence_sweep, their due time is
 * still past.  A registration's shard half moves the due time to now +
 * TTL (ZADD GT), so either it lands first and the sweep skips the user,
 * or the sweep lands first and the registration, finding the user not
 * in the online set, writes a fresh "online" transition: offline then
 * online, in that order, and the user ends online either way.
 */

/* the user's half of a registration: KEYS[1] chat:online:{uid};
 * ARGV: field, ttl ms -> 1 */
chat_script_t  chat_script_online_up = {
    "online up",
    "redis.replicate_commands() "
    CHAT_LUA_NOW
    CHAT_LUA_REFRESH
    "refresh(ARGV[1], ARGV[2]) "
    "return 1",
    ""
};


/*
 * The shard's half: the user's due time for the sweeper moves to at
 * least now + ttl; an "online" transition is written when the user was
 * not online (a refresh publishes nothing).
 */
chat_script_t  chat_script_presence_up = {
    "presence up",
    "redis.replicate_commands() "
    CHAT_LUA_NOW
    "local uid, fresh = ARGV[1], 0 "
    "redis.call('ZADD', KEYS[1], 'GT', "
    "           string.format('%d', now + tonumber(ARGV[2])), uid) "
    "if redis.call('HEXISTS', KEYS[2], uid) == 0 then "
    "  redis.call('XADD', KEYS[3], 'MAXLEN', '~', '"
                 CHAT_PRESENCE_CHANGES_MAXLEN "', '*', "
    "             '" CHAT_F_PRESENCE_UID "', uid, "
    "             '" CHAT_F_PRESENCE_STATUS "', 'online', "
    "             '" CHAT_F_PRESENCE_TS "', nows) "
    "  fresh = 1 "
    "end "
    "redis.call('HSET', KEYS[2], uid, nows) "
    "return fresh",
    ""
};


/* the user stays online until the sweeper finds no field refreshed
 * within the TTL, checked after the grace: a reconnect within the grace
 * is no event at all.  (The user's half of a leave is a plain HDEL of
 * the field.) */
chat_script_t  chat_script_presence_down = {
    "presence down",
    "redis.replicate_commands() "
    CHAT_LUA_NOW
    "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then "
    "  redis.call('HSET', KEYS[2], ARGV[1], nows) "
    "  redis.call('ZADD', KEYS[1], "
    "             string.format('%d', now + tonumber(ARGV[2])), ARGV[1]) "
    "end "
    "return 1",
    ""
};


/*
 * Opens a session: a first entry (so the stream exists and has a
 * position), and registers it.  Unless the user already has that many
 * live sessions: the session fields of the online hash the fan-out still
 * serves are counted, so the cap holds across every worker and every
 * edge; then 0 and nothing is written.  The user's presence shard is
 * the caller's second command, once this one answered a session
 * (chat_script_presence_up: the same split as a gateway's).
 */
chat_script_t  chat_script_poll_open = {
    "poll open",
    "redis.replicate_commands() "
    CHAT_LUA_NOW
    CHAT_LUA_REFRESH
    CHAT_LUA_ONLINE
    "local live = 0 "
    "local p = '" CHAT_POLL_STREAM_PREFIX "' "
    "local h = redis.call('HGETALL', KEYS[1]) "
    "for i = 1, #h, 2 do "
    "  if string.sub(h[i], 1, #p) == p and fresh(h[i], h[i + 1], now) then "
    "    live = live + 1 "
    "  end "
    "end "
    "if live >= tonumber(ARGV[3]) then return 0 end "
    "local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', "
    "                      '" CHAT_GW_STREAM_MAXLEN "', '*', "
    "                      '" CHAT_F_POLL_MARK "', '') "
    "redis.call('EXPIRE', KEYS[2], ARGV[2]) "
    "refresh(KEYS[2], ARGV[1]) "
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
    CHAT_LUA_REFRESH
    "if redis.call('EXISTS', KEYS[2]) == 0 then return {'unknown'} end "
    "local seen = tonumber(redis.call('HGET', KEYS[1], KEYS[2])) "
    "refresh(KEYS[2], ARGV[1]) "
    "redis.call('EXPIRE', KEYS[2], ARGV[2]) "
    "local info = redis.call('XINFO', 'STREAM', KEYS[2]) "
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
    "local here = redis.call('XRANGE', KEYS[2], ARGV[3], ARGV[3]) "
    "if seen == nil or now - seen > tonumber(ARGV[5]) "
    "   or (#here == 0 and later(last, ARGV[3])) then "
    "  return {'expired', redis.call('XADD', KEYS[2], 'MAXLEN', '~', "
    "                     '" CHAT_GW_STREAM_MAXLEN "', '*', "
    "                     '" CHAT_F_POLL_MARK "', '')} "
    "end "
    "local out = {'ok', last} "
    "for _, e in ipairs(redis.call('XRANGE', KEYS[2], '(' .. ARGV[3], '+', "
    "                               'COUNT', ARGV[4])) do "
    "  out[#out + 1] = e[1] "
    "  out[#out + 1] = e[2][1] "
    "  out[#out + 1] = e[2][2] "
    "end "
    "return out",
    ""
};


/*
 * A typing indicator, in three steps, each on one slot:
 *
 *   1. chat_script_typing on the conversation's slot: a non-member is
 *      dropped, a second one within the interval too (both atomic with
 *      the rate key, as before); otherwise the other members' ids.
 *   2. chat_script_typing_target on each member's slot: the fields the
 *      fan-out rule counts in their online hash, none when they blocked
 *      the typist; beside it, the typist's own blocked set (SMEMBERS).
 *   3. one XADD per stream, as the workers fan out (chat_protocol.h).
 *
 * It was one script reading every member's keys from inside it, which
 * a Redis Cluster refuses (they are not its declared keys and not in
 * its slot).  What the split changes: a member who joins, leaves, blocks
 * or goes offline between the steps is seen as before or after the
 * change, not both, exactly like a message's fan-out by a worker; a
 * typing indicator is ephemeral (it expires by itself on the client), so
 * an indicator that reaches someone who blocked the typist a
 * millisecond earlier is the whole cost.  The rate limit stays atomic,
 * so a typist still causes at most one delivery per interval.
 */
chat_script_t  chat_script_typing = {
    "typing",
    "redis.replicate_commands() "
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end "
    "if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then "
    "  return -2 "
    "end "
    "local out = {} "
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  if m ~= ARGV[1] then out[#out + 1] = m end "
    "end "
    "return out",
    ""
};


chat_script_t  chat_script_typing_target = {
    "typing target",
    CHAT_LUA_NOW
    CHAT_LUA_ONLINE
    "if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return {} end "
    "local out = {} "
    "local h = redis.call('HGETALL', KEYS[1]) "
    "for i = 1, #h, 2 do "
    "  if fresh(h[i], h[i + 1], now) then out[#out + 1] = h[i] end "
    "end "
    "return out",
    ""
};


/*
 * The sweeper, in two steps per presence shard (backend/presence): this
 * script takes the users whose due time passed (at most ARGV[1]),
 * then the sweeper reads each one's online hash (another slot: a plain
 * HGETALL) and finds the newest refresh of a field the fan-out rule may
 * route to; then chat_script_presence_sweep decides.
 */
chat_script_t  chat_script_presence_due = {
    "presence due",
    CHAT_LUA_NOW
    "return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, "
    "                  'LIMIT', 0, ARGV[1])",
    ""
};


/*
 * The decision, for each user read: a refresh within the TTL means
 * still online: the due time moves to that refresh + TTL.  None means
 * offline: the user leaves the due set and the online set, and an
 * offline transition with the last time seen is written, all at once on
 * the shard, so a user is declared offline once.  A user whose due time
 * is no longer past was registered again since step one: skipped (the
 * presence scripts' comment says why this makes the split safe).  The
 * stale online hash is left to its own expiry (PEXPIRE TTL at every
 * refresh): deleting it from here would be another slot, and could
 * delete a field registered a moment ago.
 */
chat_script_t  chat_script_presence_sweep = {
    "presence sweep",
    "redis.replicate_commands() "
    CHAT_LUA_NOW
    "local ttl = tonumber(ARGV[1]) "
    "local n = 0 "
    "for i = 2, #ARGV - 1, 2 do "
    "  local uid, newest = ARGV[i], tonumber(ARGV[i + 1]) or 0 "
    "  local due = tonumber(redis.call('ZSCORE', KEYS[1], uid)) "
    "  if due and due <= now then "
    "    if newest + ttl > now then "
    "      redis.call('ZADD', KEYS[1], string.format('%d', newest + ttl), "
    "                 uid) "
    "    else "
    "      redis.call('ZREM', KEYS[1], uid) "
    "      local seen = tonumber(redis.call('HGET', KEYS[2], uid)) "
    "      if seen then "
    "        redis.call('HDEL', KEYS[2], uid) "
    "        if newest > seen then seen = newest end "
    "        redis.call('XADD', KEYS[3], 'MAXLEN', '~', '"
                       CHAT_PRESENCE_CHANGES_MAXLEN "', '*', "
    "                   '" CHAT_F_PRESENCE_UID "', uid, "
    "                   '" CHAT_F_PRESENCE_STATUS "', 'offline', "
    "                   '" CHAT_F_PRESENCE_TS "', "
    "                   string.format('%d', seen)) "
    "        n = n + 1 "
    "      end "
    "    end "
    "  end "
    "end "
    "return n",
    ""
};


/*
 * One command stream's figures, for the edge's load shedding
 * (ngx_chat_lanes.c, a few times a second) and /metrics (cluster): its
 * length, the group's pending count, the depth the lanes bound (the
 * pending ones plus the unread ones), and how long the oldest unread one
 * has waited, in ms (0 when none is; the entry's id holds the ms Redis
 * added it at, and TIME is the same clock).  A stream or group that does
 * not exist yet counts 0.  A few unread entries are counted one by one
 * (those after the group's last-delivered-id, up to ARGV[2], 100 without
 * it), not taken from XINFO's lag: Redis's lag is an estimate that can
 * stay wrong for good (a bench stack's read lane showed a lag of 28,000
 * with nothing unread, so the depth became the stream's length, the last
 * second's commands that workers had not trimmed yet, and a read lane at
 * 2,000 requests/s refused them 503 with 200 in flight).  Past that
 * many, the lag is taken, but never more than the stream holds beyond
 * the pending ones, nor less than what was counted: counting every
 * unread entry (up to the lane's bound, as it first did) read 5,600
 * entries per shard per call in a backlog of 22,000, each call 40 ms of
 * Redis, and the edges' polls (16 calls every 200 ms) took all of
 * Redis's core, so the workers, waiting on Redis, drained 20 commands a
 * second: a backlog made itself permanent.  One stream per call: the
 * streams of a lane's shards are in different slots (it was one script
 * over every stream).
 */
chat_script_t  chat_script_stream_depth = {
    "stream depth",
    "local len = redis.call('XLEN', KEYS[1]) "
    "local pending, depth, waited = 0, 0, 0 "
    "local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1]) "
    "if type(groups) == 'table' and groups.err == nil then "
    "  for _, g in ipairs(groups) do "
    "    local f = {} "
    "    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end "
    "    if f['name'] == ARGV[1] then "
    "      local cap = tonumber(ARGV[2]) or 100 "
    "      local unread = redis.call('XRANGE', KEYS[1], "
    "                                '(' .. f['last-delivered-id'], '+', "
    "                                'COUNT', cap) "
    "      local n = #unread "
    "      pending = tonumber(f['pending']) or 0 "
    "      if n >= cap then "
    "        local most = len - pending "
    "        n = math.max(n, math.min(tonumber(f['lag']) or most, most)) "
    "      end "
    "      depth = pending + n "
    "      if #unread > 0 then "
    "        local t = redis.call('TIME') "
    "        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "        local at = tonumber(string.match(unread[1][1], '^(%d+)')) or now "
    "        if now > at then waited = now - at end "
    "      end "
    "    end "
    "  end "
    "end "
    "return {len, pending, depth, waited}",
    ""
};


/* The dead letters: the stream's length and its entries ever added,
 * which trimming keeps (Redis 7.0; before it, and before the stream
 * exists, the length stands in). */
chat_script_t  chat_script_dead_letters = {
    "dead letters",
    "local len = redis.call('XLEN', KEYS[1]) "
    "local added = len "
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
    "  local info = redis.call('XINFO', 'STREAM', KEYS[1]) "
    "  for i = 1, #info - 1, 2 do "
    "    if info[i] == 'entries-added' then added = info[i + 1] end "
    "  end "
    "end "
    "return {len, added}",
    ""
};


/*
 * The catalog cache's lookup (ngx_chat_cache.c): the generation counter
 * (KEYS[1]) and the entry under it (ARGV[1] .. counter).  The entry is
 * not in KEYS (its name needs the counter's value) but it carries the
 * counter's hash tag by construction (ARGV[1] is built with it), so it
 * is always in the script's slot, all a Redis Cluster asks of a key a
 * script did not declare.
 */
chat_script_t  chat_script_cache_lookup = {
    "catalog cache lookup",
    "local g = redis.call('GET', KEYS[1]) or '0' "
    "return {g, redis.call('GET', ARGV[1] .. g)}",
    ""
};


/*
 * A logout (ngx_chat_session.c).
 * KEYS: the revoked set, the revocations stream.  ARGV: "<sid>:<uid>",
 * sid, uid, the session's end (ms), now (ms).  Old entries of the set go
 * by score; the stream is capped, a follower that fell further behind
 * reloads the set when it reconnects.
 */
chat_script_t  chat_script_logout = {
    "logout",
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[5]) "
    "redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1]) "
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', "
    "           '" CHAT_REVOCATIONS_MAXLEN "', '*', "
    "           '" CHAT_F_REVOKED_SID "', ARGV[2], "
    "           '" CHAT_F_REVOKED_UID "', ARGV[3], "
    "           '" CHAT_F_REVOKED_UNTIL "', ARGV[4]) "
    "return 1",
    ""
};


/* The revocations a starting edge loads (ngx_chat_revoked.c).
 * KEYS: the revoked set (CHAT_REVOKED_KEY), the revocations stream
 * (CHAT_REVOCATIONS_KEY); ARGV: now (ms).  Returns {last stream id, {member,
 * score, ...}}: everything revoked so far, and where to follow from. */
chat_script_t  chat_script_revocations_load = {
    "revocations load",
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) "
    "local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1) "
    "local id = '0-0' "
    "if #last > 0 then id = last[1][1] end "
    "return {id, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}",
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
