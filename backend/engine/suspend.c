/*
 * suspend.c: commands that wait on an outbound call without holding
 * their worker.
 *
 * A checkout waits on the payment processor for 300 ms to 2 s.  A worker
 * that sat through each wait settled a few checkouts per second however
 * idle its CPU was.  So an op flagged CHAT_OP_SUSPENDS (ops.h) may stop
 * halfway: its handler commits what it has done so far (the checkout's
 * reservation), makes the outbound request and returns chat_op_suspend()
 * with the call and the step to run when the call has finished.  The job
 * then waits here and the worker reads and runs other commands; its call
 * shares the worker's libcurl multi handle with the others
 * (http_multi.c).  When the call finishes (an answer, an error, or its
 * deadline) the worker runs the resume step (the checkout's settlement),
 * which answers like a handler, and the job goes through the same path
 * as any finished job: the areas' before_reply hooks, the reply and XACK,
 * the fan-out of its events, the after_commit hooks (worker.c).
 *
 * The entry stays pending all along, delivered to this worker: nothing is
 * acked before the answer, as for every command.  Every claim-idle/3 the
 * worker re-claims the entries waiting here (XCLAIM JUSTID, no delivery
 * counted), so no other worker reclaims a command that is only waiting;
 * and the worker skips its own waiting entries if its reclaim pass meets
 * them.  If the worker dies, its entries are reclaimed by another one
 * after claim-idle and run again from the start: the op must be
 * idempotent across that (the checkout finds its key in flight, resumes
 * the same payment with the same idempotency key, and settles first-wins).
 *
 * Memory.  A job normally points into the XREADGROUP reply it came in,
 * which is freed after the read is worked off; a job that suspends gets a
 * copy of its command's strings and of its entry id, and moves here.
 *
 * Started together.  The commands of one op with a group lock (ops.h,
 * its batch hook: the checkout's) that a worker starts together run
 * their handlers' first transactions as one group commit
 * (chat_suspend_group): the op's lock first, then each handler in its
 * savepoint, waiting on no lock after the first (chat_db_group_nowait:
 * one that meets one runs again on its own after the COMMIT), then one
 * COMMIT; only then are their calls started and the others answered.  A
 * failed COMMIT stores nothing, starts nothing and answers nothing: the
 * commands stay pending.  Why it cannot deadlock: engine/README.md,
 * Group commits.
 *
 * Periodic tasks wait here too (chat_suspend_task_call): the reconciler's
 * lookups run side by side and settle from the loop, so a pass over a
 * dozen pending payments never holds the lane for seconds.
 *
 * How many wait at once is the worker's business (the lane's
 * concurrency, worker.c); this file keeps them, drives their calls and
 * runs their next step.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ops.h"
#include "stats.h"
#include "suspend.h"


struct chat_parked_s {
    chat_job_t               job;       /* a command's, when done is NULL */
    chat_cmd_t               cmd;       /* its copy; job.cmd points here */
    char                    *copy;      /* cmd's strings and the entry id */
    chat_op_resume_pt        resume;
    chat_task_call_done_pt   done;      /* a task's call */
    chat_http_call_t        *call;
    int64_t                  since;
    unsigned                 ready:1;   /* call finished outside the multi
                                           handle */
    chat_parked_t           *prev;
    chat_parked_t           *next;
};


void
chat_suspend_init(chat_suspend_t *s, const chat_config_t *cfg, chat_db_t *db)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->db = db;
}


static void
chat_suspend_link(chat_suspend_t *s, chat_parked_t *p)
{
    p->prev = NULL;
    p->next = s->head;
    if (s->head != NULL) {
        s->head->prev = p;
    }
    s->head = p;
}


static void
chat_suspend_unlink(chat_suspend_t *s, chat_parked_t *p)
{
    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else {
        s->head = p->next;
    }

    if (p->next != NULL) {
        p->next->prev = p->prev;
    }

    p->prev = NULL;
    p->next = NULL;

    if (p->done != NULL) {
        s->calls--;
    } else {
        s->jobs--;
    }
}


/* Starts p's call; one that cannot start is finished already and its next
 * step runs at the next chat_suspend_resume. */
