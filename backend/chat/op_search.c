/*
 * op_search.c: full-text search over the messages the caller may read.
 *
 *   msg.search  {q, conversation_id?, cursor?, limit?}
 *               -> 200 {"results": [{"message", "snippet"}...],
 *                       "next_cursor": "..." | null}
 *
 * What is searched.  The messages of the conversations the caller is a
 * member of now, the whole of each conversation (a member reads its whole
 * history, joined late or not).  Someone removed from a group, or who
 * left it, finds nothing of it any more: membership is read at the time
 * of the search, as for history.  Never a deleted message (the index
 * holds none), never a message of someone the caller blocked (the
 * caller's history shows those without their text).  conversation_id
 * narrows it to one conversation (404 when the caller is not a member,
 * as everywhere).
 *
 * How.  q is cut into words by PostgreSQL's 'simple' configuration
 * (lower case, no stemming: a chat is in any language) and every word
 * must match as a prefix ("meet" finds "meeting"): the query is
 * 'w1':* & 'w2':*, built in SQL from to_tsvector's own lexemes, so
 * nothing the user types is read as tsquery syntax.  It runs against the
 * per-conversation GIN index of sql/013_message_search.sql (below, at the
 * statement).  A q with no word in it (only punctuation) finds nothing.
 *
 * Order and pages: newest first, by (created_at, conversation_id, seq),
 * a total order, so the cursor "<created_at in microseconds>.<cid>.<seq>"
 * of the last result given resumes exactly after it, however many
 * messages arrive meanwhile.  limit defaults to 20, at most 50.
 *
 * The snippet is HTML: the message text with &, < and > escaped and the
 * matched words inside <mark>...</mark> (ts_headline, up to two
 * fragments of about 24 words joined by " … "), so a client may show it
 * as markup or split it at the marks; the full message is beside it.
 *
 * What it does not do: rank by relevance (chats are searched for "when
 * did we say"; recency is what every chat app shows first), or search
 * titles or names (user.find does names).
 */

#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "conv_input.h"
#include "ops.h"


/*
 * $1 caller, $2 q, $3 conversation or NULL, $4 cursor time (microseconds)
 * or NULL, $5 cursor conversation, $6 cursor seq, $7 limit + 1.
 *
 * w: the words of q, escaped for a quoted tsquery lexeme (PostgreSQL's
 * own parse, so nothing typed is read as tsquery syntax).  q: 'w1':* &
 * 'w2':*, for the snippet's marks.  cq: one row per conversation the
 * caller is in now (or the one asked for) with the same query prefixed
 * as sql/013_message_search.sql indexes it, '42.w1':* & '42.w2':*.
 * Then, per conversation (LATERAL), the GIN index of that conversation's
 * partition (runtime partition pruning on conversation_id) is walked
 * with that query, so only its matching rows are fetched, and the newest
 * limit + 1 of them kept; the newest limit + 1 of all those are the
 * page.  The cost is a few index pages per conversation plus the matches
 * in them, not the messages of the conversations; the tsquery reaches
 * the index scan as a parameter of the loop, so the worker's generic
 * plan uses the index (a tsquery built inside the statement and joined
 * did not, before).
 */
static const char  chat_search_sql[] =
    "WITH w AS ("
    "  SELECT replace(replace(x, '\\', '\\\\'), '''', '''''') AS e "
    "  FROM unnest(tsvector_to_array(to_tsvector('simple', $2::text))) "
    "       AS x), "
    "q AS ("
    "  SELECT string_agg('''' || e || ''':*', ' & ')::tsquery AS tq "
    "  FROM w), "
    "cq AS ("
    "  SELECT me.conversation_id AS cid, "
    "         (SELECT string_agg('''' || me.conversation_id || '.' || e "
    "                            || ''':*', ' & ') FROM w)::tsquery AS tq "
    "  FROM conversation_members me "
    "  WHERE me.user_id = $1 "
    "    AND ($3::bigint IS NULL OR me.conversation_id = $3::bigint)) "
    "SELECT " CHAT_MSG_COLUMNS("m") ", "
    "  ts_headline('simple', "
    "    replace(replace(replace(m.text, '&', '&amp;'), '<', '&lt;'), "
    "            '>', '&gt;'), (SELECT tq FROM q), "
    "    'StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8, "
    "     ShortWord=0, MaxFragments=2, FragmentDelimiter=\" … \"'), "
    "  (extract(epoch FROM m.created_at) * 1000000)::bigint "
    "FROM cq CROSS JOIN LATERAL ("
    "  SELECT * FROM messages m "
    "  WHERE m.conversation_id = cq.cid "
    "    AND message_search_doc(m.conversation_id, m.text) @@ cq.tq "
    "    AND m.deleted_at IS NULL "
    "    AND ($4::bigint IS NULL "
    "         OR (m.created_at, m.conversation_id, m.seq) "
    "            < ('epoch'::timestamptz "
    "               + $4::bigint * interval '1 microsecond', "
    "               $5::bigint, $6::bigint)) "
    "    AND NOT EXISTS (SELECT 1 FROM user_blocks b "
    "                    WHERE b.blocker_id = $1 "
    "                      AND b.blocked_id = m.sender_id) "
    "  ORDER BY m.created_at DESC, m.seq DESC "
    "  LIMIT $7) m "
    "ORDER BY m.created_at DESC, m.conversation_id DESC, m.seq DESC "
    "LIMIT $7";

