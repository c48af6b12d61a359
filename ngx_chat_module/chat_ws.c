/*
 * chat_ws.c: RFC 6455 frames as a server receives them, parsed by a push
 * state machine that can stop after any byte and pick up where it left
 * off, and the few bytes of header the server puts on its own frames.
 *
 * How it works.  Header bytes are collected one at a time into p->hdr and
 * each is judged the moment it arrives: the first byte carries FIN, the
 * RSV bits and the opcode (and so the fragmentation rules), the second the
 * mask bit and the 7-bit length, then 0, 2 or 8 bytes of extended length
 * and the 4-byte masking key.  The message size limit is applied as soon
 * as the frame length is known, so a client announcing 2^40 bytes is
 * refused before it sends any, and the caller never sizes a buffer from a
 * length it has not approved.  Data payload is unmasked in place and handed
 * out as it comes, a chunk per call; text is run through chat_utf8 on the
 * way, so a bad byte deep inside a large frame is reported at that byte.
 * Control payloads (at most 125 bytes) are gathered into p->ctl and
 * reported whole, and may sit between the frames of a fragmented message
 * without touching its state.
 *
 * What it does not do: extensions (permessage-deflate; any RSV bit is an
 * error), the opening handshake, client-side (masked) output, buffering of
 * whole messages, or the closing handshake's bookkeeping: after a CLOSE
 * event the parser would go on parsing, and it is the caller who stops
 * reading.
 */

#include <string.h>

#include "chat_ws.h"


enum {
    CHAT_WS_ST_HEADER = 0,
    CHAT_WS_ST_DATA,
    CHAT_WS_ST_CONTROL,
    CHAT_WS_ST_ERROR
};

#define CHAT_WS_FIN   0x80
#define CHAT_WS_RSV   0x70
#define CHAT_WS_MASK  0x80


void
chat_ws_parser_init(chat_ws_parser_t *p, const chat_ws_config_t *conf)
{
    memset(p, 0, sizeof(chat_ws_parser_t));

    p->max_message = conf->max_message;
    p->state = CHAT_WS_ST_HEADER;
    p->hdr_need = 2;
    p->msg_opcode = CHAT_WS_OP_CONT;
    chat_utf8_init(&p->utf8);
}


static int
chat_ws_fail(chat_ws_parser_t *p, chat_ws_event_t *ev, unsigned code,
    const char *reason)
{
    p->state = CHAT_WS_ST_ERROR;
    p->err_code = code;
    p->err_reason = reason;

    ev->type = CHAT_WS_EV_ERROR;
    ev->code = code;
    ev->reason = reason;

    return -1;
}


static void
chat_ws_next_frame(chat_ws_parser_t *p)
{
    p->state = CHAT_WS_ST_HEADER;
    p->hdr_len = 0;
    p->hdr_need = 2;
}


/* XORs n payload bytes with the key, continuing at p->mask_pos. */
static void
chat_ws_unmask(chat_ws_parser_t *p, unsigned char *d, size_t n)
{
    size_t         i;
    uint64_t       key, w;
    unsigned char  k8[8];

    for (i = 0; i < n && ((p->mask_pos + i) & 3) != 0; i++) {
        d[i] ^= p->mask[(p->mask_pos + i) & 3];
    }

    if (n - i >= sizeof(w)) {
        memcpy(k8, p->mask, 4);
        memcpy(k8 + 4, p->mask, 4);
        memcpy(&key, k8, sizeof(key));

        for ( /* void */ ; n - i >= sizeof(w); i += sizeof(w)) {
            memcpy(&w, d + i, sizeof(w));
            w ^= key;
            memcpy(d + i, &w, sizeof(w));
        }
    }

    for ( /* void */ ; i < n; i++) {
        d[i] ^= p->mask[(p->mask_pos + i) & 3];
    }

    p->mask_pos = (unsigned char) ((p->mask_pos + n) & 3);
}


/* The frame length is known: judge it before any payload arrives. */
static int
chat_ws_frame_length(chat_ws_parser_t *p, uint64_t n, chat_ws_event_t *ev)
{
    uint64_t  before;

    p->remaining = n;

    if (p->opcode == CHAT_WS_OP_CLOSE && n == 1) {
        return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                            "close frame with a 1-byte payload");
    }

    if (p->opcode & 0x8) {
        return 0;
    }

    before = (p->opcode == CHAT_WS_OP_CONT) ? p->msg_len : 0;

    if (n > p->max_message - before) {
        return chat_ws_fail(p, ev, CHAT_WS_CLOSE_TOO_BIG, "message too big");
    }

    return 0;
}


/*
 * Judges the header byte just stored at p->hdr[p->hdr_len - 1].  Returns
 * -1 on a violation (ev filled), 0 when more header is due, 1 when the
 * header is complete.
 */
