/*
 * The Redis client (redis_priv.h): the settings of a "redis" object and
 * a pool of blocking hiredis contexts shared by every thread.
 *
 * A caller takes an idle context, or connects a new one while fewer
 * than `pool` exist, or waits for one to come back, all before the
 * command's deadline (now + `timeout`, or the running hook's or the
 * thread's deadline if that is earlier: budget_priv.h): the whole call,
 * waiting, connecting and the command, ends by then. An idle context that has
 * input waiting was closed by the server (a restart, its `timeout`): it
 * is dropped when met, so a restarted Redis costs no failed call. After
 * a failed connect, or a server that cannot serve (READONLY, LOADING,
 * MASTERDOWN...: its connection is dropped), no other connect is tried
 * for REDIS_RETRY_MS: callers wait for a context in use to come back or
 * for that delay to end, or, with none open, get MODMTA_E_TEMP at once.
 */
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modmta/log.h>

#include "budget_priv.h"
#include "redis_priv.h"

/* A socket timeout is set again only when it is off by more than this
 * from what is left of the call's time (two syscalls saved per call). */
#define REDIS_TIMEOUT_SLACK_MS 50
#define REDIS_LOG_REPEAT_MS 60000

/* What becomes of a connection given back. */
enum redis_fate {
    REDIS_KEEP,                 /* back to the pool */
    REDIS_DROP,                 /* freed */
    REDIS_REFUSED               /* freed, and no connect for a while */
};

struct redis_conn {
    redisContext *c;
    long timeout_ms;            /* the socket timeouts now set */
    char where[REDIS_WHERE_MAX]; /* the server's address */
};

struct redis {
    struct redis_cfg cfg;
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* a context came back or was dropped */
    struct redis_conn *idle;    /* cfg.pool slots */
    int nidle;
    int nopen;                  /* idle, in use, or connecting */
    long long retry_at;         /* no connect before (ms) */
    size_t sentinel;            /* ask this one first */
    /* the log: last failure and when it was written */
    char last_why[256];
    long long last_logged;
    int failing;
};

static int redis_cfg_addr(const json_t *v, const char *path,
                          struct redis_addr *a, modmta_err *err_r);
static int redis_cfg_int(const json_t *cfg, const char *key, long long min,
                         long long max, long long def, long long *out,
                         modmta_err *err_r);
static int redis_cfg_str(const json_t *cfg, const char *key, char **out,
                         modmta_err *err_r);
static int redis_cfg_sentinels(struct redis_cfg *c, const json_t *list,
                               modmta_err *err_r);
static int redis_cfg_load(struct redis_cfg *c, const json_t *cfg,
                          modmta_err *err_r);
static int redis_acquire(struct redis *r, long long deadline,
                         struct redis_conn *conn_r);
static void redis_release(struct redis *r, struct redis_conn *conn,
                          enum redis_fate fate, int answered);
static int redis_recovered(struct redis *r);
static int redis_idle_dead(const struct redis_conn *conn);
static int redis_error_kind(const char *err);

/* ---- settings ---- */

static int
redis_cfg_addr(const json_t *v, const char *path, struct redis_addr *a,
               modmta_err *err_r)
{
    char why[256];

    if (!json_is_string(v)) {
        modmta_err_set(err_r, path, "expected \"IP:port\", \"[IPv6]:port\" "
                       "or the absolute path of a socket");
        return -1;
    }
    if (redis_conn_parse(json_string_value(v), a, why, sizeof(why)) < 0) {
        modmta_err_set(err_r, path, "\"%s\": %s", json_string_value(v),
                       why);
        return -1;
    }
    return 0;
}

