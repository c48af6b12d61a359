/*
 * supervisor.c: keeps --workers worker processes alive.
 *
 * The supervisor does no work of its own and holds no connections.  It
 * forks one worker per slot and then waits for signals with
 * sigtimedwait(): SIGCHLD means a worker ended (it is reaped, its pid and
 * exit status or signal logged, and the slot restarted), SIGTERM or SIGINT
 * mean shut down, SIGHUP means reopen the log file (after logrotate renamed
 * it): the supervisor reopens its own and sends SIGHUP to every worker,
 * whose handler reopens theirs (log.c).  Waiting synchronously on blocked signals
 * keeps the logic in one straight loop: no handlers, no flags, no races
 * between a signal and the wait.
 *
 * Crash loops.  A worker that dies within a second of starting (a bad
 * conninfo, a missing table) would otherwise be restarted thousands of
 * times a minute.  Such a slot waits before its restart: 100 ms, doubling
 * to 5 s while the quick deaths continue; a worker that ran longer than a
 * second resets its slot's delay.  Slots are independent.
 *
 * Shutdown.  Every worker gets SIGTERM, finishes the command in hand and
 * exits.  Any still running after 10 s gets SIGKILL: a command it had not
 * committed stays pending in Redis and another worker reclaims it later,
 * so nothing acknowledged is lost.  Then the pid file is removed and the
 * supervisor exits 0.
 *
 * What it does not do: daemonise (run it under systemd, a container or
 * the Makefile's stack script), reload configuration, or watch worker
 * health beyond "is the process alive" (heartbeats in Redis serve that).
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lanes.h"
#include "log.h"
#include "roles.h"
#include "supervisor.h"
#include "worker.h"


#define CHAT_SUP_QUICK_DEATH_MS  1000
#define CHAT_SUP_BACKOFF_MIN_MS  100
#define CHAT_SUP_BACKOFF_MAX_MS  5000
#define CHAT_SUP_GRACE_MS        10000

typedef struct {
    pid_t    pid;           /* 0 when not running */
    int64_t  started;       /* monotonic ms */
    int64_t  backoff;       /* delay before the next restart */
    int64_t  restart_at;    /* monotonic ms; meaningful when pid == 0 */
} chat_slot_t;

/* in a supervised process: its stop flag (chat_supervised_signals) */
static volatile sig_atomic_t  *chat_supervised_stop;


static pid_t
chat_supervisor_spawn(const chat_config_t *cfg, chat_slot_t *slot,
    int index)
{
    pid_t     pid, self;
    sigset_t  none;

    fflush(NULL);
    self = getpid();

    pid = fork();

    if (pid < 0) {
        chat_log_error("fork failed: %s", strerror(errno));
        slot->restart_at = chat_mono_ms() + CHAT_SUP_BACKOFF_MAX_MS;
        return -1;
    }

    if (pid == 0) {
        /* the worker installs its own handlers; start from a clean mask,
         * with SIGHUP's handler in place first: unblocked at its default
         * it would kill a worker the supervisor signals right after fork */
        chat_log_reopen_on_sighup();
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* slots past the workers run the roles (roles.c) */
        _exit(index < cfg->workers
              ? chat_worker_run(cfg, chat_lanes_of_index(cfg, index), self)
              : chat_role_run(cfg, index - cfg->workers, self));
    }

    slot->pid = pid;
    slot->started = chat_mono_ms();

    chat_log_info("started worker %ld in slot %d", (long) pid, index);

    return pid;
}


/* Reaps every ended worker and schedules its slot's restart.  Returns 1
 * when one refused to run on an unsafe PostgreSQL, else 0. */
static int
chat_supervisor_reap(chat_slot_t *slots, int n, int stopping)
{
    int      i, status, unsafe = 0;
    pid_t    pid;
    int64_t  now, ran;
    char     how[64];

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (i = 0; i < n && slots[i].pid != pid; i++) {
            /* find the slot */
        }

        if (WIFSIGNALED(status)) {
            snprintf(how, sizeof(how), "was killed by signal %d (%s)",
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        } else {
            snprintf(how, sizeof(how), "exited with status %d",
                     WEXITSTATUS(status));
        }

        if (i == n) {
            chat_log_warn("unknown child %ld %s", (long) pid, how);
            continue;
        }

        if (WIFEXITED(status)
            && WEXITSTATUS(status) == CHAT_WORKER_EXIT_UNSAFE)
        {
            unsafe = 1;
        }

        now = chat_mono_ms();
        ran = now - slots[i].started;
        slots[i].pid = 0;

        if (stopping) {
            chat_log_info("worker %ld %s", (long) pid, how);
            continue;
        }

        if (ran < CHAT_SUP_QUICK_DEATH_MS) {
            slots[i].backoff = slots[i].backoff
                               ? slots[i].backoff * 2
                               : CHAT_SUP_BACKOFF_MIN_MS;
            if (slots[i].backoff > CHAT_SUP_BACKOFF_MAX_MS) {
                slots[i].backoff = CHAT_SUP_BACKOFF_MAX_MS;
            }

        } else {
            slots[i].backoff = 0;
        }

        slots[i].restart_at = now + slots[i].backoff;

        chat_log_error("worker %ld %s after %lld ms; restarting in %lld ms",
                       (long) pid, how, (long long) ran,
                       (long long) slots[i].backoff);
    }

    return unsafe;
}


