/*
 * fanout.h: publishing committed commands: their replies, the
 * acknowledgement of their entries, and their events to the gateways
 * that serve their recipients.  See fanout.c.
 */

#ifndef CHAT_FANOUT_H
#define CHAT_FANOUT_H

#include <stddef.h>

#include "bus.h"
#include "event.h"

/*
 * Publishes what a committed batch owes: the replies a[0..k) (each
 * entry acknowledged once its reply is stored) and every event of
 * lists[0..n), in two pipelined round trips.  Returns 0, or -1 when a
 * reply or an acknowledgement failed (those entries stay pending and are
 * answered again from command_log).  Failed events are logged and
 * otherwise ignored: the commands stand, and clients fill gaps from
 * history.
 */
int chat_publish(chat_bus_t *bus, const chat_answer_t *a, size_t k,
    chat_events_t *const *lists, size_t n);

/* chat_publish of events alone (the presence process, the reconciler). */
int chat_fanout(chat_bus_t *bus, chat_events_t *const *lists, size_t n);

#endif /* CHAT_FANOUT_H */
