/*
 * conv_input.c: the rules for what the chat operations accept, kept apart
 * from SQL so they are unit-tested without a database.
 *
 * The edge checks that a body is well-formed JSON and puts path and query
 * parameters into it as numbers; everything about the values themselves
 * is checked here.  Integers are JSON numbers without a fraction, no
 * larger than 2^53 - 1 (beyond that a double cannot hold every integer,
 * and the client's id would not be the one we read).  Strings are checked
 * byte by byte: a client message id is short visible ASCII so it can sit
 * in logs and keys unquoted; a message text is stored exactly as sent, so
 * it must be valid UTF-8 (PostgreSQL refuses anything else, and a value
 * that only fails there would look like an outage); a title is trimmed
 * like a display name.
 *
 * What it does not do: decide whether an id exists or may be seen (the
 * operations ask PostgreSQL), or build error replies (ops.c does).
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_input.h"
#include "validate.h"


int
chat_json_integer(const cJSON *item, int64_t min, int64_t max, int64_t *out)
{
    double  d;

    if (!cJSON_IsNumber(item)) {
        return -1;
    }

    d = item->valuedouble;

    if (!isfinite(d) || d != floor(d) || d < (double) min || d > (double) max)
    {
        return -1;
    }

    *out = (int64_t) d;
    return 0;
}


const char *
chat_client_msg_id_check(const char *s, size_t len)
{
    size_t  i;

    if (len == 0) {
        return "client_msg_id is empty";
    }

    if (len > CHAT_CLIENT_MSG_ID_MAX) {
        return "client_msg_id is longer than 64 bytes";
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x21 || (unsigned char) s[i] > 0x7e) {
            return "client_msg_id must be visible ASCII "
                   "(no spaces or control characters)";
        }
    }

    return NULL;
}


const char *
chat_text_check(const char *s, size_t len)
{
    size_t    i, n, chars;
    unsigned  cp;

    if (len == 0) {
        return "text is empty";
    }

    chars = 0;

    for (i = 0; i < len; i += n) {
        n = chat_utf8_next((const unsigned char *) s + i, len - i, &cp);
        if (n == 0) {
            return "text is not valid UTF-8";
        }

        if (cp == 0) {
            return "text must not contain NUL";
        }

        if (++chars > CHAT_TEXT_MAX) {
            return "text is longer than 4000 characters";
        }
    }

    return NULL;
}


const char *
chat_title_normalize(const char *in, size_t len, char *out, size_t out_size)
{
    size_t    i, n, chars;
    unsigned  cp;

    chat_trim(&in, &len);

    if (len == 0) {
        return "title is empty";
    }

    chars = 0;

    for (i = 0; i < len; i += n) {
        n = chat_utf8_next((const unsigned char *) in + i, len - i, &cp);
        if (n == 0) {
            return "title is not valid UTF-8";
        }

        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            return "title must not contain control characters";
        }

        if (++chars > CHAT_TITLE_MAX) {
            return "title is longer than 200 characters";
        }
    }

    if (len + 1 > out_size) {
        return "title is too long";
    }

    memcpy(out, in, len);
    out[len] = '\0';

    return NULL;
}


static int
chat_int64_cmp(const void *a, const void *b)
{
    int64_t  x = *(const int64_t *) a, y = *(const int64_t *) b;

    return (x > y) - (x < y);
}


const char *
chat_id_list_parse(const cJSON *array, int64_t *out, size_t room, size_t *n)
{
    size_t        i, k;
    const cJSON  *item;

    *n = 0;

    if (!cJSON_IsArray(array)) {
        return "member_ids must be an array of user ids";
    }

    k = 0;

    cJSON_ArrayForEach(item, array) {
        if (k == room) {
            return "member_ids is too long";
        }

        if (chat_json_integer(item, 1, CHAT_INT_MAX, &out[k]) != 0) {
            return "member_ids must contain only user ids "
                   "(positive integers)";
        }

        k++;
    }

    qsort(out, k, sizeof(int64_t), chat_int64_cmp);

    for (i = 0; i < k; i++) {
        if (*n == 0 || out[i] != out[*n - 1]) {
            out[(*n)++] = out[i];
        }
    }

    return NULL;
}


static int
chat_cursor_cmp(const void *a, const void *b)
{
    return chat_int64_cmp(&((const chat_cursor_t *) a)->conversation_id,
                          &((const chat_cursor_t *) b)->conversation_id);
}


/* A plain positive decimal without sign or leading zero, <= CHAT_INT_MAX */
static int
chat_decimal_id(const char *s, int64_t *out)
{
    size_t   i;
    int64_t  v;

    if (s[0] < '1' || s[0] > '9') {
        return -1;
    }

    v = 0;

    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 16) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }

    if (v > CHAT_INT_MAX) {
        return -1;
    }

    *out = v;
    return 0;
}