static void
chat_suspend_start(chat_suspend_t *s, chat_parked_t *p)
{
    p->call->owner = p;

    if (chat_http_multi_start(&s->http, p->call) != 0) {
        chat_log_error("%s %s: could not start: %s", p->call->method,
                       p->call->url, p->call->resp.error);
        p->ready = 1;
        s->ready++;
    }
}


static void
chat_parked_free(chat_parked_t *p)
{
    chat_http_call_free(p->call);

    if (p->done == NULL) {
        chat_job_free(&p->job);
    }

    free(p->copy);
    free(p);
}


void
chat_suspend_free(chat_suspend_t *s)
{
    chat_parked_t  *p;

    if (s->jobs > 0 || s->calls > 0) {
        chat_log_warn("giving up %zu waiting command(s) and %zu task "
                      "call(s); the commands stay pending for another "
                      "worker", s->jobs, s->calls);
    }

    while ((p = s->head) != NULL) {
        chat_suspend_unlink(s, p);
        chat_http_multi_cancel(&s->http, p->call);
        chat_parked_free(p);
    }

    chat_http_multi_free(&s->http);
    s->ready = 0;
}


size_t
chat_suspend_jobs(const chat_suspend_t *s)
{
    return s->jobs;
}


size_t
chat_suspend_calls(const chat_suspend_t *s)
{
    return s->calls;
}


/* ------------------------------------------------------------------------
 * Commands
 * --------------------------------------------------------------------- */

/* Copies src[0..len) to *at and advances it. */
static const char *
chat_suspend_put(char **at, const char *src, size_t len)
{
    char  *dst = *at;

    memcpy(dst, src, len);
    dst[len] = '\0';
    *at += len + 1;

    return dst;
}


/* Gives p its own copy of job's command and entry id (the read they
 * point into is freed once worked off). */
static int
chat_suspend_own(chat_parked_t *p, const chat_job_t *job)
{
    char              *at;
    size_t             n, id_len;
    const chat_cmd_t  *c = job->cmd;

    id_len = strlen(job->id);
    n = c->key_len + c->op_len + c->role_len + c->gw_len + c->req_len
        + c->body_len + c->rid_len + id_len + 8;

    p->copy = malloc(n);
    if (p->copy == NULL) {
        return -1;
    }

    p->cmd = *c;
    at = p->copy;
    p->cmd.key = chat_suspend_put(&at, c->key, c->key_len);
    p->cmd.op = chat_suspend_put(&at, c->op, c->op_len);
    p->cmd.role = chat_suspend_put(&at, c->role, c->role_len);
    p->cmd.gw = chat_suspend_put(&at, c->gw, c->gw_len);
    p->cmd.req = chat_suspend_put(&at, c->req, c->req_len);
    p->cmd.body = chat_suspend_put(&at, c->body, c->body_len);
    p->cmd.rid = chat_suspend_put(&at, c->rid != NULL ? c->rid : "",
                                  c->rid_len);

    p->job = *job;
    p->job.cmd = &p->cmd;
    p->job.id = chat_suspend_put(&at, job->id, id_len);

    return 0;
}


/*
 * A handler's or resume step's answer into the job: status, the reply as
 * sent (present hook applied), done.  Like command.c does for an op
 * outside the idempotency log, which a CHAT_OP_SUSPENDS op always is (it
 * keeps its own).  On failure the job stays not done: left pending.
 */
static void
chat_suspend_answered(const chat_config_t *cfg, chat_job_t *job,
    chat_op_ctx_t *ctx, int rc)
{
    if (rc != 0) {
        chat_events_clear(&job->events);
        return;
    }

    if (ctx->status >= 400) {
        chat_events_clear(&job->events);
    }

    job->stored = cJSON_PrintUnformatted(ctx->reply);
    cJSON_Delete(ctx->reply);
    ctx->reply = NULL;

    if (job->stored == NULL
        || chat_op_present(job->op, cfg, job->cmd, ctx->status,
                           job->stored, &job->reply) != 0)
    {
        chat_events_clear(&job->events);
        return;
    }

    job->status = ctx->status;
    job->resolved = 1;
    job->ran = 1;
    job->done = 1;
    chat_stats_answered(1);
}


