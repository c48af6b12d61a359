/*
 * test_backend_chat.c: the pure parts of the chat operations:
 * backend/chat/conv_input.c (integers, client message ids, text, titles, id
 * lists, sync cursors, limits, PostgreSQL's id lists), the workers' check
 * of a command body (chat_json.c as engine/ops.c calls it: \u0000)
 * and backend/engine/event.c (events, per-gateway routes; the online
 * freshness rule is protocol/chat_online.c, tests/unit/test_online.c).
 */

#include <stdlib.h>
#include <string.h>

#include "chat_json.h"
#include "chat_protocol.h"
#include "conv_input.h"
#include "event.h"
#include "unit.h"


static char  out[1024];


static int
int_of(const char *json, int64_t min, int64_t *v)
{
    int     rc;
    cJSON  *item;

    item = cJSON_Parse(json);
    rc = chat_json_integer(item, min, CHAT_INT_MAX, v);
    cJSON_Delete(item);

    return rc;
}


static void
test_integer(void)
{
    int64_t  v;

    CHECK(int_of("42", 1, &v) == 0 && v == 42);
    CHECK(int_of("0", 0, &v) == 0 && v == 0);
    CHECK(int_of("4.2e1", 1, &v) == 0 && v == 42);
    CHECK(int_of("9007199254740991", 1, &v) == 0
          && v == 9007199254740991LL);
    CHECK(int_of("0", 1, &v) != 0);
    CHECK(int_of("-1", 0, &v) != 0);
    CHECK(int_of("1.5", 0, &v) != 0);
    CHECK(int_of("9007199254740993", 1, &v) != 0);
    CHECK(int_of("1e300", 1, &v) != 0);
    CHECK(int_of("\"42\"", 1, &v) != 0);
    CHECK(int_of("null", 1, &v) != 0);
    CHECK(int_of("true", 1, &v) != 0);
    CHECK(chat_json_integer(NULL, 0, 10, &v) != 0);
}


static void
test_client_msg_id(void)
{
    char  id[70];

    CHECK(chat_client_msg_id_check("m1", 2) == NULL);
    CHECK(chat_client_msg_id_check("a-b_c.d:e/f!~", 13) == NULL);

    memset(id, 'x', sizeof(id));
    CHECK(chat_client_msg_id_check(id, 64) == NULL);
    CHECK(chat_client_msg_id_check(id, 65) != NULL);

    CHECK(chat_client_msg_id_check("", 0) != NULL);
    CHECK(chat_client_msg_id_check("a b", 3) != NULL);
    CHECK(chat_client_msg_id_check("a\tb", 3) != NULL);
    CHECK(chat_client_msg_id_check("a\x7f", 2) != NULL);
    CHECK(chat_client_msg_id_check("\xc3\xa9", 2) != NULL);
}


static void
test_text(void)
{
    char  *big;

    CHECK(chat_text_check("hi", 2) == NULL);
    CHECK(chat_text_check(" ", 1) == NULL);            /* never trimmed */
    CHECK(chat_text_check("line\nline\t", 10) == NULL);
    CHECK(chat_text_check("\xe2\x9c\x93", 3) == NULL);
    CHECK(chat_text_check("", 0) != NULL);
    CHECK(chat_text_check("a\0b", 3) != NULL);
    CHECK(chat_text_check("\xc3", 1) != NULL);
    CHECK(chat_text_check("\xed\xa0\x80", 3) != NULL);  /* surrogate */

    /* 4000 characters, counted as characters, not bytes */
    big = malloc(4001 * 4);
    memset(big, 'a', 4001);
    CHECK(chat_text_check(big, 4000) == NULL);
    CHECK(chat_text_check(big, 4001) != NULL);

    /* 4000 three-byte characters are 12000 bytes and still fine */
    for (int i = 0; i < 4001; i++) {
        memcpy(big + 3 * i, "\xe2\x82\xac", 3);
    }
    CHECK(chat_text_check(big, 3 * 4000) == NULL);
    CHECK(chat_text_check(big, 3 * 4001) != NULL);

    free(big);
}


#define TITLE(s)  chat_title_normalize(s, strlen(s), out, sizeof(out))