const char *
chat_cursors_parse(const cJSON *object, chat_cursor_t *out, size_t max,
    size_t *n)
{
    size_t        i, k;
    const cJSON  *item;

    *n = 0;

    if (object == NULL) {
        return NULL;            /* no cursors: everything is unseen */
    }

    if (!cJSON_IsObject(object)) {
        return "cursors must be an object of \"<conversation_id>\": seq";
    }

    k = 0;

    cJSON_ArrayForEach(item, object) {
        if (k == max) {
            return "cursors has too many conversations (at most 10000)";
        }

        if (item->string == NULL
            || chat_decimal_id(item->string, &out[k].conversation_id) != 0)
        {
            return "cursors keys must be conversation ids in decimal";
        }

        if (chat_json_integer(item, 0, CHAT_INT_MAX, &out[k].seq) != 0) {
            return "cursors values must be integers >= 0";
        }

        k++;
    }

    qsort(out, k, sizeof(chat_cursor_t), chat_cursor_cmp);

    for (i = 1; i < k; i++) {
        if (out[i].conversation_id == out[i - 1].conversation_id) {
            return "cursors names a conversation twice";
        }
    }

    *n = k;
    return NULL;
}


int
chat_limit_parse(const cJSON *item, int64_t def, int64_t max, int64_t *out)
{
    if (item == NULL) {
        *out = def;
        return 0;
    }

    if (chat_json_integer(item, 1, CHAT_INT_MAX, out) != 0) {
        return -1;
    }

    if (*out > max) {
        *out = max;
    }

    return 0;
}


long
chat_csv_ids_parse(const char *csv, int64_t *out, size_t max)
{
    size_t   n;
    int64_t  v;

    n = 0;

    if (csv[0] == '\0') {
        return 0;
    }

    for ( ;; ) {
        if (*csv < '0' || *csv > '9' || n == max) {
            return -1;
        }

        v = 0;
        while (*csv >= '0' && *csv <= '9') {
            if (v > (INT64_MAX - 9) / 10) {
                return -1;
            }
            v = v * 10 + (*csv++ - '0');
        }

        out[n++] = v;

        if (*csv == '\0') {
            return (long) n;
        }

        if (*csv++ != ',') {
            return -1;
        }
    }
}


long
chat_csv_ids_alloc(const char *csv, int64_t **out)
{
    long    n;
    size_t  i, max;

    max = 1;
    for (i = 0; csv[i] != '\0'; i++) {
        max += csv[i] == ',';
    }

    *out = malloc(max * sizeof(int64_t));
    if (*out == NULL) {
        return -1;
    }

    n = chat_csv_ids_parse(csv, *out, max);
    if (n < 0) {
        free(*out);
        *out = NULL;
    }

    return n;
}


/* a plain decimal of 1..18 digits without a leading zero (or "0" when
 * zero is allowed); the end of it in *end */
static int
chat_plain_decimal(const char *s, int zero, int64_t *out, const char **end)
{
    size_t   i;
    int64_t  v;

    if (s[0] == '0') {
        if (!zero) {
            return -1;
        }
        *out = 0;
        *end = s + 1;
        return 0;
    }

    v = 0;

    for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
        if (i == 18) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }

    if (i == 0) {
        return -1;
    }

    *out = v;
    *end = s + i;
    return 0;
}


const char *
chat_search_cursor_parse(const char *s, int64_t *time_us,
    int64_t *conversation_id, int64_t *seq)
{
    static const char  why[] = "cursor is not one this search gave";

    if (chat_plain_decimal(s, 1, time_us, &s) != 0 || *s++ != '.'
        || chat_plain_decimal(s, 0, conversation_id, &s) != 0 || *s++ != '.'
        || chat_plain_decimal(s, 0, seq, &s) != 0 || *s != '\0'
        || *conversation_id > CHAT_INT_MAX || *seq > CHAT_INT_MAX)
    {
        return why;
    }

    return NULL;
}


const char *
chat_search_text_normalize(const char *name, const char *in, size_t len,
    size_t max, char *out, size_t out_size)
{
    static char  why[128];
    size_t       i, n, chars;
    unsigned     cp;

    chat_trim(&in, &len);

    if (len == 0) {
        snprintf(why, sizeof(why), "%s is empty", name);
        return why;
    }

    chars = 0;

    for (i = 0; i < len; i += n) {
        n = chat_utf8_next((const unsigned char *) in + i, len - i, &cp);
        if (n == 0) {
            snprintf(why, sizeof(why), "%s is not valid UTF-8", name);
            return why;
        }

        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
            snprintf(why, sizeof(why), "%s must not contain control "
                     "characters", name);
            return why;
        }

        if (++chars > max) {
            snprintf(why, sizeof(why), "%s is longer than %zu characters",
                     name, max);
            return why;
        }
    }

    if (len + 1 > out_size) {
        snprintf(why, sizeof(why), "%s is too long", name);
        return why;
    }

    memcpy(out, in, len);
    out[len] = '\0';
    return NULL;
}
