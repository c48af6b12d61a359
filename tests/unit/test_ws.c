/*
 * test_ws.c: the RFC 6455 frame parser, one case per rule, and the frame
 * header builder.
 *
 * Client frames are built here by hand (put_frame masks with a fixed key)
 * so the tests do not lean on the code they check.  Every case runs
 * through expect(), which parses a fresh copy of the input whole and then
 * cut into 1-, 2- and 7-byte pieces, and checks that each run tells the
 * same story: a log of events in which a data message is written
 * "text{ ... }N" (its first chunk opens it, its last closes it with the
 * total length, control frames in between show up inside), an error as
 * "errorCODE@BYTES" with the bytes consumed when it came, plus the bytes
 * of every message and control payload.  A message cut short by an error
 * leaves nothing in the log, since how much of it came out before the
 * error depends on the cuts.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_ws.h"
#include "unit.h"

#define KIB  1024
#define MIB  (1024 * 1024)

static const unsigned char key[4] = { 0x9e, 0x01, 0x5a, 0xc3 };

/* length encodings for put_head() */
#define LEN_MIN  0
#define LEN_7    1
#define LEN_16   2
#define LEN_64   3


/* A masked client header with the length in the given form. */
static size_t
put_head(unsigned char *out, unsigned b0, uint64_t len, int form)
{
    size_t  n;
    int     i;

    if (form == LEN_MIN) {
        form = len < 126 ? LEN_7 : len < 65536 ? LEN_16 : LEN_64;
    }

    out[0] = (unsigned char) b0;
    n = 2;

    if (form == LEN_7) {
        out[1] = (unsigned char) (0x80 | len);

    } else if (form == LEN_16) {
        out[1] = 0x80 | 126;
        out[2] = (unsigned char) (len >> 8);
        out[3] = (unsigned char) len;
        n = 4;

    } else {
        out[1] = 0x80 | 127;
        for (i = 0; i < 8; i++) {
            out[2 + i] = (unsigned char) (len >> (56 - 8 * i));
        }
        n = 10;
    }

    memcpy(out + n, key, 4);
    return n + 4;
}


/* A whole masked frame; returns its size. */
static size_t
put_frame(unsigned char *out, unsigned b0, const void *payload, size_t len)
{
    size_t  i, n;

    n = put_head(out, b0, len, LEN_MIN);
    memcpy(out + n, payload, len);
    for (i = 0; i < len; i++) {
        out[n + i] ^= key[i & 3];
    }

    return n + len;
}


#define STR(s)  s, sizeof(s) - 1

/* frame first bytes */
#define TEXT     0x81
#define BINARY   0x82
#define CLOSE    0x88
#define PING     0x89
#define PONG     0x8a
#define TEXT_MORE    0x01           /* first fragment, more to come */
#define BINARY_MORE  0x02
#define CONT_MORE    0x00
#define CONT_LAST    0x80


typedef struct {
    char            log[1024];
    size_t          loglen;
    unsigned char  *data;           /* message bytes, back to back */
    size_t          datalen;
    unsigned char  *ctl;            /* control payloads, back to back */
    size_t          ctllen;
    size_t          msglen;         /* bytes of the message in progress */
    int             in_msg;
    size_t          msg_log;        /* where its opening is in the log */
    size_t          msg_data;       /* where its bytes start in data */
    size_t          consumed;
    int             error;
    int             broken;         /* an event broke the API contract */
} trace_t;


static void
trace_log(trace_t *t, const char *fmt, unsigned long a, unsigned long b)
{
    int  n;

    n = snprintf(t->log + t->loglen, sizeof(t->log) - t->loglen, fmt, a, b);
    if (n > 0 && (size_t) n < sizeof(t->log) - t->loglen) {
        t->loglen += (size_t) n;
    }
}


