/*
 * area_chat.c: the chat area: conversations, messages, sync, markers and
 * receipts, mutes and presence look-ups (op_conv.c, op_msg.c, op_sync.c,
 * op_receipt.c, op_presence.c).
 *
 * After a batch's events are fanned out, two consequences follow here:
 * every conversation event replaces the members set the edge's typing
 * script reads (membership_cache.c), and every message event queues
 * offline notifications for members with no device online
 * (notify_queue.c).  The presence process itself is a role, not a worker
 * (roles.c, presence.c).
 */

#include "area.h"
#include "membership_cache.h"
#include "notify_queue.h"


static const chat_op_t  chat_chat_ops[] = {
    { "conv.create", chat_op_conv_create, NULL, CHAT_OP_LOGGED, NULL },
    { "conv.list", chat_op_conv_list, NULL, 0, NULL },
    { "conv.member.add", chat_op_conv_member_add, NULL, CHAT_OP_LOGGED,
      NULL },
    { "conv.member.remove", chat_op_conv_member_remove, NULL,
      CHAT_OP_LOGGED, NULL },
    { "conv.read", chat_op_conv_read, NULL, CHAT_OP_LOGGED, NULL },
    { "msg.send", chat_op_msg_send, NULL, CHAT_OP_LOGGED, NULL },
    { "msg.history", chat_op_msg_history, NULL, 0, NULL },
    { "sync", chat_op_sync, NULL, 0, NULL },

    /* presence, receipts, mutes */
    { "conv.delivered", chat_op_conv_delivered, NULL, CHAT_OP_LOGGED, NULL },
    { "conv.receipts", chat_op_conv_receipts, NULL, 0, NULL },
    { "conv.mute", chat_op_conv_mute, NULL, CHAT_OP_LOGGED, NULL },
    { "presence.get", chat_op_presence_get, NULL, 0, NULL },
};


static void
chat_chat_after_commit(chat_bus_t *bus, chat_events_t **events, size_t n)
{
    chat_membership_cache_update(bus, events, n);
    chat_notify_queue(bus, events, n);
}


const chat_area_t  chat_area_chat = {
    "chat", CHAT_AREA_OPS(chat_chat_ops),
    NULL, NULL, chat_chat_after_commit, NULL, 0
};
