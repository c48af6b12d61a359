/*
 * chat_envelope.c: the one place a command entry is laid out.  The edge
 * fills a chat_envelope_t from the verified request and this file turns it
 * into XADD arguments; the backend's parser reads the same field names from
 * chat_protocol.h.  Validation here is the edge's last line: a malformed
 * envelope never reaches Redis.
 */

#include <stdio.h>
#include <string.h>

#include "chat_envelope.h"
#include "chat_protocol.h"


static int
chat_envelope_op_valid(const chat_bytes_t *op)
{
    size_t  i;
    char    c;

    if (op->len == 0 || op->len > CHAT_MAX_OP_LEN) {
        return 0;
    }

    for (i = 0; i < op->len; i++) {
        c = op->data[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.'
              || c == '_'))
        {
            return 0;
        }
    }

    return 1;
}


static int
chat_envelope_role_valid(const chat_bytes_t *role)
{
    return role->len == 0 || chat_role_name(role->data, role->len) != NULL;
}


/* a request id goes into log lines as it is: nothing that could break one */
int
chat_envelope_rid_valid(const char *rid, size_t len)
{
    size_t  i;
    char    c;

    if (len > CHAT_MAX_RID_LEN) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = rid[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == ':' || c == '-'
              || c == '_'))
        {
            return 0;
        }
    }

    return 1;
}


int
chat_envelope_argv(const chat_envelope_t *env, const char *stream,
    const char *maxlen, chat_envelope_numbers_t *numbers,
    const char **argv, size_t *argvlen)
{
    int  n;

    if (env->key.len == 0 || env->key.len > CHAT_MAX_KEY_LEN
        || !chat_envelope_op_valid(&env->op)
        || !chat_envelope_role_valid(&env->role)
        || env->gw.len == 0 || env->body.len == 0 || env->uid < 0
        || !chat_envelope_rid_valid(env->rid.data, env->rid.len)
        || (env->uid == 0) != (env->role.len == 0))
    {
        return -1;
    }

    snprintf(numbers->uid, sizeof(numbers->uid), "%lld",
             (long long) env->uid);
    snprintf(numbers->req, sizeof(numbers->req), "%llu",
             (unsigned long long) env->req);
    snprintf(numbers->ts, sizeof(numbers->ts), "%lld", (long long) env->ts);

    n = 0;

#define CHAT_ARG(s, l)  do { argv[n] = (s); argvlen[n] = (l); n++; } while (0)
#define CHAT_LIT(s)     CHAT_ARG(s, sizeof(s) - 1)
#define CHAT_CSTR(s)    CHAT_ARG(s, strlen(s))
#define CHAT_BYTES(b)   CHAT_ARG((b).data, (b).len)

    CHAT_LIT("XADD");
    CHAT_CSTR(stream);
    CHAT_LIT("MAXLEN");
    CHAT_LIT("~");
    CHAT_CSTR(maxlen);
    CHAT_LIT("*");
    CHAT_LIT(CHAT_F_VERSION);   CHAT_LIT(CHAT_PROTOCOL_VERSION);
    CHAT_LIT(CHAT_F_KEY);       CHAT_BYTES(env->key);
    CHAT_LIT(CHAT_F_OP);        CHAT_BYTES(env->op);
    CHAT_LIT(CHAT_F_UID);       CHAT_CSTR(numbers->uid);
    CHAT_LIT(CHAT_F_ROLE);      CHAT_BYTES(env->role);
    CHAT_LIT(CHAT_F_GW);        CHAT_BYTES(env->gw);
    CHAT_LIT(CHAT_F_REQ);       CHAT_CSTR(numbers->req);
    CHAT_LIT(CHAT_F_TS);        CHAT_CSTR(numbers->ts);
    CHAT_LIT(CHAT_F_BODY);      CHAT_BYTES(env->body);

    if (env->rid.len) {
        CHAT_LIT(CHAT_F_RID);   CHAT_BYTES(env->rid);
    }

#undef CHAT_ARG
#undef CHAT_LIT
#undef CHAT_CSTR
#undef CHAT_BYTES

    return n;
}


/* FNV-1a: cheap, well spread, and the same on every host */
unsigned
chat_envelope_shard(const char *key, size_t len, unsigned shards)
{
    size_t    i;
    uint32_t  h;

    if (shards <= 1) {
        return 0;
    }

    h = 2166136261u;
    for (i = 0; i < len; i++) {
        h ^= (unsigned char) key[i];
        h *= 16777619u;
    }

    return h % shards;
}