static void
trace_event(trace_t *t, const chat_ws_event_t *ev, unsigned char *in,
    size_t len, size_t used)
{
    size_t  n;

    switch (ev->type) {

    case CHAT_WS_EV_NONE:
        if (used != len) {
            t->broken = 1;
        }
        return;

    case CHAT_WS_EV_DATA:
        if (ev->data < in || ev->len > len || ev->data + ev->len > in + len
            || ev->first != (unsigned) !t->in_msg
            || (ev->opcode != CHAT_WS_OP_TEXT
                && ev->opcode != CHAT_WS_OP_BINARY))
        {
            t->broken = 1;
            return;
        }

        if (ev->first) {
            t->msg_log = t->loglen;
            t->msg_data = t->datalen;
            trace_log(t, ev->opcode == CHAT_WS_OP_TEXT ? "text{ " : "binary{ ",
                  0, 0);
            t->in_msg = 1;
            t->msglen = 0;
        }

        memcpy(t->data + t->datalen, ev->data, ev->len);
        t->datalen += ev->len;
        t->msglen += ev->len;

        if (ev->fin) {
            trace_log(t, "}%lu ", t->msglen, 0);
            t->in_msg = 0;
        }
        break;

    case CHAT_WS_EV_PING:
    case CHAT_WS_EV_PONG:
        trace_log(t, ev->type == CHAT_WS_EV_PING ? "ping%lu " : "pong%lu ",
              ev->len, 0);
        memcpy(t->ctl + t->ctllen, ev->data, ev->len);
        t->ctllen += ev->len;
        break;

    case CHAT_WS_EV_CLOSE:
        trace_log(t, "close%lu/%lu ", ev->code, ev->len);
        memcpy(t->ctl + t->ctllen, ev->data, ev->len);
        t->ctllen += ev->len;
        break;

    case CHAT_WS_EV_ERROR:
        if (t->in_msg) {
            /* how much of a failed message came out depends on the cuts */
            n = t->log[t->msg_log] == 't' ? sizeof("text{ ") - 1
                                          : sizeof("binary{ ") - 1;
            memmove(t->log + t->msg_log, t->log + t->msg_log + n,
                    t->loglen - t->msg_log - n + 1);
            t->loglen -= n;
            t->datalen = t->msg_data;
            t->in_msg = 0;
        }

        trace_log(t, "error%lu@%lu ", ev->code, t->consumed + used);
        t->error = (int) ev->code;
        if (ev->reason == NULL || ev->reason[0] == '\0') {
            t->broken = 1;
        }
        break;
    }

    if (used == 0) {
        t->broken = 1;          /* an event must make progress */
    }
}


/* Parses len bytes at buf in pieces of chunk bytes (0: all at once). */
static void
feed(uint64_t max, unsigned char *buf, size_t len, size_t chunk, trace_t *t)
{
    size_t             off, end, used;
    chat_ws_event_t    ev;
    chat_ws_config_t   conf;
    chat_ws_parser_t   p;

    conf.max_message = max;
    chat_ws_parser_init(&p, &conf);
    off = 0;

    while (off < len && !t->error) {
        end = (chunk == 0 || chunk > len - off) ? len : off + chunk;

        while (off < end) {
            used = chat_ws_parse(&p, buf + off, end - off, &ev);
            if (used > end - off
                || (used == 0 && ev.type != CHAT_WS_EV_NONE))
            {
                t->broken = 1;
                return;
            }

            trace_event(t, &ev, buf + off, end - off, used);
            off += used;
            t->consumed = off;

            if (ev.type == CHAT_WS_EV_NONE || ev.type == CHAT_WS_EV_ERROR) {
                break;
            }
        }
    }

    if (t->error) {
        /* the error sticks and consumes nothing */
        used = chat_ws_parse(&p, buf + off, len - off, &ev);
        if (used != 0 || ev.type != CHAT_WS_EV_ERROR
            || (int) ev.code != t->error)
        {
            t->broken = 1;
        }
    }
}


/*
 * Parses copies of frames (len bytes, max_message max) whole and in 1-, 2-
 * and 7-byte pieces, or for big inputs in 4093- and 64 KiB pieces; each
 * run must log exactly want and deliver the message bytes msg and the
 * control payloads ctl (either may be NULL: not checked).  Returns the
 * bytes consumed.
 */
static size_t
expect_ex(uint64_t max, const unsigned char *frames, size_t len,
    const char *want,
    const void *msg, size_t msglen, const void *ctl, size_t ctllen)
{
    int             r;
    size_t          consumed;
    unsigned char  *copy;
    trace_t         t;
    static const size_t  small[] = { 1, 2, 7, 0 };
    static const size_t  big[] = { 4093, 65536, 0 };
    const size_t        *chunks;

    chunks = len > 100000 ? big : small;
    copy = malloc(len + 1);
    consumed = 0;

    for (r = 0; ; r++) {
        memset(&t, 0, sizeof(t));
        t.data = malloc(len + 1);
        t.ctl = malloc(len + 1);
        memcpy(copy, frames, len);

        feed(max, copy, len, chunks[r], &t);

        if (strcmp(t.log, want) != 0) {
            fprintf(stderr, "  chunk %zu: log \"%s\", want \"%s\"\n",
                    chunks[r], t.log, want);
        }
        CHECK(strcmp(t.log, want) == 0);
        CHECK(!t.broken);
        CHECK(msg == NULL
              || (t.datalen == msglen && memcmp(t.data, msg, msglen) == 0));
        CHECK(ctl == NULL
              || (t.ctllen == ctllen && memcmp(t.ctl, ctl, ctllen) == 0));

        free(t.data);
        free(t.ctl);

        if (chunks[r] == 0) {
            consumed = t.consumed;
            break;
        }
    }

    free(copy);
    return consumed;
}


