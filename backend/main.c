/*
 * main.c: chat-backend's entry point: configuration and subcommands.
 *
 *   chat-backend [flags]                  run the worker pool (supervisor
 *                                         in the foreground, N workers)
 *   chat-backend user-add --email E --name N [--admin]
 *       [--password-file PATH]            create a user directly in the db;
 *                                         the password on stdin or in PATH,
 *                                         never in argv (ps shows argv)
 *   chat-backend migrate                  bring the database (--pg) up to
 *                                         the newest schema (sql/migrate.sh)
 *   chat-backend --version                print the version and exit
 *
 * Every setting has a flag and an environment variable; the flag wins,
 * then the variable, then the default (the table in usage() and in
 * backend/README.md).  Every value is checked before anything starts: a
 * bad one is named with what was expected, and the process exits 2.  The
 * token secret is required to run the pool (it signs the tokens that
 * auth.register and auth.login return) and must be at least 32 bytes.
 *
 * What it does not do: read a configuration file (systemd's
 * EnvironmentFile sets the variables), or daemonise.
 */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "chat_secret.h"
#include "chat_token.h"
#include "chat_version.h"
#include "command.h"
#include "config.h"
#include "http_client.h"
#include "lanes.h"
#include "log.h"
#include "media.h"
#include "roles.h"
#include "supervisor.h"
#include "user_add.h"


static int          chat_log_level_set;  /* --log-level or CHAT_LOG_LEVEL */
static const char  *chat_log_file_path;  /* --log-file or CHAT_LOG_FILE */

enum {
    OPT_WORKERS = 256, OPT_REDIS, OPT_PG, OPT_SECRET_FILE, OPT_TTL,
    OPT_SHARDS, OPT_MAX_DELIVERIES, OPT_CLAIM_IDLE, OPT_EXPIRE, OPT_BATCH,
    OPT_COMMIT_BATCH, OPT_LOG_LEVEL, OPT_PIDFILE, OPT_EMAIL, OPT_PASSWORD,
    OPT_NAME, OPT_ADMIN, OPT_HELP,
    /* orders and payments */
    OPT_PAYMENT_URL, OPT_PAYMENT_TIMEOUT, OPT_RESERVATION_TTL,
    OPT_RECONCILE_INTERVAL,
    /* lanes */
    OPT_LANE,
    /* sign-in sessions */
    OPT_SESSION_TTL,
    /* user-add's password file; Redis credentials */
    OPT_PASSWORD_FILE, OPT_REDIS_USER, OPT_REDIS_PASSWORD_FILE,
    OPT_VERSION,
    OPT_LOG_FILE,
    OPT_LOG_FORMAT,
    /* uploads and covers (media/) */
    OPT_MEDIA_ROOT, OPT_MEDIA_QUOTA,
    /* a read replica; a pooler in front of PostgreSQL */
    OPT_PG_REPLICA, OPT_PG_POOLER
};

/* the settings come first, in the order of the enum above: main() maps
 * an option back to its name by that position */