static void
chat_suspend_ctx(chat_suspend_t *s, chat_job_t *job, chat_op_ctx_t *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = s->cfg;
    ctx->db = s->db;
    ctx->cmd = job->cmd;
    ctx->body = job->body;
    ctx->body_invalid = job->body_invalid;
    ctx->events = &job->events;
}


int
chat_suspend_job(chat_suspend_t *s, chat_job_t *job)
{
    int             rc;
    chat_op_ctx_t   ctx;
    chat_parked_t  *p;

    chat_suspend_ctx(s, job, &ctx);

    rc = chat_op_run(job->op, &ctx);

    if (rc != 0 || ctx.wait == NULL) {
        chat_suspend_answered(s->cfg, job, &ctx, rc);
        return 0;
    }

    p = calloc(1, sizeof(chat_parked_t));
    if (p == NULL || chat_suspend_own(p, job) != 0) {
        /* its call is not made: the entry stays pending and comes back */
        chat_log_error("out of memory; %s %s (key %s) left pending",
                       job->cmd->op, job->id, job->cmd->key);
        free(p);
        chat_http_call_free(ctx.wait);
        return 0;
    }

    p->call = ctx.wait;
    p->resume = ctx.resume;
    p->since = chat_mono_ms();

    memset(job, 0, sizeof(*job));

    chat_suspend_link(s, p);
    s->jobs++;

    chat_log_debug("op %s key %s: waiting on %s %s", p->cmd.op, p->cmd.key,
                   p->call->method, p->call->url);

    chat_suspend_start(s, p);

    return 1;
}


/* How a group's handler ended (chat_suspend_group). */
#define CHAT_GROUP_FAILED    (-1)
#define CHAT_GROUP_ANSWERED  0
#define CHAT_GROUP_WAITS     1
#define CHAT_GROUP_AGAIN     2      /* met a lock it would have waited on */


/* Parks job (its handler's ctx suspended on ctx->wait) without starting
 * the call: 0, or -1 (memory; the call freed, the job left as it is). */
static int
chat_suspend_park(chat_job_t *job, chat_op_ctx_t *ctx, chat_parked_t **out)
{
    chat_parked_t  *p;

    p = calloc(1, sizeof(chat_parked_t));
    if (p == NULL || chat_suspend_own(p, job) != 0) {
        chat_log_error("out of memory; %s %s (key %s) left pending",
                       job->cmd->op, job->id, job->cmd->key);
        free(p);
        chat_http_call_free(ctx->wait);
        ctx->wait = NULL;
        return -1;
    }

    p->call = ctx->wait;
    p->resume = ctx->resume;
    p->since = chat_mono_ms();
    ctx->wait = NULL;

    *out = p;
    return 0;
}


/* The handlers of the group's jobs, each a step of the open group. */
static void
chat_suspend_group_run(chat_suspend_t *s, chat_job_t **jobs, size_t n,
    chat_op_ctx_t *ctxs, int *how, chat_parked_t **parked)
{
    int          rc;
    size_t       i;
    const char  *saved;

    /* a lock met is no error here: that one runs again on its own */
    saved = s->db->expected;
    s->db->expected = CHAT_DB_LOCK_BUSY;

    for (i = 0; i < n; i++) {
        chat_log_set_request(jobs[i]->cmd->rid, jobs[i]->cmd->rid_len);
        rc = chat_op_run(jobs[i]->op, &ctxs[i]);
        chat_db_group_next(s->db);
        chat_log_set_request(NULL, 0);

        if (rc != 0 && strcmp(s->db->sqlstate, CHAT_DB_LOCK_BUSY) == 0) {
            how[i] = CHAT_GROUP_AGAIN;

        } else if (rc != 0) {
            how[i] = CHAT_GROUP_FAILED;

        } else if (ctxs[i].wait == NULL) {
            how[i] = CHAT_GROUP_ANSWERED;

        } else {
            /* a job that cannot be parked is left pending: what its step
             * stored is found again when it is reclaimed, as after a
             * killed worker */
            how[i] = chat_suspend_park(jobs[i], &ctxs[i], &parked[i]) == 0
                     ? CHAT_GROUP_WAITS : CHAT_GROUP_FAILED;
        }

        if (how[i] != CHAT_GROUP_ANSWERED && how[i] != CHAT_GROUP_WAITS) {
            cJSON_Delete(ctxs[i].reply);
            ctxs[i].reply = NULL;
            chat_events_clear(&jobs[i]->events);
        }
    }

    s->db->expected = saved;
}


