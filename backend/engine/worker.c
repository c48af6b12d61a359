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
 * effects are committed, and many commands share one commit.  With
 * --pg-replica a worker has a second connection, and a batch of reads
 * the replica may serve runs there (replica.c decides; what fails there
 * runs again on the primary at once).  Expensive
 * commands (CHAT_OP_ALONE: scrypt) run by themselves in their place
 * among the others, so they never hold a batch's locks while they hash.
 * A read takes up to --batch entries per shard while entries are cheap,
 * but fewer as they get expensive (a moving average of the cost per
 * entry, aiming at about 250 ms per read): a burst of registrations at
 * ~0.2 s of scrypt each is spread over all workers instead of queueing
 * behind one.
 *
 * Commands that wait on an outbound call (CHAT_OP_SUSPENDS: a checkout
 * waiting on the payment processor) do not hold the worker: their
 * handler commits its first part and suspends, and the worker keeps up to
 * the lane's concurrency of them waiting at once (suspend.c) while it
 * reads and runs others; those of one op with a group lock that a read
 * brings next to each other start together, their first transactions one
 * group commit (chat_worker_start_group, suspend.c).  While any wait, the
 * loop alternates between
 * their calls (up to CHAT_WORKER_CALLS_WAIT_MS on the multi handle, less
 * when commands are arriving) and a short read (BLOCK 1); a call that
 * finishes has its resume step run and its command answered like any
 * other (chat_worker_answer).  With the lane's concurrency taken it reads
 * nothing new and only waits on the calls.
 *
 * Between entries, and at least once a loop, it does what is due: a
 * heartbeat every second (HSET chat:workers, with whether PostgreSQL
 * works), the re-claim of the waiting commands' entries every
 * claim-idle/3, a reclaim pass every claim-idle/2, housekeeping every
 * 30 s.
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
 * transaction in hand, gives its waiting commands up to
 * CHAT_WORKER_DRAIN_MS to finish their calls and be answered, removes its
 * heartbeat and exits 0.  Unprocessed entries of the read, and commands
 * still waiting, stay pending for others to reclaim.  If the supervisor
 * dies, the kernel sends the worker SIGTERM (PR_SET_PDEATHSIG).
 *
 * What it does not do: parse or dead-letter entries (intake.c), choose
 * operations (ops.c), run SQL (db.c, command.c), or know the Redis
 * command syntax (bus.c, fanout.c).
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "area.h"
#include "bus.h"
#include "chat_protocol.h"
#include "chat_token.h"
#include "command.h"
#include "db.h"
#include "envelope.h"
#include "fanout.h"
#include "intake.h"
#include "lanes.h"
#include "log.h"
#include "ops.h"
#include "roles.h"
#include "replica.h"
#include "supervisor.h"
#include "suspend.h"
#include "worker.h"


#define CHAT_WORKER_HEARTBEAT_MS  1000
#define CHAT_WORKER_PRUNE_MS      30000
#define CHAT_WORKER_BLOCK_MS      1000

/* while commands wait on calls: the read blocks only this long, and the
 * calls get up to CHAT_WORKER_CALLS_WAIT_MS (FULL_WAIT_MS when the lane's
 * concurrency is taken and nothing is read) between reads */
#define CHAT_WORKER_BLOCK_BUSY_MS    1
#define CHAT_WORKER_CALLS_WAIT_MS    10
#define CHAT_WORKER_FULL_WAIT_MS     100

/* finished waits answered together (one reply round trip) */
#define CHAT_WORKER_RESUME_MAX       64

/* stopping: how long waiting commands get to finish (the supervisor
 * kills a worker 10 s after SIGTERM) */
#define CHAT_WORKER_DRAIN_MS         8000

/* a read should not take more than about this long to work off, so slow
 * commands (scrypt) are left for idle workers instead of queueing here */
#define CHAT_WORKER_BATCH_BUDGET_MS  250

/* the most periodic tasks all areas together may register */
#define CHAT_WORKER_MAX_TASKS  16

typedef struct {
    int          shard;
    redisReply  *entry;         /* [id, fields], borrowed from a reply */
} chat_item_t;

