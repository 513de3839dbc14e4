/* Helpers of the shared-state tests (shared_test.h). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <files.h>
#include <servers.h>

#include "shared_priv.h"
#include "shared_test.h"

#ifndef REDIS_SERVER
#error "REDIS_SERVER must be defined by the build"
#endif

#define REDIS_SERVER_ARGS 40

static void redis_server_init(struct redis_server *s, const char *dir,
                              const char *name, int tcp);
static void redis_server_spawn(struct redis_server *s);
static redisContext *redis_server_connect(const struct redis_server *s);

static redisContext *
redis_server_connect(const struct redis_server *s)
{
    struct timeval tv = {5, 0};
    redisContext *c;

    c = s->port != 0 ? redisConnectWithTimeout("127.0.0.1", s->port, tv)
                     : redisConnectUnixWithTimeout(s->address, tv);
    if (c != NULL && c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK)
        return c;
    if (c != NULL)
        redisFree(c);
    return NULL;
}

/* Start s as set up, and wait until it answers a PING (with any answer:
 * NOAUTH counts). */
static void
redis_server_spawn(struct redis_server *s)
{
    char port[16], conf[300], log[300];
    const char *argv[REDIS_SERVER_ARGS];
    int n = 0;

    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(log, sizeof(log), "%s/%s.log", s->dir, s->name);
    argv[n++] = REDIS_SERVER;
    if (s->sentinel) {
        snprintf(conf, sizeof(conf), "%s/%s.conf", s->dir, s->name);
        argv[n++] = conf;
        argv[n++] = "--sentinel";
    } else {
        argv[n++] = "--port";
        argv[n++] = port;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        if (s->port == 0) {
            argv[n++] = "--unixsocket";
            argv[n++] = s->address;
        }
        argv[n++] = "--save";
        argv[n++] = "";
        argv[n++] = "--appendonly";
        argv[n++] = "no";
        argv[n++] = "--dir";
        argv[n++] = s->dir;
        argv[n++] = "--logfile";
        argv[n++] = log;
    }
    for (size_t i = 0; s->extra != NULL && s->extra[i] != NULL; i++) {
        assert_true(n < REDIS_SERVER_ARGS - 1);
        argv[n++] = s->extra[i];
    }
    argv[n] = NULL;
    s->pid = modmta_test_spawn((char *const *)argv, s->port);
    for (int i = 0; i < 1000; i++) {
        redisContext *c = redis_server_connect(s);
        redisReply *r = c != NULL ? redisCommand(c, "PING") : NULL;
        int st;

        if (c != NULL)
            redisFree(c);
        if (r != NULL) {
            freeReplyObject(r);
            return;
        }
        if (waitpid(s->pid, &st, WNOHANG) == s->pid)
            fail_msg("%s exited (status %d), see %s", s->name, st, log);
        usleep(10000);
    }
    fail_msg("%s does not answer, see %s", s->name, log);
}

/* s, blank, for a server named name in dir, on a free port with tcp,
 * else on the socket dir/name.sock. */
static void
redis_server_init(struct redis_server *s, const char *dir, const char *name,
                  int tcp)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    snprintf(s->name, sizeof(s->name), "%s", name);
    if (tcp) {
        s->port = modmta_test_free_port(NULL);
        snprintf(s->address, sizeof(s->address), "127.0.0.1:%d", s->port);
    } else {
        snprintf(s->address, sizeof(s->address), "%s/%s.sock", dir, name);
    }
}

void
redis_server_start(struct redis_server *s, const char *dir,
                   const char *name, int tcp, const char *const *extra)
{
    redis_server_init(s, dir, name, tcp);
    s->extra = extra;
    redis_server_spawn(s);
}

void
redis_server_start_replica(struct redis_server *s, const char *dir,
                           const char *name, const struct redis_server *master)
{
    redis_server_init(s, dir, name, 1);
    snprintf(s->master_port, sizeof(s->master_port), "%d", master->port);
    s->replicaof[0] = "--replicaof";
    s->replicaof[1] = "127.0.0.1";
    s->replicaof[2] = s->master_port;
    s->extra = s->replicaof;
    redis_server_spawn(s);
    redis_server_wait_info(s, "replication", "master_link_status:up");
}