/* the common case: a 1 MiB limit, only the log checked */
static void
expect(const unsigned char *frames, size_t len, const char *want)
{
    expect_ex(MIB, frames, len, want, NULL, 0, NULL, 0);
}


/* ------------------------------------------------------------------ */


static void
test_masked_text(void)
{
    size_t         n;
    trace_t        t;
    unsigned char  b[64], data[8], ctl[8];

    n = put_frame(b, TEXT, STR("Hello"));
    CHECK(n == 11);
    CHECK(expect_ex(MIB, b, n, "text{ }5 ", STR("Hello"), NULL, 0) == n);

    /* unmasked in place */
    memset(&t, 0, sizeof(t));
    t.data = data;
    t.ctl = ctl;
    feed(MIB, b, n, 0, &t);
    CHECK(memcmp(b + 6, "Hello", 5) == 0);
}


static void
test_one_event_per_call(void)
{
    size_t             n, used;
    chat_ws_event_t    ev;
    chat_ws_config_t   conf = { MIB };
    chat_ws_parser_t   p;
    unsigned char      b[64];

    n = put_frame(b, TEXT, STR("one"));
    n += put_frame(b + n, BINARY, STR("two"));

    chat_ws_parser_init(&p, &conf);

    used = chat_ws_parse(&p, b, n, &ev);
    CHECK(used == 9);
    CHECK(ev.type == CHAT_WS_EV_DATA && ev.len == 3 && ev.first && ev.fin);
    CHECK(ev.opcode == CHAT_WS_OP_TEXT && ev.data == b + 6);

    used = chat_ws_parse(&p, b + 9, n - 9, &ev);
    CHECK(used == 9);
    CHECK(ev.type == CHAT_WS_EV_DATA && ev.opcode == CHAT_WS_OP_BINARY);
    CHECK(memcmp(ev.data, "two", 3) == 0);

    used = chat_ws_parse(&p, b + 18, 0, &ev);
    CHECK(used == 0 && ev.type == CHAT_WS_EV_NONE);
}


static void
test_unmasked_refused(void)
{
    size_t         n;
    unsigned char  b[64];

    n = put_frame(b, TEXT, STR("Hello"));
    b[1] &= 0x7f;
    expect(b, n, "error1002@2 ");

    n = put_frame(b, PING, STR("x"));
    b[1] &= 0x7f;
    expect(b, n, "error1002@2 ");
}


static void
test_rsv_bits_refused(void)
{
    size_t         n;
    unsigned       bit;
    unsigned char  b[64];

    for (bit = 0x10; bit <= 0x40; bit <<= 1) {
        n = put_frame(b, TEXT | bit, STR("Hello"));
        expect(b, n, "error1002@1 ");

        n = put_frame(b, PING | bit, STR(""));
        expect(b, n, "error1002@1 ");
    }
}


static void
test_reserved_opcodes_refused(void)
{
    size_t         n;
    unsigned       op;
    unsigned char  b[64];

    for (op = 0x3; op <= 0xf; op++) {
        if (op >= 0x8 && op <= 0xa) {
            continue;
        }

        n = put_frame(b, 0x80 | op, STR("abc"));
        expect(b, n, "error1002@1 ");
    }
}


static void
test_fragmented_text_with_ping(void)
{
    size_t         n;
    unsigned char  b[128];

    n = put_frame(b, TEXT_MORE, STR("Hel"));
    n += put_frame(b + n, PING, STR("ping!"));
    n += put_frame(b + n, CONT_MORE, STR("lo, "));
    n += put_frame(b + n, CONT_LAST, STR("world"));

    expect_ex(MIB, b, n, "text{ ping5 }12 ", STR("Hello, world"),
              STR("ping!"));
}


static void
test_ping_payload_limit(void)
{
    size_t         n;
    unsigned char  b[512], payload[126];

    memset(payload, 'p', sizeof(payload));
    payload[0] = 0;
    payload[124] = 0xff;

    n = put_frame(b, PING, payload, 125);
    expect_ex(MIB, b, n, "ping125 ", NULL, 0, payload, 125);

    n = put_frame(b, PONG, payload, 125);
    expect_ex(MIB, b, n, "pong125 ", NULL, 0, payload, 125);

    /* 126 needs the 16-bit form; the error comes at the second byte */
    n = put_frame(b, PING, payload, 126);
    expect(b, n, "error1002@2 ");

}


