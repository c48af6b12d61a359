/*
 * test_backend_lanes.c: sizing the lanes' pools (backend/engine/lanes.c): the
 * defaults, "NAME:key=value,..." settings, and the errors an operator
 * sees for a wrong one.
 */

#include <string.h>

#include "config.h"
#include "lanes.h"
#include "unit.h"


static void
test_defaults(void)
{
    chat_config_t  cfg;

    memset(&cfg, 0, sizeof(cfg));
    chat_lanes_defaults(&cfg);

    CHECK(cfg.lanes[CHAT_LANE_CHAT].procs >= 1);
    CHECK(cfg.lanes[CHAT_LANE_AUTH].nice > cfg.lanes[CHAT_LANE_CHAT].nice);
    CHECK(cfg.lanes[CHAT_LANE_AUTH].queue > 0);
    CHECK(chat_lanes_processes(&cfg) >= CHAT_LANE_COUNT);

    /* process indexes go lane by lane */
    CHECK(chat_lanes_of_index(&cfg, 0) == CHAT_LANE_CHAT);
    CHECK(chat_lanes_of_index(&cfg, chat_lanes_processes(&cfg) - 1)
          == CHAT_LANE_ADMIN);
}


static void
test_apply(void)
{
    chat_config_t  cfg;

    memset(&cfg, 0, sizeof(cfg));
    chat_lanes_defaults(&cfg);

    CHECK(chat_lanes_apply(&cfg, "auth:procs=1,queue=32,nice=10") == NULL);
    CHECK(cfg.lanes[CHAT_LANE_AUTH].procs == 1);
    CHECK(cfg.lanes[CHAT_LANE_AUTH].queue == 32);
    CHECK(cfg.lanes[CHAT_LANE_AUTH].nice == 10);

    CHECK(chat_lanes_apply(&cfg, "chat:batch=8; orders:concurrency=64 "
                           "read:timeout=5000") == NULL);
    CHECK(cfg.lanes[CHAT_LANE_CHAT].batch == 8);
    CHECK(cfg.lanes[CHAT_LANE_ORDERS].concurrency == 64);
    CHECK(cfg.lanes[CHAT_LANE_READ].timeout_ms == 5000);

    /* the wait bound: half the timeout unless set (0 sets it back) */
    CHECK(cfg.lanes[CHAT_LANE_READ].wait_ms == 0);
    CHECK(chat_lanes_wait_ms(&cfg.lanes[CHAT_LANE_READ]) == 2500);
    CHECK(chat_lanes_apply(&cfg, "read:wait=1500") == NULL);
    CHECK(chat_lanes_wait_ms(&cfg.lanes[CHAT_LANE_READ]) == 1500);
    CHECK(chat_lanes_apply(&cfg, "read:wait=0") == NULL);
    CHECK(chat_lanes_wait_ms(&cfg.lanes[CHAT_LANE_READ]) == 2500);
    CHECK(chat_lanes_apply(&cfg, "read:wait=-1") != NULL);

    /* a lane may be switched off */
    CHECK(chat_lanes_apply(&cfg, "admin:procs=0") == NULL);
    CHECK(cfg.lanes[CHAT_LANE_ADMIN].procs == 0);
}


static void
test_refused(void)
{
    chat_config_t     cfg;
    chat_lane_conf_t  before;

    memset(&cfg, 0, sizeof(cfg));
    chat_lanes_defaults(&cfg);
    before = cfg.lanes[CHAT_LANE_AUTH];

    CHECK(strstr(chat_lanes_apply(&cfg, "nosuch:procs=1"), "unknown lane")
          != NULL);
    CHECK(strstr(chat_lanes_apply(&cfg, "auth:speed=1"),
                 "unknown lane setting") != NULL);
    CHECK(strstr(chat_lanes_apply(&cfg, "auth:nice=20"), "0 to 19") != NULL);
    CHECK(chat_lanes_apply(&cfg, "auth:procs=x") != NULL);
    CHECK(chat_lanes_apply(&cfg, "auth:procs=") != NULL);
    CHECK(chat_lanes_apply(&cfg, "auth:procs") != NULL);
    CHECK(chat_lanes_apply(&cfg, "auth") != NULL);
    CHECK(chat_lanes_apply(&cfg, "auth:commit=65") != NULL);

    /* a refused setting changes nothing of its lane */
    CHECK(chat_lanes_apply(&cfg, "auth:procs=3,nice=99") != NULL);
    CHECK(memcmp(&cfg.lanes[CHAT_LANE_AUTH], &before, sizeof(before)) == 0);
}


int
main(void)
{
    UNIT_RUN(test_defaults);
    UNIT_RUN(test_apply);
    UNIT_RUN(test_refused);
    return UNIT_SUMMARY();
}
