/*
 * The in-memory shared-state store: one for the process (it outlives
 * config generations, so counters and leases survive a reload).
 *
 * A hash table of entries, each a string, a counter or a gauge with an
 * expiry (CLOCK_MONOTONIC milliseconds, 0: none), under one mutex.
 * Expired entries are dropped when met and by a sweep every SHMEM_SWEEP
 * writes, so keys that are never read again (a client seen once) do not
 * pile up. A counter given back to 0 is dropped at once. The table holds
 * at most SHARED_MEM_KEYS_MAX entries: past that, a call that would
 * make a key answers MODMTA_E_TEMP (logged at most once a minute), so
 * clients naming ever new keys cannot take the process's memory.
 * Publish/subscribe: messages go on a queue that one thread, started by
 * the first subscription, hands to the subscribers' callbacks (never the
 * publisher's thread, as with Redis). Its own mutex and condition.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modmta/log.h>

#include "shared_priv.h"

#define SHMEM_BUCKETS 4096
#define SHMEM_SWEEP 4096
#define SHMEM_FULL_SWEEP_MS 1000  /* when full, sweep at most this often */
#define SHMEM_FULL_LOG_MS 60000   /* and say so at most this often */

/* A gauge's member. */
struct shmem_member {
    char *name;
    long long expires;          /* ms, CLOCK_MONOTONIC */
};

struct shmem_entry {
    char *key;
    char *value;                /* a string; NULL: a counter or a gauge */
    long long count;
    int gauge;                  /* a gauge: its members below */
    struct shmem_member *members;
    size_t nmembers, cap;
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
    size_t nentries, max_entries;
    long long full_swept, full_logged; /* when, ms */
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
    .max_entries = SHARED_MEM_KEYS_MAX,
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

/* Make e an empty counter: no string, no members. */
static void
shmem_entry_clear(struct shmem_entry *e)
{
    for (size_t i = 0; i < e->nmembers; i++)
        free(e->members[i].name);
    free(e->members);
    free(e->value);
    e->value = NULL;
    e->members = NULL;
    e->nmembers = e->cap = 0;
    e->gauge = 0;
    e->count = 0;
}

static void
shmem_entry_free(struct shmem_entry *e)
{
    shmem_entry_clear(e);
    free(e->key);
    free(e);
}

/* Unlink the entry *pp points at and free it (lock held). */
static void
shmem_unlink(struct shmem *m, struct shmem_entry **pp)
{
    struct shmem_entry *e = *pp;

    *pp = e->next;
    shmem_entry_free(e);
    m->nentries--;
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
            shmem_unlink(m, pp);
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
            if (shmem_expired(e, now))
                shmem_unlink(m, pp);
            else
                pp = &e->next;
        }
    }
}

/* Room for one more entry (lock held)? When full, expired entries are
 * swept first (at most once a second: a sweep walks them all). */
static int
shmem_room(struct shmem *m)
{
    long long now;

    if (m->nentries < m->max_entries)
        return 1;
    now = shmem_now();
    if (now - m->full_swept >= SHMEM_FULL_SWEEP_MS) {
        m->full_swept = now;
        shmem_sweep(m);
        if (m->nentries < m->max_entries)
            return 1;
    }
    if (m->full_logged == 0 || now - m->full_logged >= SHMEM_FULL_LOG_MS) {
        m->full_logged = now;
        modmta_logf(MODMTA_LOG_WARN, "shared state: the memory store holds "
                    "%zu keys, its most: new keys are refused "
                    "(MODMTA_E_TEMP) until some expire", m->nentries);
    }
    return 0;
}

/* A new entry for key (lock held), first in its bucket: 0 with *e_r,
 * MODMTA_E_TEMP when the store is full, MODMTA_E_NOMEM. */
static int
shmem_add(struct shmem *m, const char *key, struct shmem_entry **e_r)
{
    struct shmem_entry **head = &m->buckets[shmem_hash(key)], *e;

    *e_r = NULL;
    if (!shmem_room(m))
        return MODMTA_E_TEMP;
    if ((e = calloc(1, sizeof(*e))) == NULL ||
        (e->key = strdup(key)) == NULL) {
        free(e);
        return MODMTA_E_NOMEM;
    }
    e->next = *head;
    *head = e;
    m->nentries++;
    if (++m->writes % SHMEM_SWEEP == 0)
        shmem_sweep(m);
    *e_r = e;
    return 0;
}