static void
test_fragmented_control_refused(void)
{
    size_t         n;
    unsigned char  b[64];

    n = put_frame(b, PING & 0x7f, STR("a"));
    expect(b, n, "error1002@1 ");

    n = put_frame(b, CLOSE & 0x7f, STR(""));
    expect(b, n, "error1002@1 ");

    n = put_frame(b, PONG & 0x7f, STR(""));
    expect(b, n, "error1002@1 ");
}


static void
test_continuation_without_start(void)
{
    size_t         n;
    unsigned char  b[64];

    n = put_frame(b, CONT_LAST, STR("abc"));
    expect(b, n, "error1002@1 ");

    n = put_frame(b, CONT_MORE, STR("abc"));
    expect(b, n, "error1002@1 ");

    /* a finished message leaves nothing to continue */
    n = put_frame(b, TEXT, STR("abc"));
    n += put_frame(b + n, CONT_LAST, STR("d"));
    expect(b, n, "text{ }3 error1002@10 ");
}


static void
test_new_message_while_fragmented(void)
{
    size_t         n;
    unsigned char  b[64];

    n = put_frame(b, TEXT_MORE, STR("abc"));
    n += put_frame(b + n, TEXT, STR("d"));
    expect(b, n, "error1002@10 ");

    n = put_frame(b, BINARY_MORE, STR("abc"));
    n += put_frame(b + n, PING, STR(""));
    n += put_frame(b + n, TEXT_MORE, STR("d"));
    expect(b, n, "ping0 error1002@16 ");
}


static void
test_extended_lengths(void)
{
    size_t          i, n, len;
    unsigned char  *b, *payload;
    char            want[64];
    static const size_t  lens[] = { 125, 126, 127, 65535, 65536, 70000 };

    b = malloc(70000 + 14);
    payload = malloc(70000);
    for (i = 0; i < 70000; i++) {
        payload[i] = (unsigned char) (i * 7);
    }

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        len = lens[i];
        n = put_frame(b, BINARY, payload, len);
        CHECK(n == len + (len < 126 ? 6 : len < 65536 ? 8 : 14));
        snprintf(want, sizeof(want), "binary{ }%zu ", len);
        CHECK(expect_ex(MIB, b, n, want, payload, len, NULL, 0) == n);
    }

    free(b);
    free(payload);
}


static void
test_non_minimal_lengths_refused(void)
{
    size_t         n;
    unsigned char  b[64];

    n = put_head(b, TEXT, 125, LEN_16);
    expect(b, n, "error1002@4 ");

    n = put_head(b, TEXT, 0, LEN_16);
    expect(b, n, "error1002@4 ");

    n = put_head(b, TEXT, 0, LEN_64);
    expect(b, n, "error1002@10 ");

    n = put_head(b, TEXT, 125, LEN_64);
    expect(b, n, "error1002@10 ");

    n = put_head(b, TEXT, 65535, LEN_64);
    expect(b, n, "error1002@10 ");

    /* control frames never get that far */
    n = put_head(b, PING, 5, LEN_16);
    expect(b, n, "error1002@2 ");
}


static void
test_64bit_length_high_bit_refused(void)
{
    size_t         n;
    unsigned char  b[64];

    n = put_head(b, BINARY, 0x8000000000000000ULL, LEN_64);
    expect(b, n, "error1002@3 ");

    n = put_head(b, BINARY, 0xffffffffffffffffULL, LEN_64);
    expect(b, n, "error1002@3 ");
}


static void
test_too_big_at_the_header(void)
{
    size_t         n;
    unsigned char  b[64];

    /* 2^40 announced: refused once the length is in, before the key */
    n = put_head(b, BINARY, 1ULL << 40, LEN_64);
    CHECK(n == 14);
    CHECK(expect_ex(MIB, b, n, "error1009@10 ", NULL, 0, NULL, 0) == 10);

    n = put_head(b, TEXT, MIB + 1, LEN_64);
    expect_ex(MIB, b, n, "error1009@10 ", NULL, 0, NULL, 0);

    /* no limit means no room: only empty messages pass */
    n = put_frame(b, TEXT, STR("x"));
    expect_ex(0, b, n, "error1009@2 ", NULL, 0, NULL, 0);
    n = put_frame(b, TEXT, STR(""));
    expect_ex(0, b, n, "text{ }0 ", NULL, 0, NULL, 0);

    n = put_head(b, TEXT, 200, LEN_16);
    expect_ex(100, b, n, "error1009@4 ", NULL, 0, NULL, 0);

    n = put_frame(b, TEXT, STR("eleven byte"));
    expect_ex(10, b, n, "error1009@2 ", NULL, 0, NULL, 0);

    /* exactly the limit is fine */
    n = put_frame(b, TEXT, STR("ten bytes!"));
    expect_ex(10, b, n, "text{ }10 ", STR("ten bytes!"), NULL, 0);
}


