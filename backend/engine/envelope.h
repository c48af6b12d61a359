/*
 * envelope.h: parses one command-stream entry (the field/value pairs of
 * chat_protocol.h) into a chat_cmd_t.  Pure: no I/O, no allocation.
 * See envelope.c.
 *
 * The backend's type is chat_cmd_t rather than chat_envelope_t because the
 * edge's builder (protocol/chat_envelope.h) owns that name.
 */

#ifndef CHAT_BACKEND_ENVELOPE_H
#define CHAT_BACKEND_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "chat_keys.h"              /* CHAT_MAX_GW_LEN */

#define CHAT_CMD_MAX_FIELDS  32     /* field/value pairs in one entry */

/* One field/value pair of a stream entry, borrowed from the caller. */
typedef struct {
    const char  *name;
    size_t       name_len;
    const char  *value;
    size_t       value_len;
} chat_field_t;

/*
 * A parsed command.  The string members point into the caller's field
 * values (nothing is copied), so they live exactly as long as those.  The
 * parser rejects NUL bytes in every value, so when the caller's values are
 * NUL-terminated (hiredis' are) the members can be used as C strings.
 */
typedef struct {
    const char  *key;       size_t  key_len;
    const char  *op;        size_t  op_len;
    const char  *role;      size_t  role_len;   /* "", "user", "admin" */
    const char  *gw;        size_t  gw_len;
    const char  *req;       size_t  req_len;    /* decimal, echoed back */
    const char  *body;      size_t  body_len;   /* may be empty */
    const char  *rid;       size_t  rid_len;    /* the edge's request id
                                                   for logs; may be empty */
    int64_t      uid;                           /* 0 when anonymous */
    uint64_t     req_id;
    int64_t      ts;                            /* ms since the epoch */

    /* Set even when parsing fails: whether gw and req are good enough to
     * send an error reply to. */
    unsigned     gw_ok:1;
    unsigned     req_ok:1;

    char         error[160];                    /* why parsing failed */
} chat_cmd_t;

/*
 * Fills cmd from the n pairs in fields.  Returns 0 for a well-formed
 * command, or -1 with cmd->error saying what is wrong: a missing or
 * repeated field, a version other than CHAT_PROTOCOL_VERSION, an empty or
 * oversized key or op, an op outside [a-z0-9._], a key that is not UTF-8
 * or has control characters, a uid/req/ts that is not a plain decimal
 * number, a role that does not fit the uid, a gw that is not a reply
 * stream key, a NUL byte anywhere.  Fields it does not know are ignored,
 * so the edge may add some before the backend learns them.
 */
int chat_cmd_parse(chat_cmd_t *cmd, const chat_field_t *fields, size_t n);

#endif /* CHAT_BACKEND_ENVELOPE_H */