static const struct option  chat_options[] = {
    { "workers",           required_argument, NULL, OPT_WORKERS },
    { "redis",             required_argument, NULL, OPT_REDIS },
    { "pg",                required_argument, NULL, OPT_PG },
    { "token-secret-file", required_argument, NULL, OPT_SECRET_FILE },
    { "token-ttl",         required_argument, NULL, OPT_TTL },
    { "shards",            required_argument, NULL, OPT_SHARDS },
    { "max-deliveries",    required_argument, NULL, OPT_MAX_DELIVERIES },
    { "claim-idle-ms",     required_argument, NULL, OPT_CLAIM_IDLE },
    { "expire-ms",         required_argument, NULL, OPT_EXPIRE },
    { "batch",             required_argument, NULL, OPT_BATCH },
    { "commit-batch",      required_argument, NULL, OPT_COMMIT_BATCH },
    { "log-level",         required_argument, NULL, OPT_LOG_LEVEL },
    { "pidfile",           required_argument, NULL, OPT_PIDFILE },
    { "email",             required_argument, NULL, OPT_EMAIL },
    { "password",          required_argument, NULL, OPT_PASSWORD },
    { "name",              required_argument, NULL, OPT_NAME },
    { "admin",             no_argument,       NULL, OPT_ADMIN },
    { "help",              no_argument,       NULL, OPT_HELP },
    /* orders and payments */
    { "payment-url",       required_argument, NULL, OPT_PAYMENT_URL },
    { "payment-timeout-ms", required_argument, NULL, OPT_PAYMENT_TIMEOUT },
    { "reservation-ttl-ms", required_argument, NULL, OPT_RESERVATION_TTL },
    { "reconcile-interval-ms", required_argument, NULL,
      OPT_RECONCILE_INTERVAL },
    { "lane",              required_argument, NULL, OPT_LANE },
    { "session-ttl",       required_argument, NULL, OPT_SESSION_TTL },
    { "password-file",     required_argument, NULL, OPT_PASSWORD_FILE },
    { "redis-user",        required_argument, NULL, OPT_REDIS_USER },
    { "redis-password-file", required_argument, NULL,
      OPT_REDIS_PASSWORD_FILE },
    { "version",           no_argument,       NULL, OPT_VERSION },
    { "log-file",          required_argument, NULL, OPT_LOG_FILE },
    { "log-format",        required_argument, NULL, OPT_LOG_FORMAT },
    { "media-root",        required_argument, NULL, OPT_MEDIA_ROOT },
    { "media-quota-mb",    required_argument, NULL, OPT_MEDIA_QUOTA },
    { "pg-replica",        required_argument, NULL, OPT_PG_REPLICA },
    { "pg-pooler",         required_argument, NULL, OPT_PG_POOLER },
    { NULL, 0, NULL, 0 }
};


static void
usage(FILE *out)
{
    fprintf(out,
"usage: chat-backend [flags]            run the worker pool\n"
"       chat-backend [flags] user-add --email E --name N [--admin]\n"
"                                        [--password-file PATH] (else the "
"password on stdin)\n"
"       chat-backend [--pg CONNINFO] migrate   apply the migrations "
"(CHAT_SQL_DIR)\n"
"       chat-backend [flags] demo-covers [N]   draw covers for the first N "
"books\n"
"                                        without one, by title (60)\n"
"\n"
"flags (environment variable, default):\n"
"  --lane NAME:K=V,...       CHAT_LANES              see below (repeatable;\n"
"                            CHAT_LANES takes several, separated by ';')\n"
"  --workers N               CHAT_WORKERS            2 (procs of the chat "
"and read lanes)\n"
"  --redis HOST:PORT         CHAT_REDIS              127.0.0.1:6379\n"
"  --redis-user NAME         CHAT_REDIS_USER         (the default user)\n"
"  --redis-password-file PATH CHAT_REDIS_PASSWORD_FILE (none: no AUTH)\n"
"  --pg CONNINFO             CHAT_PG                 dbname=chat\n"
"  --pg-replica CONNINFO     CHAT_PG_REPLICA         (none: every read on "
"--pg)\n"
"                            a streaming replica for history, sync, "
"catalog\n"
"                            and search reads; a reader always sees its "
"own\n"
"                            writes (empty: none)\n"
"  --pg-pooler MODE          CHAT_PG_POOLER          none, or transaction "
"(pgbouncer\n"
"                            in transaction mode: no session state, no "
"named\n"
"                            prepared statements)\n"
"  --token-secret-file PATH  CHAT_TOKEN_SECRET_FILE  (none)\n"
"                            or the secret itself in CHAT_TOKEN_SECRET;\n"
"                            at least 32 bytes, required to run the pool\n"
"  --token-ttl SECONDS       CHAT_TOKEN_TTL          1800 (refreshed by "
"clients)\n"
"  --session-ttl SECONDS     CHAT_SESSION_TTL        86400 (a sign-in, "
"however refreshed)\n"
"  --shards N                CHAT_SHARDS             4 (= the edge's "
"chat_stream_shards)\n"
"  --max-deliveries N        CHAT_MAX_DELIVERIES     5\n"
"  --claim-idle-ms MS        CHAT_CLAIM_IDLE_MS      5000\n"
"  --expire-ms MS            CHAT_EXPIRE_MS          60000 (older commands "
"are answered\n"
"                            504 expired and not run)\n"
"  --batch N                 CHAT_BATCH              (batch of the chat and "
"read lanes)\n"
"  --commit-batch N          CHAT_COMMIT_BATCH       (commit of the chat and "
"read lanes, 1-64)\n"
"  --log-level LEVEL         CHAT_LOG_LEVEL          info "
"(debug|info|warn|error)\n"
"  --pidfile PATH            (none)\n"
"  --log-file PATH           CHAT_LOG_FILE           (none: stderr); "
"SIGHUP reopens it\n"
"  --log-format FORMAT       CHAT_LOG_FORMAT         text (text|json: one "
"object a line)\n"
"  --payment-url URL         CHAT_PAYMENT_URL        http://127.0.0.1:8090\n"
"  --payment-timeout-ms MS   CHAT_PAYMENT_TIMEOUT_MS 5000 (one provider "
"call)\n"
"  --reservation-ttl-ms MS   CHAT_RESERVATION_TTL_MS 900000 (unpaid "
"reservations lapse)\n"
"  --reconcile-interval-ms MS CHAT_RECONCILE_INTERVAL_MS 10000 (pending "
"payments asked)\n"
"  --media-root DIR          CHAT_MEDIA_ROOT         (none: uploads refused)\n"
"                            the store the edge's chat_media_root names\n"
"  --media-quota-mb MB       CHAT_MEDIA_QUOTA_MB     1024 (uploads per user)\n"
"  --help\n"
"  --version\n"
"\n"
"lanes (chat, read, auth, orders, admin), each one pool of processes; keys\n"
"(defaults in backend/engine/lanes.c): procs, batch, commit (per transaction),\n"
"concurrency (in flight per process), timeout (ms the edge waits), queue\n"
"(waiting commands beyond which the edge answers 503), wait (ms the oldest\n"
"unread command may wait before it does too; 0: half the timeout), retry\n"
"(Retry-After seconds), nice (0-19).\n"
"Example: --lane auth:procs=1,queue=32,nice=19\n"
"\n"
"presence and notifications (environment only, see backend/README.md):\n"
"  CHAT_PRESENCE_TTL_MS 45000 (= the edge's chat_presence_ttl), "
"CHAT_RECEIPT_WINDOW_MS 1000,\n"
"  CHAT_NOTIFY_WEBHOOK (none: no notifier), CHAT_NOTIFY_QUIET_MS 1000,\n"
"  CHAT_NOTIFY_MAX_DELAY_MS 10000, CHAT_NOTIFY_ATTEMPTS 5, "
"CHAT_NOTIFY_BACKOFF_MS 500,\n"
"  CHAT_NOTIFY_TIMEOUT_MS 5000\n");
}


