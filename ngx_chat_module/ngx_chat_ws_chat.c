/*
 * ngx_chat_ws_chat.c: the chat protocol spoken over a WebSocket.
 *
 * Every client message is one JSON object with a "type".  send, read,
 * delivered and sync become bus commands exactly like their HTTP twins
 * (ngx_chat_bus.c) and their answers come back as ack, read, delivered,
 * sync or error frames; ping is answered here; typing goes straight to
 * Redis (ngx_chat_typing.c) and is not answered; events fanned out by
 * workers arrive through the registry
 * and go to the client as they are.  At most NGX_CHAT_WS_MAX_INFLIGHT
 * commands may wait per connection.
 *
 * Frames in and out, and closing, belong to ngx_chat_ws.c.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <cjson/cJSON.h>

#include "chat_json.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_ws.h"


#define NGX_CHAT_WS_MAX_INFLIGHT    256


typedef enum {
    NGX_CHAT_WS_CMD_SEND = 0,
    NGX_CHAT_WS_CMD_READ,
    NGX_CHAT_WS_CMD_SYNC,
    NGX_CHAT_WS_CMD_DELIVERED
} ngx_chat_ws_cmd_e;


/* a command waiting for its answer from the bus */
typedef struct {
    ngx_chat_pending_t    pending;
    ngx_queue_t           queue;
    ngx_chat_ws_t        *ws;
    ngx_chat_ws_cmd_e     kind;
    cJSON                *ref;          /* echoed in error frames */
} ngx_chat_ws_cmd_t;


static void ngx_chat_ws_command(ngx_chat_ws_t *ws, cJSON *json,
    ngx_chat_ws_cmd_e kind, const char *op, u_char *text, size_t len);
static void ngx_chat_ws_answer(ngx_chat_pending_t *p, ngx_uint_t status,
    u_char *body, size_t len);
static void ngx_chat_ws_refuse(ngx_chat_ws_t *ws, chat_json_rc_t rc,
    size_t where, u_char *text, size_t len);
static void ngx_chat_ws_typing(ngx_chat_ws_t *ws, cJSON *json, cJSON *ref);
static void ngx_chat_ws_send_json(ngx_chat_ws_t *ws, cJSON *json);
static void ngx_chat_ws_send_error(ngx_chat_ws_t *ws, const char *code,
    const char *message, cJSON *ref);


/* One complete text message from the client: a JSON command. */
void
ngx_chat_ws_message(ngx_chat_ws_t *ws, u_char *text, size_t len)
{
    size_t          where;
    cJSON          *json, *type, *ref;
    const char     *t;
    chat_json_rc_t  rc;

    /* the same strict reading as an HTTP body (chat_json.c): the client's
     * text is the command body the workers read */
    rc = chat_json_check((const char *) text, len,
                         CHAT_JSON_OBJECT | CHAT_JSON_INTEGERS, &where);

    if (rc != CHAT_JSON_OK) {
        ngx_chat_ws_refuse(ws, rc, where, text, len);
        return;
    }

    json = cJSON_ParseWithLength((const char *) text, len);

    if (json == NULL) {
        /* the text is valid: only memory can have failed */
        ngx_chat_ws_send_error(ws, "internal", "out of memory", NULL);
        return;
    }

    type = cJSON_GetObjectItemCaseSensitive(json, "type");
    ref = cJSON_GetObjectItemCaseSensitive(json, "ref");

    if (!cJSON_IsString(type)) {
        ngx_chat_ws_send_error(ws, "invalid_message",
                               "\"type\" (a string) is required", ref);
        cJSON_Delete(json);
        return;
    }

    t = type->valuestring;

    if (ngx_strcmp(t, "ping") == 0) {
        ngx_chat_ws_send(ws, CHAT_WS_OP_TEXT, (u_char *) "{\"type\":\"pong\"}",
                         sizeof("{\"type\":\"pong\"}") - 1);

    } else if (ngx_strcmp(t, "send") == 0) {
        ngx_chat_ws_command(ws, json, NGX_CHAT_WS_CMD_SEND, "msg.send", text,
                            len);

    } else if (ngx_strcmp(t, "read") == 0) {
        ngx_chat_ws_command(ws, json, NGX_CHAT_WS_CMD_READ, "conv.read", text,
                            len);

    } else if (ngx_strcmp(t, "sync") == 0) {
        ngx_chat_ws_command(ws, json, NGX_CHAT_WS_CMD_SYNC, "sync", text,
                            len);

    } else if (ngx_strcmp(t, "typing") == 0) {
        ngx_chat_ws_typing(ws, json, ref);

    } else if (ngx_strcmp(t, "delivered") == 0) {
        ngx_chat_ws_command(ws, json, NGX_CHAT_WS_CMD_DELIVERED,
                            "conv.delivered", text, len);

    } else {
        ngx_chat_ws_send_error(ws, "unknown_type",
                               "type must be send, read, delivered, sync, "
                               "typing or ping", ref);
    }

    cJSON_Delete(json);
}


