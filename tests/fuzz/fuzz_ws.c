/*
 * fuzz_ws.c: libFuzzer harness for the WebSocket frame parser (chat_ws.c)
 * and, through it, the UTF-8 validator.
 *
 * An input is four bytes of setup and then the bytes a client sends:
 *
 *   [0..1]  max_message = 64 + (little-endian value % 4033), so 64..4096
 *   [2]     how to cut the stream: 0: 1-byte pieces, 1: 2, 2: 7, 3: 3,
 *           anything else: pseudo-random pieces of 1..(1 + [3] % 64) bytes
 *   [3]     seed for the random pieces
 *
 * The stream is parsed three times: whole, cut into pieces (each piece in
 * a buffer of its own, so reading past a piece is an ASan report), and by
 * a slow reference parser below that sees the whole input at once.  Each
 * run writes a log that does not depend on how the input was cut: whole
 * messages, control frames, the error with the bytes consumed when it
 * came, and the bytes of a message still open when the input ran out.
 * The three logs must be identical.  Along the way every call is checked
 * against the API contract (see check_event) and any breach is abort().
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_utf8.h"
#include "chat_ws.h"


#define MAX_MESSAGE_CAP  4096

typedef struct {
    unsigned char  *buf;
    size_t          len;
    size_t          cap;
} flog_t;

typedef struct {
    flog_t            log;
    uint64_t          max;
    unsigned char     msg[MAX_MESSAGE_CAP];
    size_t            msg_len;
    int               in_msg;
    chat_ws_opcode_t  msg_op;
    size_t            consumed;
    int               error;
} run_t;


#define fail(what)  fail_at(__LINE__, what)

static void
fail_at(int line, const char *what)
{
    fprintf(stderr, "fuzz_ws.c:%d: %s\n", line, what);
    abort();
}


static void
log_put(flog_t *l, const void *p, size_t n)
{
    size_t  cap;

    if (l->len + n > l->cap) {
        cap = l->cap ? l->cap : 256;
        while (cap < l->len + n) {
            cap *= 2;
        }
        l->buf = realloc(l->buf, cap);
        if (l->buf == NULL) {
            fail("out of memory");
        }
        l->cap = cap;
    }

    if (n > 0) {
        memcpy(l->buf + l->len, p, n);
    }
    l->len += n;
}


/* a record: tag, a number, then n bytes */
static void
log_rec(flog_t *l, char tag, uint64_t num, const void *p, size_t n)
{
    uint64_t  len;

    len = n;
    log_put(l, &tag, 1);
    log_put(l, &num, sizeof(num));
    log_put(l, &len, sizeof(len));
    log_put(l, p, n);
}


/* ---------------------------------------------------------------- */
/* the parser under test                                             */


static void
check_event(run_t *r, const chat_ws_event_t *ev, const unsigned char *in,
    size_t n, size_t used, const unsigned char *orig)
{
    if (used > n) {
        fail("consumed more than it was given");
    }

    /* bytes beyond the count must be left as they came */
    if (memcmp(in + used, orig + used, n - used) != 0) {
        fail("touched bytes it did not consume");
    }

    if (ev->type == CHAT_WS_EV_NONE) {
        if (used != n) {
            fail("NONE without consuming everything");
        }
        return;
    }

    if (used == 0) {
        fail("an event without progress");
    }

    switch (ev->type) {

    case CHAT_WS_EV_DATA:
        if (ev->opcode != CHAT_WS_OP_TEXT && ev->opcode != CHAT_WS_OP_BINARY) {
            fail("DATA with a bad opcode");
        }
        if (ev->data < in || ev->data + ev->len != in + used) {
            fail("DATA is not the tail of the consumed bytes");
        }
        if (ev->first != (unsigned) !r->in_msg) {
            fail("DATA first flag wrong");
        }
        if (r->in_msg && ev->opcode != r->msg_op) {
            fail("DATA opcode changed inside a message");
        }
        if (ev->first) {
            r->in_msg = 1;
            r->msg_op = ev->opcode;
            r->msg_len = 0;
        }

        if (ev->len > r->max - r->msg_len) {
            fail("message longer than max_message");
        }

        memcpy(r->msg + r->msg_len, ev->data, ev->len);
        r->msg_len += ev->len;

        if (ev->fin) {
            if (r->msg_op == CHAT_WS_OP_TEXT
                && !chat_utf8_valid(r->msg, r->msg_len))
            {
                fail("a complete TEXT message is not valid UTF-8");
            }
            log_rec(&r->log, 'M', r->msg_op, r->msg, r->msg_len);
            r->in_msg = 0;
        }
        break;

    case CHAT_WS_EV_PING:
    case CHAT_WS_EV_PONG:
        if (ev->len > CHAT_WS_MAX_CONTROL) {
            fail("control payload over 125 bytes");
        }
        log_rec(&r->log, ev->type == CHAT_WS_EV_PING ? 'P' : 'O', 0,
                ev->data, ev->len);
        break;

    case CHAT_WS_EV_CLOSE:
        if (ev->code == 0 ? ev->len != 0
                          : !chat_ws_close_code_valid(ev->code)
                            || ev->len > CHAT_WS_MAX_CONTROL - 2
                            || !chat_utf8_valid(ev->data, ev->len))
        {
            fail("CLOSE with a bad code or reason");
        }
        log_rec(&r->log, 'C', ev->code, ev->data, ev->len);
        break;

    case CHAT_WS_EV_ERROR:
        if ((ev->code != 1002 && ev->code != 1007 && ev->code != 1009)
            || ev->reason == NULL || ev->reason[0] == '\0'
            || strlen(ev->reason) > CHAT_WS_MAX_CONTROL - 2)
        {
            fail("ERROR with a bad code or reason");
        }
        /* a message cut short is dropped, and so not logged */
        r->in_msg = 0;
        r->error = (int) ev->code;
        log_rec(&r->log, 'E', ev->code, NULL, 0);
        log_put(&r->log, &r->consumed, sizeof(r->consumed));
        break;

    default:
        fail("unknown event type");
    }
}


