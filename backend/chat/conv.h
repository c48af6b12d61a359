/*
 * conv.h: the conversation and message objects of the API, as PostgreSQL
 * hands them to the chat operations.  See conv.c.
 */

#ifndef CHAT_CONV_H
#define CHAT_CONV_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "db.h"

/* "created_at" as RFC 3339 UTC with milliseconds, whatever the session's
 * time zone */
#define CHAT_SQL_TIME(col)                                                  \
    "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* the columns of a message after its text, in the order chat_msg_json
 * reads them: created_at, edited_at (NULL unless edited), deleted and
 * edit_seq (sql/009_chat_people.sql); the attachments (010_media.sql)
 * come after them */
#define CHAT_MSG_TAIL(m)                                                    \
    CHAT_SQL_TIME(m ".created_at") ", "                                     \
    CHAT_SQL_TIME(m ".edited_at") ", "                                      \
    m ".deleted_at IS NOT NULL, " m ".edit_seq"

/* the message columns, in the order chat_msg_json reads them */
#define CHAT_MSG_COLUMNS(m)                                                 \
    m ".conversation_id, " m ".seq, " m ".sender_id, " m ".client_msg_id, " \
    m ".text, " CHAT_MSG_TAIL(m) ", " m ".attachments::text"

#define CHAT_MSG_NCOLS  10

/* where edit_seq is among them (chat_msg_json reads it there too) */
#define CHAT_MSG_COL_EDIT_SEQ  8

/*
 * The same columns as the user whose id is the query parameter viewer
 * ("$1") sees them: a message from someone they blocked keeps its place
 * (seq, sender, time) but not its text, which chat_msg_json turns into
 * "hidden": true, nor its attachments.  So a client's view of the seqs stays dense (it never
 * waits for a gap to fill) and the text never reaches the blocker.
 */
#define CHAT_MSG_COLUMNS_SEEN(m, viewer)                                    \
    m ".conversation_id, " m ".seq, " m ".sender_id, " m ".client_msg_id, " \
    "CASE WHEN EXISTS (SELECT 1 FROM user_blocks hb "                       \
    "                  WHERE hb.blocker_id = " viewer "::bigint "           \
    "                    AND hb.blocked_id = " m ".sender_id) "             \
    "     THEN '' ELSE " m ".text END, "                                    \
    CHAT_MSG_TAIL(m) ", "                                                   \
    "CASE WHEN EXISTS (SELECT 1 FROM user_blocks hb "                       \
    "                  WHERE hb.blocker_id = " viewer "::bigint "           \
    "                    AND hb.blocked_id = " m ".sender_id) "             \
    "     THEN NULL ELSE " m ".attachments::text END"

/* true when a or b (SQL expressions of user ids) blocked the other */
#define CHAT_SQL_BLOCKED(a, b)                                              \
    "EXISTS (SELECT 1 FROM user_blocks xb "                                 \
    "        WHERE (xb.blocker_id = " a " AND xb.blocked_id = " b ") "      \
    "           OR (xb.blocker_id = " b " AND xb.blocked_id = " a "))"

/*
 * Consent, the rule of every new member row (direct conversations, group
 * creation, group adds): true when the user `who` has already accepted a
 * conversation, other than `cid`, that `by` (the one opening the
 * conversation or adding them) is in, and does not block `by`; the row is
 * then made accepted.  Otherwise it is a request (an invitation, in a
 * group) the user accepts (conv.accept, or answering with msg.send) or
 * declines (leaving: conv.member.remove of themselves).  All three are
 * SQL expressions of ids.
 */
#define CHAT_SQL_CONSENTED(who, by, cid)                                    \
    "(EXISTS (SELECT 1 FROM conversation_members ka "                       \
    "         JOIN conversation_members kb "                                \
    "           ON kb.conversation_id = ka.conversation_id "                \
    "         WHERE ka.user_id = " by " AND kb.user_id = " who " "          \
    "           AND kb.accepted AND ka.conversation_id <> " cid ") "        \
    " AND NOT EXISTS (SELECT 1 FROM user_blocks kk "                        \
    "                 WHERE kk.blocker_id = " who " "                       \
    "                   AND kk.blocked_id = " by "))"

/*
 * The message object {conversation_id, seq, sender_id, client_msg_id,
 * text, created_at} from the CHAT_MSG_NCOLS columns of res's row starting
 * at col, with "edited_at" when it was edited, "deleted": true (and an
 * empty text, no attachments) when it was deleted, "edit_seq" when it was
 * changed at all (the higher edit_seq is the newer copy), "attachments"
 * when it has files; an empty text of a message not deleted (a stored
 * text is never empty: CHAT_MSG_COLUMNS_SEEN hid it) adds "hidden": true.
 * NULL if memory ran out.
 */
cJSON *chat_msg_json(const PGresult *res, int row, int col);

/*
 * One conversation seen by uid: zero or one row (none when it does not
 * exist; the caller has already checked that uid may see it).  uid may
 * be a former member, then the object has no "unread".  NULL on failure.
 */
PGresult *chat_conv_get(chat_db_t *db, int64_t uid, int64_t cid);

/*
 * uid's conversations, newest activity first: all of them when only is
 * NULL, else those whose ids are in only[0..n) (n may be 0: none).
 * NULL on failure.
 */
PGresult *chat_conv_of_user(chat_db_t *db, int64_t uid, const int64_t *only,
    size_t n);

/*
 * The conversation object {id, type, title, members, admins, requests,
 * status, last_seq, unread, last_message, created_at} of a row of the two
 * results above, as uid sees it.  requests are the members who have not
 * accepted it (a direct conversation's other member who has not answered
 * yet); status is "request" when uid is one of them, "pending" when
 * someone else is, else "active".  unread is left out when the row's user
 * is not a member.  NULL if memory ran out.
 */
cJSON *chat_conv_json(const PGresult *res, int row, int64_t uid);

/* {"conversations":[...]} of every row of res, as chat_conv_json makes
 * them for uid.  NULL if memory ran out. */
cJSON *chat_conv_list_json(const PGresult *res, int64_t uid);

/*
 * The member ids of a row above into a malloc'd array (*ids; free it) and
 * their count, or -1 (memory, or a list that does not parse).
 */
long chat_conv_members(const PGresult *res, int row, int64_t **ids);

#endif /* CHAT_CONV_H */
