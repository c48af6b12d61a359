/*
 * chat_json.h: a strict checker for the JSON clients send, run on the raw
 * bytes before anything parses them.
 *
 * cJSON reads more than RFC 8259 allows and quietly changes some of what
 * it reads: a string with \u0000 is cut at the NUL, the first of two equal
 * keys wins, raw control characters and invalid UTF-8 pass through, and
 * 1e2, 1.0 and -0 all read as integers.  A request that means something
 * else to the edge, the backend and PostgreSQL is refused here instead,
 * with a reason a client can act on.  The edge checks HTTP bodies and
 * WebSocket messages with it; the backend checks every command body again
 * (without the number rule) so nothing of the kind becomes a poison
 * command.
 *
 * Plain C, no nginx types.  It allocates only for objects with more than
 * a few dozen keys open at once (duplicate detection), and frees that
 * before it returns.
 */

#ifndef CHAT_JSON_H
#define CHAT_JSON_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_JSON_MAX_DEPTH   64
#define CHAT_JSON_MAX_NUMBER  63                     /* characters */
#define CHAT_JSON_MAX_INTEGER 9007199254740991LL     /* 2^53 - 1 */

/* flags of chat_json_check */
#define CHAT_JSON_OBJECT      0x01  /* the text must be one object */
#define CHAT_JSON_INTEGERS    0x02  /* every number a plain integer */

typedef enum {
    CHAT_JSON_OK = 0,
    CHAT_JSON_SYNTAX,           /* not one well-formed JSON value */
    CHAT_JSON_NOT_OBJECT,       /* well-formed so far, but not an object */
    CHAT_JSON_TOO_DEEP,         /* containers nested over MAX_DEPTH */
    CHAT_JSON_BAD_UTF8,         /* not UTF-8, or \u of a lone surrogate */
    CHAT_JSON_NUL,              /* a NUL byte, or \u0000 in a string */
    CHAT_JSON_CONTROL,          /* a raw U+0001..U+001F in a string */
    CHAT_JSON_DUPLICATE_KEY,    /* an object names one key twice */
    CHAT_JSON_LONG_NUMBER,      /* over CHAT_JSON_MAX_NUMBER characters */
    CHAT_JSON_NOT_INTEGER,      /* with CHAT_JSON_INTEGERS: see below */
    CHAT_JSON_NOMEM
} chat_json_rc_t;

/*
 * Checks len bytes at p.  Returns CHAT_JSON_OK for one JSON value (RFC
 * 8259, white space around it allowed, nothing else) that is valid UTF-8
 * throughout, whose strings hold no NUL (raw or \u0000), no raw control
 * character and no escaped lone surrogate, whose objects never name a
 * key twice (keys compared after unescaping: "a" and "\u0061" are one),
 * and whose numbers are at most 63 characters long (cJSON reads no more:
 * it would stop inside a longer one and fail on the rest).
 * Flags add: CHAT_JSON_OBJECT, the value is an object; CHAT_JSON_INTEGERS,
 * every number is written as a plain integer, -?(0|[1-9][0-9]*), not -0,
 * of magnitude at most 2^53 - 1 (what a double, and so cJSON, carries
 * exactly).
 *
 * Otherwise the first fault and, when where is not NULL, its offset in p:
 * invalid UTF-8 anywhere is reported before anything else is looked at;
 * then the first fault in reading order, a repeated key when its object
 * closes (where: the first key that repeats an earlier one).
 */
chat_json_rc_t chat_json_check(const char *p, size_t len, unsigned flags,
    size_t *where);

/* The API error code for rc: "invalid_json", "invalid_utf8", ... */
const char *chat_json_code(chat_json_rc_t rc);

/* A sentence saying what is wrong, for the error message. */
const char *chat_json_reason(chat_json_rc_t rc);

/*
 * 0 with *out set when len bytes at p are a plain integer as
 * CHAT_JSON_INTEGERS defines it (query parameters use the same rule),
 * else -1.
 */
int chat_json_integer_text(const char *p, size_t len, int64_t *out);

#endif /* CHAT_JSON_H */