static void
test_title(void)
{
    char  t[900];

    CHECK(TITLE("Team") == NULL && strcmp(out, "Team") == 0);
    CHECK(TITLE("  Team \xc3\xa9 \n") == NULL
          && strcmp(out, "Team \xc3\xa9") == 0);
    CHECK(TITLE("") != NULL);
    CHECK(TITLE("   ") != NULL);
    CHECK(TITLE("a\x01" "b") != NULL);
    CHECK(TITLE("a\xc2\x85" "b") != NULL);              /* C1 control */
    CHECK(TITLE("\xff") != NULL);

    memset(t, 'x', 200);
    t[200] = '\0';
    CHECK(TITLE(t) == NULL);
    t[200] = 'x';
    t[201] = '\0';
    CHECK(TITLE(t) != NULL);

    /* 200 two-byte characters fit the byte buffer the ops use */
    for (int i = 0; i < 200; i++) {
        memcpy(t + 2 * i, "\xc3\xa9", 2);
    }
    t[400] = '\0';
    CHECK(chat_title_normalize(t, 400, out, CHAT_TITLE_MAX_BYTES + 1)
          == NULL);
}


static const char *
ids_of(const char *json, int64_t *ids, size_t *n)
{
    size_t        room;
    cJSON        *arr;
    const char   *why;

    arr = cJSON_Parse(json);
    room = cJSON_IsArray(arr) ? (size_t) cJSON_GetArraySize(arr) : 0;
    why = chat_id_list_parse(arr, ids, room, n);
    cJSON_Delete(arr);

    return why;
}


