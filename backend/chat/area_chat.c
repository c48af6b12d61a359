/*
 * area_chat.c: the chat area: conversations, messages, edits and
 * deletes, search, people, sync, markers and receipts (op_conv.c,
 * op_msg.c, op_msg_change.c, op_search.c, op_people.c, op_sync.c,
 * op_receipt.c).  Its writes are
 * the chat lane's; what a committed message or membership change causes
 * beyond the fan-out (the typing script's members sets, offline
 * notifications) belongs to the presence area (area_presence.c).
 */

#include "area.h"


static const chat_op_t  chat_chat_ops[] = {
    { "conv.create", chat_op_conv_create, NULL, CHAT_OP_LOGGED, NULL, NULL },
    { "conv.list", chat_op_conv_list, NULL, 0, NULL, NULL },
    { "conv.member.add", chat_op_conv_member_add, NULL, CHAT_OP_LOGGED,
      NULL, NULL },
    { "conv.member.remove", chat_op_conv_member_remove, NULL,
      CHAT_OP_LOGGED, NULL, NULL },
    { "conv.read", chat_op_conv_read, NULL, CHAT_OP_LOGGED, NULL, NULL },
    /* a run of sends is one set-based statement (op_msg.c) */
    { "msg.send", chat_op_msg_send, NULL, CHAT_OP_LOGGED, NULL,
      chat_op_msg_send_batch },
    { "msg.history", chat_op_msg_history, NULL, CHAT_OP_REPLICA, NULL,
      NULL },
    { "msg.edit", chat_op_msg_edit, NULL, CHAT_OP_LOGGED, NULL, NULL },
    { "msg.delete", chat_op_msg_delete, NULL, CHAT_OP_LOGGED, NULL, NULL },
    { "msg.search", chat_op_msg_search, NULL, CHAT_OP_REPLICA, NULL,
      NULL },
    /* people by e-mail, name prefix or id (op_people.c) */
    { "user.find", chat_op_user_find, NULL, 0, NULL, NULL },
    { "sync", chat_op_sync, NULL, CHAT_OP_REPLICA, NULL,
      NULL },
    { "conv.delivered", chat_op_conv_delivered, NULL, CHAT_OP_LOGGED, NULL,
      NULL },
    { "conv.receipts", chat_op_conv_receipts, NULL, 0, NULL, NULL },
    /* contacts and consent */
    { "conv.accept", chat_op_conv_accept, NULL, CHAT_OP_LOGGED, NULL, NULL },
    { "user.block", chat_op_user_block, NULL, CHAT_OP_LOGGED, NULL, NULL },
    { "user.unblock", chat_op_user_unblock, NULL, CHAT_OP_LOGGED, NULL,
      NULL },
};


const chat_area_t  chat_area_chat = {
    "chat", CHAT_AREA_OPS(chat_chat_ops),
    NULL, NULL, NULL, NULL, 0
};
