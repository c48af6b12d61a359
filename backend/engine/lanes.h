/*
 * lanes.h: each lane's pool, configured in one place.  See lanes.c; the
 * lanes themselves (which op goes where, stream names) are the wire
 * contract, protocol/chat_lanes.h.
 */

#ifndef CHAT_BACKEND_LANES_H
#define CHAT_BACKEND_LANES_H

#include "chat_lanes.h"
#include "config.h"

/* The defaults of every lane (lanes.c's table) into cfg->lanes. */
void chat_lanes_defaults(chat_config_t *cfg);

/*
 * Applies one lane setting, "NAME:key=value,key=value..." (keys: procs,
 * batch, commit, concurrency, timeout, queue, wait, retry, nice), or several
 * separated by ';' or spaces.  Returns NULL, or a message saying what is
 * wrong (static, for the caller to print).
 */
const char *chat_lanes_apply(chat_config_t *cfg, const char *spec);

/* Total worker processes over all lanes. */
int chat_lanes_processes(const chat_config_t *cfg);

/* Which lane and slot within it the pool's process index serves. */
chat_lane_t chat_lanes_of_index(const chat_config_t *cfg, int index);

/*
 * Makes cfg the configuration of one worker of lane: its batch sizes,
 * its lane, and its scheduling priority (setpriority; a failure is
 * logged).  Called in the forked worker on its own copy of cfg.
 */
void chat_lanes_enter(chat_config_t *cfg, chat_lane_t lane);

/* The lane's wait bound in ms: its own, or half its timeout. */
int chat_lanes_wait_ms(const chat_lane_conf_t *lc);

/* "lane chat: 2 processes, batch 64, ..." for the start-up log. */
void chat_lanes_log(const chat_config_t *cfg);

#endif /* CHAT_BACKEND_LANES_H */