/*
 * An error frame for a message the strict check refused.  The frame
 * echoes the message's ref (for send, its client_msg_id) when a lenient
 * reading can still find one, so a client can tell which send failed;
 * nothing of the message goes anywhere else.
 */
static void
ngx_chat_ws_refuse(ngx_chat_ws_t *ws, chat_json_rc_t rc, size_t where,
    u_char *text, size_t len)
{
    u_char  message[160];
    cJSON  *json, *ref;

    json = NULL;
    ref = NULL;

    if (rc == CHAT_JSON_NUL || rc == CHAT_JSON_CONTROL
        || rc == CHAT_JSON_DUPLICATE_KEY || rc == CHAT_JSON_NOT_INTEGER)
    {
        json = cJSON_ParseWithLength((const char *) text, len);
        ref = cJSON_GetObjectItemCaseSensitive(json, "ref");
        if (ref == NULL) {
            ref = cJSON_GetObjectItemCaseSensitive(json, "client_msg_id");
        }
        if (!cJSON_IsString(ref) && !cJSON_IsNumber(ref)) {
            ref = NULL;
        }
    }

    ngx_sprintf(message, "%s (byte %uz of the message)%Z",
                chat_json_reason(rc), where);

    ngx_chat_ws_send_error(ws, chat_json_code(rc), (const char *) message,
                           ref);
    cJSON_Delete(json);
}


static void
ngx_chat_ws_command(ngx_chat_ws_t *ws, cJSON *json, ngx_chat_ws_cmd_e kind,
    const char *op, u_char *text, size_t len)
{
    cJSON              *ref, *cid;
    ngx_int_t           rc;
    ngx_str_t           body;
    const char         *missing;
    ngx_chat_ws_cmd_t  *cmd;

    ref = cJSON_GetObjectItemCaseSensitive(json, "ref");
    cid = cJSON_GetObjectItemCaseSensitive(json, "conversation_id");
    missing = NULL;

    switch (kind) {

    case NGX_CHAT_WS_CMD_SEND:
        if (ref == NULL) {
            ref = cJSON_GetObjectItemCaseSensitive(json, "client_msg_id");
        }
        if (!cJSON_IsNumber(cid)) {
            missing = "\"conversation_id\" (a number) is required";
        } else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(
                       json, "client_msg_id")))
        {
            missing = "\"client_msg_id\" (a string) is required";
        } else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(
                       json, "text")))
        {
            missing = "\"text\" (a string) is required";
        }
        break;

    case NGX_CHAT_WS_CMD_READ:
    case NGX_CHAT_WS_CMD_DELIVERED:
        if (!cJSON_IsNumber(cid)
            || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(json, "seq")))
        {
            missing = "\"conversation_id\" and \"seq\" (numbers) are required";
        }
        break;

    case NGX_CHAT_WS_CMD_SYNC:
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(json,
                                                             "cursors")))
        {
            missing = "\"cursors\" (an object) is required";
        }
        break;
    }

    if (missing) {
        ngx_chat_ws_send_error(ws, "invalid_field", missing, ref);
        return;
    }

    if (ws->ncommands >= NGX_CHAT_WS_MAX_INFLIGHT) {
        ngx_chat_ws_send_error(ws, "rate_limited",
                               "too many commands in flight", ref);
        return;
    }

    cmd = ngx_alloc(sizeof(ngx_chat_ws_cmd_t), ws->connection->log);
    if (cmd == NULL) {
        ngx_chat_ws_send_error(ws, "internal", "out of memory", ref);
        return;
    }

    ngx_memzero(cmd, sizeof(ngx_chat_ws_cmd_t));
    cmd->ws = ws;
    cmd->kind = kind;
    cmd->ref = ref ? cJSON_Duplicate(ref, 1) : NULL;
    cmd->pending.answer = ngx_chat_ws_answer;
    cmd->pending.data = cmd;
    /* every command of a WebSocket carries its upgrade request's id */
    ngx_chat_request_id(ws->request, &cmd->pending.rid);

    /* the client's object is the command body: workers read their fields */
    body.data = text;
    body.len = len;

    rc = ngx_chat_bus_send(ngx_chat_gateway(ws->request), &cmd->pending,
                           ws->connection->log, op, &ws->caller, NULL, &body);

    if (rc != NGX_OK) {
        ngx_chat_ws_send_error(ws, "unavailable",
                               "the command bus (redis) is unavailable",
                               cmd->ref);
        cJSON_Delete(cmd->ref);
        ngx_free(cmd);
        return;
    }

    ngx_queue_insert_tail(&ws->commands, &cmd->queue);
    ws->ncommands++;
}