static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));


/* Reports a configuration error and exits 2. */
static void
die(const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "chat-backend: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");

    exit(2);
}


/* An integer in [min, max] from value, named what in the error. */
static long
parse_int(const char *what, const char *value, long min, long max)
{
    long   v;
    char  *end;

    errno = 0;
    v = strtol(value, &end, 10);

    if (errno != 0 || end == value || *end != '\0' || v < min || v > max) {
        die("%s: expected an integer from %ld to %ld, got \"%s\"", what,
            min, max, value);
    }

    return v;
}


static void
parse_redis(chat_config_t *cfg, const char *what, const char *value)
{
    const char  *colon;
    size_t       hlen;

    colon = strrchr(value, ':');
    hlen = colon ? (size_t) (colon - value) : 0;

    if (colon == NULL || hlen == 0 || hlen >= sizeof(cfg->redis_host)) {
        die("%s: expected HOST:PORT, got \"%s\"", what, value);
    }

    memcpy(cfg->redis_host, value, hlen);
    cfg->redis_host[hlen] = '\0';
    cfg->redis_port = (int) parse_int(what, colon + 1, 1, 65535);
}


/*
 * The secret in the file at path, malloc'd and NUL-terminated, read by the
 * edge's reader (chat_secret.c: one final line end off, a file any user
 * may read refused); *len its length.  Exits 2 naming what and why.
 */
static unsigned char *
read_secret_file(const char *what, const char *path, size_t *len)
{
    ssize_t         n;
    const char     *err;
    unsigned char  *buf;

    buf = malloc(CHAT_SECRET_MAX + 2);
    if (buf == NULL) {
        die("%s: out of memory", what);
    }

    n = chat_secret_read(path, buf, CHAT_SECRET_MAX + 2, &err);
    if (n < 0) {
        die("%s: \"%s\" %s", what, path, err);
    }

    *len = (size_t) n;
    return buf;
}