static int
redis_cfg_int(const json_t *cfg, const char *key, long long min,
              long long max, long long def, long long *out,
              modmta_err *err_r)
{
    const json_t *v = json_object_get(cfg, key);
    char path[64];

    *out = def;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > max) {
        snprintf(path, sizeof(path), "$.redis.%s", key);
        modmta_err_set(err_r, path, "expected an integer from %lld to %lld",
                       min, max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int
redis_cfg_str(const json_t *cfg, const char *key, char **out,
              modmta_err *err_r)
{
    const json_t *v = json_object_get(cfg, key);
    char path[64];

    *out = NULL;
    if (v == NULL)
        return 0;
    snprintf(path, sizeof(path), "$.redis.%s", key);
    if (!json_is_string(v) || json_string_length(v) == 0) {
        modmta_err_set(err_r, path, "expected a non-empty string");
        return -1;
    }
    if ((*out = strdup(json_string_value(v))) == NULL) {
        modmta_err_set(err_r, path, "out of memory");
        return -1;
    }
    return 0;
}

static int
redis_cfg_sentinels(struct redis_cfg *c, const json_t *list,
                    modmta_err *err_r)
{
    const json_t *v;
    char path[64];
    size_t i;

    if (!json_is_array(list) || json_array_size(list) == 0) {
        modmta_err_set(err_r, "$.redis.sentinels", "expected an array of "
                       "\"IP:port\"");
        return -1;
    }
    c->sentinels = calloc(json_array_size(list), sizeof(*c->sentinels));
    if (c->sentinels == NULL) {
        modmta_err_set(err_r, "$.redis.sentinels", "out of memory");
        return -1;
    }
    json_array_foreach(list, i, v) {
        snprintf(path, sizeof(path), "$.redis.sentinels[%zu]", i);
        if (redis_cfg_addr(v, path, &c->sentinels[i], err_r) < 0)
            return -1;
        c->nsentinels++;
    }
    if (c->master == NULL) {
        modmta_err_set(err_r, "$.redis.master", "required with sentinels");
        return -1;
    }
    return 0;
}

static int
redis_cfg_load(struct redis_cfg *c, const json_t *cfg, modmta_err *err_r)
{
    const json_t *addr = json_object_get(cfg, "address");
    const json_t *sentinels = json_object_get(cfg, "sentinels");
    long long pool, timeout, ctimeout;

    if (redis_cfg_str(cfg, "password", &c->password, err_r) < 0 ||
        redis_cfg_str(cfg, "master", &c->master, err_r) < 0 ||
        redis_cfg_int(cfg, "db", 0, INT_MAX, 0, &c->db, err_r) < 0 ||
        redis_cfg_int(cfg, "pool", 1, REDIS_POOL_MAX, 4, &pool, err_r) < 0 ||
        redis_cfg_int(cfg, "timeout", 1, 3600, 2, &timeout, err_r) < 0 ||
        redis_cfg_int(cfg, "connect_timeout", 1, 3600, 2, &ctimeout,
                      err_r) < 0)
        return -1;
    c->pool = (int)pool;
    c->timeout_ms = (int)timeout * 1000;
    c->connect_timeout_ms = (int)ctimeout * 1000;
    if (sentinels != NULL && addr != NULL) {
        modmta_err_set(err_r, "$.redis.sentinels", "either \"address\" or "
                       "\"sentinels\", not both");
        return -1;
    }
    if (sentinels != NULL)
        return redis_cfg_sentinels(c, sentinels, err_r);
    if (c->master != NULL) {
        modmta_err_set(err_r, "$.redis.master", "only with \"sentinels\"");
        return -1;
    }
    if (addr == NULL)
        return redis_conn_parse("127.0.0.1:6379", &c->address, NULL, 0);
    return redis_cfg_addr(addr, "$.redis.address", &c->address, err_r);
}

struct redis *
redis_new(const json_t *cfg, modmta_err *err_r)
{
    struct redis *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        modmta_err_set(err_r, "$.redis", "out of memory");
        return NULL;
    }
    if (redis_cfg_load(&r->cfg, cfg, err_r) < 0)
        goto fail;
    r->idle = calloc((size_t)r->cfg.pool, sizeof(*r->idle));
    if (r->idle == NULL) {
        modmta_err_set(err_r, "$.redis", "out of memory");
        goto fail;
    }
    pthread_mutex_init(&r->lock, NULL);
    redis_cond_init(&r->cond);
    return r;
fail:
    free(r->idle);
    free(r->cfg.sentinels);
    free(r->cfg.master);
    free(r->cfg.password);
    free(r);
    return NULL;
}

void
redis_free(struct redis *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->nidle; i++)
        redisFree(r->idle[i].c);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r->idle);
    free(r->cfg.sentinels);
    free(r->cfg.master);
    if (r->cfg.password != NULL)
        explicit_bzero(r->cfg.password, strlen(r->cfg.password));
    free(r->cfg.password);
    free(r);
}

