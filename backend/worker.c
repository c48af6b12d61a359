/*
 * worker.c: the loop of one worker process.
 *
 * A worker owns one Redis connection (bus.c) and one PostgreSQL connection
 * (db.c) and repeats:
 *
 *   XREADGROUP (a few entries per shard, blocking 1 s)
 *   parse every entry (envelope.c)
 *   run the cheap commands together, --commit-batch to a transaction:
 *       lookup in command_log, BEGIN, a savepoint and the op for each,
 *       log INSERT, COMMIT                          (command.c, ops.c)
 *   publish the replies, XACK, fan the events out    (fanout.c: two
 *                                                     round trips)
 *
 * so a command is acknowledged, and its client answered, only after its
 * effects are committed, and many commands share one commit.  Expensive
 * commands (CHAT_OP_ALONE: scrypt) run by themselves in their place
 * among the others, so they never hold a batch's locks while they hash.
 * A read takes up to --batch entries per shard while entries are cheap,
 * but fewer as they get expensive (a moving average of the cost per
 * entry, aiming at about 250 ms per read): a burst of registrations at
 * ~0.4 s of scrypt each is spread over all workers instead of queueing
 * behind one.
 *
 * Between entries, and at least once a loop, it does what is due: a
 * heartbeat every second (HSET chat:workers, with whether PostgreSQL
 * works), a reclaim pass every claim-idle/2, housekeeping every 30 s.
 *
 * Reclaim.  Entries delivered to a worker that died, or that failed here
 * on an infrastructure error, stay pending.  Each pass XAUTOCLAIMs those
 * idle for claim-idle-ms on every shard and processes them like new ones,
 * except that an entry already delivered more than max-deliveries times
 * is a poison command: it goes to chat:dlq with the reason, its client
 * gets 500 dead_lettered, and it is acked.  A malformed entry goes the
 * same way at once, since no retry can fix it.  An entry of a long batch
 * that is still waiting its turn is re-claimed by this worker (XCLAIM
 * JUSTID, which does not count as a delivery) before it looks abandoned,
 * so slowness alone never burns delivery counts.
 *
 * Failures.  If a command fails in PostgreSQL, its entry is left pending
 * (command.c retries a failed batch one command at a time first, so only
 * the failing command's entry stays); if the connection itself is gone,
 * so is the rest of the read, and while it is down the worker reads
 * nothing new and reclaims nothing, only heartbeats "pg 0" and reconnects
 * with backoff, so an outage does not push healthy commands into the
 * dead-letter stream.  If Redis fails, it reconnects with backoff and
 * jitter; work committed but not yet acked is replayed from command_log
 * after the entry is reclaimed.
 *
 * Stopping.  SIGTERM or SIGINT sets a flag; the worker finishes the
 * transaction in hand, removes its heartbeat and exits 0.  Unprocessed
 * entries of the read stay pending for others to reclaim.  If the
 * supervisor dies, the kernel sends the worker SIGTERM (PR_SET_PDEATHSIG).
 *
 * What it does not do: parse or dead-letter entries (intake.c), choose
 * operations (ops.c), run SQL (db.c, command.c), or know the Redis
 * command syntax (bus.c, fanout.c).
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "catalog_cache.h"
#include "chat_protocol.h"
#include "command.h"
#include "db.h"
#include "envelope.h"
#include "fanout.h"
#include "intake.h"
#include "log.h"
#include "membership_cache.h"
#include "notify_queue.h"
#include "ops.h"
#include "reconcile.h"
#include "worker.h"


#define CHAT_WORKER_HEARTBEAT_MS  1000
#define CHAT_WORKER_PRUNE_MS      30000
#define CHAT_WORKER_BLOCK_MS      1000

/* a read should not take more than about this long to work off, so slow
 * commands (scrypt) are left for idle workers instead of queueing here */
#define CHAT_WORKER_BATCH_BUDGET_MS  250