/* The Redis password: a C string, so it must hold no NUL. */
static void
read_redis_password(chat_config_t *cfg, const char *what, const char *path)
{
    size_t  len;

    free(cfg->redis_password);
    cfg->redis_password = (char *) read_secret_file(what, path, &len);

    if (strlen(cfg->redis_password) != len) {
        die("%s: \"%s\" holds a NUL byte", what, path);
    }
}


/*
 * user-add's password from stdin (a pipe, a here-string, or typed): all of
 * it up to end of file, less one final line end, as a secret file is
 * read.  malloc'd; exits 2 when it is empty, too long or holds a NUL.
 */
static char *
read_password_stdin(void)
{
    char    *buf;
    size_t   n;

    buf = malloc(CHAT_SECRET_MAX + 2);
    if (buf == NULL) {
        die("user-add: out of memory");
    }

    n = fread(buf, 1, CHAT_SECRET_MAX + 1, stdin);

    if (n > CHAT_SECRET_MAX) {
        die("user-add: the password on stdin is longer than 4096 bytes");
    }

    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r') {
            n--;
        }
    }

    buf[n] = '\0';

    if (n == 0 || strlen(buf) != n) {
        die("user-add: give the password on stdin (one line) or with "
            "--password-file");
    }

    return buf;
}


/* Applies one setting; what names its source for error messages. */
static void
apply(chat_config_t *cfg, int opt, const char *what, const char *value)
{
    int          level;
    const char  *why;

    switch (opt) {

    case OPT_WORKERS:
        cfg->lanes[CHAT_LANE_CHAT].procs = (int) parse_int(what, value, 1,
                                                           256);
        cfg->lanes[CHAT_LANE_READ].procs = cfg->lanes[CHAT_LANE_CHAT].procs;
        break;

    case OPT_LANE:
        why = chat_lanes_apply(cfg, value);
        if (why != NULL) {
            die("%s: %s", what, why);
        }
        break;

    case OPT_REDIS:
        parse_redis(cfg, what, value);
        break;

    case OPT_PG:
        if (value[0] == '\0') {
            die("%s: empty conninfo", what);
        }
        cfg->pg = value;
        break;

    case OPT_PG_REPLICA:
        cfg->pg_replica = value[0] != '\0' ? value : NULL;
        break;

    case OPT_PG_POOLER:
        if (strcmp(value, "none") == 0) {
            cfg->pg_pooler = 0;
        } else if (strcmp(value, "transaction") == 0) {
            cfg->pg_pooler = 1;
        } else {
            die("%s: \"%s\" is neither none nor transaction", what, value);
        }
        break;

    case OPT_SECRET_FILE:
        free(cfg->token_secret);
        cfg->token_secret = read_secret_file(what, value,
                                             &cfg->token_secret_len);
        break;

    case OPT_REDIS_USER:
        if (value[0] == '\0' || strpbrk(value, " \t\r\n") != NULL) {
            die("%s: expected an ACL user name, got \"%s\"", what, value);
        }
        cfg->redis_user = value;
        break;

    case OPT_REDIS_PASSWORD_FILE:
        read_redis_password(cfg, what, value);
        break;

    case OPT_TTL:
        cfg->token_ttl = parse_int(what, value, 60, 365L * 86400);
        break;

    case OPT_SESSION_TTL:
        cfg->session_ttl = parse_int(what, value, 60, 365L * 86400);
        break;

    case OPT_SHARDS:
        cfg->shards = (int) parse_int(what, value, 1, CHAT_MAX_SHARDS);
        break;

    case OPT_MAX_DELIVERIES:
        cfg->max_deliveries = (int) parse_int(what, value, 1, 1000);
        break;

    case OPT_CLAIM_IDLE:
        cfg->claim_idle_ms = (int) parse_int(what, value, 100, 3600000);
        break;

    case OPT_EXPIRE:
        cfg->expire_ms = (int) parse_int(what, value, 1000, 86400000);
        break;

    case OPT_BATCH:
        cfg->lanes[CHAT_LANE_CHAT].batch = (int) parse_int(what, value, 1,
                                                           1000);
        cfg->lanes[CHAT_LANE_READ].batch = cfg->lanes[CHAT_LANE_CHAT].batch;
        break;

    case OPT_COMMIT_BATCH:
        cfg->lanes[CHAT_LANE_CHAT].commit_batch =
            (int) parse_int(what, value, 1, CHAT_COMMIT_BATCH_MAX);
        cfg->lanes[CHAT_LANE_READ].commit_batch =
            cfg->lanes[CHAT_LANE_CHAT].commit_batch;
        break;

    case OPT_LOG_LEVEL:
        level = chat_log_parse_level(value);
        if (level < 0) {
            die("%s: expected debug, info, warn or error, got \"%s\"", what,
                value);
        }
        chat_log_set_level((chat_log_level_t) level);
        chat_log_level_set = 1;
        break;

    case OPT_PIDFILE:
        cfg->pidfile = value;
        break;

    case OPT_LOG_FILE:
        if (value[0] != '/') {
            /* a worker reopens it by name later, maybe from another cwd */
            die("%s: expected an absolute path, got \"%s\"", what, value);
        }
        chat_log_file_path = value;
        break;

    case OPT_LOG_FORMAT:
        if (strcmp(value, "text") != 0 && strcmp(value, "json") != 0) {
            die("%s: expected text or json, got \"%s\"", what, value);
        }
        chat_log_set_json(strcmp(value, "json") == 0);
        break;

    case OPT_PAYMENT_URL:
        if (strncmp(value, "http://", 7) != 0
            && strncmp(value, "https://", 8) != 0)
        {
            die("%s: expected an http:// or https:// URL, got \"%s\"", what,
                value);
        }
        cfg->payment_url = value;
        break;

    case OPT_PAYMENT_TIMEOUT:
        cfg->payment_timeout_ms = (int) parse_int(what, value, 100, 600000);
        break;

    case OPT_RESERVATION_TTL:
        cfg->reservation_ttl_ms = (int) parse_int(what, value, 1000,
                                                  86400000);
        break;

    case OPT_RECONCILE_INTERVAL:
        cfg->reconcile_interval_ms = (int) parse_int(what, value, 100,
                                                     3600000);
        break;

    case OPT_MEDIA_ROOT:
        if (value[0] != '/') {
            die("%s: expected an absolute path, got \"%s\"", what, value);
        }
        cfg->media_root = value;
        break;

    case OPT_MEDIA_QUOTA:
        cfg->media_quota_bytes = parse_int(what, value, 1, 1048576)
                                 * 1024 * 1024;
        break;
    }
}


