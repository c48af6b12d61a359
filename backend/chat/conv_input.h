/*
 * conv_input.h: pure checks of the chat operations' request fields:
 * integers and ids, client message ids, message text, group titles, id
 * lists, sync cursors, and the id lists PostgreSQL hands back.  No I/O.
 * See conv_input.c.
 */

#ifndef CHAT_CONV_INPUT_H
#define CHAT_CONV_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* the largest integer a JSON number (an IEEE double) holds exactly */
#define CHAT_INT_MAX                 9007199254740991LL

#define CHAT_CLIENT_MSG_ID_MAX       64      /* bytes, visible ASCII */
#define CHAT_TEXT_MAX                4000    /* characters */
#define CHAT_TITLE_MAX               200     /* characters */
#define CHAT_TITLE_MAX_BYTES         (CHAT_TITLE_MAX * 4)
#define CHAT_GROUP_MAX_MEMBERS       1000    /* the creator included */

#define CHAT_HISTORY_LIMIT_DEFAULT   50
#define CHAT_HISTORY_LIMIT_MAX       200
#define CHAT_SYNC_LIMIT_DEFAULT      500
#define CHAT_SYNC_LIMIT_MAX          1000
#define CHAT_SYNC_MAX_CURSORS        10000
#define CHAT_SEARCH_LIMIT_DEFAULT    20
#define CHAT_SEARCH_LIMIT_MAX        50
#define CHAT_SEARCH_QUERY_MAX        200     /* characters */
#define CHAT_PEOPLE_LIMIT            20

typedef struct {
    int64_t  conversation_id;
    int64_t  seq;
} chat_cursor_t;

/*
 * item as an integer in [min, max]: a JSON number without a fraction.
 * Returns 0 with *out set, or -1 (not a number, a fraction, out of range).
 */
int chat_json_integer(const cJSON *item, int64_t min, int64_t max,
    int64_t *out);

/*
 * The checks below return NULL when the value is acceptable, else a
 * static sentence naming the field and the rule, for a 400 invalid_field.
 */

/* 1 to 64 bytes, each visible ASCII (0x21..0x7e). */
const char *chat_client_msg_id_check(const char *s, size_t len);

/* Valid UTF-8, 1 to CHAT_TEXT_MAX characters, no NUL.  Nothing is
 * trimmed: the text is stored exactly as sent. */
const char *chat_text_check(const char *s, size_t len);

/* Trims ASCII white space, then requires valid UTF-8, 1 to
 * CHAT_TITLE_MAX characters, no control characters (C0, DEL, C1); writes
 * the trimmed title, NUL-terminated, to out. */
const char *chat_title_normalize(const char *in, size_t len, char *out,
    size_t out_size);

/*
 * member_ids: a JSON array of ids (integers 1..CHAT_INT_MAX).  Writes them
 * to out (room entries; give it cJSON_GetArraySize(array)) sorted and
 * without duplicates, *n their count.  Returns NULL or why.  The caller
 * checks the count against its cap.
 */
const char *chat_id_list_parse(const cJSON *array, int64_t *out,
    size_t room, size_t *n);

/*
 * sync's cursors: a JSON object whose keys are conversation ids in plain
 * decimal (1..CHAT_INT_MAX, no sign, no leading zero) and whose values
 * are integers >= 0.  Writes them to out sorted by conversation id, *n
 * their count; a repeated key or more than max keys is an error.
 * Returns NULL or why.
 */
const char *chat_cursors_parse(const cJSON *object, chat_cursor_t *out,
    size_t max, size_t *n);

/*
 * msg.search's cursor: "<time>.<conversation_id>.<seq>", three plain
 * decimals (the time in microseconds since 1970, the others 1..2^53 - 1),
 * as the previous page's next_cursor gave it.  Writes them out; returns
 * NULL or why.
 */
const char *chat_search_cursor_parse(const char *s, int64_t *time_us,
    int64_t *conversation_id, int64_t *seq);

/* A search's q or a name prefix: valid UTF-8 without control
 * characters, 1 to max characters after trimming ASCII white space (the
 * trimmed text, NUL-terminated, to out, of out_size >= max * 4 + 1).
 * name names the field in the sentence returned when it is refused. */
const char *chat_search_text_normalize(const char *name, const char *in,
    size_t len, size_t max, char *out, size_t out_size);

/*
 * A limit: absent (NULL) gives def; an integer >= 1 is taken, clamped to
 * max.  Returns 0 with *out set, or -1 (not an integer, or below 1).
 */
int chat_limit_parse(const cJSON *item, int64_t def, int64_t max,
    int64_t *out);

/*
 * Parses "12,40,7" (PostgreSQL's string_agg of ids) into out (room for
 * max).  An empty string is no ids.  Returns the count, or -1 when the
 * text is not such a list or has more than max ids.
 */
long chat_csv_ids_parse(const char *csv, int64_t *out, size_t max);

/*
 * chat_csv_ids_parse into a malloc'ed array just large enough (*out, the
 * caller frees it).  Returns the count, or -1 (nothing to free) when
 * memory ran out or csv is not a list of ids.
 */
long chat_csv_ids_alloc(const char *csv, int64_t **out);

#endif /* CHAT_CONV_INPUT_H */