static int
chat_ws_header(chat_ws_parser_t *p, chat_ws_event_t *ev)
{
    unsigned       i;
    uint64_t       n;
    unsigned char  b, *h;

    h = p->hdr;
    b = h[p->hdr_len - 1];

    switch (p->hdr_len) {

    case 1:
        if (b & CHAT_WS_RSV) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "reserved bits set");
        }

        p->fin = (b & CHAT_WS_FIN) ? 1 : 0;
        p->opcode = b & 0x0f;

        switch (p->opcode) {

        case CHAT_WS_OP_CONT:
            if (p->msg_opcode == CHAT_WS_OP_CONT) {
                return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                    "continuation frame without a message");
            }
            break;

        case CHAT_WS_OP_TEXT:
        case CHAT_WS_OP_BINARY:
            if (p->msg_opcode != CHAT_WS_OP_CONT) {
                return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                    "new message inside a fragmented one");
            }
            break;

        case CHAT_WS_OP_CLOSE:
        case CHAT_WS_OP_PING:
        case CHAT_WS_OP_PONG:
            if (!p->fin) {
                return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                    "fragmented control frame");
            }
            break;

        default:
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "reserved opcode");
        }

        return 0;

    case 2:
        if (!(b & CHAT_WS_MASK)) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "unmasked client frame");
        }

        n = b & 0x7f;

        if ((p->opcode & 0x8) && n > CHAT_WS_MAX_CONTROL) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "control frame longer than 125 bytes");
        }

        if (n == 126) {
            p->hdr_need = 2 + 2 + 4;
            return 0;
        }

        if (n == 127) {
            p->hdr_need = 2 + 8 + 4;
            return 0;
        }

        p->hdr_need = 2 + 4;
        return chat_ws_frame_length(p, n, ev);

    case 3:
        if (p->hdr_need == 2 + 8 + 4 && (b & 0x80)) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "64-bit length with the high bit set");
        }

        break;

    case 4:
        if (p->hdr_need != 2 + 2 + 4) {
            break;
        }

        n = (uint64_t) h[2] << 8 | h[3];
        if (n < 126) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "length not in its shortest form");
        }

        return chat_ws_frame_length(p, n, ev);

    case 10:
        /* only the 64-bit form is still in its header here */
        n = 0;
        for (i = 2; i < 10; i++) {
            n = n << 8 | h[i];
        }

        if (n < 65536) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "length not in its shortest form");
        }

        return chat_ws_frame_length(p, n, ev);
    }

    if (p->hdr_len < p->hdr_need) {
        return 0;
    }

    /* complete: the last four bytes are the masking key */

    memcpy(p->mask, h + p->hdr_len - 4, 4);
    p->mask_pos = 0;

    if (p->opcode & 0x8) {
        p->state = CHAT_WS_ST_CONTROL;
        p->ctl_len = 0;
        return 1;
    }

    if (p->opcode != CHAT_WS_OP_CONT) {
        p->msg_opcode = p->opcode;
        p->msg_len = 0;
        p->msg_first = 1;
        chat_utf8_init(&p->utf8);
    }

    p->msg_len += p->remaining;
    p->state = CHAT_WS_ST_DATA;

    return 1;
}


/*
 * Takes the next n payload bytes of a data frame at d (n may be 0 only
 * for an empty frame).  Sets *used to the bytes consumed and returns 1
 * when ev holds an event, 0 when there is nothing to report.
 */
static int
chat_ws_data(chat_ws_parser_t *p, unsigned char *d, size_t n, size_t *used,
    chat_ws_event_t *ev)
{
    int            msg_end;
    size_t         bad;
    unsigned char  start;

    start = p->mask_pos;
    chat_ws_unmask(p, d, n);
    p->remaining -= n;

    msg_end = (p->remaining == 0 && p->fin);
    *used = n;

    if (p->msg_opcode == CHAT_WS_OP_TEXT) {
        if (chat_utf8_feed(&p->utf8, d, n, &bad) != CHAT_UTF8_OK) {
            /* stop at the bad byte; what follows stays as it came */
            p->mask_pos = (unsigned char) ((start + bad + 1) & 3);
            chat_ws_unmask(p, d + bad + 1, n - bad - 1);
            *used = bad + 1;

            chat_ws_fail(p, ev, CHAT_WS_CLOSE_BAD_DATA,
                         "invalid UTF-8 in a text message");
            return 1;
        }

        if (msg_end && chat_utf8_finish(&p->utf8) != CHAT_UTF8_OK) {
            chat_ws_fail(p, ev, CHAT_WS_CLOSE_BAD_DATA,
                         "text message ends inside a character");
            return 1;
        }
    }

    if (p->remaining == 0) {
        chat_ws_next_frame(p);
    }

    if (n == 0 && !msg_end) {
        return 0;
    }

    ev->type = CHAT_WS_EV_DATA;
    ev->opcode = (chat_ws_opcode_t) p->msg_opcode;
    ev->data = d;
    ev->len = n;
    ev->first = p->msg_first;
    ev->fin = (unsigned) msg_end;

    p->msg_first = 0;
    if (msg_end) {
        p->msg_opcode = CHAT_WS_OP_CONT;
    }

    return 1;
}


