/*
 * areas.c: the list of business areas (area.h) and the engine's walks
 * over them.
 */

#include <string.h>

#include "area.h"
#include "log.h"


const chat_area_t *const  chat_areas[] = {
    &chat_area_auth,
    &chat_area_chat,
    &chat_area_presence,
    &chat_area_catalog,
    &chat_area_orders,
    &chat_area_media,
    NULL
};


int
chat_areas_init(chat_lane_t lane)
{
    int                 rc;
    size_t              i, k;
    const chat_area_t  *a;

    rc = 0;

    for (i = 0; chat_areas[i] != NULL; i++) {
        a = chat_areas[i];

        if (a->init == NULL) {
            continue;
        }

        for (k = 0; k < a->nops; k++) {
            if (chat_lane_of_op(a->ops[k].name, strlen(a->ops[k].name))
                == lane)
            {
                break;
            }
        }

        if (k < a->nops && a->init(lane) != 0) {
            chat_log_warn("area %s: set-up failed; continuing", a->name);
            rc = -1;
        }
    }

    return rc;
}


int
chat_areas_before_reply(chat_bus_t *bus, chat_job_t **jobs, size_t n)
{
    size_t  i;

    for (i = 0; chat_areas[i] != NULL; i++) {
        if (chat_areas[i]->before_reply != NULL
            && chat_areas[i]->before_reply(bus, jobs, n) != 0)
        {
            return -1;
        }
    }

    return 0;
}


void
chat_areas_after_commit(chat_bus_t *bus, chat_events_t **events, size_t n)
{
    size_t  i;

    for (i = 0; chat_areas[i] != NULL; i++) {
        if (chat_areas[i]->after_commit != NULL) {
            chat_areas[i]->after_commit(bus, events, n);
        }
    }
}