/* Parses one piece (in, n bytes; orig: its bytes as they came). */
static void
run_piece(run_t *r, chat_ws_parser_t *p, unsigned char *in, size_t n,
    const unsigned char *orig)
{
    size_t           used;
    chat_ws_event_t  ev;

    while (!r->error) {
        memset(&ev, 0xa5, sizeof(ev));
        used = chat_ws_parse(p, in, n, &ev);
        r->consumed += used;
        check_event(r, &ev, in, n, used, orig);

        if (r->error) {
            /* it sticks, says the same, and eats nothing */
            used = chat_ws_parse(p, in + used, n - used, &ev);
            if (used != 0 || ev.type != CHAT_WS_EV_ERROR
                || (int) ev.code != r->error)
            {
                fail("the error state did not stick");
            }
            return;
        }

        if (ev.type == CHAT_WS_EV_NONE) {
            return;
        }

        in += used;
        orig += used;
        n -= used;
    }
}


static void
run_end(run_t *r)
{
    if (r->in_msg) {
        log_rec(&r->log, 'I', r->msg_op, r->msg, r->msg_len);
    }
}


static void
run_whole(run_t *r, const uint8_t *data, size_t len)
{
    unsigned char     *buf;
    chat_ws_config_t   conf;
    chat_ws_parser_t   p;

    conf.max_message = r->max;
    chat_ws_parser_init(&p, &conf);

    buf = malloc(len ? len : 1);
    memcpy(buf, data, len);
    run_piece(r, &p, buf, len, data);
    free(buf);

    run_end(r);
}


static void
run_chunked(run_t *r, const uint8_t *data, size_t len, unsigned mode,
    unsigned seed)
{
    size_t             off, n, limit;
    uint32_t           x;
    unsigned char     *piece;
    chat_ws_config_t   conf;
    chat_ws_parser_t   p;
    static const size_t  fixed[] = { 1, 2, 7, 3 };

    conf.max_message = r->max;
    chat_ws_parser_init(&p, &conf);

    x = 0x9e3779b9u ^ seed;
    limit = 1 + seed % 64;

    for (off = 0; off < len && !r->error; off += n) {
        if (mode < 4) {
            n = fixed[mode];
        } else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            n = 1 + x % limit;
        }
        if (n > len - off) {
            n = len - off;
        }

        piece = malloc(n);
        memcpy(piece, data + off, n);
        run_piece(r, &p, piece, n, data + off);
        free(piece);
    }

    run_end(r);
}


/* ---------------------------------------------------------------- */
/* the reference: the same rules, read off a whole buffer            */


static void
ref_error(run_t *r, unsigned code, size_t at)
{
    r->error = (int) code;
    r->consumed = at;
    log_rec(&r->log, 'E', code, NULL, 0);
    log_put(&r->log, &r->consumed, sizeof(r->consumed));
}