typedef struct {
    int          shard;
    redisReply  *entry;         /* [id, fields], borrowed from a reply */
} chat_item_t;

typedef struct {
    const chat_config_t  *cfg;
    chat_bus_t            bus;
    chat_db_t             db;
    char                  consumer[300];
    double                entry_ms;     /* moving average cost of an entry */
    int64_t               next_heartbeat;
    int64_t               next_claim;
    int64_t               next_prune;
    int                   unsafe;       /* PostgreSQL refused, see db.c */
    int64_t               next_reconcile;   /* orders: reconcile.c */
} chat_worker_t;

static volatile sig_atomic_t  chat_worker_stop;


static void
chat_worker_on_signal(int signo)
{
    (void) signo;
    chat_worker_stop = 1;
}


/* ------------------------------------------------------------------------
 * Batches
 * --------------------------------------------------------------------- */

static void chat_worker_tick(chat_worker_t *w, int with_claim);


/* Re-claims items[from..n) to ourselves so none of them looks idle. */
static void
chat_worker_refresh(chat_worker_t *w, chat_item_t *items, size_t from,
    size_t n)
{
    int           shard;
    size_t        i, k;
    const char  **ids;

    ids = malloc((n - from) * sizeof(char *));
    if (ids == NULL) {
        return;
    }

    for (shard = 0; shard < w->cfg->shards; shard++) {
        k = 0;
        for (i = from; i < n; i++) {
            if (items[i].shard == shard
                && items[i].entry->type == REDIS_REPLY_ARRAY
                && items[i].entry->elements >= 1
                && items[i].entry->element[0]->type == REDIS_REPLY_STRING)
            {
                ids[k++] = items[i].entry->element[0]->str;
            }
        }

        if (chat_bus_refresh(&w->bus, shard, ids, k) != 0) {
            break;
        }
    }

    free(ids);
}


/*
 * Runs jobs[0..n) (chat_jobs_run: one transaction when it can), then
 * answers and acks the finished ones in one round trip, then fans out
 * their events.  Returns 0, or -1 when Redis failed.
 */
static int
chat_worker_flush(chat_worker_t *w, chat_job_t **jobs, size_t n)
{
    int              rc;
    size_t           i, k, ne;
    int64_t          start;
    double           per;
    chat_job_t      *job;
    chat_answer_t   *answers;
    chat_events_t  **events;

    if (n == 0) {
        return 0;
    }

    start = chat_mono_ms();

    chat_jobs_run(&w->db, w->cfg, jobs, n);

    /* catalog writes invalidate cached pages before anyone hears of them;
     * if Redis failed, nothing is answered and the replays bump again */
    if (chat_catalog_cache_bump(&w->bus, jobs, n) != 0) {
        return -1;
    }

    answers = malloc(n * sizeof(chat_answer_t));
    events = malloc(n * sizeof(chat_events_t *));
    if (answers == NULL || events == NULL) {
        free(answers);
        free(events);
        return 0;               /* all stay pending, replayed later */
    }

    k = 0;
    ne = 0;

    for (i = 0; i < n; i++) {
        job = jobs[i];

        if (!job->done) {
            chat_log_warn("%s %s (op %s, key %s): left pending",
                          w->bus.streams[job->shard], job->id, job->cmd->op,
                          job->cmd->key);
            continue;
        }

        answers[k].shard = job->shard;
        answers[k].id = job->id;
        answers[k].gw = job->cmd->gw;
        answers[k].gw_len = job->cmd->gw_len;
        answers[k].req = job->cmd->req;
        answers[k].req_len = job->cmd->req_len;
        answers[k].status = job->reply.status;
        answers[k].body = job->reply.body;
        k++;

        if (job->events.n > 0) {
            events[ne++] = &job->events;
        }
    }

    /* replies, acks and events together: committed facts, told even if
     * a reply failed (it will be replayed) */
    rc = chat_publish(&w->bus, answers, k, events, ne);

    if (ne > 0 && chat_bus_ok(&w->bus)) {
        /* presence area: the typing cache and offline notifications */
        chat_membership_cache_update(&w->bus, events, ne);
        chat_notify_queue(&w->bus, events, ne);
    }

    free(answers);
    free(events);

    per = (double) (chat_mono_ms() - start) / (double) n;
    for (i = 0; i < n; i++) {
        w->entry_ms = 0.8 * w->entry_ms + 0.2 * per;
    }

    chat_worker_tick(w, 0);

    return rc == 0 && chat_bus_ok(&w->bus) ? 0 : -1;
}