static void
test_too_big_across_fragments(void)
{
    size_t         n, m;
    unsigned char  b[512], payload[100];

    memset(payload, 'x', sizeof(payload));

    n = put_frame(b, TEXT_MORE, payload, 60);
    n += put_frame(b + n, PING, STR("hi"));
    m = n;
    n += put_frame(b + n, CONT_LAST, payload, 40);
    expect_ex(100, b, n, "text{ ping2 }100 ", payload, 100, STR("hi"));

    n = m + put_frame(b + m, CONT_MORE, payload, 41);
    expect_ex(100, b, n, "ping2 error1009@76 ", NULL, 0, NULL, 0);

    /* empty frames count for nothing; the limit is per message */
    n = put_frame(b, BINARY_MORE, payload, 100);
    n += put_frame(b + n, CONT_MORE, payload, 0);
    n += put_frame(b + n, CONT_LAST, payload, 0);
    n += put_frame(b + n, BINARY, payload, 100);
    n += put_frame(b + n, BINARY_MORE, payload, 100);
    n += put_frame(b + n, CONT_LAST, payload, 1);
    expect_ex(100, b, n, "binary{ }100 binary{ }100 error1009@332 ",
              NULL, 0, NULL, 0);
}


static void
test_16mib_message_with_64mib_limit(void)
{
    size_t          n, len, i;
    unsigned char  *b, *payload;
    char            want[64];

    len = 16 * MIB;
    b = malloc(len + 64);
    payload = malloc(len);

    /* valid multi-byte UTF-8 all the way through */
    for (i = 0; i + 3 <= len; i += 3) {
        memcpy(payload + i, "\xe2\x82\xac", 3);
    }
    memset(payload + i, 'a', len - i);

    /* the frames meet inside a character */
    n = put_frame(b, TEXT_MORE, payload, len / 2);
    n += put_frame(b + n, CONT_LAST, payload + len / 2, len / 2);
    snprintf(want, sizeof(want), "text{ }%zu ", len);
    expect_ex(64 * MIB, b, n, want, payload, len, NULL, 0);

    /* the same bytes are refused under a 1 MiB limit */
    expect_ex(MIB, b, n, "error1009@10 ", NULL, 0, NULL, 0);

    free(b);
    free(payload);
}


static void
test_bad_utf8_inside_a_large_frame(void)
{
    char            want[64];
    size_t          n, hl, len, at, consumed;
    trace_t         t;
    unsigned char  *b, *orig;

    len = 600 * KIB;
    at = 300001;
    b = malloc(len + 14);
    orig = malloc(len + 14);
    memset(orig, 'a', len);
    orig[at] = 0xc0;

    n = put_frame(b, TEXT, orig, len);
    hl = n - len;
    memcpy(orig, b, n);

    snprintf(want, sizeof(want), "error1007@%zu ", hl + at + 1);
    consumed = expect_ex(MIB, b, n, want, NULL, 0, NULL, 0);
    CHECK(consumed == hl + at + 1);
    CHECK(consumed < n);

    memset(&t, 0, sizeof(t));
    t.data = malloc(n);
    t.ctl = malloc(n);
    feed(MIB, b, n, 0, &t);
    CHECK(t.consumed == consumed);
    free(t.data);
    free(t.ctl);

    /* what was consumed is unmasked, the rest is as it came */
    CHECK(b[hl + at] == 0xc0 && b[hl + at - 1] == 'a');
    CHECK(memcmp(b + consumed, orig + consumed, n - consumed) == 0);

    free(b);
    free(orig);
}


