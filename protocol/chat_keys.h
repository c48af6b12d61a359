/*
 * chat_keys.h: every Redis key, stream and stream field the edge and the
 * backend use, in one place.  Nothing outside this header spells a key:
 * C code uses the macros and the builders below, Lua scripts
 * (chat_scripts.c) have the same macros pasted into their text.
 *
 * Hash tags (the part in braces, what a Redis Cluster hashes to pick a
 * slot) are chosen so the keys one command or script touches together
 * share a slot where that is possible today:
 *
 *   {<uid>}      a user's keys: chat:online:{uid}, chat:blocked:{uid},
 *                chat:poll:{uid}:<sid> (a poll script reads the session's
 *                stream and the user's online hash together)
 *   {<cid>}      a conversation's: chat:members:{cid},
 *                chat:typing:{cid}:<uid>
 *   {<gateway>}  a gateway's reply stream, chat:gw:{<gateway id>}
 *   {<shard>}    one command stream, chat:cmd:<lane>:{<shard>}
 *   {sessions}   the revoked set and the revocations stream (one script
 *                writes both)
 *   {p<n>}       one presence shard: chat:presence:{p<n>}:due, :on,
 *                :changes (the presence scripts touch the three)
 *   {b<id>}, {l<x>}  the catalog cache: a book's generation and pages,
 *                one list shard's generation and pages
 *
 * Every script and multi-key command touches one tag's keys only; what
 * needs a user's keys and a presence shard's runs as two commands, in
 * the order that keeps the sweeper right (chat_scripts.c).  The keys
 * without a tag (chat:workers, chat:lanes, chat:stats, ...) are single
 * keys written once a second per worker and read a few times a second
 * per edge: protocol/README.md (Redis Cluster) says why none is hot.
 *
 * Plain C, no nginx or libpq: both sides and the tests include it.
 */

#ifndef CHAT_KEYS_H
#define CHAT_KEYS_H

#include <stdint.h>
#include <stdio.h>


/* ------------------------------------------------------------------------
 * The command bus (chat_protocol.h describes the entries)
 * --------------------------------------------------------------------- */

/* command streams are CHAT_CMD_STREAM_PREFIX "<lane>:{<shard>}", one set
 * of shards 0 .. shards-1 per lane (chat_lanes.c builds the names) */
#define CHAT_CMD_STREAM_PREFIX  "chat:cmd:"
#define CHAT_CMD_GROUP          "workers"

/* reply streams are CHAT_GW_STREAM_PREFIX "<gateway id>" "}", at most
 * CHAT_MAX_GW_LEN bytes */
#define CHAT_GW_STREAM_PREFIX   "chat:gw:{"
#define CHAT_GW_STREAM_TTL_SEC  300
#define CHAT_GW_STREAM_MAXLEN   "10000"
#define CHAT_MAX_GW_LEN         200

/* dead letters: kept to about the newest CHAT_DLQ_MAXLEN entries (so no
 * client can fill Redis with poison commands); XINFO STREAM's
 * entries-added counts them all (chat_dead_letters_total in /metrics) */
#define CHAT_DLQ_STREAM         "chat:dlq"
#define CHAT_DLQ_MAXLEN         "10000"

/* worker heartbeats (chat_protocol.h: Worker liveness) and figures
 * (chat_protocol.h: Worker figures), one hash field per consumer */
#define CHAT_WORKERS_KEY        "chat:workers"
#define CHAT_STATS_KEY          "chat:stats"

/* the limits every lane's pool publishes (chat_lanes.h) */
#define CHAT_LANES_KEY          "chat:lanes"

/*
 * Read-your-writes on a PostgreSQL replica (backend/engine/replica.c):
 * after a write commits, its worker keeps the primary's WAL position, as
 * 16 upper-case hex digits (so that text order is numeric order), under
 * the writer's key (and, when the write touched what the edge caches,
 * under the catalog's) for CHAT_LSN_TTL_MS; a read routed to a replica
 * first waits for the replica to have replayed it.  CHAT_REPLICA_KEY
 * counts where the reads went, field by field (replica, lagging,
 * behind, down), summed over the workers.
 */
#define CHAT_LSN_USER_FMT       "chat:lsn:{%lld}"
#define CHAT_LSN_CATALOG_KEY    "chat:lsn:{catalog}"
#define CHAT_LSN_TTL_MS         "10000"
#define CHAT_REPLICA_KEY        "chat:replica"

/* command entry fields */
#define CHAT_F_VERSION  "v"
#define CHAT_F_KEY      "key"
#define CHAT_F_OP       "op"
#define CHAT_F_UID      "uid"
#define CHAT_F_ROLE     "role"
#define CHAT_F_GW       "gw"
#define CHAT_F_REQ      "req"
#define CHAT_F_TS       "ts"
#define CHAT_F_BODY     "body"
/* optional: the edge's $request_id (HTTP requests; a WebSocket's commands
 * carry its upgrade request's), printed in the backend's log lines so one
 * request can be followed from the access log to the worker's log */
#define CHAT_F_RID      "rid"

