/*
 * The Redis shared-state backend (shared_priv.h) on the client of
 * redis_priv.h: one command per call, argv-style.
 *
 *   get, set, del   GET; SET key value [PX ttl]; DEL
 *   incr            a script: INCRBY, then EXPIRE key window if the
 *                   key has no expiry (TTL -1), atomic, so a key that
 *                   holds a string is left as it was (the INCRBY fails
 *                   first)
 *   lease           a script: GET; none, SET key owner PX ttl; owner's,
 *                   PEXPIRE; another's, nothing
 *   release         a script that deletes it only if owner holds it
 *   decr            a script: DECRBY only if the key exists, DEL at <= 0
 *   gauge_join      a script on a sorted set (member, expiry in Redis'
 *                   TIME): drop the expired, refuse a new member past
 *                   max, ZADD, keep the key as long as its last member
 *   gauge_leave     ZREM (Redis deletes an emptied sorted set)
 *   publish         PUBLISH: its count is of the subscribed connections
 *                   (one per node's store), not of callbacks
 *   keys            SCAN MATCH (the start's glob characters escaped)
 *   write_all       a script: DEL and SET, atomic, one command
 *
 * The scripts are constants; keys and owners travel as arguments.
 * Subscriptions are the backend's list; redis_sub.c subscribes to each
 * channel once and hands every message to shared_redis_deliver, which
 * runs the callbacks of that channel one at a time, no lock held, as the
 * memory backend does.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "redis_priv.h"
#include "shared_priv.h"

/* After INCRBY the key exists: TTL is -1 when it has no expiry (-2, no
 * key, cannot be), so this is EXPIRE NX without Redis 7. A write after
 * TTL (a "random" command before Redis 7) needs the scripts' effects
 * replication, the default from Redis 5.0: our minimum (config.md). */
static const char shared_redis_incr_lua[] =
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1])\n"
    "if ARGV[2] ~= '0' and redis.call('TTL', KEYS[1]) == -1 then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return v\n";
/* Take the lease if free, renew it if owner holds it: one round trip,
 * and no gap in which it could expire between a test and a renewal. */
static const char shared_redis_lease_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "if v == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";
static const char shared_redis_release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

/* KEYS[1] counter; ARGV[1] by (> 0). */
static const char shared_redis_decr_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "if redis.call('DECRBY', KEYS[1], ARGV[1]) <= 0 then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 1\n";
/* KEYS[1] gauge; ARGV member, max, ttl_ms. {joined 1/0, members}. */
static const char shared_redis_gauge_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local max, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "local n = redis.call('ZCARD', KEYS[1])\n"
    "if max > 0 and n >= max and\n"
    "   not redis.call('ZSCORE', KEYS[1], ARGV[1]) then\n"
    "  return {0, n}\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])\n"
    "if redis.call('PTTL', KEYS[1]) < ttl then\n"
    "  redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "end\n"
    "return {1, redis.call('ZCARD', KEYS[1])}\n";
/* KEYS: the keys to delete, then those to set; ARGV[1]: how many to
 * delete; ARGV[2...]: the values, in the order of their keys. */
static const char shared_redis_write_lua[] =
    "local ndel = tonumber(ARGV[1])\n"
    "for i = 1, ndel do redis.call('DEL', KEYS[i]) end\n"
    "for i = ndel + 1, #KEYS do\n"
    "  redis.call('SET', KEYS[i], ARGV[i - ndel + 1])\n"
    "end\n"
    "return #KEYS - ndel\n";

#define SHARED_REDIS_SCAN_COUNT "1000"

struct shared_redis_sub {
    struct modmta_shared_sub base;
    struct shared_redis *owner;
    char *channel;              /* prefixed */
    size_t prefix_len;
    void (*cb)(void *arg, const char *channel, const char *msg);
    void *arg;
    struct shared_redis_sub *next;
};