enum {
    CHAT_SEARCH_COL_SNIPPET = CHAT_MSG_NCOLS,
    CHAT_SEARCH_COL_TIME
};


/* The reply of rows [0, n) of res; the cursor after row n - 1 when more
 * is set. */
static cJSON *
chat_search_reply(const PGresult *res, int n, int more)
{
    int     i;
    char    cursor[80];
    cJSON  *reply, *list, *item, *msg;

    reply = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(reply, "results");
    if (list == NULL) {
        goto err;
    }

    for (i = 0; i < n; i++) {
        item = cJSON_CreateObject();
        msg = chat_msg_json(res, i, 0);
        if (item == NULL || msg == NULL) {
            cJSON_Delete(item);
            cJSON_Delete(msg);
            goto err;
        }

        cJSON_AddItemToArray(list, item);
        cJSON_AddItemToObject(item, "message", msg);

        if (cJSON_AddStringToObject(item, "snippet",
                PQgetvalue(res, i, CHAT_SEARCH_COL_SNIPPET)) == NULL)
        {
            goto err;
        }
    }

    if (more && n > 0) {
        snprintf(cursor, sizeof(cursor), "%s.%s.%s",
                 PQgetvalue(res, n - 1, CHAT_SEARCH_COL_TIME),
                 PQgetvalue(res, n - 1, 0), PQgetvalue(res, n - 1, 1));
        item = cJSON_AddStringToObject(reply, "next_cursor", cursor);

    } else {
        item = cJSON_AddNullToObject(reply, "next_cursor");
    }

    if (item == NULL) {
        goto err;
    }

    return reply;

err:

    cJSON_Delete(reply);
    return NULL;
}


int
chat_op_msg_search(chat_op_ctx_t *ctx)
{
    int           rc, has_cid, n;
    char          u[24], c[24], t[24], cc[24], cs[24], lim[24];
    char          q[CHAT_SEARCH_QUERY_MAX * 4 + 1];
    int64_t       cid, limit, time_us, cur_cid, cur_seq;
    PGresult     *res;
    const char   *text, *why, *values[7];
    const cJSON  *item;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    text = chat_op_string(ctx, "q");
    if (text == NULL) {
        return ctx->reply ? 0 : -1;
    }

    why = chat_search_text_normalize("q", text, strlen(text),
                                     CHAT_SEARCH_QUERY_MAX, q, sizeof(q));
    if (why != NULL) {
        return chat_op_invalid(ctx, why);
    }

    has_cid = chat_op_integer(ctx, "conversation_id", 1, 0, &cid);
    if (has_cid < 0 || ctx->reply != NULL) {
        return has_cid < 0 ? -1 : 0;
    }

    if (chat_limit_parse(cJSON_GetObjectItemCaseSensitive(ctx->body,
                                                           "limit"),
                         CHAT_SEARCH_LIMIT_DEFAULT, CHAT_SEARCH_LIMIT_MAX,
                         &limit) != 0)
    {
        return chat_op_invalid(ctx, "limit must be an integer >= 1 "
                                    "(at most 50 are returned)");
    }

    values[0] = chat_i64(u, ctx->cmd->uid);
    values[1] = q;
    values[2] = has_cid ? chat_i64(c, cid) : NULL;
    values[3] = values[4] = values[5] = NULL;

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "cursor");
    if (item != NULL && !cJSON_IsNull(item)) {
        why = cJSON_IsString(item)
              ? chat_search_cursor_parse(item->valuestring, &time_us,
                                         &cur_cid, &cur_seq)
              : "cursor must be a string";
        if (why != NULL) {
            return chat_op_error(ctx, 400, "invalid_cursor", why);
        }

        values[3] = chat_i64(t, time_us);
        values[4] = chat_i64(cc, cur_cid);
        values[5] = chat_i64(cs, cur_seq);
    }

    values[6] = chat_i64(lim, limit + 1);

    if (has_cid) {
        res = chat_db_query_prepared(ctx->db,
            "SELECT 1 FROM conversation_members "
            "WHERE conversation_id = $2 AND user_id = $1",
            2, (const char *const[]) { values[0], values[2] }, NULL, NULL);
        if (res == NULL) {
            return -1;
        }

        n = PQntuples(res);
        PQclear(res);

        if (n == 0) {
            return chat_op_no_conversation(ctx);
        }
    }

    res = chat_db_query_prepared(ctx->db, chat_search_sql, 7, values, NULL,
                                 NULL);
    if (res == NULL) {
        return -1;
    }

    n = PQntuples(res);
    ctx->reply = chat_search_reply(res, n > limit ? (int) limit : n,
                                   n > limit);
    PQclear(res);

    if (ctx->reply == NULL) {
        return -1;
    }

    ctx->status = 200;
    return 0;
}
