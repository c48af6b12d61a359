/*
 * area_auth.c: the auth area: accounts and tokens (op_auth.c).  Both
 * operations that hash a password run alone (CHAT_OP_ALONE): scrypt takes
 * ~0.2 s of a core, too long to hold a batch's locks.  They are on the
 * auth lane (chat_lanes.c), whose processes run at a low priority, so a
 * burst of sign-ups takes only the CPU the other lanes leave.
 */

#include "area.h"


/* The dummy hash only the lane that checks passwords needs: user.me is
 * on the read lane, whose processes have no scrypt to hide. */
static int
chat_auth_area_init(chat_lane_t lane)
{
    return lane == CHAT_LANE_AUTH ? chat_op_auth_init() : 0;
}


static const chat_op_t  chat_auth_ops[] = {
    { "auth.register", chat_op_auth_register, chat_op_auth_present,
      CHAT_OP_LOGGED | CHAT_OP_ALONE, NULL, NULL },
    { "auth.login", chat_op_auth_login, chat_op_auth_present,
      CHAT_OP_ALONE, NULL, NULL },
    { "user.me", chat_op_user_me, NULL, 0, NULL, NULL },
    { "auth.refresh", chat_op_auth_refresh, chat_op_auth_present, 0, NULL,
      NULL },
};


const chat_area_t  chat_area_auth = {
    "auth", CHAT_AREA_OPS(chat_auth_ops),
    chat_auth_area_init,        /* the dummy hash of unknown logins */
    NULL, NULL, NULL, 0
};