struct shared_redis {
    struct redis *r;
    struct redis_sub *sub;
    pthread_mutex_t lock;       /* the list, running */
    pthread_cond_t cond;        /* a callback returned */
    struct shared_redis_sub *subs;
    const struct shared_redis_sub *running;
    pthread_t running_thread;   /* the thread it runs on */
    unsigned long version;      /* changes with every (un)subscribe */
};

static int shared_redis_run(struct shared_redis *sr, int argc,
                            const char **argv, int type,
                            redisReply **reply_r);
static int shared_redis_int(struct shared_redis *sr, int argc,
                            const char **argv, long long *value_r);
static void shared_redis_deliver(void *arg, const char *channel,
                                 const char *msg);

/* A command whose reply must be of type (or NIL): 0 with *reply_r, or
 * <0 (an unexpected type is logged, MODMTA_E_TEMP). */
static int
shared_redis_run(struct shared_redis *sr, int argc, const char **argv,
                 int type, redisReply **reply_r)
{
    char why[128];
    int rc = redis_command(sr->r, argc, argv, NULL, reply_r);

    if (rc < 0)
        return rc;
    if ((*reply_r)->type == type || (*reply_r)->type == REDIS_REPLY_NIL)
        return 0;
    snprintf(why, sizeof(why), "%s: unexpected reply type %d", argv[0],
             (*reply_r)->type);
    redis_note(sr->r, NULL, why);
    freeReplyObject(*reply_r);
    *reply_r = NULL;
    return MODMTA_E_TEMP;
}

/* A command answering an integer. */
static int
shared_redis_int(struct shared_redis *sr, int argc, const char **argv,
                 long long *value_r)
{
    redisReply *reply;
    int rc = shared_redis_run(sr, argc, argv, REDIS_REPLY_INTEGER, &reply);

    if (rc < 0)
        return rc;
    rc = reply->type == REDIS_REPLY_INTEGER ? 0 : MODMTA_E_TEMP;
    *value_r = reply->integer;
    freeReplyObject(reply);
    return rc;
}

static int
shared_redis_get(void *b, const char *key, char **value_r)
{
    const char *argv[] = {"GET", key};
    redisReply *reply;
    int rc = shared_redis_run(b, 2, argv, REDIS_REPLY_STRING, &reply);

    if (rc < 0)
        return rc;
    rc = reply->type == REDIS_REPLY_STRING;
    /* a NUL octet: no C string holds it, and cut there it would be
     * another value (written around modmta: every set is a C string) */
    if (rc && memchr(reply->str, '\0', reply->len) != NULL)
        rc = MODMTA_E_INVAL;
    else if (rc && value_r != NULL &&
             (*value_r = strndup(reply->str, reply->len)) == NULL)
        rc = MODMTA_E_NOMEM;
    freeReplyObject(reply);
    return rc;
}

static int
shared_redis_set(void *b, const char *key, const char *value, long ttl_ms)
{
    char ttl[24];
    const char *argv[] = {"SET", key, value, "PX", ttl};
    redisReply *reply;
    int rc;

    snprintf(ttl, sizeof(ttl), "%ld", ttl_ms);
    rc = shared_redis_run(b, ttl_ms > 0 ? 5 : 3, argv, REDIS_REPLY_STATUS,
                          &reply);
    if (rc == 0) {
        rc = reply->type == REDIS_REPLY_STATUS ? 0 : MODMTA_E_TEMP;
        freeReplyObject(reply);
    }
    return rc;
}

static int
shared_redis_del(void *b, const char *key)
{
    const char *argv[] = {"DEL", key};
    long long n;
    int rc = shared_redis_int(b, 2, argv, &n);

    return rc < 0 ? rc : n > 0;
}