static void
apply_env(chat_config_t *cfg)
{
    size_t       i;
    const char  *v;

    static const struct { int opt; const char *name; }  env[] = {
        { OPT_WORKERS, "CHAT_WORKERS" },
        { OPT_REDIS, "CHAT_REDIS" },
        { OPT_PG, "CHAT_PG" },
        { OPT_TTL, "CHAT_TOKEN_TTL" },
        { OPT_SESSION_TTL, "CHAT_SESSION_TTL" },
        { OPT_SHARDS, "CHAT_SHARDS" },
        { OPT_MAX_DELIVERIES, "CHAT_MAX_DELIVERIES" },
        { OPT_CLAIM_IDLE, "CHAT_CLAIM_IDLE_MS" },
        { OPT_EXPIRE, "CHAT_EXPIRE_MS" },
        { OPT_BATCH, "CHAT_BATCH" },
        { OPT_COMMIT_BATCH, "CHAT_COMMIT_BATCH" },
        { OPT_LOG_LEVEL, "CHAT_LOG_LEVEL" },
        { OPT_PAYMENT_URL, "CHAT_PAYMENT_URL" },
        { OPT_PAYMENT_TIMEOUT, "CHAT_PAYMENT_TIMEOUT_MS" },
        { OPT_RESERVATION_TTL, "CHAT_RESERVATION_TTL_MS" },
        { OPT_RECONCILE_INTERVAL, "CHAT_RECONCILE_INTERVAL_MS" },
        { OPT_LANE, "CHAT_LANES" },
        { OPT_REDIS_USER, "CHAT_REDIS_USER" },
        { OPT_REDIS_PASSWORD_FILE, "CHAT_REDIS_PASSWORD_FILE" },
        { OPT_LOG_FILE, "CHAT_LOG_FILE" },
        { OPT_LOG_FORMAT, "CHAT_LOG_FORMAT" },
        { OPT_MEDIA_ROOT, "CHAT_MEDIA_ROOT" },
        { OPT_MEDIA_QUOTA, "CHAT_MEDIA_QUOTA_MB" },
        { OPT_PG_REPLICA, "CHAT_PG_REPLICA" },
        { OPT_PG_POOLER, "CHAT_PG_POOLER" },
    };

    for (i = 0; i < sizeof(env) / sizeof(env[0]); i++) {
        v = getenv(env[i].name);
        if (v != NULL && v[0] != '\0') {
            apply(cfg, env[i].opt, env[i].name, v);
        }
    }

    /* the secret: a file named in the environment wins over the value */
    v = getenv("CHAT_TOKEN_SECRET_FILE");
    if (v != NULL && v[0] != '\0') {
        free(cfg->token_secret);
        cfg->token_secret = read_secret_file("CHAT_TOKEN_SECRET_FILE", v,
                                             &cfg->token_secret_len);

    } else {
        v = getenv("CHAT_TOKEN_SECRET");
        if (v != NULL && v[0] != '\0') {
            cfg->token_secret_len = strlen(v);
            cfg->token_secret = (unsigned char *) strdup(v);
            if (cfg->token_secret == NULL) {
                die("CHAT_TOKEN_SECRET: out of memory");
            }
        }
    }
}


