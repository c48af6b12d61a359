/*
 * media.h: what the media area offers the other areas: the check of a
 * message's "attachments" (op_msg.c calls it before a send is stored).
 * See op_media.c.
 */

#ifndef CHAT_MEDIA_AREA_H
#define CHAT_MEDIA_AREA_H

#include "ops.h"

/* the most attachments one message carries */
#define CHAT_MEDIA_MAX_PER_MESSAGE  10

/*
 * ctx->body's optional "attachments": an array of up to
 * CHAT_MEDIA_MAX_PER_MESSAGE distinct attachment ids, every one an
 * upload of the sender's.  Returns 1 with *csv the ids as a bigint[]
 * literal, "{1,2,3}" (malloc'd; "{}" when there are none), 0 after a
 * 400 (not an array, not ids, repeated, too many, unknown or someone
 * else's: the last two get one answer, so nobody learns which ids
 * exist), -1 on failure.
 */
int chat_media_message_attachments(chat_op_ctx_t *ctx, char **csv);

/* the ops, op_media.c */
int chat_op_media_upload(chat_op_ctx_t *ctx);
int chat_op_media_get(chat_op_ctx_t *ctx);
int chat_op_admin_book_cover(chat_op_ctx_t *ctx);

/* the admin lane's thumbnail task, op_media.c */
void chat_media_thumbnails(chat_db_t *db, const chat_config_t *cfg);

/* the demo covers of `chat-backend demo-covers`, demo_covers.c */
int chat_media_demo_covers(const chat_config_t *cfg, long limit);

#endif /* CHAT_MEDIA_AREA_H */