/*
 * Processes the entries of one read (or reclaim): cheap commands are
 * gathered and run --commit-batch at a time in one transaction each;
 * expensive ones (CHAT_OP_ALONE) run by themselves, in their place.
 */
static void
chat_worker_process(chat_worker_t *w, chat_item_t *items, size_t n,
    int reclaimed)
{
    int           rc, alone;
    size_t        i, k, from, max;
    int64_t       held_since;
    chat_cmd_t   *cmds;
    chat_job_t   *jobs, **batch, *job;

    cmds = malloc(n * sizeof(chat_cmd_t));
    jobs = calloc(n, sizeof(chat_job_t));
    batch = malloc(n * sizeof(chat_job_t *));

    if (cmds == NULL || jobs == NULL || batch == NULL) {
        goto done;
    }

    max = (size_t) w->cfg->commit_batch;
    held_since = chat_mono_ms();
    from = 0;
    k = 0;

    for (i = 0; i < n; i++) {
        if (chat_worker_stop || !chat_db_ok(&w->db) || !chat_bus_ok(&w->bus))
        {
            break;
        }

        rc = chat_intake(&w->bus, w->cfg, items[i].shard, items[i].entry,
                         reclaimed, &cmds[i]);
        if (rc < 0) {
            break;
        }

        if (rc == 0) {
            if (k == 0) {
                from = i + 1;
            }
            continue;
        }

        job = &jobs[i];

        if (chat_job_init(job, &cmds[i], items[i].shard,
                          items[i].entry->element[0]->str, i) != 0)
        {
            chat_log_error("out of memory; entry %s left pending",
                           items[i].entry->element[0]->str);
            continue;
        }

        alone = chat_job_alone(job);

        if (!alone) {
            batch[k++] = job;
            if (k < max) {
                continue;
            }
        }

        if (chat_mono_ms() - held_since >= w->cfg->claim_idle_ms / 3) {
            chat_worker_refresh(w, items, from, n);
            held_since = chat_mono_ms();
        }

        /* the gathered cheap ones first: they came before */
        rc = chat_worker_flush(w, batch, k);
        k = 0;

        if (rc == 0 && alone) {
            rc = chat_worker_flush(w, &job, 1);
        }

        if (rc != 0) {
            break;
        }

        from = i + 1;
    }

    /* what is gathered runs unless we stopped early: then it stays
     * pending, not started, for another worker */
    if (k > 0 && i == n) {
        if (chat_mono_ms() - held_since >= w->cfg->claim_idle_ms / 3) {
            chat_worker_refresh(w, items, from, n);
        }

        (void) chat_worker_flush(w, batch, k);
    }

done:

    for (i = 0; jobs != NULL && i < n; i++) {
        chat_job_free(&jobs[i]);
    }

    free(cmds);
    free(jobs);
    free(batch);
}


static int
chat_worker_shard_of(chat_worker_t *w, const redisReply *name)
{
    int  i;

    for (i = 0; i < w->cfg->shards; i++) {
        if (strcmp(w->bus.streams[i], name->str) == 0) {
            return i;
        }
    }

    return -1;
}


/*
 * How many entries per shard to take at once: --batch while entries are
 * cheap, fewer as they get expensive, at least one.
 */
