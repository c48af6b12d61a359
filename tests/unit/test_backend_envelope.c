/*
 * test_backend_envelope.c: the backend's parser of command-stream entries
 * (backend/engine/envelope.c): a good entry, each missing field, bad versions,
 * oversized or ill-formed key/op, numbers that are not plain decimals,
 * role/uid mismatches, and the gw/req usability flags that let a broken
 * command still be answered; the optional request id.
 */

#include <string.h>

#include "unit.h"
#include "chat_protocol.h"
#include "envelope.h"


#define N_FIELDS 9

static const char  *good_names[N_FIELDS] = {
    "v", "key", "op", "uid", "role", "gw", "req", "ts", "body"
};

static const char  *good_values[N_FIELDS] = {
    "1", "g7:42", "auth.register", "0", "", "chat:gw:{7}", "42",
    "1700000000000", "{\"email\":\"a@b\"}"
};

static chat_field_t  fields[N_FIELDS + 2];
static size_t        nfields;


/* Builds the good entry; then tests poke at fields[] and nfields. */
static void
reset(void)
{
    size_t  i;

    for (i = 0; i < N_FIELDS; i++) {
        fields[i].name = good_names[i];
        fields[i].name_len = strlen(good_names[i]);
        fields[i].value = good_values[i];
        fields[i].value_len = strlen(good_values[i]);
    }

    nfields = N_FIELDS;
}


static void
set(const char *name, const char *value)
{
    size_t  i;

    for (i = 0; i < nfields; i++) {
        if (strcmp(fields[i].name, name) == 0) {
            fields[i].value = value;
            fields[i].value_len = strlen(value);
            return;
        }
    }
}


static void
drop(const char *name)
{
    size_t  i;

    for (i = 0; i < nfields; i++) {
        if (strcmp(fields[i].name, name) == 0) {
            fields[i] = fields[--nfields];
            return;
        }
    }
}


static int
parse(chat_cmd_t *cmd)
{
    return chat_cmd_parse(cmd, fields, nfields);
}


static void
test_good_entry(void)
{
    chat_cmd_t  cmd;

    reset();
    CHECK(parse(&cmd) == 0);
    CHECK(cmd.key_len == 5 && memcmp(cmd.key, "g7:42", 5) == 0);
    CHECK(cmd.op_len == 13 && memcmp(cmd.op, "auth.register", 13) == 0);
    CHECK(cmd.uid == 0);
    CHECK(cmd.role_len == 0);
    CHECK(cmd.gw_len == 11 && cmd.gw_ok);
    CHECK(cmd.req_id == 42 && cmd.req_ok);
    CHECK(cmd.req_len == 2 && memcmp(cmd.req, "42", 2) == 0);
    CHECK(cmd.ts == 1700000000000LL);
    CHECK(cmd.body_len == strlen(good_values[8]));
}


static void
test_authenticated_entry(void)
{
    chat_cmd_t  cmd;

    reset();
    set("uid", "9223372036854775807");
    set("role", "admin");
    CHECK(parse(&cmd) == 0);
    CHECK(cmd.uid == INT64_MAX);

    set("role", "user");
    CHECK(parse(&cmd) == 0);
}


static void
test_field_order_and_unknown_fields(void)
{
    chat_cmd_t    cmd;
    chat_field_t  tmp;

    reset();
    tmp = fields[0];
    fields[0] = fields[8];
    fields[8] = tmp;
    fields[nfields].name = "future";
    fields[nfields].name_len = 6;
    fields[nfields].value = "x";
    fields[nfields].value_len = 1;
    nfields++;

    CHECK(parse(&cmd) == 0);
}


static void
test_each_missing_field(void)
{
    size_t      i;
    chat_cmd_t  cmd;

    for (i = 0; i < N_FIELDS; i++) {
        reset();
        drop(good_names[i]);
        CHECK(parse(&cmd) == -1);
        CHECK(strstr(cmd.error, "missing field") != NULL);
        CHECK(strstr(cmd.error, good_names[i]) != NULL);
    }
}


static void
test_repeated_field(void)
{
    chat_cmd_t  cmd;

    reset();
    fields[nfields++] = fields[1];
    CHECK(parse(&cmd) == -1);
    CHECK(strstr(cmd.error, "repeated") != NULL);
}


static void
test_bad_version(void)
{
    chat_cmd_t  cmd;

    reset();
    set("v", "2");
    CHECK(parse(&cmd) == -1);
    CHECK(strstr(cmd.error, "version") != NULL);

    set("v", "");
    CHECK(parse(&cmd) == -1);

    set("v", "10");
    CHECK(parse(&cmd) == -1);
}


static void
test_key_limits(void)
{
    char        key[CHAT_MAX_KEY_LEN + 2];
    chat_cmd_t  cmd;

    reset();
    memset(key, 'k', sizeof(key));
    key[CHAT_MAX_KEY_LEN] = '\0';
    set("key", key);
    CHECK(parse(&cmd) == 0);

    key[CHAT_MAX_KEY_LEN] = 'k';
    key[CHAT_MAX_KEY_LEN + 1] = '\0';
    set("key", key);
    CHECK(parse(&cmd) == -1);
    CHECK(strstr(cmd.error, "key") != NULL);

    set("key", "");
    CHECK(parse(&cmd) == -1);

    set("key", "a\tb");
    CHECK(parse(&cmd) == -1);

    set("key", "u1:\xc3\x28");          /* broken UTF-8 */
    CHECK(parse(&cmd) == -1);

    set("key", "u1:caf\xc3\xa9");       /* fine UTF-8 */
    CHECK(parse(&cmd) == 0);
}


