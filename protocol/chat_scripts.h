/*
 * chat_scripts.h: the Lua scripts the edge and the backend run in Redis,
 * each written once (chat_scripts.c), and how they are run: by SHA1
 * (EVALSHA), loaded into Redis' script cache on first use (SCRIPT LOAD)
 * and again after a NOSCRIPT answer (a restarted or failed-over Redis
 * has an empty cache).  The edge's runner is ngx_chat_redis_script()
 * (ngx_chat_module/ngx_chat_redis.c), the backend's chat_bus_script()
 * (backend/engine/bus.c).
 *
 * Every script names the keys it was handed in KEYS, all with one hash
 * tag, and reaches nothing else: each runs on one Redis Cluster slot.
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
 * long-poll session alike, is two commands on two slots (chat_scripts.c
 * says why that is safe): the user's online hash, then the presence
 * shard (chat_presence_shard(uid)).
 *   online up:     KEYS: chat:online:{uid}
 *                  ARGV: field (the stream that serves the user), ttl ms
 *                  -> 1  (a leave is a plain HDEL of the field)
 *   presence up:   KEYS: chat:presence:{p<n>}:due, :on, :changes
 *                  ARGV: uid, ttl ms -> 1 when an online transition was
 *                  written, else 0
 *   presence down: KEYS: chat:presence:{p<n>}:due, :on
 *                  ARGV: uid, grace ms -> 1
 */
extern chat_script_t  chat_script_online_up;
extern chat_script_t  chat_script_presence_up;
extern chat_script_t  chat_script_presence_down;

/*
 * Long-poll sessions: KEYS chat:online:{uid}, the session's stream
 * chat:poll:{uid}:<sid> (one slot); the caller sends presence up after
 * an answer that registered the session (an id, "ok" or "expired").
 *   open: ARGV: presence ttl ms, stream ttl s, max sessions
 *         -> the first entry's id, or 0 (the user has max live sessions)
 *   read: ARGV: presence ttl ms, stream ttl s, cursor id, count, lapse ms
 *         -> {"unknown"}, {"expired", new cursor id}, or
 *         {"ok", last id, id, field, value, ...}
 */
extern chat_script_t  chat_script_poll_open;
extern chat_script_t  chat_script_poll_read;

/*
 * A typing indicator (three steps, chat_scripts.c):
 *   typing:        KEYS: chat:members:{cid}, chat:typing:{cid}:<uid>
 *                  ARGV: uid, interval ms
 *                  -> -1 not a member, -2 rate-limited, else the other
 *                  members' ids (an array)
 *   typing target: KEYS: chat:online:{m}, chat:blocked:{m}
 *                  ARGV: the typist's uid
 *                  -> the streams the fan-out rule counts for m (none
 *                  when m blocked the typist)
 */
extern chat_script_t  chat_script_typing;
extern chat_script_t  chat_script_typing_target;

/*
 * The offline sweeper (the backend's presence process), per presence
 * shard:
 *   presence due:   KEYS: chat:presence:{p<n>}:due; ARGV: at most
 *                   -> the uids whose due time passed
 *   presence sweep: KEYS: chat:presence:{p<n>}:due, :on, :changes
 *                   ARGV: ttl ms, then uid, newest refresh (ms, 0 for
 *                   none) for each user read -> users that went offline
 */
extern chat_script_t  chat_script_presence_due;
extern chat_script_t  chat_script_presence_sweep;

/*
 * The edge's readings (ngx_chat_lanes.c, ngx_chat_metrics.c), one key
 * each:
 *   stream depth:  KEYS: a command stream; ARGV: the group
 *                  -> {length, pending, depth}
 *   dead letters:  KEYS: chat:dlq -> {length, entries ever added}
 * and the catalog cache's lookup (ngx_chat_cache.c):
 *   cache lookup:  KEYS: the generation counter; ARGV: the entry's name
 *                  up to its generation -> {generation, entry or nil}
 */
extern chat_script_t  chat_script_stream_depth;
extern chat_script_t  chat_script_dead_letters;
extern chat_script_t  chat_script_cache_lookup;

/*
 * Sign-in sessions, both on the one tag {sessions}:
 *   logout:            KEYS: the revoked set, the revocations stream
 *                      ARGV: "<sid>:<uid>", sid, uid, end ms, now ms -> 1
 *   revocations load:  KEYS: the same; ARGV: now ms
 *                      -> {last stream id, {member, score, ...}}
 */
extern chat_script_t  chat_script_logout;
extern chat_script_t  chat_script_revocations_load;

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
