/*
 * Helpers of the shared-state tests.
 *
 * Redis servers and sentinels: each a redis-server (REDIS_SERVER, set by
 * the build) the test starts in its own directory, on a UNIX socket or a
 * free loopback port, with nothing saved to disk. They die with the test
 * (modmta_test_spawn) and a failed start fails the running test.
 *
 * An inbox: a subscription's callback that counts what it got.
 */
#ifndef SHARED_TEST_H
#define SHARED_TEST_H

#include <pthread.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include <modmta/shared.h>

struct redis_server {
    pid_t pid;
    int port;                   /* 0: a UNIX socket only */
    char address[192];          /* for "redis.address": "127.0.0.1:P" or
                                 * the socket's path */
    char dir[128];
    char name[32];
    const char *const *extra;   /* more arguments (NULL-terminated) */
    int sentinel;               /* a sentinel: dir/name.conf */
    const char *replicaof[4];   /* extra for a replica */
    char master_port[16];
};

/* Start a server named name in dir (a directory of the test's): on a
 * free loopback port with tcp, else on the socket dir/name.sock. extra
 * (may be NULL) are more "--option value" arguments; the array must
 * outlive the server (restarts use it). Returns once it answers. */
void redis_server_start(struct redis_server *s, const char *dir,
                        const char *name, int tcp,
                        const char *const *extra);
/* A replica of master (started with tcp), on a free port; returns once
 * its link to the master is up. */
void redis_server_start_replica(struct redis_server *s, const char *dir,
                                const char *name,
                                const struct redis_server *master);
/* A sentinel watching the master "mymaster" at 127.0.0.1:master_port
 * (quorum 2, down after 1 s). */
void redis_server_start_sentinel(struct redis_server *s, const char *dir,
                                 const char *name, int master_port);
/* Start it again where it was (same port or socket), empty. */
void redis_server_restart(struct redis_server *s);
/* Stop it (SIGTERM, or SIGKILL with kill9) and reap it. */
void redis_server_stop(struct redis_server *s, int kill9);

/* Run a command on a new connection (after AUTH password and SELECT db
 * when given): the reply, to freeReplyObject; NULL if it failed.
 * argv is NULL-terminated. */
redisReply *redis_server_cmd(const struct redis_server *s,
                             const char *password, int db,
                             const char *const *argv);
/* The same, for an integer answer (the test fails on anything else). */
long long redis_server_int(const struct redis_server *s,
                           const char *const *argv);
/* Wait (up to 60 s, failing the test then) until `INFO section` of s
 * holds the line want. */
void redis_server_wait_info(const struct redis_server *s,
                            const char *section, const char *want);

/* A store on a "redis" object given as JSON text with one "%s", the
 * server's address ("{\"address\": \"%s\", \"timeout\": 1}"); the
 * test fails if it is refused. modmta_shared_free it. */
modmta_shared *redis_store(const char *json, const char *address);

/* ---- time ---- */

void sleep_ms(long ms);
/* CLOCK_MONOTONIC in milliseconds. */
long long now_ms(void);

/* ---- an inbox ---- */

struct inbox {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;                      /* messages got */
    char last[64];              /* the last one */
    char channel[64];           /* its channel */
    pthread_t thread;           /* the thread that ran the callback */
};

#define INBOX_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, \
                    0, "", "", 0}

/* The callback for modmta_shared_subscribe, arg an inbox. */
void inbox_cb(void *arg, const char *channel, const char *msg);
/* Wait up to 20 s for the n-th message; the test fails if it does not
 * come. */
void inbox_wait(struct inbox *in, int n);
/* Publish msg on channel until `heard` subscribers get it (1: one
 * coming back after an outage; 0: the server has seen an unsubscribe,
 * which goes over the subscriber's own connection, so that a publish
 * sent right after may still reach it), for up to 15 s. */
void publish_until_heard(modmta_shared *s, int heard, const char *channel,
                         const char *msg);

#endif