static int
chat_worker_batch(const chat_worker_t *w)
{
    double  n;

    n = CHAT_WORKER_BATCH_BUDGET_MS / (w->entry_ms > 1.0 ? w->entry_ms : 1.0);

    if (n < 1.0) {
        return 1;
    }

    return n < w->cfg->batch ? (int) n : w->cfg->batch;
}


/* Flattens an XREADGROUP reply into items and processes them. */
static void
chat_worker_process_read(chat_worker_t *w, redisReply *r)
{
    int           shard;
    size_t        i, j, n;
    redisReply   *s;
    chat_item_t  *items;

    n = 0;
    for (i = 0; i < r->elements; i++) {
        s = r->element[i];
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2
            && s->element[1]->type == REDIS_REPLY_ARRAY)
        {
            n += s->element[1]->elements;
        }
    }

    items = n ? malloc(n * sizeof(chat_item_t)) : NULL;
    if (items == NULL) {
        return;
    }

    n = 0;
    for (i = 0; i < r->elements; i++) {
        s = r->element[i];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2
            || s->element[0]->type != REDIS_REPLY_STRING
            || s->element[1]->type != REDIS_REPLY_ARRAY
            || (shard = chat_worker_shard_of(w, s->element[0])) < 0)
        {
            continue;
        }

        for (j = 0; j < s->element[1]->elements; j++) {
            items[n].shard = shard;
            items[n].entry = s->element[1]->element[j];
            n++;
        }
    }

    chat_worker_process(w, items, n, 0);
    free(items);
}


/* One XAUTOCLAIM page per shard; claimed entries are processed at once. */
static void
chat_worker_reclaim(chat_worker_t *w)
{
    int           shard;
    size_t        i, n;
    redisReply   *r, *entries;
    chat_item_t  *items;

    for (shard = 0; shard < w->cfg->shards; shard++) {
        if (chat_worker_stop || !chat_db_ok(&w->db) || !chat_bus_ok(&w->bus))
        {
            return;
        }

        r = chat_bus_autoclaim(&w->bus, shard, chat_worker_batch(w));
        if (r == NULL) {
            continue;
        }

        entries = r->element[1];
        n = entries->elements;

        if (n > 0) {
            chat_log_info("%s: reclaimed %zu idle entries",
                          w->bus.streams[shard], n);

            items = malloc(n * sizeof(chat_item_t));
            if (items != NULL) {
                for (i = 0; i < n; i++) {
                    items[i].shard = shard;
                    items[i].entry = entries->element[i];
                }

                chat_worker_process(w, items, n, 1);
                free(items);
            }
        }

        freeReplyObject(r);
    }
}


/* ------------------------------------------------------------------------
 * The loop
 * --------------------------------------------------------------------- */

/* Orders: settles payments left pending (reconcile.c), then tells the
 * shoppers whose orders changed. */
static void
chat_worker_reconcile(chat_worker_t *w)
{
    chat_events_t   events, *lists[1];

    memset(&events, 0, sizeof(events));

    (void) chat_reconcile(&w->db, w->cfg, &events);

    if (events.n > 0 && chat_bus_ok(&w->bus)) {
        lists[0] = &events;
        (void) chat_fanout(&w->bus, lists, 1);
    }

    chat_events_clear(&events);
}