/*
 * migrate: runs migrate.sh with the conninfo, in place of this process.
 * The directory is CHAT_SQL_DIR, else found beside the binary, so any
 * PREFIX works: <prefix>/sbin/chat-backend next to
 * <prefix>/share/chat-backend/sql (an installed copy), backend/chat-backend
 * next to sql/ (a checkout).
 */
static int
run_migrate(const char *conninfo)
{
    size_t        i;
    ssize_t       n;
    const char   *dir;
    char          exe[PATH_MAX], script[PATH_MAX + 64];

    static const char  *beside[] = { "/../share/chat-backend/sql",
                                     "/../sql" };

    dir = getenv("CHAT_SQL_DIR");
    if (dir != NULL && dir[0] != '\0') {
        snprintf(script, sizeof(script), "%s/migrate.sh", dir);

    } else {
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0) {
            die("migrate: cannot find my own binary; set CHAT_SQL_DIR");
        }
        exe[n] = '\0';
        *strrchr(exe, '/') = '\0';

        for (i = 0; i < sizeof(beside) / sizeof(beside[0]); i++) {
            snprintf(script, sizeof(script), "%s%s/migrate.sh", exe,
                     beside[i]);
            if (access(script, X_OK) == 0) {
                break;
            }
        }
    }

    fflush(NULL);
    execl(script, script, conninfo, (char *) NULL);

    fprintf(stderr, "chat-backend: migrate: cannot run %s: %s (CHAT_SQL_DIR "
            "names the directory of migrate.sh and the migrations)\n",
            script, strerror(errno));

    return 1;
}