static int
chat_supervisor_running(const chat_slot_t *slots, int n)
{
    int  i, live;

    live = 0;
    for (i = 0; i < n; i++) {
        live += slots[i].pid != 0;
    }

    return live;
}


/* Waits up to ms for one of set; returns the signal or 0 on timeout. */
static int
chat_supervisor_wait(const sigset_t *set, int64_t ms)
{
    int              signo;
    struct timespec  ts;

    if (ms < 0) {
        ms = 0;
    }

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;

    signo = sigtimedwait(set, NULL, &ts);

    return signo < 0 ? 0 : signo;
}


static void
chat_supervisor_shutdown(chat_slot_t *slots, int n, const sigset_t *set)
{
    int      i;
    int64_t  deadline;

    for (i = 0; i < n; i++) {
        if (slots[i].pid != 0) {
            kill(slots[i].pid, SIGTERM);
        }
    }

    deadline = chat_mono_ms() + CHAT_SUP_GRACE_MS;

    for ( ;; ) {
        chat_supervisor_reap(slots, n, 1);

        if (chat_supervisor_running(slots, n) == 0
            || chat_mono_ms() >= deadline)
        {
            break;
        }

        (void) chat_supervisor_wait(set, deadline - chat_mono_ms() < 200
                                         ? deadline - chat_mono_ms() : 200);
    }

    for (i = 0; i < n; i++) {
        if (slots[i].pid != 0) {
            chat_log_error("worker %ld still running after %d s, killing it",
                           (long) slots[i].pid, CHAT_SUP_GRACE_MS / 1000);
            kill(slots[i].pid, SIGKILL);
            waitpid(slots[i].pid, NULL, 0);
            slots[i].pid = 0;
        }
    }
}


/* SIGHUP: the log file again under its name, then every worker's. */
static void
chat_supervisor_reopen_logs(const chat_slot_t *slots, int n)
{
    int  i;

    if (chat_log_file() == NULL) {
        chat_log_info("got SIGHUP: no --log-file, nothing to reopen");
        return;
    }

    if (chat_log_reopen() != 0) {
        chat_log_error("got SIGHUP: cannot reopen %s: %s; logging to the "
                       "old file", chat_log_file(), strerror(errno));
        return;
    }

    for (i = 0; i < n; i++) {
        if (slots[i].pid != 0) {
            kill(slots[i].pid, SIGHUP);
        }
    }

    chat_log_info("got SIGHUP: reopened %s", chat_log_file());
}


static int
chat_supervisor_write_pidfile(const char *path)
{
    FILE  *f;

    f = fopen(path, "w");
    if (f == NULL) {
        chat_log_error("cannot write pid file %s: %s", path,
                       strerror(errno));
        return -1;
    }

    fprintf(f, "%ld\n", (long) getpid());

    if (fclose(f) != 0) {
        chat_log_error("cannot write pid file %s: %s", path,
                       strerror(errno));
        return -1;
    }

    return 0;
}


int
chat_supervisor_run(const chat_config_t *cfg)
{
    int           i, n, signo, rc = 0;
    int64_t       now, wait;
    sigset_t      set;
    chat_slot_t  *slots;

    chat_log_set_role("supervisor");

    n = cfg->workers + chat_roles_count();

    slots = calloc(n, sizeof(chat_slot_t));
    if (slots == NULL) {
        chat_log_error("out of memory");
        return 1;
    }

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);

    if (cfg->pidfile != NULL && chat_supervisor_write_pidfile(cfg->pidfile)
                                != 0)
    {
        free(slots);
        return 1;
    }

    chat_log_info("starting %d workers (redis %s:%d, %d shards)", n,
                  cfg->redis_host, cfg->redis_port, cfg->shards);

    for (i = 0; i < n; i++) {
        chat_supervisor_spawn(cfg, &slots[i], i);
    }

    for ( ;; ) {
        now = chat_mono_ms();
        wait = 1000;

        for (i = 0; i < n; i++) {
            if (slots[i].pid == 0) {
                if (slots[i].restart_at <= now) {
                    chat_supervisor_spawn(cfg, &slots[i], i);
                } else if (slots[i].restart_at - now < wait) {
                    wait = slots[i].restart_at - now;
                }
            }
        }

        signo = chat_supervisor_wait(&set, wait);

        if (signo == SIGHUP) {
            chat_supervisor_reopen_logs(slots, n);
            continue;
        }

        if (signo == SIGTERM || signo == SIGINT) {
            chat_log_info("got %s, stopping workers", strsignal(signo));
            break;
        }

        if (chat_supervisor_reap(slots, n, 0)) {
            chat_log_error("a worker refused to run on this PostgreSQL "
                           "(see its message above); stopping the pool");
            rc = 1;
            break;
        }
    }

    chat_supervisor_shutdown(slots, n, &set);
    free(slots);

    if (cfg->pidfile != NULL) {
        unlink(cfg->pidfile);
    }

    chat_log_info("stopped");

    return rc;
}


/* ------------------------------------------------------------------------
 * In the processes it starts
 * --------------------------------------------------------------------- */

static void
chat_supervised_on_signal(int signo)
{
    (void) signo;

    if (chat_supervised_stop) {
        *chat_supervised_stop = 1;
    }
}


void
chat_supervised_signals(volatile sig_atomic_t *stop, pid_t supervisor)
{
    struct sigaction  sa;

    chat_supervised_stop = stop;

    /* if the supervisor goes away, so do we */
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = chat_supervised_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (getppid() != supervisor) {
        *stop = 1;              /* it died before prctl() took effect */
    }
}