/* The whole control payload is in p->ctl: report it. */
static void
chat_ws_control(chat_ws_parser_t *p, chat_ws_event_t *ev)
{
    unsigned  code;

    chat_ws_next_frame(p);

    ev->data = p->ctl;
    ev->len = p->ctl_len;

    switch (p->opcode) {

    case CHAT_WS_OP_PING:
        ev->type = CHAT_WS_EV_PING;
        return;

    case CHAT_WS_OP_PONG:
        ev->type = CHAT_WS_EV_PONG;
        return;
    }

    /* close; a 1-byte payload was refused at the header */

    if (p->ctl_len == 0) {
        ev->type = CHAT_WS_EV_CLOSE;
        ev->code = 0;
        return;
    }

    code = (unsigned) p->ctl[0] << 8 | p->ctl[1];

    if (!chat_ws_close_code_valid(code)) {
        ev->data = NULL;
        ev->len = 0;
        chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL, "invalid close code");
        return;
    }

    if (!chat_utf8_valid(p->ctl + 2, p->ctl_len - 2u)) {
        ev->data = NULL;
        ev->len = 0;
        chat_ws_fail(p, ev, CHAT_WS_CLOSE_BAD_DATA,
                     "invalid UTF-8 in a close reason");
        return;
    }

    ev->type = CHAT_WS_EV_CLOSE;
    ev->code = code;
    ev->data = p->ctl + 2;
    ev->len = p->ctl_len - 2u;
}


size_t
chat_ws_parse(chat_ws_parser_t *p, unsigned char *in, size_t len,
    chat_ws_event_t *ev)
{
    int     rc;
    size_t  pos, n, used;

    memset(ev, 0, sizeof(chat_ws_event_t));

    if (p->state == CHAT_WS_ST_ERROR) {
        ev->type = CHAT_WS_EV_ERROR;
        ev->code = p->err_code;
        ev->reason = p->err_reason;
        return 0;
    }

    pos = 0;

    while (pos < len) {

        if (p->state == CHAT_WS_ST_HEADER) {
            p->hdr[p->hdr_len++] = in[pos++];

            rc = chat_ws_header(p, ev);
            if (rc < 0) {
                return pos;
            }

            if (rc == 0 || p->remaining > 0) {
                continue;
            }

            /* an empty frame is complete with its header */

            if (p->state == CHAT_WS_ST_CONTROL) {
                chat_ws_control(p, ev);
                return pos;
            }

            if (chat_ws_data(p, in + pos, 0, &used, ev)) {
                return pos;
            }

            continue;
        }

        n = len - pos;
        if (n > p->remaining) {
            n = (size_t) p->remaining;
        }

        if (p->state == CHAT_WS_ST_DATA) {
            /* n > 0 here, so there is always an event */
            chat_ws_data(p, in + pos, n, &used, ev);
            return pos + used;
        }

        memcpy(p->ctl + p->ctl_len, in + pos, n);
        chat_ws_unmask(p, p->ctl + p->ctl_len, n);
        p->ctl_len = (unsigned char) (p->ctl_len + n);
        p->remaining -= n;
        pos += n;

        if (p->remaining == 0) {
            chat_ws_control(p, ev);
            return pos;
        }
    }

    return pos;
}


size_t
chat_ws_frame_header(unsigned char out[CHAT_WS_MAX_SERVER_HEADER],
    chat_ws_opcode_t opcode, uint64_t payload_len)
{
    int  i;

    out[0] = (unsigned char) (CHAT_WS_FIN | (opcode & 0x0f));

    if (payload_len < 126) {
        out[1] = (unsigned char) payload_len;
        return 2;
    }

    if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char) (payload_len >> 8);
        out[3] = (unsigned char) payload_len;
        return 4;
    }

    out[1] = 127;
    for (i = 0; i < 8; i++) {
        out[2 + i] = (unsigned char) (payload_len >> (56 - 8 * i));
    }

    return 10;
}


size_t
chat_ws_close_payload(unsigned char out[CHAT_WS_MAX_CONTROL], unsigned code,
    const char *reason, size_t reason_len)
{
    if (code == 0) {
        return 0;
    }

    out[0] = (unsigned char) (code >> 8);
    out[1] = (unsigned char) code;

    if (reason == NULL) {
        return 2;
    }

    if (reason_len > CHAT_WS_MAX_CONTROL - 2) {
        /* cut before a continuation byte never splits a character */
        reason_len = CHAT_WS_MAX_CONTROL - 2;
        while (reason_len > 0
               && ((unsigned char) reason[reason_len] & 0xc0) == 0x80)
        {
            reason_len--;
        }
    }

    memcpy(out + 2, reason, reason_len);

    return 2 + reason_len;
}


int
chat_ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003)
           || (code >= 1007 && code <= 1014)
           || (code >= 3000 && code <= 4999);
}