static void
test_utf8_split_across_fragments(void)
{
    size_t         n;
    unsigned char  b[128];

    n = put_frame(b, TEXT_MORE, STR("\xe2\x82"));
    n += put_frame(b + n, CONT_LAST, STR("\xac"));
    expect_ex(MIB, b, n, "text{ }3 ", STR("\xe2\x82\xac"), NULL, 0);

    /* a four-byte character over three frames, a pong and an empty frame */
    n = put_frame(b, TEXT_MORE, STR("x\xf0"));
    n += put_frame(b + n, CONT_MORE, STR("\x9f"));
    n += put_frame(b + n, PONG, STR(""));
    n += put_frame(b + n, CONT_MORE, STR(""));
    n += put_frame(b + n, CONT_LAST, STR("\x98\x80y"));
    expect_ex(MIB, b, n, "text{ pong0 }6 ", STR("x\xf0\x9f\x98\x80y"),
              NULL, 0);

    /* an impossible continuation in the next fragment fails at its byte */
    n = put_frame(b, TEXT_MORE, STR("ok\xed"));
    n += put_frame(b + n, CONT_LAST, STR("\xa0\x80"));
    expect(b, n, "error1007@16 ");
}


static void
test_text_ending_mid_character(void)
{
    size_t         n;
    unsigned char  b[64];

    n = put_frame(b, TEXT, STR("a\xe2\x82"));
    expect(b, n, "error1007@9 ");

    n = put_frame(b, TEXT_MORE, STR("a\xe2\x82"));
    n += put_frame(b + n, CONT_LAST, STR(""));
    expect(b, n, "error1007@15 ");
}


static void
test_binary_not_utf8_checked(void)
{
    size_t         n;
    unsigned char  b[64];

    n = put_frame(b, BINARY, STR("\xff\xfe\xc0\x80\xed\xa0\x80\xe2"));
    expect_ex(MIB, b, n, "binary{ }8 ", STR("\xff\xfe\xc0\x80\xed\xa0\x80\xe2"),
              NULL, 0);
}


static void
test_close_frames(void)
{
    size_t         n;
    unsigned char  b[64];

    n = put_frame(b, CLOSE, STR(""));
    expect(b, n, "close0/0 ");

    n = put_frame(b, CLOSE, STR("\x03\xe8" "bye \xc3\xa9"));
    expect_ex(MIB, b, n, "close1000/6 ", NULL, 0, STR("bye \xc3\xa9"));

    n = put_frame(b, CLOSE, STR("\x03\xe9"));
    expect(b, n, "close1001/0 ");

    /* one byte cannot hold a code: refused at the length */
    n = put_frame(b, CLOSE, STR("\x03"));
    expect(b, n, "error1002@2 ");

    n = put_frame(b, CLOSE, STR("\x03\xe8" "bad \xc3"));
    expect(b, n, "error1007@13 ");

    n = put_frame(b, CLOSE, STR("\x03\xe8" "\xed\xa0\x80"));
    expect(b, n, "error1007@11 ");

    /* a close between fragments */
    n = put_frame(b, TEXT_MORE, STR("a"));
    n += put_frame(b + n, CLOSE, STR("\x03\xe8"));
    expect(b, n, "text{ close1000/0 ");
}


static void
test_close_codes(void)
{
    size_t         i, n;
    char           want[32];
    unsigned char  b[64], code[2];
    static const unsigned  bad[] = {
        0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
        65535
    };
    static const unsigned  good[] = {
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
        1014, 3000, 3999, 4000, 4999
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        code[0] = (unsigned char) (bad[i] >> 8);
        code[1] = (unsigned char) bad[i];
        n = put_frame(b, CLOSE, code, 2);
        expect(b, n, "error1002@8 ");
        CHECK(!chat_ws_close_code_valid(bad[i]));
    }

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        code[0] = (unsigned char) (good[i] >> 8);
        code[1] = (unsigned char) good[i];
        n = put_frame(b, CLOSE, code, 2);
        snprintf(want, sizeof(want), "close%u/0 ", good[i]);
        expect(b, n, want);
        CHECK(chat_ws_close_code_valid(good[i]));
    }

    /* the whole range against the rule */
    for (i = 0; i < 70000; i++) {
        CHECK(chat_ws_close_code_valid((unsigned) i)
              == ((i >= 1000 && i <= 1003) || (i >= 1007 && i <= 1014)
                  || (i >= 3000 && i <= 4999)));
    }
}


