/*
 * fuzz_envelope.c: libFuzzer harness for the command envelope, both ends
 * of the bus: the edge's builder (protocol/chat_envelope.c, the
 * XADD arguments) and the workers' parser (backend/engine/envelope.c, pure code).
 *
 * An input is lines "name=value" separated by '\n' (a line without '='
 * is a name with an empty value); values may hold any other byte, NUL
 * included.  Three things are done with it:
 *
 *   1. The lines, as they are, are a stream entry for chat_cmd_parse(),
 *      each name and value in a buffer of exactly its size (a read past one
 *      is an ASan report).  Whether it is accepted must be what a
 *      reference written here from chat_protocol.h and envelope.h says;
 *      an accepted command must point at exactly the right field values
 *      and carry their numbers; a refused one must say why, and its gw_ok
 *      and req_ok flags must say whether gw and req were usable.
 *
 *   2. An envelope is built from the first line of each name (uid, req and
 *      ts read leniently with strtoll/strtoull, so negative and saturated
 *      numbers come through) and given to chat_envelope_argv().  It must
 *      refuse exactly what its contract says; what it builds must parse on
 *      the backend exactly when the reference says, and give back every
 *      field unchanged.
 *
 *   3. A command the backend accepted in 1, built again by the edge and
 *      parsed again, must come back identical (the edge refuses an empty
 *      body, which the backend allows).
 *
 * chat_envelope_shard() is checked on the way: in range and stable.  Any
 * breach is abort().
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_envelope.h"
#include "chat_protocol.h"
#include "chat_utf8.h"
#include "envelope.h"


#define MAX_LINES  64

#define STREAM  CHAT_CMD_STREAM_PREFIX "chat:{3}"
#define MAXLEN  "100000"

/* the required fields, then the optional request id */
enum {
    F_V = 0, F_KEY, F_OP, F_UID, F_ROLE, F_GW, F_REQ, F_TS, F_BODY, F_RID,
    F_N
};

#define F_REQUIRED  F_RID

static const char  *known[F_N] = {
    CHAT_F_VERSION, CHAT_F_KEY, CHAT_F_OP, CHAT_F_UID, CHAT_F_ROLE,
    CHAT_F_GW, CHAT_F_REQ, CHAT_F_TS, CHAT_F_BODY, CHAT_F_RID
};


#define fail(what)  fail_at(__LINE__, what)

static void
fail_at(int line, const char *what)
{
    fprintf(stderr, "fuzz_envelope.c:%d: %s\n", line, what);
    abort();
}


/* ---------------------------------------------------------------- */
/* fields in buffers of their own                                    */


typedef struct {
    chat_field_t  f[MAX_LINES];
    size_t        n;
} entry_t;


static const char *
copy_exact(const void *p, size_t len)
{
    char  *c;

    c = malloc(len ? len : 1);
    if (c == NULL) {
        fail("out of memory");
    }
    if (len > 0) {
        memcpy(c, p, len);      /* an empty argv slot may be NULL */
    }
    return c;
}


static void
entry_add(entry_t *e, const char *name, size_t name_len, const char *value,
    size_t value_len)
{
    if (e->n == MAX_LINES) {
        return;
    }
    e->f[e->n].name = copy_exact(name, name_len);
    e->f[e->n].name_len = name_len;
    e->f[e->n].value = copy_exact(value, value_len);
    e->f[e->n].value_len = value_len;
    e->n++;
}


static void
entry_free(entry_t *e)
{
    size_t  i;

    for (i = 0; i < e->n; i++) {
        free((void *) e->f[i].name);
        free((void *) e->f[i].value);
    }
    e->n = 0;
}


static int
known_index(const chat_field_t *f)
{
    int  j;

    for (j = 0; j < F_N; j++) {
        if (f->name_len == strlen(known[j])
            && memcmp(f->name, known[j], f->name_len) == 0)
        {
            return j;
        }
    }
    return -1;
}


/* ---------------------------------------------------------------- */
/* the reference: what envelope.h says the parser accepts            */


/* digits, no sign, no leading zero, not above max (compared as text) */
static int
ref_decimal(const char *s, size_t len, const char *max)
{
    size_t  i, mlen;

    mlen = strlen(max);

    if (len == 0 || len > mlen || (len > 1 && s[0] == '0')) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return len < mlen || memcmp(s, max, len) <= 0;
}


static uint64_t
ref_number(const char *s, size_t len)
{
    size_t    i;
    uint64_t  v;

    v = 0;
    for (i = 0; i < len; i++) {
        v = v * 10 + (uint64_t) (s[i] - '0');
    }
    return v;
}


static int
ref_is(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}


