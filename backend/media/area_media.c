/*
 * area_media.c: the media area: uploads, downloads' authorization, book
 * covers, and the thumbnail task.  See op_media.c and README.md.
 *
 * Lanes (chat_lanes.c): recording an upload is a small chat write;
 * authorizing a download a read; a cover (two resizes in the request) and
 * the thumbnail task are the admin lane's, so decoding images never holds
 * up a chat message or a page.
 */

#include "area.h"
#include "catalog_cache.h"
#include "media.h"
#include "media_image.h"


static const chat_op_t  chat_media_ops[] = {
    { "media.upload", chat_op_media_upload, NULL, CHAT_OP_LOGGED, NULL,
      NULL },
    { "media.get", chat_op_media_get, NULL, 0, NULL, NULL },
    /* the book's cached pages change with it */
    { "admin.book.cover", chat_op_admin_book_cover, NULL, CHAT_OP_LOGGED,
      chat_catalog_touches_book, NULL },
};


static int
chat_media_init(chat_lane_t lane)
{
    return lane == CHAT_LANE_ADMIN ? chat_media_image_init() : 0;
}


static int
chat_media_thumbnail_interval(const chat_config_t *cfg)
{
    (void) cfg;
    return 1000;
}


static void
chat_media_thumbnail_task(chat_db_t *db, const chat_config_t *cfg,
    chat_events_t *events, chat_suspend_t *calls)
{
    (void) events;
    (void) calls;
    chat_media_thumbnails(db, cfg);
}


static const chat_task_t  chat_media_tasks[] = {
    { "thumbnails", CHAT_LANE_ADMIN, chat_media_thumbnail_interval,
      chat_media_thumbnail_task },
};


const chat_area_t  chat_area_media = {
    "media", CHAT_AREA_OPS(chat_media_ops),
    chat_media_init, NULL, NULL,
    chat_media_tasks, sizeof(chat_media_tasks) / sizeof(chat_media_tasks[0])
};
