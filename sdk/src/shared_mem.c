/*
 * The in-memory shared-state store: one for the process (it outlives
 * config generations, so counters and leases survive a reload).
 *
 * A hash table of entries, each a string or a counter with an expiry
 * (CLOCK_MONOTONIC milliseconds, 0: none), under one mutex. Expired
 * entries are dropped when met and by a sweep every SHMEM_SWEEP writes,
 * so keys that are never read again (a client seen once) do not pile up.
 * Publish/subscribe: messages go on a queue that one thread, started by
 * the first subscription, hands to the subscribers' callbacks (never the
 * publisher's thread, as with Redis). Its own mutex and condition.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared_priv.h"

#define SHMEM_BUCKETS 4096
#define SHMEM_SWEEP 4096

struct shmem_entry {
    char *key;
    char *value;                /* NULL: a counter */
    long long count;
    long long expires;          /* ms, CLOCK_MONOTONIC; 0: never */
    struct shmem_entry *next;
};

struct shmem_sub {
    struct modmta_shared_sub base;
    char *channel;              /* prefixed */
    size_t prefix_len;
    void (*cb)(void *arg, const char *channel, const char *msg);
    void *arg;
    struct shmem_sub *next;
};

struct shmem_msg {
    char *channel;
    char *msg;
    struct shmem_msg *next;
};

struct shmem {
    pthread_mutex_t lock;
    struct shmem_entry *buckets[SHMEM_BUCKETS];
    unsigned long writes;
    /* pub/sub */
    pthread_mutex_t ps_lock;
    pthread_cond_t ps_cond;     /* a message queued, or a callback done */
    struct shmem_sub *subs;
    struct shmem_msg *head, *tail;
    const struct shmem_sub *running; /* whose callback runs now */
    unsigned long subs_version; /* changes with every (un)subscribe */
    int thread_started;
    pthread_t thread;
};

static struct shmem shmem_store = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .ps_lock = PTHREAD_MUTEX_INITIALIZER,
    .ps_cond = PTHREAD_COND_INITIALIZER,
};

