/*
 * area_presence.c: the presence area: who is online, typing, mutes and
 * offline notifications.  Its one worker-side read is presence.get
 * (op_presence.c, with conv.mute); the rest runs beside the workers as
 * roles (roles.c: the presence process, presence.c, and the notifier,
 * notifier.c) and in the edge (typing, announcements).
 *
 * After a batch's events are fanned out, two consequences follow here:
 * every conversation event replaces the members set the edge's typing
 * script reads (membership_cache.c), and every message event queues
 * offline notifications for members with no device online
 * (notify_queue.c), which the notifier batches and sends.
 */

#include "area.h"
#include "membership_cache.h"
#include "notify_queue.h"


static const chat_op_t  chat_presence_ops[] = {
    { "presence.get", chat_op_presence_get, NULL, 0, NULL, NULL },
    { "conv.mute", chat_op_conv_mute, NULL, CHAT_OP_LOGGED, NULL, NULL },
};


static void
chat_presence_after_commit(chat_bus_t *bus, chat_events_t **events, size_t n)
{
    chat_membership_cache_update(bus, events, n);
    chat_notify_queue(bus, events, n);
}


const chat_area_t  chat_area_presence = {
    "presence", CHAT_AREA_OPS(chat_presence_ops),
    NULL, NULL, chat_presence_after_commit, NULL, 0
};
