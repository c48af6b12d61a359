/*
 * redis_server.c: a redis-server of a unit test's own (redis_server.h).
 *
 * The server listens on no TCP port (port 0), only on a Unix socket in
 * its directory, so runs of the same test by several checkouts at once
 * never meet.  A cluster-enabled server also opens a bus port, by default
 * its port + 10000: 10000 for every such run on the machine.  So the
 * configuration always names a bus port (cluster-port, unused by a
 * server that is not a cluster), one the kernel just found free; another
 * process may take it before the server binds it, and the server then
 * exits at once, so a start is tried a few times with a fresh port.
 */

/* fork(2), kill(2), mkdtemp(3), nanosleep(2), opendir(3) under -std=c11 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE  200809L
#endif

#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_server.h"

#define UNIT_REDIS_TRIES        5
#define UNIT_REDIS_WAIT_STEPS   100     /* of 100 ms: 10 s */


void
unit_redis_nap_ms(long ms)
{
    struct timespec  ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}


/* A TCP port free on loopback right now, or -1. */
static int
unit_redis_free_port(void)
{
    int                 fd, port;
    socklen_t           len;
    struct sockaddr_in  sin;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(sin);

    port = -1;
    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == 0
        && getsockname(fd, (struct sockaddr *) &sin, &len) == 0)
    {
        port = ntohs(sin.sin_port);
    }

    close(fd);
    return port;
}


/* Writes the server's configuration file, path, with a bus port free
 * now and the caller's lines last (they win).  0 or -1. */
static int
unit_redis_write_conf(const unit_redis_server_t *rs, const char *path,
    const char *const *conf)
{
    int    port;
    FILE  *f;

    port = unit_redis_free_port();
    f = fopen(path, "w");
    if (port < 0 || f == NULL) {
        perror("redis_server: the configuration file");
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }

    fprintf(f, "port 0\nbind 127.0.0.1\nunixsocket %s\n"
               "dir %s\nlogfile redis.log\nsave \"\"\nappendonly no\n"
               "cluster-port %d\n", rs->sock, rs->dir, port);

    for ( ; conf != NULL && *conf != NULL; conf++) {
        fprintf(f, "%s\n", *conf);
    }

    return fclose(f) == 0 ? 0 : -1;
}


/* Its log on stderr, for a server that did not come up. */
static void
unit_redis_show_log(const unit_redis_server_t *rs)
{
    char    path[192], line[512];
    FILE   *f;

    snprintf(path, sizeof(path), "%s/redis.log", rs->dir);
    f = fopen(path, "r");
    if (f == NULL) {
        return;
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        fprintf(stderr, "  redis.log: %s", line);
    }

    fclose(f);
}


redisContext *
unit_redis_server_connect(const unit_redis_server_t *rs)
{
    redisContext  *c;

    c = redisConnectUnix(rs->sock);
    if (c != NULL && c->err != 0) {
        redisFree(c);
        c = NULL;
    }

    return c;
}


/* Waits until the server answers PING: 0; 1 when it exited (its bus
 * port was taken, or it cannot run: another try tells); -1 when it is
 * still silent after 10 s. */
static int
unit_redis_wait_ready(unit_redis_server_t *rs)
{
    int            i, ok;
    redisReply    *r;
    redisContext  *c;

    for (i = 0; i < UNIT_REDIS_WAIT_STEPS; i++) {
        c = unit_redis_server_connect(rs);
        if (c != NULL) {
            r = redisCommand(c, "PING");
            ok = r != NULL && r->type != REDIS_REPLY_ERROR;
            freeReplyObject(r);
            redisFree(c);
            if (ok) {
                return 0;
            }
        }

        if (waitpid(rs->pid, NULL, WNOHANG) == rs->pid) {
            rs->pid = 0;
            return 1;
        }

        unit_redis_nap_ms(100);
    }

    return -1;
}


int
unit_redis_server_start(unit_redis_server_t *rs, const char *name,
    const char *const *conf)
{
    int   try, rc;
    char  path[192];

    memset(rs, 0, sizeof(*rs));
    snprintf(rs->dir, sizeof(rs->dir), "/tmp/%s.XXXXXX", name);

    if (mkdtemp(rs->dir) == NULL) {
        perror("redis_server: mkdtemp");
        rs->dir[0] = '\0';
        return -1;
    }

    snprintf(rs->sock, sizeof(rs->sock), "%s/redis.sock", rs->dir);
    snprintf(path, sizeof(path), "%s/redis.conf", rs->dir);

    for (try = 0; try < UNIT_REDIS_TRIES; try++) {
        if (unit_redis_write_conf(rs, path, conf) != 0) {
            return -1;
        }

        rs->pid = fork();
        if (rs->pid == 0) {
            execlp("redis-server", "redis-server", path, (char *) NULL);
            perror("redis_server: redis-server");
            _exit(127);
        }
        if (rs->pid < 0) {
            perror("redis_server: fork");
            rs->pid = 0;
            return -1;
        }

        rc = unit_redis_wait_ready(rs);
        if (rc == 0) {
            return 0;
        }
        if (rc < 0) {
            break;
        }
    }

    fprintf(stderr, "redis_server: %s's redis-server did not come up\n",
            name);
    unit_redis_show_log(rs);
    return -1;
}


void
unit_redis_server_stop(unit_redis_server_t *rs)
{
    char            path[512];
    DIR            *d;
    struct dirent  *e;

    if (rs->pid > 0) {
        kill(rs->pid, SIGTERM);
        waitpid(rs->pid, NULL, 0);
        rs->pid = 0;
    }

    if (rs->dir[0] == '\0') {
        return;
    }

    /* everything the server left: its log, nodes.conf, dump.rdb... */
    d = opendir(rs->dir);
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", rs->dir, e->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }

    rmdir(rs->dir);
    rs->dir[0] = '\0';
}
