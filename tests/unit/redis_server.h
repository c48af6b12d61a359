/*
 * redis_server.h: a redis-server of a unit test's own, as hiredis' tests
 * have one: started in a temporary directory of its own, reached on a
 * Unix socket there (no TCP port to collide with another run), stopped
 * and its directory removed at the end.  No stack is needed; a test that
 * cannot start one fails (make deps installs redis-server), it does not
 * skip.
 */

#ifndef UNIT_REDIS_SERVER_H
#define UNIT_REDIS_SERVER_H

#include <sys/types.h>

#include <hiredis/hiredis.h>

typedef struct {
    char   dir[64];         /* its temporary directory: data, log, socket */
    char   sock[128];       /* the Unix socket to connect to */
    pid_t  pid;             /* 0 when not running */
} unit_redis_server_t;

/*
 * Starts a redis-server named after the test (name: "test_online" gives
 * /tmp/test_online.XXXXXX), with conf[] (NULL-terminated, may be NULL)
 * added to its configuration file, one "directive value" line each, such
 * as "cluster-enabled yes".  A cluster bus port, when the server opens
 * one, is a free one the kernel picked, and the start is tried again
 * when it was taken meanwhile.  Returns once the server answers PING (up
 * to 10 s): 0, or -1 with the reason and the server's log on stderr
 * (unit_redis_server_stop cleans up either way).
 */
int unit_redis_server_start(unit_redis_server_t *rs, const char *name,
    const char *const *conf);

/* A new connection to the server (the caller redisFree()s it), or NULL
 * when it cannot connect. */
redisContext *unit_redis_server_connect(const unit_redis_server_t *rs);

/* Stops the server (SIGTERM, then waits for it) and removes its
 * directory with everything in it.  Safe after a failed start. */
void unit_redis_server_stop(unit_redis_server_t *rs);

/* Sleeps ms milliseconds: for a test that waits on its server (a cluster
 * state, a key's expiry). */
void unit_redis_nap_ms(long ms);

#endif /* UNIT_REDIS_SERVER_H */