void
redis_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

const struct redis_cfg *
redis_get_cfg(const struct redis *r)
{
    return &r->cfg;
}

void
redis_note(struct redis *r, const char *where, const char *why)
{
    char text[sizeof(r->last_why)];
    long long now = redis_now_ms();
    int log_it;

    snprintf(text, sizeof(text), "%s%s%s", where != NULL ? where : "",
             where != NULL ? ": " : "", why);
    pthread_mutex_lock(&r->lock);
    log_it = strcmp(text, r->last_why) != 0 ||
             now - r->last_logged >= REDIS_LOG_REPEAT_MS;
    r->failing = 1;
    if (log_it) {
        memcpy(r->last_why, text, sizeof(text));
        r->last_logged = now;
    }
    pthread_mutex_unlock(&r->lock);
    if (log_it)
        modmta_logf(MODMTA_LOG_ERR, "redis: %s", text);
}

/* 1 if a failure was the last thing logged, which is forgotten (lock
 * held). */
static int
redis_recovered(struct redis *r)
{
    int was = r->failing;

    r->failing = 0;
    r->last_why[0] = '\0';
    return was;
}

void
redis_note_ok(struct redis *r, const char *where)
{
    int log_it;

    pthread_mutex_lock(&r->lock);
    log_it = redis_recovered(r);
    pthread_mutex_unlock(&r->lock);
    if (log_it)
        modmta_logf(MODMTA_LOG_NOTICE, "redis: %s: answering again", where);
}

/* ---- the pool ---- */

/* An idle connection with input waiting (EOF, a reset) is dead. */
static int
redis_idle_dead(const struct redis_conn *conn)
{
    struct pollfd p = {.fd = conn->c->fd, .events = POLLIN};

    return conn->c->err != 0 || poll(&p, 1, 0) != 0;
}