/* reply entry fields (CHAT_F_REQ and CHAT_F_BODY are shared) */
#define CHAT_F_STATUS   "status"

/* event entry fields, on reply streams and poll session streams alike */
#define CHAT_F_EVENT    "ev"
#define CHAT_F_UIDS     "uids"


/* ------------------------------------------------------------------------
 * Who is online where, presence
 * --------------------------------------------------------------------- */

/* chat:online:{<uid>}: hash, field <a stream that serves the user: a
 * gateway's reply stream or a poll session's> = "<unix ms>" (Redis'
 * clock) of its last refresh.  Which fields an event goes to is the
 * fan-out rule, chat_online.h. */
#define CHAT_ONLINE_PREFIX      "chat:online:{"
#define CHAT_ONLINE_TTL_SEC     90
#define CHAT_ONLINE_TTL_STR     "90"
#define CHAT_ONLINE_REFRESH_MS  20000

/*
 * Presence (the presence scripts in chat_scripts.c, the backend's
 * sweeper): users' due times for the offline sweeper (sorted set), who
 * is online (hash, uid -> last seen ms), and the stream of online/offline
 * transitions.  The three are split over CHAT_PRESENCE_SHARDS presence
 * shards, "chat:presence:{p<shard>}:due|on|changes" with the shard
 * chat_presence_shard(uid): one shard's three keys share a hash tag, so
 * the script that checks "was this user online?" and writes the
 * transition stays atomic on one slot, and the shards spread over a
 * cluster's masters (one global set was every sign-in's and every
 * sweep's single hot key).  The number is part of the wire: the edges
 * and the presence process must agree on it, so it is a constant, not a
 * setting; changing it moves users between shards (CHANGELOG).
 */
#define CHAT_PRESENCE_SHARDS       16
#define CHAT_PRESENCE_PREFIX       "chat:presence:{p"
#define CHAT_PRESENCE_DUE          "due"
#define CHAT_PRESENCE_ON           "on"
#define CHAT_PRESENCE_CHANGES      "changes"
#define CHAT_PRESENCE_CHANGES_MAXLEN  "100000"
/* the single keys of before the shards, read once by the presence
 * process after an upgrade and then deleted (backend/presence) */
#define CHAT_PRESENCE_LEGACY_DUE      "chat:presence:due"
#define CHAT_PRESENCE_LEGACY_ON       "chat:presence:on"
#define CHAT_PRESENCE_LEGACY_CHANGES  "chat:presence:changes"
/* transition entry fields: uid, status ("online" | "offline"), ts (ms) */
#define CHAT_F_PRESENCE_UID     "uid"
#define CHAT_F_PRESENCE_STATUS  "status"
#define CHAT_F_PRESENCE_TS      "ts"

/* a long-poll session's event stream: chat:poll:{<uid>}:<sid>, sid
 * CHAT_POLL_SID_LEN lowercase hex.  The uid is the hash tag, so the
 * stream shares a slot with the user's online hash (the poll scripts
 * touch both); with the uid in the name, one user's sid can never name
 * another user's stream.  A session's first entry is a marker with the
 * field CHAT_F_POLL_MARK, so the stream exists and has a position. */
#define CHAT_POLL_STREAM_PREFIX "chat:poll:{"
#define CHAT_POLL_SID_LEN       16
#define CHAT_F_POLL_MARK        "m"


/* ------------------------------------------------------------------------
 * Typing (the typing script; the backend keeps the sets)
 * --------------------------------------------------------------------- */

/* chat:members:{<cid>}: set of the ids of the members who accepted the
 * conversation; chat:members:ready exists once every set was built
 * (backend/presence/membership_cache.c) */
#define CHAT_MEMBERS_PREFIX     "chat:members:{"
#define CHAT_MEMBERS_READY_KEY  "chat:members:ready"

/* chat:blocked:{<uid>}: set of the users uid has blocked */
#define CHAT_BLOCKED_PREFIX     "chat:blocked:{"

/* chat:typing:{<cid>}:<uid>: a typist's rate limit in a conversation */
#define CHAT_TYPING_PREFIX      "chat:typing:{"


/* ------------------------------------------------------------------------
 * Offline notifications (backend only: the notify queue and notifier)
 * --------------------------------------------------------------------- */

#define CHAT_NOTIFY_STREAM      "chat:notify"
#define CHAT_NOTIFY_GROUP       "notifier"


/* ------------------------------------------------------------------------
 * The catalog read cache (ngx_chat_cache.c fills and serves it,
 * backend/catalog/catalog_cache.c invalidates it)
 * --------------------------------------------------------------------- */

/* A book's generation counter is "cat:{b<id>}:gen" and its cached detail
 * pages "cat:{b<id>}:<hash>:v<gen>"; list pages (search, browse,
 * categories) live under a list shard's counter (below).
 * Writers INCR the counters after their commit and before their reply,
 * so an entry filled from an older read is left under a generation
 * nobody asks for any more.  The counters have no TTL (they must never be
 * evicted: run Redis with a volatile-* maxmemory-policy); the entries
 * have one. */