static void
test_op_limits(void)
{
    char        op[CHAT_MAX_OP_LEN + 2];
    chat_cmd_t  cmd;

    reset();
    memset(op, 'o', sizeof(op));
    op[CHAT_MAX_OP_LEN] = '\0';
    set("op", op);
    CHECK(parse(&cmd) == 0);

    op[CHAT_MAX_OP_LEN] = 'o';
    op[CHAT_MAX_OP_LEN + 1] = '\0';
    set("op", op);
    CHECK(parse(&cmd) == -1);
    CHECK(strstr(cmd.error, "op") != NULL);

    set("op", "");
    CHECK(parse(&cmd) == -1);

    set("op", "Auth.Register");
    CHECK(parse(&cmd) == -1);

    set("op", "auth register");
    CHECK(parse(&cmd) == -1);
}


static void
test_numbers(void)
{
    size_t       i, j;
    chat_cmd_t   cmd;
    const char  *numeric[] = { "uid", "req", "ts" };
    const char  *bad[] = {
        "", "abc", "-1", "+1", "01", "1.5", " 1", "1 ", "0x10",
        "99999999999999999999999"
    };

    for (i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++) {
        for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
            reset();
            set(numeric[i], bad[j]);
            CHECK(parse(&cmd) == -1);
        }
    }

    /* uid must fit int64_t; req may use all of uint64_t */
    reset();
    set("uid", "9223372036854775808");
    set("role", "user");
    CHECK(parse(&cmd) == -1);

    reset();
    set("req", "18446744073709551615");
    CHECK(parse(&cmd) == 0);
    CHECK(cmd.req_id == UINT64_MAX);

    set("req", "18446744073709551616");
    CHECK(parse(&cmd) == -1);
}


static void
test_role_must_fit_uid(void)
{
    chat_cmd_t  cmd;

    reset();
    set("role", "user");                /* anonymous with a role */
    CHECK(parse(&cmd) == -1);

    reset();
    set("uid", "5");                    /* authenticated without one */
    CHECK(parse(&cmd) == -1);

    set("role", "root");
    CHECK(parse(&cmd) == -1);
}


static void
test_gw_and_req_usability(void)
{
    chat_cmd_t  cmd;

    /* broken command, usable address: can be answered */
    reset();
    set("v", "9");
    CHECK(parse(&cmd) == -1);
    CHECK(cmd.gw_ok && cmd.req_ok);
    CHECK(cmd.gw_len == 11 && cmd.req_id == 42);

    /* gw must be a reply stream key */
    reset();
    set("gw", "chat:cmd:{0}");
    CHECK(parse(&cmd) == -1);
    CHECK(!cmd.gw_ok && cmd.req_ok);

    set("gw", "chat:gw:{}");
    CHECK(parse(&cmd) == -1);
    CHECK(!cmd.gw_ok);

    set("gw", "chat:gw:{a b}");
    CHECK(parse(&cmd) == -1);

    reset();
    set("req", "x");
    CHECK(parse(&cmd) == -1);
    CHECK(cmd.gw_ok && !cmd.req_ok);

    reset();
    drop("req");
    drop("gw");
    CHECK(parse(&cmd) == -1);
    CHECK(!cmd.gw_ok && !cmd.req_ok);
}


static void
test_nul_bytes(void)
{
    chat_cmd_t  cmd;

    reset();
    fields[2].value = "auth\0.x";
    fields[2].value_len = 7;
    CHECK(parse(&cmd) == -1);
    CHECK(strstr(cmd.error, "NUL") != NULL);

    reset();
    fields[8].value = "{}\0";
    fields[8].value_len = 3;
    CHECK(parse(&cmd) == -1);
}


static void
test_empty_body_allowed(void)
{
    chat_cmd_t  cmd;

    reset();
    set("body", "");
    CHECK(parse(&cmd) == 0);
    CHECK(cmd.body_len == 0);
}


/* rid is optional; when present it is short and safe to print in a log */
static void
test_request_id(void)
{
    chat_cmd_t  cmd;

    reset();
    CHECK(parse(&cmd) == 0);
    CHECK(cmd.rid == NULL && cmd.rid_len == 0);

    fields[nfields].name = "rid";
    fields[nfields].name_len = 3;
    fields[nfields].value = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    fields[nfields].value_len = 32;
    nfields++;
    CHECK(parse(&cmd) == 0);
    CHECK(cmd.rid_len == 32 && memcmp(cmd.rid, "0f1e2d3c", 8) == 0);

    set("rid", "abc def");
    CHECK(parse(&cmd) == -1);
    CHECK(strstr(cmd.error, "\"rid\"") != NULL);

    set("rid", "a\nb");
    CHECK(parse(&cmd) == -1);

    set("rid", "0123456789012345678901234567890123456789012345678901234567890123");
    CHECK(parse(&cmd) == 0);
    set("rid", "01234567890123456789012345678901234567890123456789012345678901234");
    CHECK(parse(&cmd) == -1);
}


int
main(void)
{
    UNIT_RUN(test_good_entry);
    UNIT_RUN(test_authenticated_entry);
    UNIT_RUN(test_field_order_and_unknown_fields);
    UNIT_RUN(test_each_missing_field);
    UNIT_RUN(test_repeated_field);
    UNIT_RUN(test_bad_version);
    UNIT_RUN(test_key_limits);
    UNIT_RUN(test_op_limits);
    UNIT_RUN(test_numbers);
    UNIT_RUN(test_role_must_fit_uid);
    UNIT_RUN(test_gw_and_req_usability);
    UNIT_RUN(test_nul_bytes);
    UNIT_RUN(test_empty_body_allowed);
    UNIT_RUN(test_request_id);

    return UNIT_SUMMARY();
}