/* A worker's answer to a command this connection sent. */
static void
ngx_chat_ws_answer(ngx_chat_pending_t *p, ngx_uint_t status, u_char *body,
    size_t len)
{
    cJSON              *reply, *frame, *message, *error, *item;
    ngx_chat_ws_t      *ws;
    ngx_chat_ws_cmd_t  *cmd;
    static const char  *ack_fields[] = {
        "client_msg_id", "conversation_id", "seq", "created_at", NULL
    };
    const char        **f;

    cmd = p->data;
    ws = cmd->ws;

    ngx_queue_remove(&cmd->queue);
    ws->ncommands--;

    reply = cJSON_ParseWithLength((const char *) body, len);

    if (status >= 300 || reply == NULL) {
        error = cJSON_GetObjectItemCaseSensitive(reply, "error");
        ngx_chat_ws_send_error(ws,
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(error,
                                                                  "code"))
                ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                                           error, "code"))
                : "internal",
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(error,
                                                                  "message"))
                ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                                           error, "message"))
                : "the backend gave no usable answer",
            cmd->ref);
        goto done;
    }

    frame = NULL;

    switch (cmd->kind) {

    case NGX_CHAT_WS_CMD_SEND:
        /* ack {client_msg_id, conversation_id, seq, created_at} */
        message = cJSON_GetObjectItemCaseSensitive(reply, "message");
        frame = cJSON_CreateObject();
        cJSON_AddStringToObject(frame, "type", "ack");
        for (f = ack_fields; *f; f++) {
            item = cJSON_GetObjectItemCaseSensitive(message, *f);
            if (item) {
                cJSON_AddItemToObject(frame, *f, cJSON_Duplicate(item, 1));
            }
        }
        break;

    case NGX_CHAT_WS_CMD_READ:
    case NGX_CHAT_WS_CMD_SYNC:
    case NGX_CHAT_WS_CMD_DELIVERED:
        /* the worker's object, with its type in front */
        frame = cJSON_CreateObject();
        cJSON_AddStringToObject(frame, "type",
                                cmd->kind == NGX_CHAT_WS_CMD_SYNC ? "sync"
                                : cmd->kind == NGX_CHAT_WS_CMD_READ ? "read"
                                : "delivered");
        while (reply->child) {
            item = cJSON_DetachItemViaPointer(reply, reply->child);
            if (ngx_strcmp(item->string, "type") == 0) {
                cJSON_Delete(item);
                continue;
            }
            cJSON_AddItemToObject(frame, item->string, item);
        }
        break;
    }

    if (frame && cmd->ref) {
        cJSON_AddItemToObject(frame, "ref", cJSON_Duplicate(cmd->ref, 1));
    }

    if (frame) {
        ngx_chat_ws_send_json(ws, frame);
        cJSON_Delete(frame);
    }