static void
test_id_list(void)
{
    size_t   n;
    int64_t  ids[16];

    CHECK(ids_of("[]", ids, &n) == NULL && n == 0);
    CHECK(ids_of("[3, 1, 2, 3, 1]", ids, &n) == NULL && n == 3
          && ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
    CHECK(ids_of("[0]", ids, &n) != NULL);
    CHECK(ids_of("[-1]", ids, &n) != NULL);
    CHECK(ids_of("[1.5]", ids, &n) != NULL);
    CHECK(ids_of("[\"1\"]", ids, &n) != NULL);
    CHECK(ids_of("{}", ids, &n) != NULL);
    CHECK(ids_of("5", ids, &n) != NULL);
}


static const char *
cursors_of(const char *json, chat_cursor_t *c, size_t *n)
{
    cJSON       *obj;
    const char  *why;

    obj = cJSON_Parse(json);
    why = chat_cursors_parse(obj, c, 8, n);
    cJSON_Delete(obj);

    return why;
}


static void
test_cursors(void)
{
    size_t         n;
    chat_cursor_t  c[8];

    CHECK(chat_cursors_parse(NULL, c, 8, &n) == NULL && n == 0);
    CHECK(cursors_of("{}", c, &n) == NULL && n == 0);

    CHECK(cursors_of("{\"42\": 7, \"3\": 0, \"9007199254740991\": 1}", c, &n)
          == NULL);
    CHECK(n == 3);
    CHECK(c[0].conversation_id == 3 && c[0].seq == 0);
    CHECK(c[1].conversation_id == 42 && c[1].seq == 7);
    CHECK(c[2].conversation_id == 9007199254740991LL);

    CHECK(cursors_of("{\"0\": 1}", c, &n) != NULL);
    CHECK(cursors_of("{\"042\": 1}", c, &n) != NULL);
    CHECK(cursors_of("{\"-4\": 1}", c, &n) != NULL);
    CHECK(cursors_of("{\"4x\": 1}", c, &n) != NULL);
    CHECK(cursors_of("{\"\": 1}", c, &n) != NULL);
    CHECK(cursors_of("{\"99999999999999999\": 1}", c, &n) != NULL);
    CHECK(cursors_of("{\"4\": -1}", c, &n) != NULL);
    CHECK(cursors_of("{\"4\": 1.5}", c, &n) != NULL);
    CHECK(cursors_of("{\"4\": \"1\"}", c, &n) != NULL);
    CHECK(cursors_of("{\"4\": 1, \"4\": 2}", c, &n) != NULL);
    CHECK(cursors_of("[1]", c, &n) != NULL);
    CHECK(cursors_of("{\"1\":0,\"2\":0,\"3\":0,\"4\":0,\"5\":0,\"6\":0,"
                     "\"7\":0,\"8\":0,\"9\":0}", c, &n) != NULL);
}


static void
test_search_cursor(void)
{
    int64_t  t, c, s;

    CHECK(chat_search_cursor_parse("1733443200123456.42.7", &t, &c, &s)
          == NULL);
    CHECK(t == 1733443200123456LL && c == 42 && s == 7);
    CHECK(chat_search_cursor_parse("0.1.1", &t, &c, &s) == NULL && t == 0);

    CHECK(chat_search_cursor_parse("", &t, &c, &s) != NULL);
    CHECK(chat_search_cursor_parse("1.2", &t, &c, &s) != NULL);
    CHECK(chat_search_cursor_parse("1.2.3.4", &t, &c, &s) != NULL);
    CHECK(chat_search_cursor_parse("1.0.3", &t, &c, &s) != NULL);
    CHECK(chat_search_cursor_parse("1.2.03", &t, &c, &s) != NULL);
    CHECK(chat_search_cursor_parse("-1.2.3", &t, &c, &s) != NULL);
    CHECK(chat_search_cursor_parse("1.2.3 ", &t, &c, &s) != NULL);
    CHECK(chat_search_cursor_parse("1.x.3", &t, &c, &s) != NULL);
    CHECK(chat_search_cursor_parse("1.9999999999999999999.3", &t, &c, &s)
          != NULL);
}


static void
test_search_text(void)
{
    char  out[32];

    CHECK(chat_search_text_normalize("q", "  zebra ", 8, 10, out,
                                     sizeof(out)) == NULL);
    CHECK(strcmp(out, "zebra") == 0);
    CHECK(chat_search_text_normalize("q", "\xc3\xa9t\xc3\xa9", 5, 2, out,
                                     sizeof(out)) != NULL);
    CHECK(chat_search_text_normalize("q", "\xc3\xa9t\xc3\xa9", 5, 3, out,
                                     sizeof(out)) == NULL);
    CHECK(chat_search_text_normalize("q", "   ", 3, 10, out, sizeof(out))
          != NULL);
    CHECK(chat_search_text_normalize("q", "a\tb", 3, 10, out, sizeof(out))
          != NULL);
    CHECK(chat_search_text_normalize("q", "\xff", 1, 10, out, sizeof(out))
          != NULL);
    CHECK(chat_search_text_normalize("q", "abcdefgh", 8, 10, out, 4)
          != NULL);
}


static void
test_limit(void)
{
    int64_t  v;
    cJSON   *item;

    CHECK(chat_limit_parse(NULL, 50, 200, &v) == 0 && v == 50);

    item = cJSON_CreateNumber(20);
    CHECK(chat_limit_parse(item, 50, 200, &v) == 0 && v == 20);
    cJSON_SetNumberValue(item, 5000);
    CHECK(chat_limit_parse(item, 50, 200, &v) == 0 && v == 200);
    cJSON_SetNumberValue(item, 0);
    CHECK(chat_limit_parse(item, 50, 200, &v) != 0);
    cJSON_SetNumberValue(item, -3);
    CHECK(chat_limit_parse(item, 50, 200, &v) != 0);
    cJSON_SetNumberValue(item, 2.5);
    CHECK(chat_limit_parse(item, 50, 200, &v) != 0);
    cJSON_Delete(item);

    item = cJSON_CreateString("10");
    CHECK(chat_limit_parse(item, 50, 200, &v) != 0);
    cJSON_Delete(item);
}


static void
test_csv_ids(void)
{
    int64_t  ids[4];

    CHECK(chat_csv_ids_parse("", ids, 4) == 0);
    CHECK(chat_csv_ids_parse("7", ids, 4) == 1 && ids[0] == 7);
    CHECK(chat_csv_ids_parse("12,40,7", ids, 4) == 3
          && ids[0] == 12 && ids[1] == 40 && ids[2] == 7);
    CHECK(chat_csv_ids_parse("1,2,3,4,5", ids, 4) == -1);
    CHECK(chat_csv_ids_parse("1,,2", ids, 4) == -1);
    CHECK(chat_csv_ids_parse("1,", ids, 4) == -1);
    CHECK(chat_csv_ids_parse(",1", ids, 4) == -1);
    CHECK(chat_csv_ids_parse("1 2", ids, 4) == -1);
    CHECK(chat_csv_ids_parse("99999999999999999999", ids, 4) == -1);
}


static void
test_csv_ids_alloc(void)
{
    int64_t  *ids;

    CHECK(chat_csv_ids_alloc("12,40,7,5,9", &ids) == 5);
    CHECK(ids != NULL && ids[0] == 12 && ids[4] == 9);
    free(ids);

    CHECK(chat_csv_ids_alloc("", &ids) == 0);
    free(ids);

    CHECK(chat_csv_ids_alloc("1,,2", &ids) == -1 && ids == NULL);
}


#define S_LEN(s)  s, sizeof(s) - 1

/* the workers' own check of a command body (engine/ops.c): chat_json.c
 * without the edge's plain-integer rule */
#define NUL_ESC(s)                                                          \
    (chat_json_check(s, strlen(s), CHAT_JSON_OBJECT, NULL) == CHAT_JSON_NUL)

static void
test_nul_escape(void)
{
    CHECK(NUL_ESC("{\"t\":\"a\\u0000b\"}"));
    CHECK(NUL_ESC("{\"t\":\"\\u0000\"}"));
    CHECK(NUL_ESC("{\"t\":\"\\u00001\"}"));           /* NUL, then "1" */
    CHECK(!NUL_ESC("{\"t\":\"a\\\\u0000b\"}"));        /* "\\" then text */
    CHECK(NUL_ESC("{\"t\":\"a\\\\\\u0000b\"}"));       /* "\\" then \u0000 */
    CHECK(!NUL_ESC("{\"t\":\"\\u0001\"}"));
    CHECK(!NUL_ESC("{\"t\":\"\\u1000\"}"));
    CHECK(!NUL_ESC("{\"t\":\"u0000\"}"));
    CHECK(!NUL_ESC("\\u000"));

    /* cJSON prints 10^15 as 1e+15: the workers take it */
    CHECK(chat_json_check(S_LEN("{\"book_id\":1e+15}"), CHAT_JSON_OBJECT,
                          NULL) == CHAT_JSON_OK);
    CHECK(chat_json_check(S_LEN("{\"t\":\"a\",\"t\":\"b\"}"),
                          CHAT_JSON_OBJECT, NULL) == CHAT_JSON_DUPLICATE_KEY);
    CHECK(chat_json_check(S_LEN("{\"q\":\"\xff\"}"), CHAT_JSON_OBJECT, NULL)
          == CHAT_JSON_BAD_UTF8);
}


static void
test_events(void)
{
    cJSON          *ev;
    int64_t         uids[3] = { 5, 6, 7 };
    chat_events_t   list;

    memset(&list, 0, sizeof(list));

    ev = cJSON_Parse("{\"type\":\"message\",\"message\":{\"seq\":1}}");

    for (int i = 0; i < 9; i++) {               /* grows past its start */
        CHECK(chat_events_add(&list, ev, uids, 3) == 0);
    }

    CHECK(list.n == 9);
    CHECK(strcmp(list.items[8].json,
                 "{\"type\":\"message\",\"message\":{\"seq\":1}}") == 0);
    CHECK(list.items[8].n == 3 && list.items[8].uids[2] == 7);

    chat_events_clear(&list);
    CHECK(list.n == 0);
    CHECK(chat_events_add(&list, ev, uids, 1) == 0 && list.n == 1);
    chat_events_clear(&list);

    cJSON_Delete(ev);
}


#define GW_A  "chat:gw:{a}"
#define GW_B  "chat:gw:{b}"

static void
test_routes(void)
{
    size_t         i;
    chat_routes_t  routes;

    memset(&routes, 0, sizeof(routes));

    CHECK(chat_routes_add(&routes, GW_A, strlen(GW_A), 12) == 0);
    CHECK(chat_routes_add(&routes, GW_B, strlen(GW_B), 40) == 0);
    CHECK(chat_routes_add(&routes, GW_A, strlen(GW_A), 7) == 0);

    CHECK(routes.n == 2);
    CHECK(strcmp(routes.items[0].uids, "12,7") == 0);
    CHECK(strcmp(routes.items[1].uids, "40") == 0);

    /* reused after a reset; one route with many recipients grows */
    chat_routes_reset(&routes);
    CHECK(routes.n == 0);

    for (i = 1; i <= 1000; i++) {
        CHECK(chat_routes_add(&routes, GW_B, strlen(GW_B), (int64_t) i)
              == 0);
    }

    CHECK(routes.n == 1);
    CHECK(strncmp(routes.items[0].uids, "1,2,3,", 6) == 0);
    CHECK(strlen(routes.items[0].uids) == routes.items[0].len);
    CHECK(strcmp(routes.items[0].uids + routes.items[0].len - 5, ",1000")
          == 0);

    chat_routes_free(&routes);
    CHECK(routes.n == 0 && routes.items == NULL);
}


int
main(void)
{
    UNIT_RUN(test_integer);
    UNIT_RUN(test_client_msg_id);
    UNIT_RUN(test_text);
    UNIT_RUN(test_title);
    UNIT_RUN(test_id_list);
    UNIT_RUN(test_cursors);
    UNIT_RUN(test_limit);
    UNIT_RUN(test_search_cursor);
    UNIT_RUN(test_search_text);
    UNIT_RUN(test_csv_ids);
    UNIT_RUN(test_csv_ids_alloc);
    UNIT_RUN(test_nul_escape);
    UNIT_RUN(test_events);
    UNIT_RUN(test_routes);

    return UNIT_SUMMARY();
}