#define CHAT_CACHE_BOOK_PREFIX   "cat:{b"
/* List pages are spread over CHAT_CACHE_LIST_SHARDS tags, one per first
 * hex digit of the page's hash: "cat:{l<digit>}:gen" and
 * "cat:{l<digit>}:<hash>:v<gen>".  Each shard's counter shares its
 * pages' slot (the lookup reads both in one script); a list-changing
 * write INCRs all sixteen in its one pipeline (catalog edits are
 * rare next to reads), and every
 * list read, the catalog's busiest path, reads one of sixteen counters
 * on sixteen slots instead of one key on one master. */
#define CHAT_CACHE_LIST_SHARDS   16
#define CHAT_CACHE_LISTS_PREFIX  "cat:{l"


/* ------------------------------------------------------------------------
 * Sign-in sessions (ngx_chat_session.c, ngx_chat_revoked.c)
 * --------------------------------------------------------------------- */

/* A logout adds "<sid>:<uid>" to the revoked set, scored with the
 * session's end (ms), and an entry {sid, uid, until} to the revocations
 * stream, which every nginx worker of every edge follows; both share a
 * hash tag so one script writes both.  A WebSocket ticket is
 * "chat:ticket:<hex SHA-256 of the ticket>" holding "<uid> <role> <sid>
 * <sxp> <exp>" for a few seconds, taken with GETDEL. */
#define CHAT_REVOKED_KEY         "chat:{sessions}:revoked"
#define CHAT_REVOCATIONS_KEY     "chat:{sessions}:revocations"
#define CHAT_REVOCATIONS_MAXLEN  "100000"
#define CHAT_F_REVOKED_SID       "sid"
#define CHAT_F_REVOKED_UID       "uid"
#define CHAT_F_REVOKED_UNTIL     "until"
#define CHAT_TICKET_PREFIX       "chat:ticket:"


/* ------------------------------------------------------------------------
 * Builders: each writes the key NUL-terminated into buf (size bytes) and
 * returns its length, or -1 when it does not fit.  CHAT_KEY_MAX holds
 * any of them but a gateway's (CHAT_MAX_GW_LEN).
 * --------------------------------------------------------------------- */

#define CHAT_KEY_MAX  96

static inline int
chat_key_fit(int n, size_t size)
{
    return (n < 0 || (size_t) n >= size) ? -1 : n;
}


/* chat:online:{<uid>} */
static inline int
chat_key_online(char *buf, size_t size, int64_t uid)
{
    return chat_key_fit(snprintf(buf, size, CHAT_ONLINE_PREFIX "%lld}",
                                 (long long) uid), size);
}


/* chat:blocked:{<uid>} */
static inline int
chat_key_blocked(char *buf, size_t size, int64_t uid)
{
    return chat_key_fit(snprintf(buf, size, CHAT_BLOCKED_PREFIX "%lld}",
                                 (long long) uid), size);
}


/* chat:members:{<cid>} */
static inline int
chat_key_members(char *buf, size_t size, int64_t cid)
{
    return chat_key_fit(snprintf(buf, size, CHAT_MEMBERS_PREFIX "%lld}",
                                 (long long) cid), size);
}


/* chat:typing:{<cid>}:<uid> */
static inline int
chat_key_typing(char *buf, size_t size, int64_t cid, int64_t uid)
{
    return chat_key_fit(snprintf(buf, size, CHAT_TYPING_PREFIX "%lld}:%lld",
                                 (long long) cid, (long long) uid), size);
}


/* chat:poll:{<uid>}:<sid>, sid CHAT_POLL_SID_LEN bytes */
static inline int
chat_key_poll(char *buf, size_t size, int64_t uid, const char *sid)
{
    return chat_key_fit(snprintf(buf, size, CHAT_POLL_STREAM_PREFIX
                                 "%lld}:%.*s", (long long) uid,
                                 (int) CHAT_POLL_SID_LEN, sid), size);
}


/* the presence shard of a user: a uid is never negative */
static inline unsigned
chat_presence_shard(int64_t uid)
{
    return (unsigned) ((uint64_t) uid % CHAT_PRESENCE_SHARDS);
}


/* chat:presence:{p<shard>}:<which>, which one of CHAT_PRESENCE_DUE, _ON,
 * _CHANGES */
static inline int
chat_key_presence(char *buf, size_t size, unsigned shard, const char *which)
{
    return chat_key_fit(snprintf(buf, size, CHAT_PRESENCE_PREFIX "%u}:%s",
                                 shard, which), size);
}


/* cat:{l<x>}:gen, x the first hex digit of a list page's hash */
static inline int
chat_key_cache_lists_gen(char *buf, size_t size, unsigned shard)
{
    return chat_key_fit(snprintf(buf, size, CHAT_CACHE_LISTS_PREFIX "%x}:gen",
                                 shard % CHAT_CACHE_LIST_SHARDS), size);
}


/* chat:gw:{<gateway id>} */
static inline int
chat_key_gw(char *buf, size_t size, const char *gateway, size_t len)
{
    return chat_key_fit(snprintf(buf, size, CHAT_GW_STREAM_PREFIX "%.*s}",
                                 (int) len, gateway), size);
}

#endif /* CHAT_KEYS_H */