void
chat_suspend_group(chat_suspend_t *s, chat_job_t **jobs, size_t n,
    int *finished)
{
    int              ok, *how;
    size_t           i;
    int64_t          began;
    chat_parked_t  **parked, *p;
    chat_op_ctx_t   *ctxs;

    ctxs = calloc(n, sizeof(chat_op_ctx_t));
    how = calloc(n, sizeof(int));
    parked = calloc(n, sizeof(chat_parked_t *));

    if (ctxs == NULL || how == NULL || parked == NULL) {
        goto alone;
    }

    for (i = 0; i < n; i++) {
        chat_suspend_ctx(s, jobs[i], &ctxs[i]);
    }

    began = chat_mono_ms();
    chat_db_group_begin(s->db);

    if (jobs[0]->op->batch(ctxs, n) != 0) {
        /* its step is undone: the group holds nothing */
        (void) chat_db_group_commit(s->db);
        chat_log_warn("%s: a group of %zu could not take its locks; each "
                      "runs on its own", jobs[0]->op->name, n);
        goto alone;
    }

    chat_db_group_nowait(s->db);
    chat_suspend_group_run(s, jobs, n, ctxs, how, parked);

    ok = chat_db_group_commit(s->db) == 0;

    if (ok) {
        chat_stats_committed(n, chat_mono_ms() - began);
        chat_log_debug("%s: a group of %zu committed", jobs[0]->op->name, n);
    } else {
        chat_stats_failed();
        chat_log_error("%s: a group of %zu stored nothing (its COMMIT "
                       "failed); left pending", jobs[0]->op->name, n);
    }

    for (i = 0; i < n; i++) {
        finished[i] = 1;

        if (!ok) {
            /* nothing answered, no call made: all pending, and run again
             * from the start when reclaimed */
            if (parked[i] != NULL) {
                /* its job is still the caller's: only the parking goes */
                chat_http_call_free(parked[i]->call);
                free(parked[i]->copy);
                free(parked[i]);
            }
            cJSON_Delete(ctxs[i].reply);
            chat_events_clear(&jobs[i]->events);
            continue;
        }

        switch (how[i]) {

        case CHAT_GROUP_WAITS:
            /* the call goes out only now that its first step is stored */
            p = parked[i];
            memset(jobs[i], 0, sizeof(chat_job_t));
            chat_suspend_link(s, p);
            s->jobs++;
            chat_log_debug("op %s key %s: waiting on %s %s", p->cmd.op,
                           p->cmd.key, p->call->method, p->call->url);
            chat_suspend_start(s, p);
            finished[i] = 0;
            break;

        case CHAT_GROUP_AGAIN:
            chat_log_info("op %s key %s: met a lock in its group; runs on "
                          "its own", jobs[i]->cmd->op, jobs[i]->cmd->key);
            finished[i] = !chat_suspend_job(s, jobs[i]);
            break;

        case CHAT_GROUP_ANSWERED:
        case CHAT_GROUP_FAILED:
            chat_suspend_answered(s->cfg, jobs[i], &ctxs[i],
                                  how[i] == CHAT_GROUP_ANSWERED ? 0 : -1);
            break;
        }
    }

    free(ctxs);
    free(how);
    free(parked);
    return;

alone:

    free(ctxs);
    free(how);
    free(parked);

    for (i = 0; i < n; i++) {
        finished[i] = !chat_suspend_job(s, jobs[i]);
    }
}


/* Runs the resume step of a command whose call finished.  1 when the job
 * is finished (done or failed), 0 when it suspended again. */
static int
chat_suspend_resume_job(chat_suspend_t *s, chat_parked_t *p)
{
    int                rc;
    chat_op_ctx_t      ctx;
    chat_http_call_t  *call;

    call = p->call;
    p->call = NULL;

    chat_suspend_ctx(s, &p->job, &ctx);
    chat_log_set_request(p->cmd.rid, p->cmd.rid_len);
    rc = chat_op_resume(p->job.op, &ctx, p->resume, call);

    /* the op moved what it still needs to a new call, if it made one */
    chat_http_call_free(call);

    if (rc == 0 && ctx.wait != NULL) {
        p->call = ctx.wait;
        p->resume = ctx.resume;
        chat_suspend_start(s, p);
        return 0;
    }

    chat_suspend_answered(s->cfg, &p->job, &ctx, rc);

    chat_log_debug("op %s key %s: %d after waiting %lld ms", p->cmd.op,
                   p->cmd.key, p->job.done ? p->job.reply.status : -1,
                   (long long) (chat_mono_ms() - p->since));
    chat_log_set_request(NULL, 0);

    return 1;
}