static void
ref_parse(run_t *r, const uint8_t *in, size_t len)
{
    int             op, fin, msg_op;
    size_t          pos, hl, i, avail, bad;
    uint64_t        n, declared;
    unsigned        code;
    chat_utf8_t     u;
    unsigned char   mask[4], *pl;

    pl = malloc(len ? len : 1);
    pos = 0;
    msg_op = 0;
    declared = 0;
    r->msg_len = 0;
    chat_utf8_init(&u);

    for ( ;; ) {
        if (pos + 1 > len) {
            break;
        }

        if (in[pos] & 0x70) {
            ref_error(r, 1002, pos + 1);
            goto done;
        }

        op = in[pos] & 0x0f;
        fin = in[pos] >> 7;

        if ((op == 0 && msg_op == 0)
            || ((op == 1 || op == 2) && msg_op != 0)
            || (op >= 8 && op <= 10 && !fin)
            || (op > 2 && op < 8) || op > 10)
        {
            ref_error(r, 1002, pos + 1);
            goto done;
        }

        if (pos + 2 > len) {
            break;
        }

        n = in[pos + 1] & 0x7f;
        if (!(in[pos + 1] & 0x80) || (op >= 8 && n > 125)) {
            ref_error(r, 1002, pos + 2);
            goto done;
        }

        hl = 2;

        if (n == 126) {
            if (pos + 4 > len) {
                break;
            }
            n = (uint64_t) in[pos + 2] << 8 | in[pos + 3];
            hl = 4;
            if (n < 126) {
                ref_error(r, 1002, pos + hl);
                goto done;
            }

        } else if (n == 127) {
            if (pos + 3 > len) {
                break;
            }
            if (in[pos + 2] & 0x80) {
                ref_error(r, 1002, pos + 3);
                goto done;
            }
            if (pos + 10 > len) {
                break;
            }
            n = 0;
            for (i = 2; i < 10; i++) {
                n = n << 8 | in[pos + i];
            }
            hl = 10;
            if (n < 65536) {
                ref_error(r, 1002, pos + hl);
                goto done;
            }
        }

        if (op == 8 && n == 1) {
            ref_error(r, 1002, pos + hl);
            goto done;
        }

        if (op < 8 && n + (op == 0 ? declared : 0) > r->max) {
            ref_error(r, 1009, pos + hl);
            goto done;
        }

        if (pos + hl + 4 > len) {
            break;
        }

        memcpy(mask, in + pos + hl, 4);
        hl += 4;

        avail = len - pos - hl;
        if (avail > n) {
            avail = (size_t) n;
        }
        for (i = 0; i < avail; i++) {
            pl[i] = in[pos + hl + i] ^ mask[i & 3];
        }

        if (op >= 8) {
            if (avail < n) {
                break;
            }

            pos += hl + avail;

            if (op == 9 || op == 10) {
                log_rec(&r->log, op == 9 ? 'P' : 'O', 0, pl, avail);
                continue;
            }

            if (n == 0) {
                log_rec(&r->log, 'C', 0, NULL, 0);
                continue;
            }

            code = (unsigned) pl[0] << 8 | pl[1];
            if (!((code >= 1000 && code <= 1003)
                  || (code >= 1007 && code <= 1014)
                  || (code >= 3000 && code <= 4999)))
            {
                ref_error(r, 1002, pos);
                goto done;
            }
            if (!chat_utf8_valid(pl + 2, avail - 2)) {
                ref_error(r, 1007, pos);
                goto done;
            }
            log_rec(&r->log, 'C', code, pl + 2, avail - 2);
            continue;
        }

        if (op != 0) {
            msg_op = op;
            declared = 0;
            r->msg_len = 0;
            chat_utf8_init(&u);
        }
        declared += n;

        if (msg_op == 1
            && chat_utf8_feed(&u, pl, avail, &bad) != CHAT_UTF8_OK)
        {
            ref_error(r, 1007, pos + hl + bad + 1);
            goto done;
        }

        memcpy(r->msg + r->msg_len, pl, avail);
        r->msg_len += avail;

        if (avail < n) {
            break;
        }

        pos += hl + avail;

        if (fin) {
            if (msg_op == 1 && chat_utf8_finish(&u) != CHAT_UTF8_OK) {
                ref_error(r, 1007, pos);
                goto done;
            }
            log_rec(&r->log, 'M', (uint64_t) msg_op, r->msg, r->msg_len);
            msg_op = 0;
            r->msg_len = 0;
        }
    }

    /* out of input: the open message, if any of it came */
    if (msg_op != 0 && r->msg_len > 0) {
        log_rec(&r->log, 'I', (uint64_t) msg_op, r->msg, r->msg_len);
    }

done:

    free(pl);
}