static long long
shmem_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t
shmem_hash(const char *key)
{
    uint64_t h = 14695981039346656037ULL;   /* FNV-1a */

    for (; *key != '\0'; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ULL;
    return (size_t)(h % SHMEM_BUCKETS);
}

static void
shmem_entry_free(struct shmem_entry *e)
{
    free(e->key);
    free(e->value);
    free(e);
}

static int
shmem_expired(const struct shmem_entry *e, long long now)
{
    return e->expires != 0 && e->expires <= now;
}

/* The live entry for key (lock held), dropping an expired one; *pp_r
 * gets the link that points at it or would. */
static struct shmem_entry *
shmem_find(struct shmem *m, const char *key, struct shmem_entry ***pp_r)
{
    struct shmem_entry **pp = &m->buckets[shmem_hash(key)], *e;
    long long now = shmem_now();

    while ((e = *pp) != NULL) {
        if (shmem_expired(e, now)) {
            *pp = e->next;
            shmem_entry_free(e);
            continue;
        }
        if (strcmp(e->key, key) == 0)
            break;
        pp = &e->next;
    }
    *pp_r = pp;
    return e;
}

static void
shmem_sweep(struct shmem *m)
{
    long long now = shmem_now();

    for (size_t b = 0; b < SHMEM_BUCKETS; b++) {
        struct shmem_entry **pp = &m->buckets[b], *e;

        while ((e = *pp) != NULL) {
            if (shmem_expired(e, now)) {
                *pp = e->next;
                shmem_entry_free(e);
            } else {
                pp = &e->next;
            }
        }
    }
}

/* A new entry for key at *pp (lock held); NULL out of memory. */
static struct shmem_entry *
shmem_add(struct shmem *m, struct shmem_entry **pp, const char *key)
{
    struct shmem_entry *e = calloc(1, sizeof(*e));

    if (e == NULL || (e->key = strdup(key)) == NULL) {
        free(e);
        return NULL;
    }
    e->next = *pp;
    *pp = e;
    if (++m->writes % SHMEM_SWEEP == 0)
        shmem_sweep(m);
    return e;
}

static int
shmem_get(void *b, const char *key, char **value_r)
{
    struct shmem *m = b;
    struct shmem_entry *e, **pp;
    char buf[32];
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    if ((e = shmem_find(m, key, &pp)) != NULL) {
        rc = 1;
        if (value_r != NULL) {
            if (e->value == NULL)
                snprintf(buf, sizeof(buf), "%lld", e->count);
            *value_r = strdup(e->value != NULL ? e->value : buf);
            if (*value_r == NULL)
                rc = MODMTA_E_NOMEM;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* Set e's value and expiry (lock held). */
static int
shmem_put(struct shmem_entry *e, const char *value, long ttl_ms)
{
    char *v = strdup(value);

    if (v == NULL)
        return MODMTA_E_NOMEM;
    free(e->value);
    e->value = v;
    e->expires = ttl_ms > 0 ? shmem_now() + ttl_ms : 0;
    return 0;
}

static int
shmem_set(void *b, const char *key, const char *value, long ttl_ms)
{
    struct shmem *m = b;
    struct shmem_entry *e, **pp;
    int rc;

    pthread_mutex_lock(&m->lock);
    e = shmem_find(m, key, &pp);
    if (e == NULL)
        e = shmem_add(m, pp, key);
    rc = e != NULL ? shmem_put(e, value, ttl_ms) : MODMTA_E_NOMEM;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int
shmem_del(void *b, const char *key)
{
    struct shmem *m = b;
    struct shmem_entry *e, **pp;

    pthread_mutex_lock(&m->lock);
    e = shmem_find(m, key, &pp);
    if (e != NULL) {
        *pp = e->next;
        shmem_entry_free(e);
    }
    pthread_mutex_unlock(&m->lock);
    return e != NULL;
}

static int
shmem_incr(void *b, const char *key, long long by, long window_s,
           long long *value_r)
{
    struct shmem *m = b;
    struct shmem_entry *e, **pp;
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    e = shmem_find(m, key, &pp);
    if (e == NULL)
        e = shmem_add(m, pp, key);
    /* a counter without an expiry gets one, as with Redis */
    if (e != NULL && e->value == NULL && e->expires == 0 && window_s > 0)
        e->expires = shmem_now() + window_s * 1000LL;
    if (e == NULL) {
        rc = MODMTA_E_NOMEM;
    } else if (e->value != NULL) {
        rc = MODMTA_E_INVAL;        /* a string, not a counter */
    } else {
        e->count += by;
        *value_r = e->count;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int
shmem_lease(void *b, const char *key, const char *owner, long ttl_ms)
{
    struct shmem *m = b;
    struct shmem_entry *e, **pp;
    int rc;

    pthread_mutex_lock(&m->lock);
    e = shmem_find(m, key, &pp);
    if (e != NULL && (e->value == NULL || strcmp(e->value, owner) != 0))
        rc = 0;
    else if (e == NULL && (e = shmem_add(m, pp, key)) == NULL)
        rc = MODMTA_E_NOMEM;
    else
        rc = shmem_put(e, owner, ttl_ms) < 0 ? MODMTA_E_NOMEM : 1;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int
shmem_release(void *b, const char *key, const char *owner)
{
    struct shmem *m = b;
    struct shmem_entry *e, **pp;
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    e = shmem_find(m, key, &pp);
    if (e != NULL && e->value != NULL && strcmp(e->value, owner) == 0) {
        *pp = e->next;
        shmem_entry_free(e);
        rc = 1;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* ---- publish / subscribe ---- */

static void *
shmem_ps_thread(void *arg)
{
    struct shmem *m = arg;

    pthread_mutex_lock(&m->ps_lock);
    for (;;) {
        struct shmem_msg *msg;

        while (m->head == NULL)
            pthread_cond_wait(&m->ps_cond, &m->ps_lock);
        msg = m->head;
        m->head = msg->next;
        if (m->head == NULL)
            m->tail = NULL;
        /* The list may change while a callback runs (the lock is not
         * held then): if it did, this message goes no further (pub/sub
         * promises no delivery, and the next link may be gone). */
        for (struct shmem_sub *s = m->subs; s != NULL; s = s->next) {
            unsigned long version = m->subs_version;

            if (strcmp(s->channel, msg->channel) != 0)
                continue;
            m->running = s;
            pthread_mutex_unlock(&m->ps_lock);
            s->cb(s->arg, msg->channel + s->prefix_len, msg->msg);
            pthread_mutex_lock(&m->ps_lock);
            m->running = NULL;
            pthread_cond_broadcast(&m->ps_cond);
            if (m->subs_version != version)
                break;
        }
        free(msg->channel);
        free(msg->msg);
        free(msg);
    }
    return NULL;
}

static int
shmem_publish(void *b, const char *channel, const char *text)
{
    struct shmem *m = b;
    struct shmem_msg *msg = calloc(1, sizeof(*msg));
    int n = 0;

    if (msg == NULL || (msg->channel = strdup(channel)) == NULL ||
        (msg->msg = strdup(text)) == NULL) {
        if (msg != NULL)
            free(msg->channel);
        free(msg);
        return MODMTA_E_NOMEM;
    }
    pthread_mutex_lock(&m->ps_lock);
    for (struct shmem_sub *s = m->subs; s != NULL; s = s->next)
        n += strcmp(s->channel, channel) == 0;
    if (n == 0) {
        pthread_mutex_unlock(&m->ps_lock);
        free(msg->channel);
        free(msg->msg);
        free(msg);
        return 0;
    }
    if (m->tail != NULL)
        m->tail->next = msg;
    else
        m->head = msg;
    m->tail = msg;
    pthread_cond_broadcast(&m->ps_cond);
    pthread_mutex_unlock(&m->ps_lock);
    return n;
}

static const struct shared_ops shmem_ops;

static int
shmem_subscribe(void *b, const char *channel, size_t prefix_len,
                void (*cb)(void *arg, const char *channel, const char *msg),
                void *arg, modmta_shared_sub **sub_r)
{
    struct shmem *m = b;
    struct shmem_sub *s = calloc(1, sizeof(*s));
    pthread_attr_t attr;
    int rc = 0;

    if (s == NULL || (s->channel = strdup(channel)) == NULL) {
        free(s);
        return MODMTA_E_NOMEM;
    }
    s->base.ops = &shmem_ops;
    s->prefix_len = prefix_len;
    s->cb = cb;
    s->arg = arg;
    pthread_mutex_lock(&m->ps_lock);
    if (!m->thread_started) {
        /* Detached: the store lives as long as the process. */
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&m->thread, &attr, shmem_ps_thread, m) == 0)
            m->thread_started = 1;
        else
            rc = MODMTA_E_NOMEM;
        pthread_attr_destroy(&attr);
    }
    if (rc == 0) {
        s->next = m->subs;
        m->subs = s;
        m->subs_version++;
    }
    pthread_mutex_unlock(&m->ps_lock);
    if (rc < 0) {
        free(s->channel);
        free(s);
        return rc;
    }
    *sub_r = &s->base;
    return 0;
}

static void
shmem_unsubscribe(modmta_shared_sub *sub)
{
    struct shmem_sub *s = (struct shmem_sub *)sub, **pp;
    struct shmem *m = &shmem_store;

    pthread_mutex_lock(&m->ps_lock);
    for (pp = &m->subs; *pp != NULL && *pp != s; pp = &(*pp)->next)
        ;
    if (*pp == s)
        *pp = s->next;
    m->subs_version++;
    /* a callback unsubscribing itself does not wait for itself (the
     * thread runs every callback) */
    while (m->running == s && !pthread_equal(m->thread, pthread_self()))
        pthread_cond_wait(&m->ps_cond, &m->ps_lock);
    pthread_mutex_unlock(&m->ps_lock);
    free(s->channel);
    free(s);
}

static const struct shared_ops shmem_ops = {
    .get = shmem_get,
    .set = shmem_set,
    .del = shmem_del,
    .incr = shmem_incr,
    .lease = shmem_lease,
    .release = shmem_release,
    .publish = shmem_publish,
    .subscribe = shmem_subscribe,
    .unsubscribe = shmem_unsubscribe,
    .free = NULL,               /* the process's: never freed */
};

const struct shared_ops *
shared_mem_ops(void)
{
    return &shmem_ops;
}

void *
shared_mem_get_store(void)
{
    return &shmem_store;
}