static void
test_zero_length_messages(void)
{
    size_t             n, used;
    chat_ws_event_t    ev;
    chat_ws_config_t   conf = { MIB };
    chat_ws_parser_t   p;
    unsigned char      b[64];

    n = put_frame(b, TEXT, STR(""));
    CHECK(n == 6);
    expect(b, n, "text{ }0 ");

    chat_ws_parser_init(&p, &conf);
    used = chat_ws_parse(&p, b, n, &ev);
    CHECK(used == 6);
    CHECK(ev.type == CHAT_WS_EV_DATA && ev.len == 0 && ev.first && ev.fin);
    CHECK(ev.opcode == CHAT_WS_OP_TEXT && ev.data == b + 6);

    n = put_frame(b, BINARY, STR(""));
    expect(b, n, "binary{ }0 ");

    /* fragments that are all empty still make exactly one event */
    n = put_frame(b, TEXT_MORE, STR(""));
    n += put_frame(b + n, CONT_MORE, STR(""));
    n += put_frame(b + n, PING, STR(""));
    n += put_frame(b + n, CONT_LAST, STR(""));
    expect(b, n, "ping0 text{ }0 ");

    /* and an empty last frame closes a message that had bytes */
    n = put_frame(b, TEXT_MORE, STR("ab"));
    n += put_frame(b + n, CONT_LAST, STR(""));
    expect_ex(MIB, b, n, "text{ }2 ", STR("ab"), NULL, 0);
}


static void
test_error_is_sticky(void)
{
    size_t             n, used;
    chat_ws_event_t    ev;
    chat_ws_config_t   conf = { MIB };
    chat_ws_parser_t   p;
    unsigned char      b[64];

    n = put_frame(b, TEXT | 0x40, STR("x"));
    n += put_frame(b + n, TEXT, STR("fine"));

    chat_ws_parser_init(&p, &conf);
    used = chat_ws_parse(&p, b, n, &ev);
    CHECK(used == 1 && ev.type == CHAT_WS_EV_ERROR && ev.code == 1002);
    CHECK(ev.reason != NULL && strlen(ev.reason) <= 123);

    used = chat_ws_parse(&p, b + 1, n - 1, &ev);
    CHECK(used == 0 && ev.type == CHAT_WS_EV_ERROR && ev.code == 1002);
}


/* several frames, every way of cutting them gives one story */
static void
test_chop(void)
{
    size_t         n, chunk;
    unsigned char  b[1024], bin[300], copy[1024];
    trace_t        t, whole;
    static const char  want[] =
        "text{ ping2 pong0 }14 binary{ }300 text{ }0 ping125 close1000/3 ";

    for (n = 0; n < sizeof(bin); n++) {
        bin[n] = (unsigned char) (n * 31 + 7);
    }

    n = put_frame(b, TEXT_MORE, STR("Hello, \xe2"));
    n += put_frame(b + n, PING, STR("p1"));
    n += put_frame(b + n, CONT_MORE, STR("\x82"));
    n += put_frame(b + n, CONT_MORE, STR(""));
    n += put_frame(b + n, PONG, STR(""));
    n += put_frame(b + n, CONT_LAST, STR("\xac w\xc3\xa9"));
    n += put_frame(b + n, BINARY, bin, sizeof(bin));
    n += put_frame(b + n, TEXT, STR(""));
    n += put_frame(b + n, PING, bin, 125);
    n += put_frame(b + n, CLOSE, STR("\x03\xe8" "bye"));

    expect_ex(MIB, b, n, want, NULL, 0, NULL, 0);

    /* and every piece size, compared with the whole run */
    memset(&whole, 0, sizeof(whole));
    whole.data = malloc(n);
    whole.ctl = malloc(n);
    memcpy(copy, b, n);
    feed(MIB, copy, n, 0, &whole);
    CHECK(strcmp(whole.log, want) == 0);
    CHECK(whole.datalen == 14 + 300);
    CHECK(memcmp(whole.data, "Hello, \xe2\x82\xac w\xc3\xa9", 14) == 0);

    for (chunk = 1; chunk <= n; chunk++) {
        memset(&t, 0, sizeof(t));
        t.data = malloc(n);
        t.ctl = malloc(n);
        memcpy(copy, b, n);
        feed(MIB, copy, n, chunk, &t);

        CHECK(strcmp(t.log, whole.log) == 0);
        CHECK(!t.broken);
        CHECK(t.consumed == n);
        CHECK(t.datalen == whole.datalen
              && memcmp(t.data, whole.data, t.datalen) == 0);
        CHECK(t.ctllen == whole.ctllen
              && memcmp(t.ctl, whole.ctl, t.ctllen) == 0);

        free(t.data);
        free(t.ctl);
    }

    free(whole.data);
    free(whole.ctl);
}