/* ---------------------------------------------------------------- */
/* the builders: what the server writes must read back               */


static void
check_builders(const uint8_t *data, size_t size)
{
    size_t             i, hl, n, rlen;
    uint64_t           len, got;
    unsigned           code, op;
    chat_ws_event_t    ev;
    chat_ws_config_t   conf;
    chat_ws_parser_t   p;
    unsigned char      h[CHAT_WS_MAX_SERVER_HEADER];
    unsigned char      frame[2 + 4 + CHAT_WS_MAX_CONTROL];
    static const unsigned char  key[4] = { 0x5c, 0x00, 0xff, 0x81 };
    static const unsigned       ops[] = { 0x1, 0x2, 0x8, 0x9, 0xa };

    if (size < 10) {
        return;
    }

    /* a header for a length of any magnitude */

    len = 0;
    for (i = 0; i < 8; i++) {
        len = len << 8 | data[i];
    }
    len >>= data[8] % 64;
    op = ops[data[9] % 5];

    hl = chat_ws_frame_header(h, (chat_ws_opcode_t) op, len);

    if (h[0] != (0x80 | op) || (h[1] & 0x80)
        || hl != (len < 126 ? 2u : len < 65536 ? 4u : 10u))
    {
        fail("frame header: bad first bytes or not the shortest form");
    }

    got = h[1] & 0x7f;
    for (i = 2; i < hl; i++) {
        got = (i == 2 ? 0 : got << 8) | h[i];
    }
    if (got != len) {
        fail("frame header: length does not read back");
    }

    /* a close payload: the input's first two bytes and a UTF-8 reason */

    code = (unsigned) data[0] << 8 | data[1];
    rlen = size - 2;
    if (!chat_utf8_valid(data + 2, rlen)) {
        return;
    }

    n = chat_ws_close_payload(frame + 6, code, (const char *) data + 2, rlen);

    if (code == 0 ? n != 0
                  : n < 2 || n > CHAT_WS_MAX_CONTROL
                    || frame[6] != (code >> 8) || frame[7] != (code & 0xff)
                    || memcmp(frame + 8, data + 2, n - 2) != 0
                    || (rlen <= 123 ? n - 2 != rlen : n - 2 < 120))
    {
        fail("close payload: wrong code, reason or cut");
    }

    /* mask it as a client would and parse it */

    frame[0] = 0x88;
    frame[1] = (unsigned char) (0x80 | n);
    memcpy(frame + 2, key, 4);
    for (i = 0; i < n; i++) {
        frame[6 + i] ^= key[i & 3];
    }

    conf.max_message = 1024 * 1024;
    chat_ws_parser_init(&p, &conf);

    if (chat_ws_parse(&p, frame, 6 + n, &ev) != 6 + n) {
        fail("close payload: not consumed whole");
    }

    rlen = (code == 0) ? 0 : n - 2;

    if (code == 0 || chat_ws_close_code_valid(code)
        ? ev.type != CHAT_WS_EV_CLOSE || ev.code != code || ev.len != rlen
          || (rlen > 0 && memcmp(ev.data, data + 2, rlen) != 0)
        : ev.type != CHAT_WS_EV_ERROR || ev.code != 1002)
    {
        fail("close payload: does not parse back");
    }
}


/* ---------------------------------------------------------------- */


static void
compare(const run_t *a, const run_t *b, const char *what)
{
    if (a->log.len != b->log.len
        || (a->log.len > 0 && memcmp(a->log.buf, b->log.buf, a->log.len)))
    {
        fprintf(stderr, "logs differ: %s (%zu vs %zu bytes)\n", what,
                a->log.len, b->log.len);
        abort();
    }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned        mode, seed;
    uint64_t        max;
    static run_t    whole, chunked, ref;

    check_builders(data, size);

    if (size < 4) {
        return 0;
    }

    max = 64 + (uint64_t) (data[0] | data[1] << 8) % 4033;
    mode = data[2];
    seed = data[3];
    data += 4;
    size -= 4;

    memset(&whole, 0, sizeof(run_t));
    memset(&chunked, 0, sizeof(run_t));
    memset(&ref, 0, sizeof(run_t));
    whole.max = chunked.max = ref.max = max;

    run_whole(&whole, data, size);
    run_chunked(&chunked, data, size, mode, seed);
    ref_parse(&ref, data, size);

    compare(&whole, &chunked, "whole vs pieces");
    compare(&whole, &ref, "parser vs reference");

    free(whole.log.buf);
    free(chunked.log.buf);
    free(ref.log.buf);

    return 0;
}