typedef struct {
    const chat_config_t  *cfg;
    chat_bus_t            bus;
    chat_db_t             db;
    chat_replica_t        replica;      /* reads' other home (replica.c) */
    char                  consumer[300];
    char                  app_name[48];     /* pg_stat_activity's name */
    double                entry_ms;     /* moving average cost of an entry */
    int64_t               next_heartbeat;
    int64_t               next_claim;
    int64_t               next_prune;
    int                   unsafe;       /* PostgreSQL refused, see db.c */
    int64_t               next_task[CHAT_WORKER_MAX_TASKS];
    chat_suspend_t        susp;         /* commands waiting on calls */
    int                   concurrency;  /* the most of them at once */
    int                   arriving;     /* the last read brought entries */
} chat_worker_t;

/* SIGTERM or SIGINT came (chat_supervised_signals): finish and exit */
static volatile sig_atomic_t  chat_worker_stop;


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
 * Answers jobs[0..n), which have run (start: when they began): the areas'
 * before_reply hooks, then the replies and acks of the finished ones in
 * one round trip, then their events.  Returns 0, or -1 when Redis failed.
 */
static int
chat_worker_answer(chat_worker_t *w, chat_job_t **jobs, size_t n,
    int64_t start)
{
    int              rc;
    size_t           i, k, ne;
    double           per;
    chat_job_t      *job;
    chat_answer_t   *answers;
    chat_events_t  **events;

    /* the writers' next reads on a replica must see their writes; first,
     * so that a reader who sees a bumped cache generation also finds the
     * position to wait for */
    if (chat_replica_note_writes(w->cfg, &w->db, &w->bus, jobs, n) != 0) {
        return -1;
    }

    /* what must hold before anyone hears "done" (the catalog's cache
     * generations); if it failed, nothing is answered and the replays run
     * it again */
    if (chat_areas_before_reply(&w->bus, jobs, n) != 0) {
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
        chat_areas_after_commit(&w->bus, events, ne);
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
 * Runs jobs[0..n) (chat_jobs_run: one transaction when it can), then
 * answers them.  Returns 0, or -1 when Redis failed.
 */
static int
chat_worker_flush(chat_worker_t *w, chat_job_t **jobs, size_t n)
{
    size_t        i, k;
    int64_t       start;
    chat_db_t    *db;
    chat_job_t  **rest;

    if (n == 0) {
        return 0;
    }

    start = chat_mono_ms();

    db = chat_replica_route(&w->replica, &w->db, &w->bus, jobs, n);
    chat_jobs_run(db, w->cfg, jobs, n);

    /* what failed on the replica (it died under the batch, recovery
     * cancelled a read) is read from the primary at once; if memory ran
     * out it stays pending, for a reclaim */
    rest = db != &w->db ? malloc(n * sizeof(chat_job_t *)) : NULL;

    if (rest != NULL) {
        for (i = 0, k = 0; i < n; i++) {
            if (!jobs[i]->done) {
                rest[k++] = jobs[i];
            }
        }

        if (k > 0 && chat_db_ok(&w->db)) {
            chat_log_warn("%zu read(s) failed on the replica; reading the "
                          "primary", k);
            chat_jobs_run(&w->db, w->cfg, rest, k);
        }

        free(rest);
    }

    return chat_worker_answer(w, jobs, n, start);
}


/*
 * Moves the calls of waiting commands and tasks on (first waiting up to
 * wait_ms for one of them to have something to do), runs the next step
 * of those that finished, and answers the finished commands like any
 * others; a task's events are fanned out.  0, or -1 when Redis failed.
 */
static int
chat_worker_drive(chat_worker_t *w, int wait_ms)
{
    int             rc;
    size_t          n;
    int64_t         start;
    chat_job_t     *done[CHAT_WORKER_RESUME_MAX];
    chat_events_t   events, *lists[1];

    if (chat_suspend_jobs(&w->susp) == 0 && chat_suspend_calls(&w->susp) == 0)
    {
        return 0;
    }

    chat_suspend_wait(&w->susp, wait_ms);

    rc = 0;
    memset(&events, 0, sizeof(events));

    do {
        start = chat_mono_ms();

        /* the steps that finish together commit together (db.c, group
         * commit); nothing is answered or published before that */
        chat_db_group_begin(&w->db);
        n = chat_suspend_resume(&w->susp, done, CHAT_WORKER_RESUME_MAX,
                                &events);

        if (chat_db_group_commit(&w->db) != 0) {
            /* none of it is stored: their commands stay pending, to be
             * reclaimed and run again from the start (the checkout
             * resumes its payment by its key, suspend.c) */
            chat_log_error("%zu finished command(s) left pending: their "
                           "commit failed", n);
            chat_suspend_release(&w->susp, done, n);
            chat_events_clear(&events);
            rc = -1;
            break;
        }

        if (n > 0) {
            if (chat_worker_answer(w, done, n, start) != 0) {
                rc = -1;
            }
            chat_suspend_release(&w->susp, done, n);
        }

        /* this group's events, now that it is stored: a later group's
         * failed commit must not take them with it */
        if (events.n > 0 && chat_bus_ok(&w->bus)) {
            lists[0] = &events;
            (void) chat_fanout(&w->bus, lists, 1);
        }

        chat_events_clear(&events);

    } while (n == CHAT_WORKER_RESUME_MAX);

    return rc;
}


/*
 * Waits until the lane's concurrency has room for need more waiting
 * commands, moving the calls on meanwhile and keeping items[from..n)
 * claimed.  0, or -1 (Redis failed, or stopping).
 */
static int
chat_worker_room(chat_worker_t *w, size_t need, chat_item_t *items,
    size_t from, size_t n, int64_t *held_since)
{
    while (chat_suspend_jobs(&w->susp) + need > (size_t) w->concurrency) {
        if (chat_worker_stop || !chat_db_ok(&w->db)
            || !chat_bus_ok(&w->bus))
        {
            return -1;
        }

        if (chat_mono_ms() - *held_since >= w->cfg->claim_idle_ms / 3) {
            chat_worker_refresh(w, items, from, n);
            *held_since = chat_mono_ms();
        }

        if (chat_worker_drive(w, CHAT_WORKER_FULL_WAIT_MS) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * Runs a job that may wait on a call (CHAT_OP_SUSPENDS).  While the
 * lane's concurrency is taken it first waits for a waiting command to
 * finish, keeping items[from..n), this one and those after it in the
 * read, claimed meanwhile.  Once it waits, the calls are moved on
 * without waiting: a read full of checkouts is a lot of transactions,
 * and answers that arrive meanwhile are taken in (and their commands
 * answered) between them, not after the deadline they arrived within.
 * 0, or -1 (Redis failed, or stopping: the job is left pending, not
 * started).
 */
static int
chat_worker_start(chat_worker_t *w, chat_job_t *job, chat_item_t *items,
    size_t from, size_t n, int64_t *held_since)
{
    int64_t  start;

    if (chat_worker_room(w, 1, items, from, n, held_since) != 0) {
        return -1;
    }

    start = chat_mono_ms();

    if (chat_suspend_job(&w->susp, job)) {
        return chat_worker_drive(w, 0);     /* answered when resumed */
    }

    return chat_worker_answer(w, &job, 1, start);
}


/*
 * chat_worker_start for group[0..n), jobs of one op that groups its
 * first transactions (chat_suspend_group): room is made for all of them
 * first, then they start together and those that finished at once are
 * answered.  0, or -1 as chat_worker_start.
 */
static int
chat_worker_start_group(chat_worker_t *w, chat_job_t **group, size_t n,
    chat_item_t *items, size_t from, size_t nitems, int64_t *held_since)
{
    int      *finished;
    size_t    i, k;
    int64_t   start;

    if (n == 1) {
        return chat_worker_start(w, group[0], items, from, nitems,
                                 held_since);
    }

    if (chat_worker_room(w, n, items, from, nitems, held_since) != 0) {
        return -1;
    }

    finished = malloc(n * sizeof(int));
    if (finished == NULL) {
        return 0;                       /* all stay pending, replayed */
    }

    start = chat_mono_ms();
    chat_suspend_group(&w->susp, group, n, finished);

    for (i = 0, k = 0; i < n; i++) {
        if (finished[i]) {
            group[k++] = group[i];
        }
    }

    free(finished);

    if (k > 0 && chat_worker_answer(w, group, k, start) != 0) {
        return -1;
    }

    return chat_worker_drive(w, 0);     /* the rest answered when resumed */
}


/*
 * How many more jobs a group may take: up to --commit-batch, and no more
 * than the lane's concurrency leaves room for.
 */
static size_t
chat_worker_group_room(const chat_worker_t *w)
{
    size_t  waiting, room;

    waiting = chat_suspend_jobs(&w->susp);
    room = (size_t) w->concurrency > waiting
           ? (size_t) w->concurrency - waiting : 1;

    if (room > (size_t) w->cfg->commit_batch) {
        room = (size_t) w->cfg->commit_batch;
    }

    return room > CHAT_COMMIT_BATCH_MAX ? CHAT_COMMIT_BATCH_MAX : room;
}


/* The id of an entry as XREADGROUP or XAUTOCLAIM returned it, or NULL. */
static const char *
chat_worker_entry_id(const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 1
        || entry->element[0]->type != REDIS_REPLY_STRING)
    {
        return NULL;
    }

    return entry->element[0]->str;
}


/*
 * Processes the entries of one read (or reclaim): cheap commands are
 * gathered and run --commit-batch at a time in one transaction each;
 * expensive ones (CHAT_OP_ALONE) run by themselves, in their place, and
 * so do those that may wait on a call (CHAT_OP_SUSPENDS), which start
 * here and are answered later.  A reclaimed entry that is one of this
 * worker's own waiting commands is left alone.
 */
static void
chat_worker_process(chat_worker_t *w, chat_item_t *items, size_t n,
    int reclaimed)
{
    int           rc, alone, suspends, grouped;
    const char   *id;
    size_t        i, k, g, from, max;
    int64_t       held_since;
    chat_cmd_t   *cmds;
    chat_job_t   *jobs, **batch, **group, *job;

    cmds = malloc(n * sizeof(chat_cmd_t));
    jobs = calloc(n, sizeof(chat_job_t));
    batch = malloc(n * sizeof(chat_job_t *));
    group = malloc(n * sizeof(chat_job_t *));

    if (cmds == NULL || jobs == NULL || batch == NULL || group == NULL) {
        goto done;
    }

    max = (size_t) w->cfg->commit_batch;
    held_since = chat_mono_ms();
    from = 0;
    k = 0;
    g = 0;

    for (i = 0; i < n; i++) {
        if (chat_worker_stop || !chat_db_ok(&w->db) || !chat_bus_ok(&w->bus))
        {
            break;
        }

        id = chat_worker_entry_id(items[i].entry);

        if (reclaimed && id != NULL
            && chat_suspend_holds(&w->susp, items[i].shard, id))
        {
            if (k == 0 && g == 0) {
                from = i + 1;
            }
            continue;
        }

        rc = chat_intake(&w->bus, w->cfg, items[i].shard, items[i].entry,
                         reclaimed, &cmds[i]);
        if (rc < 0) {
            break;
        }

        if (rc == 0) {
            if (k == 0 && g == 0) {
                from = i + 1;
            }
            continue;
        }

        job = &jobs[i];

        if (chat_job_init(job, w->cfg, &cmds[i], items[i].shard,
                          items[i].entry->element[0]->str, i) != 0)
        {
            chat_log_error("out of memory; entry %s left pending",
                           items[i].entry->element[0]->str);
            chat_log_set_request(NULL, 0);
            continue;
        }

        /* from here the job's lines are its handler's (chat_job_handle) */
        chat_log_set_request(NULL, 0);

        suspends = (job->op->flags & CHAT_OP_SUSPENDS) != 0;
        grouped = suspends && job->op->batch != NULL;
        alone = suspends || chat_job_alone(job);

        if (chat_mono_ms() - held_since >= w->cfg->claim_idle_ms / 3) {
            chat_worker_refresh(w, items, from, n);
            held_since = chat_mono_ms();
        }

        /* a group of one op's first transactions (chat_suspend_group):
         * started when something else comes, or it is full */
        if (g > 0 && (!grouped || job->op != group[0]->op)) {
            rc = chat_worker_start_group(w, group, g, items, from, n,
                                         &held_since);
            g = 0;
            if (rc != 0) {
                break;
            }
            from = i;
        }

        if (grouped) {
            /* the gathered cheap ones first: they came before */
            rc = chat_worker_flush(w, batch, k);
            k = 0;
            if (rc != 0) {
                break;
            }
            if (g == 0) {
                from = i;
            }

            group[g++] = job;
            if (g < chat_worker_group_room(w)) {
                continue;
            }

            rc = chat_worker_start_group(w, group, g, items, from, n,
                                         &held_since);
            g = 0;
            if (rc != 0) {
                break;
            }
            from = i + 1;
            continue;
        }

        if (!alone) {
            batch[k++] = job;
            if (k < max) {
                continue;
            }
        }

        /* the gathered cheap ones first: they came before */
        rc = chat_worker_flush(w, batch, k);
        k = 0;

        if (rc == 0 && alone) {
            rc = suspends ? chat_worker_start(w, job, items, i, n,
                                              &held_since)
                          : chat_worker_flush(w, &job, 1);
        }

        if (rc != 0) {
            break;
        }

        from = i + 1;
    }

    /* what is gathered runs unless we stopped early: then it stays
     * pending, not started, for another worker */
    if ((k > 0 || g > 0) && i == n) {
        if (chat_mono_ms() - held_since >= w->cfg->claim_idle_ms / 3) {
            chat_worker_refresh(w, items, from, n);
        }

        if (k > 0) {
            (void) chat_worker_flush(w, batch, k);
        } else {
            (void) chat_worker_start_group(w, group, g, items, from, n,
                                           &held_since);
        }
    }

done:

    for (i = 0; jobs != NULL && i < n; i++) {
        chat_job_free(&jobs[i]);
    }

    free(cmds);
    free(jobs);
    free(batch);
    free(group);
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


/*
 * chat_worker_batch, but no more per shard than there is room for while
 * commands wait on calls, so a read does not take entries that would
 * only wait for room (chat_worker_start).
 */
static int
chat_worker_count(const chat_worker_t *w)
{
    int     n;
    size_t  waiting;

    n = chat_worker_batch(w);
    waiting = chat_suspend_jobs(&w->susp);

    if (waiting > 0 && (size_t) w->concurrency < waiting + (size_t) n) {
        n = (size_t) w->concurrency > waiting
            ? (int) ((size_t) w->concurrency - waiting) : 1;
    }

    return n;
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

/* The areas' periodic tasks of this worker's lane, each when due; the
 * events a task adds are fanned out like a command's. */
static void
chat_worker_tasks(chat_worker_t *w, int64_t now)
{
    size_t              i, k, t;
    chat_events_t       events, *lists[1];
    const chat_task_t  *task;

    t = 0;

    for (i = 0; chat_areas[i] != NULL; i++) {
        for (k = 0; k < chat_areas[i]->ntasks
                    && t < CHAT_WORKER_MAX_TASKS; k++, t++)
        {
            task = &chat_areas[i]->tasks[k];

            if (task->lane != w->cfg->lane || now < w->next_task[t]
                || !chat_db_ok(&w->db))
            {
                continue;
            }

            w->next_task[t] = now + task->interval_ms(w->cfg);

            memset(&events, 0, sizeof(events));
            task->run(&w->db, w->cfg, &events, &w->susp);

            if (events.n > 0 && chat_bus_ok(&w->bus)) {
                lists[0] = &events;
                (void) chat_fanout(&w->bus, lists, 1);
            }

            chat_events_clear(&events);
        }
    }
}


/* Heartbeat, the waiting commands' entries re-claimed, reclaim, the
 * areas' tasks and housekeeping, each when due. */
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
        chat_replica_publish(&w->replica, &w->bus);
        chat_bus_trim(&w->bus);
    }

    /* waiting is not abandonment: keep their entries claimed */
    chat_suspend_refresh(&w->susp, &w->bus);

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

    chat_worker_tasks(w, now);
}


static void
chat_worker_loop(chat_worker_t *w)
{
    int          rc, busy;
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

        busy = chat_suspend_jobs(&w->susp) + chat_suspend_calls(&w->susp) > 0;

        if (busy) {
            /* calls in flight: give them a moment (none while commands
             * keep arriving), then read without waiting long */
            if (chat_suspend_jobs(&w->susp) >= (size_t) w->concurrency) {
                (void) chat_worker_drive(w, CHAT_WORKER_FULL_WAIT_MS);
                continue;
            }

            (void) chat_worker_drive(w, w->arriving
                                        ? 0 : CHAT_WORKER_CALLS_WAIT_MS);

            if (!chat_bus_ok(&w->bus) || !chat_db_ok(&w->db)) {
                continue;
            }
        }

        r = chat_bus_read(&w->bus, chat_worker_count(w),
                          busy ? CHAT_WORKER_BLOCK_BUSY_MS
                               : CHAT_WORKER_BLOCK_MS);
        w->arriving = 0;

        if (r == NULL) {
            if (chat_bus_ok(&w->bus)) {
                chat_sleep_ms(100);     /* an error reply: do not spin */
            }
            continue;
        }

        if (r->type == REDIS_REPLY_ARRAY) {
            w->arriving = 1;
            chat_worker_process_read(w, r);
        }

        freeReplyObject(r);
    }
}


/*
 * Stopping: nothing new is read; the commands waiting on calls get until
 * their calls finish, at most CHAT_WORKER_DRAIN_MS, to be answered.  What
 * is still waiting then is given up, its entries pending for others.
 */
static void
chat_worker_drain(chat_worker_t *w)
{
    int64_t  until;

    until = chat_mono_ms() + CHAT_WORKER_DRAIN_MS;

    while (chat_suspend_jobs(&w->susp) + chat_suspend_calls(&w->susp) > 0
           && chat_mono_ms() < until && chat_db_ok(&w->db)
           && chat_bus_ok(&w->bus))
    {
        chat_worker_tick(w, 0);
        (void) chat_worker_drive(w, CHAT_WORKER_FULL_WAIT_MS);
    }

    chat_suspend_free(&w->susp);
}


int
chat_worker_run(const chat_config_t *pool_cfg, chat_lane_t lane,
    pid_t supervisor)
{
    int               rc;
    chat_config_t     own;
    const chat_config_t  *cfg;
    chat_lane_limits_t    limits;
    char              host[256];
    redisReply       *r;
    chat_worker_t     w;

    /* this worker's copy: its lane's batch sizes and priority */
    own = *pool_cfg;
    chat_lanes_enter(&own, lane);
    cfg = &own;

    chat_log_set_role(chat_lane_name(lane));

    chat_supervised_signals(&chat_worker_stop, supervisor);

    srandom((unsigned) getpid() ^ (unsigned) time(NULL));

    memset(&w, 0, sizeof(w));
    w.cfg = cfg;

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';

    snprintf(w.consumer, sizeof(w.consumer), "%s:%ld", host,
             (long) getpid());

    /* the lane in pg_stat_activity: an operator sees which kind of work
     * holds a session or a lock */
    snprintf(w.app_name, sizeof(w.app_name), "chat-backend %s lane",
             chat_lane_name(lane));
    chat_db_init(&w.db, cfg->pg, w.app_name);
    chat_replica_init(&w.replica, cfg, w.app_name);
    chat_suspend_init(&w.susp, cfg, &w.db);
    w.concurrency = cfg->lanes[lane].concurrency;

    if (chat_bus_init(&w.bus, cfg, w.consumer) != 0) {
        chat_log_error("out of memory");
        return 1;
    }

    limits.queue = cfg->lanes[lane].queue;
    limits.timeout_ms = cfg->lanes[lane].timeout_ms;
    limits.retry_s = cfg->lanes[lane].retry_s;
    limits.wait_ms = chat_lanes_wait_ms(&cfg->lanes[lane]);
    /* what the edge checks it agrees with */
    limits.shards = cfg->shards;
    limits.key_id = chat_token_key_id(cfg->token_secret,
                                      cfg->token_secret_len);
    /* and what it should agree on: it warns (presence.c's TTL, read from
     * the environment before the supervisor forked) */
    limits.presence_ttl_ms = chat_roles.presence_ttl_ms;
    (void) chat_lane_limits_format(w.bus.lane_limits,
                                   sizeof(w.bus.lane_limits), &limits);

    /* only the areas with work on this lane prepare (the auth lane's
     * dummy scrypt, for instance, is no business of the chat lane) */
    (void) chat_areas_init(lane);

    chat_log_info("started as consumer %s on %d shards of lane %s",
                  w.consumer, cfg->shards, chat_lane_name(lane));

    chat_worker_loop(&w);
    chat_worker_drain(&w);

    rc = w.unsafe ? CHAT_WORKER_EXIT_UNSAFE : 0;

    /* leave the health view at once rather than after going stale */
    if (chat_bus_ok(&w.bus)) {
        r = chat_router_commandf(&w.bus.route, "HDEL %s %s", CHAT_WORKERS_KEY,
                                 w.consumer);
        freeReplyObject(r);
        r = chat_router_commandf(&w.bus.route, "HDEL %s %s", CHAT_STATS_KEY,
                                 w.consumer);
        freeReplyObject(r);
    }

    chat_bus_free(&w.bus);
    chat_db_close(&w.db);
    chat_replica_close(&w.replica);

    chat_log_info("stopped");

    return rc;
}
