/*
 * envelope.c: turns the field/value pairs of one command-stream entry into
 * a checked chat_cmd_t.
 *
 * The edge validates everything before it XADDs, so a malformed entry here
 * means a bug or a foreign writer, never a user mistake.  Such an entry is
 * a permanent failure: redelivering it cannot help, so the worker sends it
 * straight to the dead-letter stream.  To answer the waiting client even
 * then, the parser reports separately whether gw and req were usable.
 *
 * How it works: one pass files each known field into a slot (a repeated
 * field is an error, an unknown one is skipped), then the slots are checked
 * in the order of chat_protocol.h so the first problem is the one reported.
 * Numbers are strict: decimal digits only, no sign, no leading zeros, no
 * overflow.  Every value must be free of NUL bytes.
 *
 * What it does not do: parse the JSON body (the operation does that, since
 * a bad body is the client's fault and gets a stored 400) or look at the
 * network.  No allocation: the result borrows the caller's strings.
 */

#include <stdio.h>
#include <string.h>

#include "chat_envelope.h"
#include "chat_protocol.h"
#include "chat_utf8.h"
#include "envelope.h"
#include "validate.h"


/* the required fields, then the optional ones */
enum {
    F_VERSION = 0, F_KEY, F_OP, F_UID, F_ROLE, F_GW, F_REQ, F_TS, F_BODY,
    F_RID, F_COUNT
};

#define F_REQUIRED  F_RID

static const char *chat_cmd_field_names[F_COUNT] = {
    CHAT_F_VERSION, CHAT_F_KEY, CHAT_F_OP, CHAT_F_UID, CHAT_F_ROLE,
    CHAT_F_GW, CHAT_F_REQ, CHAT_F_TS, CHAT_F_BODY, CHAT_F_RID
};


/* Strict decimal: digits only, no sign, no leading zero, at most max. */
static int
chat_cmd_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    size_t    i;
    uint64_t  v, d;

    if (len == 0 || len > 20 || (len > 1 && s[0] == '0')) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        d = (uint64_t) (s[i] - '0');
        if (v > (max - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }

    *out = v;
    return 0;
}


static int
chat_cmd_gw_valid(const char *gw, size_t len)
{
    size_t  i, plen;

    plen = sizeof(CHAT_GW_STREAM_PREFIX) - 1;

    if (len <= plen + 1 || len > CHAT_MAX_GW_LEN
        || memcmp(gw, CHAT_GW_STREAM_PREFIX, plen) != 0
        || gw[len - 1] != '}')
    {
        return 0;
    }

    for (i = plen; i < len - 1; i++) {
        if (gw[i] <= 0x20 || gw[i] >= 0x7f || gw[i] == '{' || gw[i] == '}') {
            return 0;
        }
    }

    return 1;
}


static int
chat_cmd_op_valid(const char *op, size_t len)
{
    size_t  i;
    char    c;

    for (i = 0; i < len; i++) {
        c = op[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.'
              || c == '_'))
        {
            return 0;
        }
    }

    return 1;
}


static int
chat_cmd_key_valid(const char *key, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if ((unsigned char) key[i] < 0x20 || key[i] == 0x7f) {
            return 0;
        }
    }

    return chat_utf8_valid((const unsigned char *) key, len);
}


static int
chat_cmd_fail(chat_cmd_t *cmd, const char *what, const char *field)
{
    snprintf(cmd->error, sizeof(cmd->error), "%s \"%s\"", what, field);
    return -1;
}


