/*
 * fanout.h: delivering committed commands' events to the gateways that
 * serve their recipients.  See fanout.c.
 */

#ifndef CHAT_FANOUT_H
#define CHAT_FANOUT_H

#include <stddef.h>

#include "bus.h"
#include "event.h"

/*
 * Delivers every event of lists[0..n) (events of commands that have
 * committed and been answered).  Failures are logged and otherwise
 * ignored: the commands stand, and clients fill gaps from history.
 * Returns 0, or -1 when anything failed.
 */
int chat_fanout(chat_bus_t *bus, chat_events_t *const *lists, size_t n);

#endif /* CHAT_FANOUT_H */