int
main(int argc, char **argv)
{
    int             opt, admin, rc;
    char            what[64], *password;
    size_t          len;
    const char     *email, *password_file, *name, *sub;
    chat_config_t   cfg;

    memset(&cfg, 0, sizeof(cfg));
    chat_lanes_defaults(&cfg);
    strcpy(cfg.redis_host, "127.0.0.1");
    cfg.redis_port = 6379;
    cfg.pg = "dbname=chat";
    cfg.token_ttl = 1800;
    cfg.session_ttl = 86400;
    cfg.shards = 4;
    cfg.max_deliveries = 5;
    cfg.claim_idle_ms = 5000;
    cfg.expire_ms = 60000;
    cfg.payment_url = "http://127.0.0.1:8090";
    cfg.payment_timeout_ms = 5000;
    cfg.reservation_ttl_ms = 900000;
    cfg.reconcile_interval_ms = 10000;
    cfg.media_quota_bytes = (int64_t) 1024 * 1024 * 1024;

    apply_env(&cfg);

    email = password_file = name = NULL;
    password = NULL;
    admin = 0;

    while ((opt = getopt_long(argc, argv, "h", chat_options, NULL)) != -1) {
        switch (opt) {

        case 'h':
        case OPT_HELP:
            usage(stdout);
            return 0;

        case OPT_VERSION:
            printf("chat-backend %s\n", CHAT_VERSION);
            return 0;

        case OPT_EMAIL:
            email = optarg;
            break;

        case OPT_PASSWORD:
            die("--password is refused: a password on the command line "
                "shows in ps; give it on stdin or with --password-file");

        case OPT_PASSWORD_FILE:
            password_file = optarg;
            break;

        case OPT_NAME:
            name = optarg;
            break;

        case OPT_ADMIN:
            admin = 1;
            break;

        case '?':
            fprintf(stderr, "see chat-backend --help\n");
            return 2;

        default:
            snprintf(what, sizeof(what), "--%s",
                     chat_options[opt - OPT_WORKERS].name);
            apply(&cfg, opt, what, optarg);
            break;
        }
    }

    /* before any connection, the tools' included */
    chat_db_use_pooler(cfg.pg_pooler);

    sub = optind < argc ? argv[optind] : NULL;

    if (sub != NULL && strcmp(sub, "user-add") == 0 && optind + 1 == argc) {
        if (email == NULL || name == NULL) {
            die("user-add needs --email and --name (and the password on "
                "stdin or in --password-file)");
        }

        if (password_file != NULL) {
            password = (char *) read_secret_file("--password-file",
                                                 password_file, &len);
            if (strlen(password) != len) {
                die("--password-file: \"%s\" holds a NUL byte",
                    password_file);
            }
        } else {
            password = read_password_stdin();
        }

        chat_log_set_role("user-add");
        if (!chat_log_level_set) {
            chat_log_set_level(CHAT_LOG_WARN);  /* a tool: quiet */
        }

        rc = chat_user_add(&cfg, email, password, name, admin);
        OPENSSL_cleanse(password, strlen(password));
        free(password);
        free(cfg.token_secret);
        free(cfg.redis_password);
        return rc;
    }

    /* plausible covers for the first N demo books (media/demo_covers.c) */
    if (sub != NULL && strcmp(sub, "demo-covers") == 0
        && optind + 2 >= argc)
    {
        chat_log_set_role("demo-covers");
        rc = chat_media_demo_covers(&cfg, optind + 1 < argc
                                    ? parse_int("demo-covers",
                                                argv[optind + 1], 1, 100000)
                                    : 60);
        free(cfg.token_secret);
        free(cfg.redis_password);
        return rc;
    }

    if (sub != NULL && strcmp(sub, "migrate") == 0 && optind + 1 == argc) {
        free(cfg.token_secret);
        return run_migrate(cfg.pg);
    }

    if (sub != NULL) {
        die("unknown command or extra argument \"%s\"", argv[optind]);
    }

    if (email != NULL || password_file != NULL || name != NULL || admin) {
        die("--email, --password-file, --name and --admin belong to "
            "user-add");
    }

    if (cfg.token_secret == NULL) {
        die("no token secret: set --token-secret-file, "
            "CHAT_TOKEN_SECRET_FILE or CHAT_TOKEN_SECRET");
    }

    if (cfg.token_secret_len < CHAT_TOKEN_MIN_SECRET_LEN) {
        die("the token secret is %zu bytes; it must be at least %d",
            cfg.token_secret_len, CHAT_TOKEN_MIN_SECRET_LEN);
    }

    /* the keys of the bus's sealed fields and of the request hash
     * (chat_seal.c): the edge derives the same seal key */
    if (chat_seal_derive(cfg.token_secret, cfg.token_secret_len,
                         CHAT_SEAL_LABEL, cfg.seal_key, sizeof(cfg.seal_key))
        != 0
        || chat_seal_derive(cfg.token_secret, cfg.token_secret_len,
                            CHAT_SEAL_HASH_LABEL, cfg.hash_key,
                            sizeof(cfg.hash_key))
           != 0)
    {
        die("deriving the bus seal keys failed");
    }

    cfg.workers = chat_lanes_processes(&cfg);
    if (cfg.workers == 0) {
        die("every lane has procs=0: nothing would run the commands");
    }

    /* presence and notifier settings (environment only, see roles.c) */
    if (chat_roles_configure() != 0) {
        exit(2);
    }

    /* before any fork: every child inherits libcurl's global state */
    if (chat_http_init() != 0) {
        die("libcurl failed to initialise");
    }

    /* last: every error above still goes to the terminal that ran us */
    if (chat_log_file_path != NULL && chat_log_open(chat_log_file_path) != 0)
    {
        die("--log-file: cannot open \"%s\": %s", chat_log_file_path,
            strerror(errno));
    }

    rc = chat_supervisor_run(&cfg);

    free(cfg.token_secret);
    free(cfg.redis_password);

    return rc;
}