/* ------------------------------------------------------------------------
 * Tasks' calls
 * --------------------------------------------------------------------- */

int
chat_suspend_task_call(chat_suspend_t *s, chat_http_call_t *call,
    chat_task_call_done_pt done)
{
    chat_parked_t  *p;

    p = calloc(1, sizeof(chat_parked_t));
    if (p == NULL) {
        chat_http_call_free(call);
        return -1;
    }

    p->call = call;
    p->done = done;
    p->since = chat_mono_ms();

    chat_suspend_link(s, p);
    s->calls++;

    chat_suspend_start(s, p);

    return 0;
}


/* ------------------------------------------------------------------------
 * The loop's side
 * --------------------------------------------------------------------- */

void
chat_suspend_wait(chat_suspend_t *s, int timeout_ms)
{
    chat_http_multi_wait(&s->http, s->ready > 0 ? 0 : timeout_ms);
}


/* The next parked whose call has finished, or NULL. */
static chat_parked_t *
chat_suspend_next(chat_suspend_t *s)
{
    chat_parked_t     *p;
    chat_http_call_t  *call;

    if (s->ready > 0) {
        for (p = s->head; p != NULL; p = p->next) {
            if (p->ready) {
                p->ready = 0;
                s->ready--;
                return p;
            }
        }
    }

    call = chat_http_multi_done(&s->http);

    return call != NULL ? call->owner : NULL;
}


size_t
chat_suspend_resume(chat_suspend_t *s, chat_job_t **out, size_t max,
    chat_events_t *events)
{
    int             finished;
    size_t          n;
    chat_parked_t  *p;

    n = 0;

    while (n < max && (p = chat_suspend_next(s)) != NULL) {

        if (p->done != NULL) {
            chat_suspend_unlink(s, p);
            p->done(s->db, s->cfg, p->call, events);
            chat_db_group_next(s->db);
            chat_parked_free(p);
            continue;
        }

        finished = chat_suspend_resume_job(s, p);
        chat_db_group_next(s->db);

        if (finished) {
            chat_suspend_unlink(s, p);
            out[n++] = &p->job;
        }
    }

    return n;
}


void
chat_suspend_release(chat_suspend_t *s, chat_job_t **jobs, size_t n)
{
    size_t  i;

    (void) s;

    for (i = 0; i < n; i++) {
        /* job is the first member of its chat_parked_t */
        chat_parked_free((chat_parked_t *) (void *) jobs[i]);
    }
}


int
chat_suspend_holds(const chat_suspend_t *s, int shard, const char *id)
{
    const chat_parked_t  *p;

    for (p = s->head; p != NULL; p = p->next) {
        if (p->done == NULL && p->job.shard == shard
            && strcmp(p->job.id, id) == 0)
        {
            return 1;
        }
    }

    return 0;
}


void
chat_suspend_refresh(chat_suspend_t *s, chat_bus_t *bus)
{
    int             shard;
    size_t          k;
    int64_t         now;
    const char    **ids;
    chat_parked_t  *p;

    now = chat_mono_ms();

    if (now < s->next_refresh || s->jobs == 0 || !chat_bus_ok(bus)) {
        return;
    }

    s->next_refresh = now + s->cfg->claim_idle_ms / 3;

    ids = malloc(s->jobs * sizeof(char *));
    if (ids == NULL) {
        return;
    }

    for (shard = 0; shard < s->cfg->shards; shard++) {
        k = 0;
        for (p = s->head; p != NULL; p = p->next) {
            if (p->done == NULL && p->job.shard == shard) {
                ids[k++] = p->job.id;
            }
        }

        if (chat_bus_refresh(bus, shard, ids, k) != 0) {
            break;
        }
    }

    free(ids);
}