done:

    cJSON_Delete(reply);
    cJSON_Delete(cmd->ref);
    ngx_free(cmd);

    (void) ngx_chat_ws_flush(ws);
}


/*
 * typing {conversation_id}: straight to Redis (ngx_chat_typing.c), never
 * to the command bus.  Only the shape is checked here; membership and the
 * rate limit are the script's.  No answer unless the frame is malformed.
 */
static void
ngx_chat_ws_typing(ngx_chat_ws_t *ws, cJSON *json, cJSON *ref)
{
    cJSON                 *cid;
    double                 v;
    ngx_chat_main_conf_t  *cmcf;

    cid = cJSON_GetObjectItemCaseSensitive(json, "conversation_id");
    v = cJSON_IsNumber(cid) ? cid->valuedouble : 0;

    if (v < 1 || v > 9007199254740991.0 || v != (double) (int64_t) v) {
        ngx_chat_ws_send_error(ws, "invalid_field",
                               "\"conversation_id\" (a positive integer) is "
                               "required", ref);
        return;
    }

    /*
     * Redis rate-limits per user and conversation; repeats from this very
     * connection within half an interval are dropped before they cost a
     * script, so a client sending on every keystroke is cheap.
     */
    cmcf = ngx_http_get_module_main_conf(ws->request, ngx_chat_module);

    if (ws->typing_cid == (int64_t) v
        && ngx_current_msec - ws->typing_at < cmcf->typing_interval / 2)
    {
        return;
    }

    ws->typing_cid = (int64_t) v;
    ws->typing_at = ngx_current_msec;

    ngx_chat_typing(ngx_chat_gateway(ws->request), ws->caller.uid,
                    (int64_t) v, ws->connection->log);
}


/* An event from the registry: must not close synchronously. */
void
ngx_chat_ws_deliver(ngx_chat_client_t *client, u_char *event, size_t len)
{
    u_char         *text;
    ngx_chat_ws_t  *ws = client->data;

    /* the backend's URLs under the API prefix of the socket's location:
     * a copy only when it has any (an event with an attachment, to a
     * server with its own prefix), freed once the frame has taken it */
    text = ngx_chat_api_urls(ws->request, NULL, event, &len);
    if (text == NULL) {
        text = event;       /* out of memory: the event as it came, rather
                               than a hole in the client's stream */
    }

    ngx_chat_ws_send(ws, CHAT_WS_OP_TEXT, text, len);

    if (text != event) {
        ngx_free(text);
    }

    (void) ngx_chat_ws_flush(ws);
}


static void
ngx_chat_ws_send_json(ngx_chat_ws_t *ws, cJSON *json)
{
    char  *text;

    text = cJSON_PrintUnformatted(json);
    if (text == NULL) {
        return;
    }

    ngx_chat_ws_send(ws, CHAT_WS_OP_TEXT, (u_char *) text, ngx_strlen(text));
    cJSON_free(text);
}


/* {"type":"error","code","message","ref"} */
static void
ngx_chat_ws_send_error(ngx_chat_ws_t *ws, const char *code,
    const char *message, cJSON *ref)
{
    cJSON  *frame;

    frame = cJSON_CreateObject();
    if (frame == NULL) {
        return;
    }

    cJSON_AddStringToObject(frame, "type", "error");
    cJSON_AddStringToObject(frame, "code", code);
    cJSON_AddStringToObject(frame, "message", message);
    if (ref) {
        cJSON_AddItemToObject(frame, "ref", cJSON_Duplicate(ref, 1));
    }

    ngx_chat_ws_send_json(ws, frame);
    cJSON_Delete(frame);
}


void
ngx_chat_ws_cancel_commands(ngx_chat_ws_t *ws)
{
    ngx_queue_t        *q;
    ngx_chat_ws_cmd_t  *cmd;

    while (!ngx_queue_empty(&ws->commands)) {
        q = ngx_queue_head(&ws->commands);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_chat_ws_cmd_t, queue);
        ngx_chat_bus_cancel(&cmd->pending);
        cJSON_Delete(cmd->ref);
        ngx_free(cmd);
    }
}