/* A connection for a command before deadline: 0, or MODMTA_E_TEMP. */
static int
redis_acquire(struct redis *r, long long deadline, struct redis_conn *conn_r)
{
    struct timespec ts;
    long long now, until;
    char why[512];
    redisContext *c;
    size_t sentinel;
    int full, spent;

    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (r->nidle > 0) {
            *conn_r = r->idle[--r->nidle];
            if (!redis_idle_dead(conn_r)) {
                pthread_mutex_unlock(&r->lock);
                return 0;
            }
            redisFree(conn_r->c);
            r->nopen--;
        }
        now = redis_now_ms();
        full = r->nopen >= r->cfg.pool;
        if (!full && now >= r->retry_at)
            break;
        if (r->nopen == 0 || now >= deadline) {
            pthread_mutex_unlock(&r->lock);
            /* Held back after a failure, which was logged; or the pool
             * stayed full: the pool's fault unless the hook's budget,
             * shorter than the timeout, was what ran out. */
            spent = now >= deadline && budget_spent();
            if (full && !spent) {
                snprintf(why, sizeof(why), "no connection of the pool "
                         "(%d) free within the timeout", r->cfg.pool);
                redis_note(r, NULL, why);
            }
            return MODMTA_E_TEMP;
        }
        /* for a context to come back, or held back, the delay to end */
        until = !full && r->retry_at < deadline ? r->retry_at : deadline;
        ts.tv_sec = until / 1000;
        ts.tv_nsec = (until % 1000) * 1000000;
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    r->nopen++;
    sentinel = r->sentinel;
    pthread_mutex_unlock(&r->lock);
    c = redis_conn_open(&r->cfg, deadline, &sentinel, conn_r->where, why,
                        sizeof(why));
    /* A connect cut short by the hook's budget is not the server's
     * failure: others may try at once, and nothing is logged. */
    spent = c == NULL && budget_spent();
    pthread_mutex_lock(&r->lock);
    r->sentinel = sentinel;
    if (c == NULL) {
        r->nopen--;
        if (!spent)
            r->retry_at = redis_now_ms() + REDIS_RETRY_MS;
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
    if (c == NULL) {
        if (!spent)
            redis_note(r, NULL, why);
        return MODMTA_E_TEMP;
    }
    conn_r->c = c;
    conn_r->timeout_ms = 0;
    return 0;
}

/* Give conn back, or drop it; answered: it got a reply. */
static void
redis_release(struct redis *r, struct redis_conn *conn,
              enum redis_fate fate, int answered)
{
    int recovered = 0;

    pthread_mutex_lock(&r->lock);
    if (answered)
        recovered = redis_recovered(r);
    /* a server that cannot serve would refuse the next connection too:
     * one per call would be a storm of connects */
    if (fate == REDIS_REFUSED)
        r->retry_at = redis_now_ms() + REDIS_RETRY_MS;
    if (fate != REDIS_KEEP || conn->c->err != 0) {
        redisFree(conn->c);
        r->nopen--;
    } else {
        r->idle[r->nidle++] = *conn;
    }
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (recovered)
        modmta_logf(MODMTA_LOG_NOTICE, "redis: %s: answering again",
                    conn->where);
}

/* 1: an error about the data (MODMTA_E_INVAL); 2: the server cannot
 * serve on this connection (drop it: an old master, a replica, still
 * loading, not authenticated); 0: any other. */
static int
redis_error_kind(const char *err)
{
    static const char *const data[] = {
        "WRONGTYPE", "ERR value is not an integer",
        "ERR increment or decrement would overflow", NULL,
    };
    static const char *const drop[] = {
        "READONLY", "MASTERDOWN", "LOADING", "NOAUTH", "WRONGPASS",
        "NOREPLICAS", NULL,
    };

    for (int i = 0; data[i] != NULL; i++)
        if (strncmp(err, data[i], strlen(data[i])) == 0)
            return 1;
    for (int i = 0; drop[i] != NULL; i++)
        if (strncmp(err, drop[i], strlen(drop[i])) == 0)
            return 2;
    return 0;
}

int
redis_command(struct redis *r, int argc, const char **argv,
              const size_t *lens, redisReply **reply_r)
{
    long long deadline = budget_cut(redis_now_ms() + r->cfg.timeout_ms);
    struct redis_conn conn;
    redisReply *reply;
    char why[512];
    long left;
    int rc, kind;

    *reply_r = NULL;
    if (deadline <= redis_now_ms()) {
        budget_spent();                 /* the hook's or thread's time */
        return MODMTA_E_TEMP;
    }
    if ((rc = redis_acquire(r, deadline, &conn)) < 0)
        return rc;
    left = (long)(deadline - redis_now_ms());
    if (left <= 0) {
        redis_release(r, &conn, REDIS_KEEP, 0);
        budget_spent();
        return MODMTA_E_TEMP;
    }
    if (conn.timeout_ms > left + REDIS_TIMEOUT_SLACK_MS ||
        conn.timeout_ms < left - REDIS_TIMEOUT_SLACK_MS) {
        if (redis_conn_timeout(conn.c, left) < 0) {
            redis_release(r, &conn, REDIS_DROP, 0);
            return MODMTA_E_TEMP;
        }
        conn.timeout_ms = left;
    }
    reply = redis_conn_command(conn.c, argc, argv, lens, why, sizeof(why));
    if (reply == NULL) {
        redis_release(r, &conn, REDIS_DROP, 0);
        /* The hook's budget, shorter than ours, ran out: that says
         * nothing about the server (the chain logs the hook). */
        if (!budget_spent())
            redis_note(r, conn.where, why);
        return MODMTA_E_TEMP;
    }
    if (reply->type != REDIS_REPLY_ERROR) {
        redis_release(r, &conn, REDIS_KEEP, 1);
        *reply_r = reply;
        return 0;
    }
    kind = redis_error_kind(reply->str);
    redis_release(r, &conn, kind == 2 ? REDIS_REFUSED : REDIS_KEEP,
                  kind == 1);
    if (kind != 1) {
        snprintf(why, sizeof(why), "%s: %s", argv[0], reply->str);
        redis_note(r, conn.where, why);
    }
    freeReplyObject(reply);
    return kind == 1 ? MODMTA_E_INVAL : MODMTA_E_TEMP;
}