static int
shared_redis_incr(void *b, const char *key, long long by, long window_s,
                  long long *value_r)
{
    char a_by[24], a_window[24];
    const char *argv[] = {"EVAL", shared_redis_incr_lua, "1", key, a_by,
                          a_window};

    snprintf(a_by, sizeof(a_by), "%lld", by);
    snprintf(a_window, sizeof(a_window), "%ld", window_s);
    return shared_redis_int(b, 6, argv, value_r);
}

static int
shared_redis_lease(void *b, const char *key, const char *owner, long ttl_ms)
{
    char ttl[24];
    const char *argv[] = {"EVAL", shared_redis_lease_lua, "1", key, owner,
                          ttl};
    long long n;
    int rc;

    snprintf(ttl, sizeof(ttl), "%ld", ttl_ms);
    rc = shared_redis_int(b, 6, argv, &n);
    return rc < 0 ? rc : n > 0;
}

static int
shared_redis_release(void *b, const char *key, const char *owner)
{
    const char *argv[] = {"EVAL", shared_redis_release_lua, "1", key, owner};
    long long n;
    int rc = shared_redis_int(b, 5, argv, &n);

    return rc < 0 ? rc : n > 0;
}

static int
shared_redis_decr(void *b, const char *key, long long by)
{
    char a_by[24];
    const char *argv[] = {"EVAL", shared_redis_decr_lua, "1", key, a_by};
    long long n;
    int rc;

    snprintf(a_by, sizeof(a_by), "%lld", by);
    rc = shared_redis_int(b, 5, argv, &n);
    return rc < 0 ? rc : n > 0;
}

static int
shared_redis_gauge_join(void *b, const char *key, const char *member,
                        long long max, long ttl_ms, long long *count_r)
{
    char a_max[24], a_ttl[24];
    const char *argv[] = {"EVAL", shared_redis_gauge_lua, "1", key, member,
                          a_max, a_ttl};
    redisReply *reply, **e;
    int rc;

    snprintf(a_max, sizeof(a_max), "%lld", max);
    snprintf(a_ttl, sizeof(a_ttl), "%ld", ttl_ms);
    rc = shared_redis_run(b, 7, argv, REDIS_REPLY_ARRAY, &reply);
    if (rc < 0)
        return rc;
    e = reply->element;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        e[0]->type == REDIS_REPLY_INTEGER &&
        e[1]->type == REDIS_REPLY_INTEGER) {
        rc = e[0]->integer == 1;
        *count_r = e[1]->integer;
    } else {
        rc = MODMTA_E_TEMP;
    }
    freeReplyObject(reply);
    return rc;
}

static int
shared_redis_gauge_leave(void *b, const char *key, const char *member)
{
    const char *argv[] = {"ZREM", key, member};
    long long n;
    int rc = shared_redis_int(b, 3, argv, &n);

    return rc < 0 ? rc : n > 0;
}

static int
shared_redis_publish(void *b, const char *channel, const char *msg)
{
    const char *argv[] = {"PUBLISH", channel, msg};
    long long n;
    int rc = shared_redis_int(b, 3, argv, &n);

    if (rc < 0)
        return rc;
    return n > 0x7fffffff ? 0x7fffffff : (int)n;
}

/* ---- modmtactl map import ---- */

/* A SCAN pattern for the keys that start with start: its glob
 * characters escaped, then '*'. NULL out of memory. */
static char *
shared_redis_glob(const char *start)
{
    char *pattern = malloc(2 * strlen(start) + 2), *p = pattern;

    if (pattern == NULL)
        return NULL;
    for (; *start != '\0'; start++) {
        if (strchr("*?[]\\", *start) != NULL)
            *p++ = '\\';
        *p++ = *start;
    }
    memcpy(p, "*", 2);
    return pattern;
}

/* One SCAN answer: its keys appended to *keys (*n of *cap), the next
 * cursor into cursor. 0, or <0. */
