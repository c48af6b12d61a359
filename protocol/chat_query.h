/*
 * chat_query.h: query parameters as the API reads them, strictly.
 *
 * nginx's $arg_ lookup and ngx_unescape_uri are lenient in ways that
 * change a request silently: %00 decodes to a NUL that cuts the value
 * short wherever it becomes a C string, %ff becomes a byte PostgreSQL
 * refuses (after the worker has retried the command into the dead-letter
 * stream), a malformed escape is passed on half-decoded, a literal "?"
 * ends decoding, and of two equal parameters the first silently wins.
 * Here every escape must be "%" and two hex digits, every name and value
 * must decode to UTF-8 without NUL or control characters, and a parameter
 * the API reads must appear once.  "+" is left as it is (as nginx does).
 *
 * Plain C, no nginx types, nothing allocated.
 */

#ifndef CHAT_QUERY_H
#define CHAT_QUERY_H

#include <stddef.h>

typedef enum {
    CHAT_QUERY_OK = 0,
    CHAT_QUERY_ABSENT,          /* no "name=" in the query */
    CHAT_QUERY_REPEATED,        /* "name=" twice */
    CHAT_QUERY_BAD_ESCAPE,      /* "%" not followed by two hex digits */
    CHAT_QUERY_BAD_UTF8,        /* decodes to bytes that are not UTF-8 */
    CHAT_QUERY_NUL,             /* decodes to a NUL */
    CHAT_QUERY_CONTROL          /* decodes to U+0001..U+001F or U+007F */
} chat_query_rc_t;

/*
 * Checks every parameter of args (the query string without its "?", len
 * bytes; parameters are separated by "&").  Returns CHAT_QUERY_OK, or the
 * first fault and, when where is not NULL, the offset in args of the
 * parameter it is in.
 */
chat_query_rc_t chat_query_check(const char *args, size_t len,
    size_t *where);

/*
 * The value of the parameter "name=" (name compared ASCII
 * case-insensitively, as nginx's $arg_name does), percent-decoded into
 * out, which must have room for len bytes; *out_len is its length (out
 * is not NUL-terminated).  CHAT_QUERY_ABSENT when there is none,
 * CHAT_QUERY_REPEATED when there are two, otherwise what decoding and
 * checking the value found.
 */
chat_query_rc_t chat_query_get(const char *args, size_t len,
    const char *name, size_t name_len, char *out, size_t *out_len);

/*
 * Percent-decodes len bytes at p into out (room for len bytes) and checks
 * the result as above.
 */
chat_query_rc_t chat_query_decode(const char *p, size_t len, char *out,
    size_t *out_len);

/* The API error code for rc: "invalid_query", "invalid_utf8", ... */
const char *chat_query_code(chat_query_rc_t rc);

/* A sentence saying what is wrong, for the error message. */
const char *chat_query_reason(chat_query_rc_t rc);

#endif /* CHAT_QUERY_H */
