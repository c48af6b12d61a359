/*
 * area.h: how a business area plugs into the engine.
 *
 * The engine (worker.c, command.c, ops.c) reads commands, runs them in
 * transactions, answers, fans events out and keeps time; it knows no
 * domain.  An area (auth, chat, catalog, orders) registers what it adds:
 *
 *   ops           its operations (name, handler, flags; ops.h)
 *   init          preparation once per worker process that serves one of
 *                 its operations, told the process's lane (chat_lanes.h)
 *                 so it prepares only what that lane's operations use
 *   before_reply  after a batch committed and before anyone is answered:
 *                 what must be true when the client hears "done" (the
 *                 catalog bumps its cache generations here).  -1 leaves
 *                 the batch unanswered and pending; its replays run the
 *                 hook again
 *   after_commit  after the answers: consequences of committed events
 *                 (membership cache, offline notifications); failures are
 *                 the area's to log
 *   tasks         periodic work, each run by the workers of one lane; a
 *                 task that calls out starts its calls on the worker's
 *                 loop (chat_suspend_task_call) instead of waiting on
 *                 them, so it never holds the lane
 *
 * The list of areas is areas.c; adding an area is a folder with its
 * area_<name>.c and one line there.
 */

#ifndef CHAT_AREA_H
#define CHAT_AREA_H

#include <stddef.h>

#include "bus.h"
#include "command.h"
#include "config.h"
#include "db.h"
#include "event.h"
#include "ops.h"
#include "suspend.h"

typedef struct {
    const char   *name;
    chat_lane_t   lane;                 /* whose workers run it */
    int         (*interval_ms)(const chat_config_t *cfg);
    /* outside any command; events it adds are fanned out afterwards;
     * calls are the worker's, for calls that answer later */
    void        (*run)(chat_db_t *db, const chat_config_t *cfg,
                       chat_events_t *events, chat_suspend_t *calls);
} chat_task_t;

typedef struct {
    const char          *name;
    const chat_op_t     *ops;
    size_t               nops;
    int                (*init)(chat_lane_t lane);
    int                (*before_reply)(chat_bus_t *bus, chat_job_t **jobs,
                                       size_t n);
    void               (*after_commit)(chat_bus_t *bus,
                                       chat_events_t **events, size_t n);
    const chat_task_t   *tasks;
    size_t               ntasks;
} chat_area_t;

#define CHAT_AREA_OPS(table)  (table), (sizeof(table) / sizeof((table)[0]))

/* areas.c: every area, NULL-terminated */
extern const chat_area_t *const  chat_areas[];

/* the areas themselves: <area>/area_<area>.c */
extern const chat_area_t  chat_area_auth;
extern const chat_area_t  chat_area_chat;
extern const chat_area_t  chat_area_presence;
extern const chat_area_t  chat_area_catalog;
extern const chat_area_t  chat_area_orders;
extern const chat_area_t  chat_area_media;

/* Runs init of every area with an operation on lane.  0, or -1 (logged;
 * the areas then prepare lazily). */
int chat_areas_init(chat_lane_t lane);

/* Every area's before_reply on the finished batch.  0, or -1. */
int chat_areas_before_reply(chat_bus_t *bus, chat_job_t **jobs, size_t n);

/* Every area's after_commit on the batch's events. */
void chat_areas_after_commit(chat_bus_t *bus, chat_events_t **events,
    size_t n);

#endif /* CHAT_AREA_H */