static void
test_frame_header_builder(void)
{
    size_t         i, n;
    unsigned char  h[CHAT_WS_MAX_SERVER_HEADER];
    static const struct {
        uint64_t              len;
        size_t                n;
        const unsigned char  *bytes;
    } cases[] = {
        { 0, 2, (const unsigned char *) "\x81\x00" },
        { 125, 2, (const unsigned char *) "\x81\x7d" },
        { 126, 4, (const unsigned char *) "\x81\x7e\x00\x7e" },
        { 65535, 4, (const unsigned char *) "\x81\x7e\xff\xff" },
        { 65536, 10, (const unsigned char *)
            "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00" },
        { 1ULL << 32, 10, (const unsigned char *)
            "\x81\x7f\x00\x00\x00\x01\x00\x00\x00\x00" },
        { 0x0102030405060708ULL, 10, (const unsigned char *)
            "\x81\x7f\x01\x02\x03\x04\x05\x06\x07\x08" }
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(h, 0xee, sizeof(h));
        n = chat_ws_frame_header(h, CHAT_WS_OP_TEXT, cases[i].len);
        CHECK(n == cases[i].n);
        CHECK(memcmp(h, cases[i].bytes, n) == 0);
    }

    CHECK(chat_ws_frame_header(h, CHAT_WS_OP_BINARY, 3) == 2 && h[0] == 0x82);
    CHECK(chat_ws_frame_header(h, CHAT_WS_OP_CLOSE, 2) == 2 && h[0] == 0x88);
    CHECK(chat_ws_frame_header(h, CHAT_WS_OP_PING, 0) == 2 && h[0] == 0x89);
    CHECK(chat_ws_frame_header(h, CHAT_WS_OP_PONG, 125) == 2
          && h[0] == 0x8a && h[1] == 125);
}


static void
test_close_payload_builder(void)
{
    size_t         i, n, f;
    char           reason[200];
    unsigned char  out[CHAT_WS_MAX_CONTROL], b[256];

    CHECK(chat_ws_close_payload(out, 0, "ignored", 7) == 0);

    n = chat_ws_close_payload(out, 1000, NULL, 0);
    CHECK(n == 2 && out[0] == 0x03 && out[1] == 0xe8);

    n = chat_ws_close_payload(out, 1009, STR("message too big"));
    CHECK(n == 17 && out[0] == 0x03 && out[1] == 0xf1);
    CHECK(memcmp(out + 2, "message too big", 15) == 0);

    /* long ASCII is cut at 123 bytes */
    memset(reason, 'r', sizeof(reason));
    CHECK(chat_ws_close_payload(out, 1000, reason, sizeof(reason)) == 125);

    /* "é" is two bytes: 61 fit whole, the 62nd would be cut, so 122 */
    for (i = 0; i < 100; i++) {
        memcpy(reason + 2 * i, "\xc3\xa9", 2);
    }
    n = chat_ws_close_payload(out, 1000, reason, sizeof(reason));
    CHECK(n == 2 + 122);

    /* what we build, our parser accepts */
    f = put_frame(b, CLOSE, out, n);
    expect_ex(MIB, b, f, "close1000/122 ", NULL, 0, reason, 122);
}


int
main(void)
{
    UNIT_RUN(test_masked_text);
    UNIT_RUN(test_one_event_per_call);
    UNIT_RUN(test_unmasked_refused);
    UNIT_RUN(test_rsv_bits_refused);
    UNIT_RUN(test_reserved_opcodes_refused);
    UNIT_RUN(test_fragmented_text_with_ping);
    UNIT_RUN(test_ping_payload_limit);
    UNIT_RUN(test_fragmented_control_refused);
    UNIT_RUN(test_continuation_without_start);
    UNIT_RUN(test_new_message_while_fragmented);
    UNIT_RUN(test_extended_lengths);
    UNIT_RUN(test_non_minimal_lengths_refused);
    UNIT_RUN(test_64bit_length_high_bit_refused);
    UNIT_RUN(test_too_big_at_the_header);
    UNIT_RUN(test_too_big_across_fragments);
    UNIT_RUN(test_16mib_message_with_64mib_limit);
    UNIT_RUN(test_bad_utf8_inside_a_large_frame);
    UNIT_RUN(test_utf8_split_across_fragments);
    UNIT_RUN(test_text_ending_mid_character);
    UNIT_RUN(test_binary_not_utf8_checked);
    UNIT_RUN(test_close_frames);
    UNIT_RUN(test_close_codes);
    UNIT_RUN(test_zero_length_messages);
    UNIT_RUN(test_error_is_sticky);
    UNIT_RUN(test_chop);
    UNIT_RUN(test_frame_header_builder);
    UNIT_RUN(test_close_payload_builder);

    return UNIT_SUMMARY();
}