int
chat_cmd_parse(chat_cmd_t *cmd, const chat_field_t *fields, size_t n)
{
    size_t               i, j;
    uint64_t             v;
    const chat_field_t  *slot[F_COUNT];

    memset(cmd, 0, sizeof(*cmd));
    memset(slot, 0, sizeof(slot));

    for (i = 0; i < n; i++) {
        for (j = 0; j < F_COUNT; j++) {
            if (fields[i].name_len == strlen(chat_cmd_field_names[j])
                && memcmp(fields[i].name, chat_cmd_field_names[j],
                          fields[i].name_len) == 0)
            {
                break;
            }
        }

        if (j == F_COUNT) {
            continue;           /* unknown field: forward compatible */
        }

        if (slot[j] != NULL) {
            return chat_cmd_fail(cmd, "repeated field",
                                 chat_cmd_field_names[j]);
        }

        if (memchr(fields[i].value, '\0', fields[i].value_len) != NULL) {
            return chat_cmd_fail(cmd, "NUL byte in field",
                                 chat_cmd_field_names[j]);
        }

        slot[j] = &fields[i];
    }

    /* first the reply address, so even a broken command can be answered */

    if (slot[F_GW] != NULL
        && chat_cmd_gw_valid(slot[F_GW]->value, slot[F_GW]->value_len))
    {
        cmd->gw = slot[F_GW]->value;
        cmd->gw_len = slot[F_GW]->value_len;
        cmd->gw_ok = 1;
    }

    if (slot[F_REQ] != NULL
        && chat_cmd_parse_uint(slot[F_REQ]->value, slot[F_REQ]->value_len,
                               UINT64_MAX, &cmd->req_id) == 0)
    {
        cmd->req = slot[F_REQ]->value;
        cmd->req_len = slot[F_REQ]->value_len;
        cmd->req_ok = 1;
    }

    for (j = 0; j < F_REQUIRED; j++) {
        if (slot[j] == NULL) {
            return chat_cmd_fail(cmd, "missing field", chat_cmd_field_names[j]);
        }
    }

    if (slot[F_VERSION]->value_len != sizeof(CHAT_PROTOCOL_VERSION) - 1
        || memcmp(slot[F_VERSION]->value, CHAT_PROTOCOL_VERSION,
                  slot[F_VERSION]->value_len) != 0)
    {
        return chat_cmd_fail(cmd, "unsupported protocol version in field",
                             CHAT_F_VERSION);
    }

    cmd->key = slot[F_KEY]->value;
    cmd->key_len = slot[F_KEY]->value_len;

    if (cmd->key_len == 0 || cmd->key_len > CHAT_MAX_KEY_LEN) {
        return chat_cmd_fail(cmd, "empty or oversized field", CHAT_F_KEY);
    }

    if (!chat_cmd_key_valid(cmd->key, cmd->key_len)) {
        return chat_cmd_fail(cmd, "control character or bad UTF-8 in field",
                             CHAT_F_KEY);
    }

    cmd->op = slot[F_OP]->value;
    cmd->op_len = slot[F_OP]->value_len;

    if (cmd->op_len == 0 || cmd->op_len > CHAT_MAX_OP_LEN) {
        return chat_cmd_fail(cmd, "empty or oversized field", CHAT_F_OP);
    }

    if (!chat_cmd_op_valid(cmd->op, cmd->op_len)) {
        return chat_cmd_fail(cmd, "character outside [a-z0-9._] in field",
                             CHAT_F_OP);
    }

    if (chat_cmd_parse_uint(slot[F_UID]->value, slot[F_UID]->value_len,
                            INT64_MAX, &v) != 0)
    {
        return chat_cmd_fail(cmd, "not a decimal number in field", CHAT_F_UID);
    }
    cmd->uid = (int64_t) v;

    cmd->role = slot[F_ROLE]->value;
    cmd->role_len = slot[F_ROLE]->value_len;

    if (cmd->uid == 0
        ? cmd->role_len != 0
        : chat_role_name(cmd->role, cmd->role_len) == NULL)
    {
        return chat_cmd_fail(cmd, "role does not fit uid in field",
                             CHAT_F_ROLE);
    }

    if (!cmd->gw_ok) {
        return chat_cmd_fail(cmd, "not a reply stream key in field", CHAT_F_GW);
    }

    if (!cmd->req_ok) {
        return chat_cmd_fail(cmd, "not a decimal number in field", CHAT_F_REQ);
    }

    if (chat_cmd_parse_uint(slot[F_TS]->value, slot[F_TS]->value_len,
                            INT64_MAX, &v) != 0)
    {
        return chat_cmd_fail(cmd, "not a decimal number in field", CHAT_F_TS);
    }
    cmd->ts = (int64_t) v;

    cmd->body = slot[F_BODY]->value;
    cmd->body_len = slot[F_BODY]->value_len;

    if (slot[F_RID] != NULL) {
        if (!chat_envelope_rid_valid(slot[F_RID]->value,
                                     slot[F_RID]->value_len))
        {
            return chat_cmd_fail(cmd, "oversized or unsafe characters in "
                                 "field", CHAT_F_RID);
        }

        cmd->rid = slot[F_RID]->value;
        cmd->rid_len = slot[F_RID]->value_len;
    }

    return 0;
}
