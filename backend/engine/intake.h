/*
 * intake.h: turning a command-stream entry into a command, or setting it
 * aside.  See intake.c.
 */

#ifndef CHAT_INTAKE_H
#define CHAT_INTAKE_H

#include <hiredis/hiredis.h>

#include "bus.h"
#include "config.h"
#include "envelope.h"

/*
 * Reads entry ([id, fields] as XREADGROUP or XAUTOCLAIM returned it, from
 * shard) into cmd; reclaimed says whether its delivery count must be
 * checked.  Returns 1 when it is a command to run, 0 when the entry is
 * finished already (deleted, acked by someone else, or malformed or
 * delivered too often: dead-lettered, answered and acked), -1 when Redis
 * failed.  cmd points into entry, which must outlive it.
 */
int chat_intake(chat_bus_t *bus, const chat_config_t *cfg, int shard,
    redisReply *entry, int reclaimed, chat_cmd_t *cmd);

#endif /* CHAT_INTAKE_H */
