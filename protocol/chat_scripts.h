/*
 * chat_scripts.h: the Lua scripts the edge and the backend run in Redis,
 * each written once (chat_scripts.c), and how they are run: by SHA1
 * (EVALSHA), loaded into Redis' script cache on first use (SCRIPT LOAD)
 * and again after a NOSCRIPT answer (a restarted or failed-over Redis
 * has an empty cache).  The edge's runner is ngx_chat_redis_script()
 * (ngx_chat_module/ngx_chat_redis.c), the backend's chat_bus_script()
 * (backend/engine/bus.c).
 *
 * Every script names the keys it was handed in KEYS and reaches nothing
 * else, except where protocol/README.md lists it as a cluster blocker
 * (keys found by reading data inside the script).
 */

#ifndef CHAT_SCRIPTS_H
#define CHAT_SCRIPTS_H

#include <stddef.h>

typedef struct {
    const char  *name;          /* for logs */
    const char  *text;
    char         sha[41];       /* hex SHA1 of text; computed on first use */
} chat_script_t;

/*
 * Presence registration, of a gateway (a WebSocket's nginx worker) or a
 * long-poll session alike.
 *   KEYS: chat:online:{uid}, chat:presence:due, chat:presence:on,
 *         chat:presence:changes
 *   up:   ARGV: field (the stream that serves the user), uid, ttl ms -> 1
 *   down: ARGV: field, uid, grace ms -> 1
 */
extern chat_script_t  chat_script_presence_up;
extern chat_script_t  chat_script_presence_down;

/*
 * Long-poll sessions: the presence KEYS above, then KEYS[5] the session's
 * stream, chat:poll:{uid}:<sid>.
 *   open: ARGV: uid, presence ttl ms, stream ttl s, max sessions
 *         -> the first entry's id, or 0 (the user has max live sessions)
 *   read: ARGV: uid, presence ttl ms, stream ttl s, cursor id, count,
 *         lapse ms -> {"unknown"}, {"expired", new cursor id}, or
 *         {"ok", last id, id, field, value, ...}
 */
extern chat_script_t  chat_script_poll_open;
extern chat_script_t  chat_script_poll_read;

/*
 * A typing indicator: membership, rate limit, then the fan-out rule
 * (chat_online.h) over every other member's online hash.
 *   KEYS: chat:members:{cid}, chat:typing:{cid}:<uid>, chat:blocked:{uid}
 *   ARGV: uid, interval ms, event JSON
 *   -> -1 not a member, -2 rate-limited, else the number of XADDs
 */
extern chat_script_t  chat_script_typing;

/*
 * The offline sweeper (the backend's presence process): users whose due
 * time passed with no online field refreshed within the TTL go offline.
 *   KEYS: chat:presence:due, chat:presence:on, chat:presence:changes
 *   ARGV: ttl ms, users per sweep -> users that went offline
 */
extern chat_script_t  chat_script_presence_sweep;

/*
 * The Lua form of the fan-out rule alone, for the test that checks it
 * against chat_online_field_fresh():
 *   ARGV: field name, field value, now ms -> 1 or 0
 */
extern chat_script_t  chat_script_online_rule;

/* The script's SHA1, 40 hex digits (computed once, then kept). */
const char *chat_script_sha(chat_script_t *s);

/* Whether an error reply says the script is not in Redis' cache. */
int chat_script_noscript(const char *err, size_t len);

#endif /* CHAT_SCRIPTS_H */
