/*
 * ngx_chat_ws.h: what the two halves of a chat WebSocket share.
 * ngx_chat_ws.c owns the connection (handshake, frames in and out,
 * pings, closing); ngx_chat_ws_chat.c gives the messages their meaning
 * (JSON commands to the bus, their answers, events from workers).
 */

#ifndef NGX_CHAT_WS_H
#define NGX_CHAT_WS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "chat_ws.h"
#include "ngx_chat_module.h"
#include "ngx_chat_registry.h"


typedef struct ngx_chat_ws_s  ngx_chat_ws_t;


/* one frame waiting to be written; header and payload in one piece */
typedef struct {
    ngx_queue_t           queue;
    size_t                len;
    size_t                sent;
    u_char                data[1];
} ngx_chat_ws_out_t;


struct ngx_chat_ws_s {
    ngx_http_request_t   *request;
    ngx_connection_t     *connection;
    ngx_chat_client_t     client;
    ngx_chat_caller_t     caller;
    chat_ws_parser_t      parser;

    u_char               *msg;          /* reassembly, NULL between messages */
    size_t                msg_len;
    size_t                msg_cap;

    ngx_queue_t           out;
    size_t                out_bytes;
    ngx_queue_t           commands;
    ngx_uint_t            ncommands;

    ngx_event_t           ping;
    ngx_event_t           closer;       /* posted: close from a safe place */
    ngx_event_t           close_timer;  /* give up on flushing the close */
    ngx_event_t           expiry;       /* the token runs out: 1008 */

    /* typing: the last indicator sent to Redis, to drop repeats here */
    int64_t               typing_cid;
    ngx_msec_t            typing_at;
    ngx_uint_t            app;          /* its endpoint's index (caps) */

    unsigned              awaiting_pong:1;
    unsigned              closing:1;    /* close frame queued, then drop */
    unsigned              lingering:1;  /* close sent: drain input, then drop */
    unsigned              drop:1;       /* close the socket, send nothing */
    unsigned              finished:1;
    unsigned              capped:1;     /* counted in chat_ws_max_per_user */
};


/* ngx_chat_ws.c: queue a frame (1008 past chat_ws_max_queue), write the
 * queue out, close with a code */
void ngx_chat_ws_send(ngx_chat_ws_t *ws, chat_ws_opcode_t opcode,
    u_char *data, size_t len);
ngx_int_t ngx_chat_ws_flush(ngx_chat_ws_t *ws);
void ngx_chat_ws_close(ngx_chat_ws_t *ws, unsigned code, const char *reason);

/* ngx_chat_ws_chat.c: one complete text message; an event for the client;
 * forget the commands in flight when the connection goes */
void ngx_chat_ws_message(ngx_chat_ws_t *ws, u_char *text, size_t len);
void ngx_chat_ws_deliver(ngx_chat_client_t *client, u_char *event,
    size_t len);
void ngx_chat_ws_cancel_commands(ngx_chat_ws_t *ws);

#endif /* NGX_CHAT_WS_H */
