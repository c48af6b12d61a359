/*
 * chat_online.h: the fan-out rule, which fields of a user's online hash
 * (chat:online:{uid}, chat_keys.h) an event for that user goes to.
 *
 * One rule for every sender: the backend's fan-out (backend/engine/
 * fanout.c, in C, with this function) and the edge's typing script (Lua,
 * CHAT_LUA_ONLINE in chat_scripts.h, built from the same constants and
 * checked against this function by tests/unit/test_online.c on a real
 * Redis).  A field counts when
 *
 *   - its name is a stream an event may be written to: a gateway's reply
 *     stream (CHAT_GW_STREAM_PREFIX ... "}", at most CHAT_MAX_GW_LEN
 *     bytes, no NUL) or a long-poll session's stream
 *     (CHAT_POLL_STREAM_PREFIX "<uid>}:<CHAT_POLL_SID_LEN lowercase
 *     hex>"), so a field can never make a sender write into another key,
 *     and poll sessions get every event a WebSocket gets, typing included;
 *   - its value, "<unix ms>" (1 to 15 digits), is no older than
 *     CHAT_ONLINE_STALE_MS at now_ms; a value from the future (clock
 *     skew) counts.
 *
 * Why a fixed 60 s and not each side's presence TTL: the TTL is
 * configured apart on the edge (chat_presence_ttl) and the backend
 * (CHAT_PRESENCE_TTL_MS) and nothing checks they agree, while a
 * constant here is the same on both by construction.  60 s is the
 * longest TTL the edge accepts, so a live gateway (refreshing every
 * TTL / 3) is never skipped whatever the TTL, and the 40 s or more of
 * margin absorbs the skew between a worker's clock and Redis' (the
 * fields carry Redis' time).  The cost is events XADDed for up to 60 s
 * to a gateway that died, into a stream that expires by itself.  Who is
 * *online* (presence, offline notifications) is a different question,
 * answered with the presence TTL (the sweeper, notify_queue.c).
 */

#ifndef CHAT_ONLINE_H
#define CHAT_ONLINE_H

#include <stddef.h>
#include <stdint.h>

#include "chat_keys.h"

#define CHAT_ONLINE_STALE_MS    60000
#define CHAT_ONLINE_STALE_STR   "60000"

/* Whether name is a stream an event may go to (the first condition
 * above).  1 or 0. */
int chat_online_field_routable(const char *name, size_t name_len);

/* Whether the field counts at now_ms (both conditions).  1 or 0. */
int chat_online_field_fresh(const char *name, size_t name_len,
    const char *value, size_t value_len, int64_t now_ms);

#endif /* CHAT_ONLINE_H */