static int
shared_redis_scan_page(struct shared_redis *sr, const redisReply *reply,
                       char cursor[32], char ***keys, size_t *n,
                       size_t *cap)
{
    const redisReply *list;
    char **grown;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[0]->len >= 32 ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        redis_note(sr->r, NULL, "SCAN: unexpected reply");
        return MODMTA_E_TEMP;
    }
    memcpy(cursor, reply->element[0]->str, reply->element[0]->len + 1);
    list = reply->element[1];
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *k = list->element[i];

        if (k->type != REDIS_REPLY_STRING || strlen(k->str) != k->len)
            continue;               /* no call can name it */
        if (*n == *cap) {
            *cap = *cap > 0 ? 2 * *cap : 64;
            if ((grown = realloc(*keys, *cap * sizeof(**keys))) == NULL)
                return MODMTA_E_NOMEM;
            *keys = grown;
        }
        if (((*keys)[*n] = strdup(k->str)) == NULL)
            return MODMTA_E_NOMEM;
        (*n)++;
    }
    return 0;
}

static int
shared_redis_keys(void *b, const char *start, char ***keys_r, size_t *n_r)
{
    char cursor[32] = "0", *pattern = shared_redis_glob(start), **keys = NULL;
    const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT",
                          SHARED_REDIS_SCAN_COUNT};
    size_t n = 0, cap = 0;
    redisReply *reply;
    int rc;

    if (pattern == NULL)
        return MODMTA_E_NOMEM;
    do {
        if ((rc = shared_redis_run(b, 6, argv, REDIS_REPLY_ARRAY,
                                   &reply)) < 0)
            break;
        rc = shared_redis_scan_page(b, reply, cursor, &keys, &n, &cap);
        freeReplyObject(reply);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    free(pattern);
    if (rc < 0) {
        while (n > 0)
            free(keys[--n]);
        free(keys);
        return rc;
    }
    *keys_r = keys;
    *n_r = n;
    return 0;
}

static int
shared_redis_write_all(void *b, char *const *del, size_t ndel,
                       char *const *keys, const char *const *values,
                       size_t n)
{
    char a_nkeys[24], a_ndel[24];
    const char **argv;
    size_t argc = 4 + ndel + 2 * n, k = 0;
    long long done;
    int rc;

    if (ndel + n > (INT_MAX - 4) / 2)
        return MODMTA_E_INVAL;
    if ((argv = calloc(argc, sizeof(*argv))) == NULL)
        return MODMTA_E_NOMEM;
    snprintf(a_nkeys, sizeof(a_nkeys), "%zu", ndel + n);
    snprintf(a_ndel, sizeof(a_ndel), "%zu", ndel);
    argv[k++] = "EVAL";
    argv[k++] = shared_redis_write_lua;
    argv[k++] = a_nkeys;
    for (size_t i = 0; i < ndel; i++)
        argv[k++] = del[i];
    for (size_t i = 0; i < n; i++)
        argv[k++] = keys[i];
    argv[k++] = a_ndel;
    for (size_t i = 0; i < n; i++)
        argv[k++] = values[i];
    rc = shared_redis_int(b, (int)argc, argv, &done);
    free(argv);
    return rc < 0 ? rc : 0;
}

/* ---- subscriptions ---- */

/* A message from redis_sub's thread: every callback of its channel. */
static void
shared_redis_deliver(void *arg, const char *channel, const char *msg)
{
    struct shared_redis *sr = arg;

    pthread_mutex_lock(&sr->lock);
    /* The list may change while a callback runs (the lock is not held
     * then): if it did, this message goes no further. */
    for (struct shared_redis_sub *s = sr->subs; s != NULL; s = s->next) {
        unsigned long version = sr->version;

        if (strcmp(s->channel, channel) != 0)
            continue;
        sr->running = s;
        sr->running_thread = pthread_self();
        pthread_mutex_unlock(&sr->lock);
        s->cb(s->arg, channel + s->prefix_len, msg);
        pthread_mutex_lock(&sr->lock);
        sr->running = NULL;
        pthread_cond_broadcast(&sr->cond);
        if (sr->version != version)
            break;
    }
    pthread_mutex_unlock(&sr->lock);
}