static int
ref_op(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > CHAT_MAX_OP_LEN) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (strchr("abcdefghijklmnopqrstuvwxyz0123456789._", s[i]) == NULL
            || s[i] == '\0')
        {
            return 0;
        }
    }
    return 1;
}


/* a request id: at most CHAT_MAX_RID_LEN of [A-Za-z0-9._:-] */
static int
ref_rid(const char *s, size_t len)
{
    size_t  i;

    if (len > CHAT_MAX_RID_LEN) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (s[i] == '\0'
            || strchr("abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-", s[i])
               == NULL)
        {
            return 0;
        }
    }
    return 1;
}


/* a reply stream key: the prefix, one or more visible ASCII bytes other
 * than braces, and "}" */
static int
ref_gw(const char *s, size_t len)
{
    size_t         i, plen;
    unsigned char  c;

    plen = strlen(CHAT_GW_STREAM_PREFIX);

    if (len < plen + 2 || len > CHAT_MAX_GW_LEN
        || memcmp(s, CHAT_GW_STREAM_PREFIX, plen) != 0 || s[len - 1] != '}')
    {
        return 0;
    }
    for (i = plen; i < len - 1; i++) {
        c = (unsigned char) s[i];
        if (c < 0x21 || c > 0x7e || c == '{' || c == '}') {
            return 0;
        }
    }
    return 1;
}


/* UTF-8 (chat_utf8_valid, itself checked against a reference by
 * fuzz_utf8.c) without control characters, 1 .. CHAT_MAX_KEY_LEN bytes */
static int
ref_key(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > CHAT_MAX_KEY_LEN) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }
    return chat_utf8_valid((const unsigned char *) s, len);
}


typedef struct {
    const chat_field_t  *slot[F_N];
    int                  early;      /* a repeated field or a NUL byte */
    int                  accept;
    int                  gw_ok;
    int                  req_ok;
} ref_t;


static void
ref_parse(const entry_t *e, ref_t *r)
{
    int                  j;
    size_t               i;
    uint64_t             uid;
    const chat_field_t  *f;

    memset(r, 0, sizeof(*r));

    for (i = 0; i < e->n; i++) {
        j = known_index(&e->f[i]);
        if (j < 0) {
            continue;
        }
        if (r->slot[j] != NULL
            || memchr(e->f[i].value, '\0', e->f[i].value_len) != NULL)
        {
            r->early = 1;
        }
        if (r->slot[j] == NULL) {
            r->slot[j] = &e->f[i];
        }
    }

    if (r->early) {
        return;
    }

    r->gw_ok = r->slot[F_GW] != NULL
               && ref_gw(r->slot[F_GW]->value, r->slot[F_GW]->value_len);
    r->req_ok = r->slot[F_REQ] != NULL
                && ref_decimal(r->slot[F_REQ]->value,
                               r->slot[F_REQ]->value_len,
                               "18446744073709551615");

    for (j = 0; j < F_REQUIRED; j++) {
        if (r->slot[j] == NULL) {
            return;
        }
    }

    if (r->slot[F_RID] != NULL
        && !ref_rid(r->slot[F_RID]->value, r->slot[F_RID]->value_len))
    {
        return;
    }

    if (!ref_is(r->slot[F_V]->value, r->slot[F_V]->value_len,
                CHAT_PROTOCOL_VERSION)
        || !ref_key(r->slot[F_KEY]->value, r->slot[F_KEY]->value_len)
        || !ref_op(r->slot[F_OP]->value, r->slot[F_OP]->value_len)
        || !ref_decimal(r->slot[F_UID]->value, r->slot[F_UID]->value_len,
                        "9223372036854775807")
        || !r->gw_ok || !r->req_ok
        || !ref_decimal(r->slot[F_TS]->value, r->slot[F_TS]->value_len,
                        "9223372036854775807"))
    {
        return;
    }

    f = r->slot[F_ROLE];
    uid = ref_number(r->slot[F_UID]->value, r->slot[F_UID]->value_len);

    if (uid == 0 ? f->value_len != 0
                 : !ref_is(f->value, f->value_len, "user")
                   && !ref_is(f->value, f->value_len, "admin")
                   && !ref_is(f->value, f->value_len, "carrier"))
    {
        return;
    }

    r->accept = 1;
}


/* ---------------------------------------------------------------- */
/* the parser under test                                             */


static int
same_field(const char *p, size_t len, const chat_field_t *f)
{
    return p == f->value && len == f->value_len;
}


