/*
 * intake.c: how an entry comes off the command bus.
 *
 * A stream entry is a list of field/value pairs (chat_protocol.h).  Before
 * it can run it must be a well-formed envelope (envelope.c parses it) and
 * must not have been delivered too often.  An entry that fails either
 * test cannot be helped by another try:
 *
 *   - malformed: set aside at once;
 *   - delivered more than --max-deliveries times (it keeps failing, or
 *     keeps killing its worker): set aside too;
 *   - queued longer than --expire-ms: answered 504 "expired" and acked
 *     without running.  Its client was told "timeout" long ago and retries
 *     with the same idempotency key or client_msg_id if it still wants it;
 *     running it now would only spend an overloaded pool's time on work
 *     nobody waits for.  Never acknowledged, so nothing promised is lost.
 *
 * "set aside" meaning copied to chat:dlq with where it came from, how
 * often it was delivered and why (bus_reply.c), logged at error, its
 * client answered 500 malformed_command or dead_lettered when the
 * envelope says where to, and acked.  Entries that were deleted from
 * their stream while pending, or that someone else acked meanwhile, are
 * simply done.
 *
 * What it does not do: run commands (command.c) or decide when entries
 * are read or reclaimed (worker.c).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"
#include "log.h"
#include "ops.h"


/*
 * Sends an entry to chat:dlq, answers its client with status/code if the
 * envelope says where, and acks it.  Returns 0, or -1 when Redis failed
 * (the entry then stays pending and comes back).
 */
static int
chat_intake_dead_letter(chat_bus_t *bus, int shard, const char *id,
    const redisReply *fields, const chat_cmd_t *cmd, long long deliveries,
    const char *reason, const char *code, const char *message)
{
    int    rc;
    char  *body;

    if (chat_bus_dead_letter(bus, shard, id, fields, deliveries, reason)
        != 0)
    {
        return -1;
    }

    chat_log_error("dead-lettered %s %s (op %.*s, key %.*s, "
                   "%lld deliveries): %s",
                   bus->streams[shard], id,
                   cmd->op_len ? (int) cmd->op_len : 1,
                   cmd->op_len ? cmd->op : "-",
                   cmd->key_len ? (int) cmd->key_len : 1,
                   cmd->key_len ? cmd->key : "-", deliveries, reason);

    if (!cmd->gw_ok || !cmd->req_ok) {
        return chat_bus_ack(bus, shard, id);
    }

    body = chat_error_body(code, message);
    if (body == NULL) {
        return -1;
    }

    rc = chat_bus_finish(bus, shard, id, cmd->gw, cmd->gw_len, cmd->req,
                         cmd->req_len, 500, body);
    free(body);

    return rc;
}


int
chat_intake(chat_bus_t *bus, const chat_config_t *cfg, int shard,
    redisReply *entry, int reclaimed, chat_cmd_t *cmd)
{
    int                rc;
    char               reason[200], *body;
    size_t             i, n;
    long long          deliveries;
    const char        *id;
    redisReply        *fields;
    chat_field_t       f[CHAT_CMD_MAX_FIELDS];

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2
        || entry->element[0]->type != REDIS_REPLY_STRING)
    {
        chat_log_error("%s: entry without an id, skipped",
                       bus->streams[shard]);
        return 0;
    }

    id = entry->element[0]->str;
    fields = entry->element[1];

    if (fields->type == REDIS_REPLY_NIL) {
        /* pending, but deleted from the stream: nothing left to do */
        chat_log_warn("%s %s: entry was deleted, acking",
                      bus->streams[shard], id);
        return chat_bus_ack(bus, shard, id) == 0 ? 0 : -1;
    }

    deliveries = 1;

    if (reclaimed) {
        deliveries = chat_bus_deliveries(bus, shard, id);
        if (deliveries < 0) {
            return -1;
        }
        if (deliveries == 0) {
            return 0;           /* acked by someone meanwhile */
        }
    }

    n = fields->type == REDIS_REPLY_ARRAY ? fields->elements / 2 : 0;

    for (i = 0; i < 2 * n && n <= CHAT_CMD_MAX_FIELDS; i++) {
        if (fields->element[i]->type != REDIS_REPLY_STRING) {
            n = CHAT_CMD_MAX_FIELDS + 1;
        }
    }

    if (fields->type != REDIS_REPLY_ARRAY || fields->elements % 2 != 0
        || n > CHAT_CMD_MAX_FIELDS)
    {
        memset(cmd, 0, sizeof(*cmd));
        snprintf(cmd->error, sizeof(cmd->error), "not a list of at most %d "
                 "string field/value pairs", CHAT_CMD_MAX_FIELDS);
        rc = -1;

    } else {
        for (i = 0; i < n; i++) {
            f[i].name = fields->element[2 * i]->str;
            f[i].name_len = fields->element[2 * i]->len;
            f[i].value = fields->element[2 * i + 1]->str;
            f[i].value_len = fields->element[2 * i + 1]->len;
        }

        rc = chat_cmd_parse(cmd, f, n);
    }

    if (rc != 0) {
        snprintf(reason, sizeof(reason), "malformed: %s", cmd->error);
        rc = chat_intake_dead_letter(bus, shard, id, fields, cmd, deliveries,
                 reason, "malformed_command",
                 "the command could not be read; it was set aside");
        return rc == 0 ? 0 : -1;
    }

    if (cmd->ts > 0 && chat_time_ms() - cmd->ts > cfg->expire_ms) {
        chat_log_warn("%s %s: op %.*s queued %lld ms, answered as expired",
                      bus->streams[shard], id, (int) cmd->op_len, cmd->op,
                      (long long) (chat_time_ms() - cmd->ts));

        if (!cmd->gw_ok || !cmd->req_ok) {
            return chat_bus_ack(bus, shard, id) == 0 ? 0 : -1;
        }

        body = chat_error_body("expired", "the command waited too long "
                               "in the queue and was not run");
        if (body == NULL) {
            return -1;
        }

        rc = chat_bus_finish(bus, shard, id, cmd->gw, cmd->gw_len, cmd->req,
                             cmd->req_len, 504, body);
        free(body);

        return rc == 0 ? 0 : -1;
    }

    if (deliveries > cfg->max_deliveries) {
        snprintf(reason, sizeof(reason), "delivered %lld times without "
                 "completing", deliveries);
        rc = chat_intake_dead_letter(bus, shard, id, fields, cmd, deliveries,
                 reason, "dead_lettered",
                 "the command failed repeatedly; it was set aside");
        return rc == 0 ? 0 : -1;
    }

    return 1;
}