void
redis_server_start_sentinel(struct redis_server *s, const char *dir,
                            const char *name, int master_port)
{
    char conf[300], text[1024];

    redis_server_init(s, dir, name, 1);
    s->sentinel = 1;
    snprintf(conf, sizeof(conf), "%s/%s.conf", dir, name);
    /* sentinels rewrite their file: it must be writable */
    snprintf(text, sizeof(text),
             "port %d\n"
             "bind 127.0.0.1\n"
             "dir %s\n"
             "logfile %s/%s.log\n"
             "sentinel monitor mymaster 127.0.0.1 %d 2\n"
             "sentinel down-after-milliseconds mymaster 1000\n"
             "sentinel failover-timeout mymaster 5000\n",
             s->port, dir, dir, name, master_port);
    modmta_test_write_file(conf, text);
    redis_server_spawn(s);
}

void
redis_server_restart(struct redis_server *s)
{
    redis_server_spawn(s);
}

void
redis_server_stop(struct redis_server *s, int kill9)
{
    if (s->pid <= 0)
        return;
    if (kill9) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    } else {
        modmta_test_stop(s->pid);
    }
    s->pid = 0;
}

redisReply *
redis_server_cmd(const struct redis_server *s, const char *password, int db,
                 const char *const *argv)
{
    redisContext *c = redis_server_connect(s);
    char a_db[16];
    const char *auth[] = {"AUTH", password}, *select[] = {"SELECT", a_db};
    redisReply *r;
    int argc = 0;

    if (c == NULL)
        return NULL;
    snprintf(a_db, sizeof(a_db), "%d", db);
    if (password != NULL &&
        (r = redisCommandArgv(c, 2, auth, NULL)) != NULL)
        freeReplyObject(r);
    if (db != 0 && (r = redisCommandArgv(c, 2, select, NULL)) != NULL)
        freeReplyObject(r);
    while (argv[argc] != NULL)
        argc++;
    r = redisCommandArgv(c, argc, (const char **)argv, NULL);
    redisFree(c);
    return r;
}

long long
redis_server_int(const struct redis_server *s, const char *const *argv)
{
    redisReply *r = redis_server_cmd(s, NULL, 0, argv);
    long long n;

    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("%s: not an integer: %s", argv[0],
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
    n = r->integer;
    freeReplyObject(r);
    return n;
}

void
redis_server_wait_info(const struct redis_server *s, const char *section,
                       const char *want)
{
    const char *argv[] = {"INFO", section, NULL};

    for (int i = 0; i < 600; i++) {
        redisReply *r = redis_server_cmd(s, NULL, 0, argv);
        int found = r != NULL && r->type == REDIS_REPLY_STRING &&
                    strstr(r->str, want) != NULL;

        if (r != NULL)
            freeReplyObject(r);
        if (found)
            return;
        usleep(100000);
    }
    fail_msg("%s: INFO %s never showed \"%s\"", s->name, section, want);
}

modmta_shared *
redis_store(const char *json, const char *address)
{
    char text[1024];
    json_error_t jerr;
    json_t *redis;
    modmta_err err;
    modmta_shared *s;

    snprintf(text, sizeof(text), json, address);
    redis = json_loads(text, 0, &jerr);
    if (redis == NULL)
        fail_msg("%s: %s", text, jerr.text);
    s = modmta_shared_new(redis, &err);
    json_decref(redis);
    if (s == NULL)
        fail_msg("modmta_shared_new: %s: %s", err.path, err.msg);
    return s;
}

/* ---- time ---- */

void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- an inbox ---- */

void
inbox_cb(void *arg, const char *channel, const char *msg)
{
    struct inbox *in = arg;

    pthread_mutex_lock(&in->lock);
    in->n++;
    snprintf(in->last, sizeof(in->last), "%s", msg);
    snprintf(in->channel, sizeof(in->channel), "%s", channel);
    in->thread = pthread_self();
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->lock);
}

void
inbox_wait(struct inbox *in, int n)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&in->lock);
    while (in->n < n &&
           pthread_cond_timedwait(&in->cond, &in->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&in->lock);
    assert_int_equal(in->n, n);
}

void
publish_until_heard(modmta_shared *s, int heard, const char *channel,
                    const char *msg)
{
    int rc = -1;

    for (int i = 0; i < 300 && rc != heard; i++) {
        rc = modmta_shared_publish(s, channel, msg);
        if (rc != heard)
            sleep_ms(50);
    }
    assert_int_equal(rc, heard);
}