/* parses e, checks the answer against the reference; 0 when accepted */
static int
parse_checked(const entry_t *e, chat_cmd_t *cmd)
{
    int    rc;
    ref_t  r;

    ref_parse(e, &r);

    memset(cmd, 0xa5, sizeof(*cmd));
    rc = chat_cmd_parse(cmd, e->f, e->n);

    if ((rc == 0) != r.accept) {
        fprintf(stderr, "parser %s, reference %s (%s)\n",
                rc == 0 ? "accepts" : "refuses",
                r.accept ? "accepts" : "refuses",
                rc == 0 ? "" : cmd->error);
        fail("the parser and the reference disagree");
    }

    if (memchr(cmd->error, '\0', sizeof(cmd->error)) == NULL) {
        fail("error not NUL-terminated");
    }

    if (cmd->gw_ok != (unsigned) r.gw_ok || cmd->req_ok != (unsigned) r.req_ok)
    {
        fail("gw_ok or req_ok wrong");
    }

    if (cmd->gw_ok
        && (!same_field(cmd->gw, cmd->gw_len, r.slot[F_GW])
            || !r.gw_ok))
    {
        fail("gw_ok with gw not the gw field");
    }

    if (cmd->req_ok
        && (!same_field(cmd->req, cmd->req_len, r.slot[F_REQ])
            || cmd->req_id != ref_number(cmd->req, cmd->req_len)))
    {
        fail("req_ok with req not the req field or a wrong req_id");
    }

    if (rc != 0) {
        if (cmd->error[0] == '\0') {
            fail("refused without saying why");
        }
        return -1;
    }

    if (cmd->error[0] != '\0') {
        fail("accepted with an error");
    }

    if (!same_field(cmd->key, cmd->key_len, r.slot[F_KEY])
        || !same_field(cmd->op, cmd->op_len, r.slot[F_OP])
        || !same_field(cmd->role, cmd->role_len, r.slot[F_ROLE])
        || !same_field(cmd->body, cmd->body_len, r.slot[F_BODY])
        || (r.slot[F_RID] != NULL
            ? !same_field(cmd->rid, cmd->rid_len, r.slot[F_RID])
            : cmd->rid_len != 0)
        || (uint64_t) cmd->uid != ref_number(r.slot[F_UID]->value,
                                             r.slot[F_UID]->value_len)
        || (uint64_t) cmd->ts != ref_number(r.slot[F_TS]->value,
                                            r.slot[F_TS]->value_len))
    {
        fail("an accepted command does not carry its fields");
    }

    return 0;
}


/* ---------------------------------------------------------------- */
/* the edge's builder, and what the backend makes of its output       */


static int
edge_valid(const chat_envelope_t *env)
{
    return env->key.len > 0 && env->key.len <= CHAT_MAX_KEY_LEN
           && ref_op(env->op.data, env->op.len)
           && (env->role.len == 0
               || ref_is(env->role.data, env->role.len, "user")
               || ref_is(env->role.data, env->role.len, "admin")
               || ref_is(env->role.data, env->role.len, "carrier"))
           && env->gw.len > 0 && env->body.len > 0 && env->uid >= 0
           && (env->uid == 0) == (env->role.len == 0)
           && ref_rid(env->rid.data, env->rid.len);
}


static int
bytes_equal(const chat_bytes_t *b, const char *p, size_t len)
{
    return b->len == len && (len == 0 || memcmp(b->data, p, len) == 0);
}


/*
 * Builds env into XADD arguments and parses the entry on the backend.
 * Returns 0 with *out filled when the backend accepted it.  fields holds
 * the entry so out's pointers stay valid; the caller frees it.
 */
static int
edge_to_backend(const chat_envelope_t *env, entry_t *fields, chat_cmd_t *out)
{
    int                       argc, i;
    size_t                    argvlen[CHAT_ENVELOPE_ARGC];
    const char               *argv[CHAT_ENVELOPE_ARGC];
    chat_envelope_numbers_t   numbers;
    static const char        *head[6] = {
        "XADD", STREAM, "MAXLEN", "~", MAXLEN, "*"
    };

    argc = chat_envelope_argv(env, STREAM, MAXLEN, &numbers, argv, argvlen);

    if (argc != (edge_valid(env)
                 ? CHAT_ENVELOPE_ARGC - (env->rid.len ? 0 : 2) : -1))
    {
        fail("the edge builder refused a valid envelope or built a bad one");
    }

    if (argc < 0) {
        return -1;
    }

    for (i = 0; i < 6; i++) {
        if (argvlen[i] != strlen(head[i])
            || memcmp(argv[i], head[i], argvlen[i]) != 0)
        {
            fail("XADD arguments do not start as they should");
        }
    }

    fields->n = 0;
    for (i = 6; i + 1 < argc; i += 2) {
        entry_add(fields, argv[i], argvlen[i], argv[i + 1], argvlen[i + 1]);
    }

    if (parse_checked(fields, out) != 0) {
        return -1;
    }

    if (!bytes_equal(&env->key, out->key, out->key_len)
        || !bytes_equal(&env->op, out->op, out->op_len)
        || !bytes_equal(&env->role, out->role, out->role_len)
        || !bytes_equal(&env->gw, out->gw, out->gw_len)
        || !bytes_equal(&env->body, out->body, out->body_len)
        || !bytes_equal(&env->rid, out->rid, out->rid_len)
        || env->uid != out->uid || env->req != out->req_id
        || env->ts != out->ts)
    {
        fail("a field changed between the edge and the backend");
    }

    return 0;
}


