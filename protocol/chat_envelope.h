/*
 * chat_envelope.h: builds the argument vector of the XADD that puts one
 * command on the bus (field names in chat_protocol.h), and picks the
 * command stream shard.  Plain C, no nginx types, so it is unit-tested on
 * its own.  Nothing here allocates: strings are borrowed from the caller
 * and must outlive the argv until the command is handed to hiredis (which
 * copies them).
 */

#ifndef CHAT_ENVELOPE_H
#define CHAT_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char  *data;
    size_t       len;
} chat_bytes_t;

typedef struct {
    chat_bytes_t  key;      /* idempotency key */
    chat_bytes_t  op;       /* operation name */
    chat_bytes_t  role;     /* "user", "admin" or empty */
    chat_bytes_t  gw;       /* reply stream key */
    chat_bytes_t  body;     /* JSON text */
    chat_bytes_t  rid;      /* request id for the logs; empty: none */
    int64_t       uid;      /* 0 when anonymous */
    uint64_t      req;      /* gateway request id */
    int64_t       ts;       /* ms since the epoch */
} chat_envelope_t;

/* XADD <stream> MAXLEN ~ <n> * + 9 field/value pairs, + rid when set */
#define CHAT_ENVELOPE_ARGC  26

/* scratch space for the numbers the argv points into */
typedef struct {
    char  uid[24];
    char  req[24];
    char  ts[24];
} chat_envelope_numbers_t;

/*
 * Fills argv/argvlen (CHAT_ENVELOPE_ARGC slots) for XADD on stream, trimmed
 * to about maxlen entries.  Returns the argc, or -1 naming nothing when the
 * envelope is invalid: empty or oversized key or op, an op outside
 * [a-z0-9._], a role other than user/admin/empty, an empty gw or body,
 * a rid longer than CHAT_MAX_RID_LEN or outside [A-Za-z0-9._:-].
 */
int chat_envelope_argv(const chat_envelope_t *env, const char *stream,
    const char *maxlen, chat_envelope_numbers_t *numbers,
    const char **argv, size_t *argvlen);

/* Whether rid may travel as a request id (the edge sends it, the backend
 * prints it): at most CHAT_MAX_RID_LEN of [A-Za-z0-9._:-]; empty is fine. */
int chat_envelope_rid_valid(const char *rid, size_t len);

/* The shard (0 .. shards-1) for a shard key; stable across processes. */
unsigned chat_envelope_shard(const char *key, size_t len, unsigned shards);

#endif /* CHAT_ENVELOPE_H */
