/*
 * notify_queue.h: offline notification jobs from committed messages.
 * See notify_queue.c; notifier.c delivers them.
 */

#ifndef CHAT_NOTIFY_QUEUE_H
#define CHAT_NOTIFY_QUEUE_H

#include <stddef.h>

#include "bus.h"
#include "chat_keys.h"
#include "event.h"

/* the jobs' stream and its group: CHAT_NOTIFY_STREAM, CHAT_NOTIFY_GROUP
 * (chat_keys.h) */
#define CHAT_NOTIFY_PREVIEW  100        /* bytes of text, at most */

/* Queues a job for every recipient of every message event who has no
 * online device.  Does nothing unless a webhook is configured.  Failures
 * are logged and otherwise ignored. */
void chat_notify_queue(chat_bus_t *bus, chat_events_t *const *lists,
    size_t n);

#endif /* CHAT_NOTIFY_QUEUE_H */