/* a NUL-terminated copy for strtoll and friends */
static char *
cstr(const chat_field_t *f)
{
    char  *s;

    s = malloc(f->value_len + 1);
    if (s == NULL) {
        fail("out of memory");
    }
    memcpy(s, f->value, f->value_len);
    s[f->value_len] = '\0';
    return s;
}


static void
envelope_from_lines(const entry_t *e, chat_envelope_t *env)
{
    int          j;
    char        *s;
    size_t       i;
    chat_bytes_t  *b;

    memset(env, 0, sizeof(*env));

    for (i = e->n; i-- > 0; ) {     /* backwards: the first one wins */
        j = known_index(&e->f[i]);
        b = NULL;

        switch (j) {
        case F_KEY:  b = &env->key;  break;
        case F_OP:   b = &env->op;   break;
        case F_ROLE: b = &env->role; break;
        case F_GW:   b = &env->gw;   break;
        case F_BODY: b = &env->body; break;
        case F_RID:  b = &env->rid;  break;

        case F_UID:
        case F_REQ:
        case F_TS:
            s = cstr(&e->f[i]);
            if (j == F_UID) {
                env->uid = strtoll(s, NULL, 10);
            } else if (j == F_REQ) {
                env->req = strtoull(s, NULL, 10);
            } else {
                env->ts = strtoll(s, NULL, 10);
            }
            free(s);
            break;

        default:
            break;
        }

        if (b != NULL) {
            b->data = e->f[i].value;
            b->len = e->f[i].value_len;
        }
    }
}


static void
check_shard(const chat_envelope_t *env)
{
    unsigned  shards, s;

    for (shards = 0; shards <= 17; shards += 1 + shards) {
        s = chat_envelope_shard(env->key.data, env->key.len, shards);
        if ((shards <= 1 ? s != 0 : s >= shards)
            || s != chat_envelope_shard(env->key.data, env->key.len, shards))
        {
            fail("shard out of range or not stable");
        }
    }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t            i, start, eq;
    entry_t           lines, built, again;
    chat_cmd_t        cmd, cmd2, cmd3;
    chat_envelope_t   env;

    lines.n = 0;
    built.n = 0;
    again.n = 0;

    /* "name=value" lines */
    for (start = 0; start < size; start = i + 1) {
        for (i = start; i < size && data[i] != '\n'; i++) {
            /* find the end of the line */
        }
        for (eq = start; eq < i && data[eq] != '='; eq++) {
            /* and the first '=' in it */
        }
        entry_add(&lines, (const char *) data + start, eq - start,
                  (const char *) data + (eq < i ? eq + 1 : i),
                  eq < i ? i - eq - 1 : 0);
    }

    /* 1: the lines as an entry */
    if (parse_checked(&lines, &cmd) == 0) {

        /* 3: what the backend accepted, through the edge and back */
        env.key.data = cmd.key;
        env.key.len = cmd.key_len;
        env.op.data = cmd.op;
        env.op.len = cmd.op_len;
        env.role.data = cmd.role;
        env.role.len = cmd.role_len;
        env.gw.data = cmd.gw;
        env.gw.len = cmd.gw_len;
        env.body.data = cmd.body;
        env.body.len = cmd.body_len;
        env.rid.data = cmd.rid;
        env.rid.len = cmd.rid_len;
        env.uid = cmd.uid;
        env.req = cmd.req_id;
        env.ts = cmd.ts;

        if (edge_to_backend(&env, &again, &cmd3) != 0) {
            if (cmd.body_len > 0) {
                fail("an accepted command does not survive edge and back");
            }
        }
        entry_free(&again);
    }

    /* 2: an envelope from the lines, through the edge to the backend */
    envelope_from_lines(&lines, &env);
    check_shard(&env);
    (void) edge_to_backend(&env, &built, &cmd2);

    entry_free(&built);
    entry_free(&lines);

    return 0;
}