static int
shmem_get(void *b, const char *key, char **value_r)
{
    struct shmem *m = b;
    struct shmem_entry *e, **pp;
    char buf[32];
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    if ((e = shmem_find(m, key, &pp)) != NULL && e->gauge) {
        rc = MODMTA_E_INVAL;        /* as Redis' GET of a sorted set */
    } else if (e != NULL) {
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
    shmem_entry_clear(e);
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
    rc = e != NULL ? 0 : shmem_add(m, key, &e);
    if (rc == 0)
        rc = shmem_put(e, value, ttl_ms);
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
    if (e != NULL)
        shmem_unlink(m, pp);
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
        rc = shmem_add(m, key, &e);
    if (rc == 0 && (e->value != NULL || e->gauge))
        rc = MODMTA_E_INVAL;        /* not a counter */
    /* a counter without an expiry gets one, as with Redis */
    if (rc == 0 && e->expires == 0 && window_s > 0)
        e->expires = shmem_now() + window_s * 1000LL;
    if (rc == 0) {
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
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    e = shmem_find(m, key, &pp);
    if (e != NULL && (e->value == NULL || strcmp(e->value, owner) != 0))
        e = NULL;                   /* held by someone else */
    else if (e == NULL)
        rc = shmem_add(m, key, &e);
    if (e != NULL)
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
        shmem_unlink(m, pp);
        rc = 1;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int
shmem_decr(void *b, const char *key, long long by)
{
    struct shmem *m = b;
    struct shmem_entry *e, **pp;
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    e = shmem_find(m, key, &pp);
    if (e != NULL && (e->value != NULL || e->gauge)) {
        rc = MODMTA_E_INVAL;        /* not a counter */
    } else if (e != NULL) {
        rc = 1;
        e->count -= by;
        if (e->count <= 0)
            shmem_unlink(m, pp);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* ---- gauges ---- */

/* Drop g's expired members (lock held). */
static void
shmem_gauge_expire(struct shmem_entry *g, long long now)
{
    size_t i = 0;

    while (i < g->nmembers) {
        if (g->members[i].expires > now) {
            i++;
            continue;
        }
        free(g->members[i].name);
        g->members[i] = g->members[--g->nmembers];
    }
}

/* member's index in g, or -1. */
static long
shmem_gauge_find(const struct shmem_entry *g, const char *member)
{
    for (size_t i = 0; i < g->nmembers; i++)
        if (strcmp(g->members[i].name, member) == 0)
            return (long)i;
    return -1;
}

/* Add member to g (lock held): its index, or -1 out of memory. */
static long
shmem_gauge_add(struct shmem_entry *g, const char *member)
{
    struct shmem_member *p;
    char *name = strdup(member);

    if (name == NULL)
        return -1;
    if (g->nmembers == g->cap) {
        p = realloc(g->members, (g->cap * 2 + 4) * sizeof(*p));
        if (p == NULL) {
            free(name);
            return -1;
        }
        g->members = p;
        g->cap = g->cap * 2 + 4;
    }
    g->members[g->nmembers].name = name;
    return (long)g->nmembers++;
}

/* Join or renew member in g (lock held): as shmem_gauge_join. */
static int
shmem_gauge_enter(struct shmem_entry *g, const char *member, long long max,
                  long ttl_ms, long long *count_r)
{
    long long now = shmem_now();
    long i;

    shmem_gauge_expire(g, now);
    i = shmem_gauge_find(g, member);
    *count_r = (long long)g->nmembers;
    if (i < 0 && max > 0 && (long long)g->nmembers >= max)
        return 0;
    if (i < 0 && (i = shmem_gauge_add(g, member)) < 0)
        return MODMTA_E_NOMEM;
    g->members[i].expires = now + ttl_ms;
    if (g->expires < now + ttl_ms)
        g->expires = now + ttl_ms;
    *count_r = (long long)g->nmembers;
    return 1;
}

static int
shmem_gauge_join(void *b, const char *key, const char *member,
                 long long max, long ttl_ms, long long *count_r)
{
    struct shmem *m = b;
    struct shmem_entry *e, **pp;
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    e = shmem_find(m, key, &pp);
    if (e == NULL && (rc = shmem_add(m, key, &e)) == 0)
        e->gauge = 1;
    if (rc == 0)
        rc = e->gauge ? shmem_gauge_enter(e, member, max, ttl_ms, count_r)
                      : MODMTA_E_INVAL;     /* a string or a counter */
    /* a gauge made for a member that could not be added goes again */
    if (e != NULL && e->gauge && e->nmembers == 0 &&
        shmem_find(m, key, &pp) == e)
        shmem_unlink(m, pp);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int
shmem_gauge_leave(void *b, const char *key, const char *member)
{
    struct shmem *m = b;
    struct shmem_entry *e, **pp;
    long i;
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    e = shmem_find(m, key, &pp);
    if (e != NULL && !e->gauge) {
        rc = MODMTA_E_INVAL;
    } else if (e != NULL) {
        shmem_gauge_expire(e, shmem_now());
        if ((i = shmem_gauge_find(e, member)) >= 0) {
            free(e->members[i].name);
            e->members[i] = e->members[--e->nmembers];
            rc = 1;
        }
        if (e->nmembers == 0)
            shmem_unlink(m, pp);
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
    .decr = shmem_decr,
    .gauge_join = shmem_gauge_join,
    .gauge_leave = shmem_gauge_leave,
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

void
shared_mem_set_max(size_t max)
{
    pthread_mutex_lock(&shmem_store.lock);
    shmem_store.max_entries = max;
    shmem_store.full_swept = shmem_store.full_logged = 0;
    pthread_mutex_unlock(&shmem_store.lock);
}