static const struct shared_ops shared_redis_ops_table;

static int
shared_redis_subscribe(void *b, const char *channel, size_t prefix_len,
                       void (*cb)(void *arg, const char *channel,
                                  const char *msg),
                       void *arg, modmta_shared_sub **sub_r)
{
    struct shared_redis *sr = b;
    struct shared_redis_sub *s = calloc(1, sizeof(*s));
    int rc;

    if (s == NULL || (s->channel = strdup(channel)) == NULL) {
        free(s);
        return MODMTA_E_NOMEM;
    }
    s->base.ops = &shared_redis_ops_table;
    s->owner = sr;
    s->prefix_len = prefix_len;
    s->cb = cb;
    s->arg = arg;
    if ((rc = redis_sub_add(sr->sub, channel)) < 0) {
        free(s->channel);
        free(s);
        return rc;
    }
    pthread_mutex_lock(&sr->lock);
    s->next = sr->subs;
    sr->subs = s;
    sr->version++;
    pthread_mutex_unlock(&sr->lock);
    *sub_r = &s->base;
    return 0;
}

static void
shared_redis_unsubscribe(modmta_shared_sub *sub)
{
    struct shared_redis_sub *s = (struct shared_redis_sub *)sub, **pp;
    struct shared_redis *sr = s->owner;

    pthread_mutex_lock(&sr->lock);
    for (pp = &sr->subs; *pp != NULL && *pp != s; pp = &(*pp)->next)
        ;
    if (*pp == s)
        *pp = s->next;
    sr->version++;
    /* a callback unsubscribing itself does not wait for itself */
    while (sr->running == s &&
           !pthread_equal(sr->running_thread, pthread_self()))
        pthread_cond_wait(&sr->cond, &sr->lock);
    pthread_mutex_unlock(&sr->lock);
    redis_sub_remove(sr->sub, s->channel);
    free(s->channel);
    free(s);
}

static void
shared_redis_free(void *b)
{
    struct shared_redis *sr = b;

    redis_sub_free(sr->sub);
    redis_free(sr->r);
    pthread_mutex_destroy(&sr->lock);
    pthread_cond_destroy(&sr->cond);
    free(sr);
}

static const struct shared_ops shared_redis_ops_table = {
    .get = shared_redis_get,
    .set = shared_redis_set,
    .del = shared_redis_del,
    .incr = shared_redis_incr,
    .lease = shared_redis_lease,
    .release = shared_redis_release,
    .publish = shared_redis_publish,
    .subscribe = shared_redis_subscribe,
    .unsubscribe = shared_redis_unsubscribe,
    .free = shared_redis_free,
    .decr = shared_redis_decr,
    .gauge_join = shared_redis_gauge_join,
    .gauge_leave = shared_redis_gauge_leave,
    .keys = shared_redis_keys,
    .write_all = shared_redis_write_all,
};

const struct shared_ops *
shared_redis_ops(void)
{
    return &shared_redis_ops_table;
}

void *
shared_redis_new(const json_t *redis, modmta_err *err_r)
{
    struct shared_redis *sr = calloc(1, sizeof(*sr));

    if (sr == NULL) {
        modmta_err_set(err_r, "$.redis", "out of memory");
        return NULL;
    }
    if ((sr->r = redis_new(redis, err_r)) == NULL) {
        free(sr);
        return NULL;
    }
    if ((sr->sub = redis_sub_new(sr->r, shared_redis_deliver, sr)) == NULL) {
        modmta_err_set(err_r, "$.redis", "out of memory");
        redis_free(sr->r);
        free(sr);
        return NULL;
    }
    pthread_mutex_init(&sr->lock, NULL);
    pthread_cond_init(&sr->cond, NULL);
    return sr;
}
