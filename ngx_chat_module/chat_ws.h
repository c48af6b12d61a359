/*
 * chat_ws.h: the server side of RFC 6455 framing.  A push parser for what
 * clients send and a header builder for what the server sends.  Plain C,
 * no nginx types and no allocation, so the edge, the unit tests and the
 * fuzzer compile the same file.
 *
 * The caller owns a chat_ws_parser_t, initialises it once per connection
 * and hands it every byte read from the socket, in pieces of any size:
 *
 *     while (len > 0) {
 *         n = chat_ws_parse(&p, in, len, &ev);
 *         in += n;
 *         len -= n;
 *         switch (ev.type) { ... }     (stop on CHAT_WS_EV_ERROR)
 *     }
 *
 * Each call consumes bytes until it has one event to report and returns
 * how many it consumed; CHAT_WS_EV_NONE means it consumed all of them and
 * needs more.  Payload bytes are unmasked in place in the caller's buffer;
 * bytes beyond the returned count are never touched.  The events are the
 * same however the input is cut, except that a data frame's payload may
 * come as more, smaller DATA chunks, and so a message that ends in an
 * ERROR may have had some of its chunks reported first: drop them.
 */

#ifndef CHAT_WS_H
#define CHAT_WS_H

#include <stddef.h>
#include <stdint.h>

#include "chat_utf8.h"

#define CHAT_WS_MAX_CONTROL         125
#define CHAT_WS_MAX_HEADER          14      /* what a client may send */
#define CHAT_WS_MAX_SERVER_HEADER   10      /* unmasked */

/* close codes the parser asks the caller to send */
#define CHAT_WS_CLOSE_NORMAL        1000
#define CHAT_WS_CLOSE_PROTOCOL      1002
#define CHAT_WS_CLOSE_BAD_DATA      1007
#define CHAT_WS_CLOSE_TOO_BIG       1009

typedef enum {
    CHAT_WS_OP_CONT = 0x0,
    CHAT_WS_OP_TEXT = 0x1,
    CHAT_WS_OP_BINARY = 0x2,
    CHAT_WS_OP_CLOSE = 0x8,
    CHAT_WS_OP_PING = 0x9,
    CHAT_WS_OP_PONG = 0xa
} chat_ws_opcode_t;

typedef enum {
    CHAT_WS_EV_NONE = 0,        /* all input consumed, need more */
    CHAT_WS_EV_DATA,            /* a chunk of a text or binary message */
    CHAT_WS_EV_PING,            /* a whole ping; answer with a pong */
    CHAT_WS_EV_PONG,
    CHAT_WS_EV_CLOSE,           /* a whole, valid close frame */
    CHAT_WS_EV_ERROR            /* protocol violation: send close, drop */
} chat_ws_event_type_t;

/*
 * One event.  Which fields mean something depends on the type:
 *
 *   DATA    opcode (TEXT or BINARY, the message's, also for continuation
 *           frames), data/len (inside the caller's buffer, unmasked),
 *           first (first chunk of the message), fin (last chunk).  A chunk
 *           never spans two frames.  Every message ends with exactly one
 *           chunk with fin set, of length 0 when its last frame is empty;
 *           empty frames in the middle of a message produce nothing.
 *   PING,   data/len: the whole payload, 0..125 bytes, in the parser's
 *   PONG    own buffer, valid until the next call.
 *   CLOSE   code: the received status code, 0 when the frame had no
 *           payload; data/len: the reason (valid UTF-8), parser's buffer.
 *   ERROR   code: 1002, 1007 or 1009, the close code to send; reason: a
 *           short static NUL-terminated text for the close frame and logs.
 *
 * A TEXT message's chunks are validated UTF-8 as they come; the last one
 * (fin) is only reported when the message as a whole is valid.
 */
typedef struct {
    chat_ws_event_type_t   type;
    chat_ws_opcode_t       opcode;
    unsigned char         *data;
    size_t                 len;
    unsigned               first;
    unsigned               fin;
    unsigned               code;
    const char            *reason;
} chat_ws_event_t;

typedef struct {
    uint64_t  max_message;      /* bytes per message, taken literally */
} chat_ws_config_t;

/* Opaque in spirit: fixed size, owned by the caller, read by nobody else. */
typedef struct {
    uint64_t        max_message;
    uint64_t        msg_len;        /* declared bytes of this message */
    uint64_t        remaining;      /* payload left in this frame */
    const char     *err_reason;
    unsigned        err_code;
    unsigned char   state;
    unsigned char   opcode;         /* this frame's */
    unsigned char   fin;            /* this frame's */
    unsigned char   msg_opcode;     /* message in progress, or CONT: none */
    unsigned char   msg_first;      /* no chunk of it reported yet */
    unsigned char   hdr_len;
    unsigned char   hdr_need;
    unsigned char   mask_pos;
    unsigned char   ctl_len;
    unsigned char   hdr[CHAT_WS_MAX_HEADER];
    unsigned char   mask[4];
    chat_utf8_t     utf8;
    unsigned char   ctl[CHAT_WS_MAX_CONTROL];
} chat_ws_parser_t;

/*
 * Readies p for a new connection; conf is copied.  A message is refused
 * (1009) once its frame headers add up to more than conf->max_message
 * bytes, before any of that payload arrives, so the DATA chunks of one
 * message never add up to more: a buffer of max_message bytes holds any
 * message.  The limit is taken literally: 0 lets only empty messages in.
 */
void chat_ws_parser_init(chat_ws_parser_t *p, const chat_ws_config_t *conf);

/*
 * Consumes bytes from in (len bytes, unmasking payload in place) until one
 * event is complete, fills *ev and returns the number consumed.  The
 * number is len exactly when ev->type is CHAT_WS_EV_NONE, and at least 1
 * for any other event reported for the first time.  Violations are
 * reported at the byte that makes them certain (that byte is consumed):
 * a bad header bit at its byte, an oversized message as soon as the frame
 * length is known, invalid UTF-8 at the offending payload byte.  After an
 * ERROR the parser reports the same ERROR again, consuming nothing.
 */
size_t chat_ws_parse(chat_ws_parser_t *p, unsigned char *in, size_t len,
    chat_ws_event_t *ev);

/*
 * Writes the header of an unmasked, final (FIN) server frame into out and
 * returns its length: 2, 4 or 10 bytes.
 */
size_t chat_ws_frame_header(unsigned char out[CHAT_WS_MAX_SERVER_HEADER],
    chat_ws_opcode_t opcode, uint64_t payload_len);

/*
 * Writes a close frame payload into out: nothing when code is 0, else the
 * code in network order and the reason (UTF-8, may be NULL), cut to the
 * 123 bytes that fit at a character boundary, so a valid reason stays
 * valid.  Returns the payload length (0..125).
 */
size_t chat_ws_close_payload(unsigned char out[CHAT_WS_MAX_CONTROL],
    unsigned code, const char *reason, size_t reason_len);

/*
 * 1 when a peer may send code in a close frame: 1000-1003, 1007-1014 and
 * 3000-4999.  1004 is reserved, 1005, 1006 and 1015 must never be sent,
 * the rest of 1000-2999 is unassigned, 5000 and up do not exist.
 */
int chat_ws_close_code_valid(unsigned code);

#endif /* CHAT_WS_H */