/* Heartbeat, reclaim, reconcile and housekeeping, each when due. */
static void
chat_worker_tick(chat_worker_t *w, int with_claim)
{
    int64_t  now;

    now = chat_mono_ms();

    if (now >= w->next_heartbeat) {
        w->next_heartbeat = now + CHAT_WORKER_HEARTBEAT_MS;

        /* an idle connection may have died unnoticed: ask */
        if (chat_db_ok(&w->db)
            && now - w->db.last_ok_ms >= CHAT_WORKER_HEARTBEAT_MS)
        {
            (void) chat_db_ping(&w->db);
        }

        (void) chat_bus_heartbeat(&w->bus, chat_db_ok(&w->db));
    }

    if (!with_claim) {
        return;
    }

    if (now >= w->next_claim && chat_db_ok(&w->db)) {
        /* set first: reclaiming processes entries, which ticks again */
        w->next_claim = now + w->cfg->claim_idle_ms / 2;
        chat_worker_reclaim(w);
    }

    if (now >= w->next_prune) {
        w->next_prune = now + CHAT_WORKER_PRUNE_MS;
        chat_bus_prune(&w->bus);
    }

    if (now >= w->next_reconcile && chat_db_ok(&w->db)) {
        w->next_reconcile = now + w->cfg->reconcile_interval_ms;
        chat_worker_reconcile(w);
    }
}


static void
chat_worker_loop(chat_worker_t *w)
{
    int          rc;
    int64_t      wait;
    redisReply  *r;

    while (!chat_worker_stop) {

        if (!chat_bus_ok(&w->bus)
            && chat_bus_connect(&w->bus, &chat_worker_stop) != 0)
        {
            break;
        }

        rc = chat_db_reconnect(&w->db);

        if (rc == CHAT_DB_UNSAFE) {
            w->unsafe = 1;              /* logged; retrying cannot help */
            break;
        }

        if (rc != 0) {
            /* no new work until PostgreSQL is back; keep saying so */
            chat_worker_tick(w, 0);

            wait = w->db.next_try_ms - chat_mono_ms();
            chat_sleep_ms(wait < 200 ? wait : 200);
            continue;
        }

        chat_worker_tick(w, 1);

        if (chat_worker_stop || !chat_bus_ok(&w->bus) || !chat_db_ok(&w->db))
        {
            continue;
        }

        r = chat_bus_read(&w->bus, chat_worker_batch(w),
                          CHAT_WORKER_BLOCK_MS);
        if (r == NULL) {
            if (chat_bus_ok(&w->bus)) {
                chat_sleep_ms(100);     /* an error reply: do not spin */
            }
            continue;
        }

        if (r->type == REDIS_REPLY_ARRAY) {
            chat_worker_process_read(w, r);
        }

        freeReplyObject(r);
    }
}


int
chat_worker_run(const chat_config_t *cfg, pid_t supervisor)
{
    int               rc;
    char              host[256];
    redisReply       *r;
    chat_worker_t     w;
    struct sigaction  sa;

    chat_log_set_role("worker");

    /* if the supervisor goes away, so do we */
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = chat_worker_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (getppid() != supervisor) {
        chat_worker_stop = 1;       /* it died before prctl() took effect */
    }

    srandom((unsigned) getpid() ^ (unsigned) time(NULL));

    memset(&w, 0, sizeof(w));
    w.cfg = cfg;

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';

    snprintf(w.consumer, sizeof(w.consumer), "%s:%ld", host,
             (long) getpid());

    chat_db_init(&w.db, cfg->pg, "chat-backend worker");

    if (chat_bus_init(&w.bus, cfg, w.consumer) != 0) {
        chat_log_error("out of memory");
        return 1;
    }

    if (chat_ops_init() != 0) {
        chat_log_warn("operation set-up failed; continuing");
    }

    chat_log_info("started as consumer %s on %d shards", w.consumer,
                  cfg->shards);

    chat_worker_loop(&w);

    rc = w.unsafe ? CHAT_WORKER_EXIT_UNSAFE : 0;

    /* leave the health view at once rather than after going stale */
    if (chat_bus_ok(&w.bus)) {
        r = redisCommand(w.bus.ctx, "HDEL %s %s", CHAT_WORKERS_KEY,
                         w.consumer);
        freeReplyObject(r);
    }

    chat_bus_free(&w.bus);
    chat_db_close(&w.db);

    chat_log_info("stopped");

    return rc;
}
