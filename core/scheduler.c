/*
 * The scheduler: an in-memory index of queued messages and a pool of
 * delivery workers (see scheduler.h).
 *
 * Every known message is an item in a hash table keyed by its ID. Items
 * that may be delivered (not held, not quarantined, not claimed) are also
 * in a binary min-heap ordered by due time, then by arrival in the index,
 * so a worker finds the next due message in O(1) and submit costs
 * O(log n) with no disk access. An item claimed by a worker (or by hold)
 * is "busy" and out of the heap: one message, one worker.
 *
 * Lock: s->lock, owned by this file, guards every field below it in
 * struct scheduler and every item. It is never held across disk I/O or
 * delivery. Conditions: `work` wakes workers (submit, flush, release,
 * stop; the timed wait covers the next retry time); `idle` tells hold and
 * delete that a busy item was given back.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modmta/log.h>

#include "scheduler.h"
#include "scheduler_priv.h"

#define SCHED_BUCKETS_MIN 256
#define SCHED_CLAIM_WAIT 5          /* seconds hold/delete wait for an
                                     * attempt under way to end */

struct sched_item {
    char id[QUEUE_ID_MAX];
    time_t due;
    unsigned long seq;          /* FIFO among equal due times */
    size_t heap_pos;            /* SCHED_NOT_IN_HEAP when out of it */
    int held;
    int quarantined;
    int busy;                   /* claimed by a worker or by hold */
    int kick;                   /* flushed while busy: due at once after */
    struct sched_item *next;    /* hash chain */
};

#define SCHED_NOT_IN_HEAP SIZE_MAX

struct scheduler {
    queue *q;
    dispatch *d;                /* NULL: transports run on the workers */
    int nworkers;
    pthread_t *threads;
    int started;

    pthread_mutex_t lock;
    pthread_cond_t work;
    pthread_cond_t idle;
    struct sched_item **buckets;
    size_t nbuckets, count;
    struct sched_item **heap;
    size_t heap_len, heap_cap;
    unsigned long seq;
    int running;
    unsigned long active_limit;  /* st.active may not reach it */
    struct scheduler_stats st;
};

/* ---- index: hash table ---- */

static size_t
scheduler_hash(const char *id, size_t nbuckets)
{
    uint64_t h = 14695981039346656037ULL;   /* FNV-1a */

    for (; *id != '\0'; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    return (size_t)(h % nbuckets);
}

static struct sched_item *
scheduler_find(const scheduler *s, const char *id)
{
    struct sched_item *it = s->buckets[scheduler_hash(id, s->nbuckets)];

    while (it != NULL && strcmp(it->id, id) != 0)
        it = it->next;
    return it;
}

static void
scheduler_rehash(scheduler *s)
{
    size_t n = s->nbuckets * 2;
    struct sched_item **b = calloc(n, sizeof(*b));

    if (b == NULL)
        return;                 /* longer chains, still correct */
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct sched_item *it = s->buckets[i], *next;

        for (; it != NULL; it = next) {
            size_t h = scheduler_hash(it->id, n);

            next = it->next;
            it->next = b[h];
            b[h] = it;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

static void
scheduler_unlink(scheduler *s, struct sched_item *it)
{
    struct sched_item **p = &s->buckets[scheduler_hash(it->id, s->nbuckets)];

    while (*p != it)
        p = &(*p)->next;
    *p = it->next;
    s->count--;
}

/* ---- heap of deliverable items ---- */

static int
scheduler_before(const struct sched_item *a, const struct sched_item *b)
{
    return a->due != b->due ? a->due < b->due : a->seq < b->seq;
}

static void
scheduler_heap_set(scheduler *s, size_t i, struct sched_item *it)
{
    s->heap[i] = it;
    it->heap_pos = i;
}

static void
scheduler_sift_up(scheduler *s, size_t i)
{
    struct sched_item *it = s->heap[i];

    while (i > 0 && scheduler_before(it, s->heap[(i - 1) / 2])) {
        scheduler_heap_set(s, i, s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    scheduler_heap_set(s, i, it);
}

static void
scheduler_sift_down(scheduler *s, size_t i)
{
    struct sched_item *it = s->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= s->heap_len)
            break;
        if (c + 1 < s->heap_len && scheduler_before(s->heap[c + 1], s->heap[c]))
            c++;
        if (!scheduler_before(s->heap[c], it))
            break;
        scheduler_heap_set(s, i, s->heap[c]);
        i = c;
    }
    scheduler_heap_set(s, i, it);
}

static int
scheduler_heap_push(scheduler *s, struct sched_item *it)
{
    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : SCHED_BUCKETS_MIN;
        struct sched_item **h = realloc(s->heap, cap * sizeof(*h));

        if (h == NULL)
            return MODMTA_E_NOMEM;
        s->heap = h;
        s->heap_cap = cap;
    }
    scheduler_heap_set(s, s->heap_len++, it);
    scheduler_sift_up(s, it->heap_pos);
    return 0;
}

static void
scheduler_heap_remove(scheduler *s, struct sched_item *it)
{
    size_t i = it->heap_pos;
    struct sched_item *last;

    if (i == SCHED_NOT_IN_HEAP)
        return;
    it->heap_pos = SCHED_NOT_IN_HEAP;
    if (i == --s->heap_len)
        return;
    /* The last item fills the hole and moves whichever way it must. */
    last = s->heap[s->heap_len];
    scheduler_heap_set(s, i, last);
    scheduler_sift_down(s, i);
    scheduler_sift_up(s, last->heap_pos);
}

/* Put an item where its flags say it belongs, and wake a worker for it. */
static void
scheduler_place(scheduler *s, struct sched_item *it)
{
    if (it->busy || it->held || it->quarantined ||
        it->heap_pos != SCHED_NOT_IN_HEAP)
        return;
    if (scheduler_heap_push(s, it) < 0) {
        /* Stays in the index: the next flush or restart retries it. */
        modmta_logf(MODMTA_LOG_ERR, "%s: scheduler: out of memory", it->id);
        return;
    }
    pthread_cond_signal(&s->work);
}

/* ---- items ---- */

/* The item for id, created (due now) if missing; NULL out of memory. */
static struct sched_item *
scheduler_insert(scheduler *s, const char *id, int *created_r)
{
    struct sched_item *it = scheduler_find(s, id);
    size_t h;

    *created_r = 0;
    if (it != NULL)
        return it;
    if ((it = calloc(1, sizeof(*it))) == NULL)
        return NULL;
    snprintf(it->id, sizeof(it->id), "%s", id);
    it->seq = s->seq++;
    it->heap_pos = SCHED_NOT_IN_HEAP;
    h = scheduler_hash(id, s->nbuckets);
    it->next = s->buckets[h];
    s->buckets[h] = it;
    if (++s->count > 2 * s->nbuckets)
        scheduler_rehash(s);
    *created_r = 1;
    return it;
}

static void
scheduler_drop(scheduler *s, struct sched_item *it)
{
    scheduler_heap_remove(s, it);
    scheduler_unlink(s, it);
    free(it);
}

/* Wait (a while) until no one else holds the item, then claim it (hold,
 * delete). NULL if the message is not (or no longer) in the index, or,
 * with *busy_r set, still being delivered after SCHED_CLAIM_WAIT seconds:
 * an attempt may wait long for a slow destination, and the control
 * socket (one thread) must not wait with it. */
static struct sched_item *
scheduler_claim(scheduler *s, const char *id, int *busy_r)
{
    struct sched_item *it;
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SCHED_CLAIM_WAIT;
    *busy_r = 0;
    while ((it = scheduler_find(s, id)) != NULL && it->busy)
        if (pthread_cond_timedwait(&s->idle, &s->lock, &until) != 0 &&
            (it = scheduler_find(s, id)) != NULL && it->busy) {
            *busy_r = 1;
            return NULL;
        }
    if (it != NULL) {
        it->busy = 1;
        scheduler_heap_remove(s, it);
    }
    return it;
}

static void
scheduler_unclaim(scheduler *s, struct sched_item *it)
{
    it->busy = 0;
    if (it->kick) {
        it->kick = 0;
        it->due = 0;
    }
    scheduler_place(s, it);
    pthread_cond_broadcast(&s->idle);
}

/* ---- public ---- */

scheduler *
scheduler_new(queue *q, int workers, modmta_err *err_r)
{
    scheduler *s = calloc(1, sizeof(*s));

    if (workers < 0) {
        modmta_err_set(err_r, "$.queue.workers", "must not be negative");
        free(s);
        return NULL;
    }
    if (s == NULL ||
        (s->buckets = calloc(SCHED_BUCKETS_MIN, sizeof(*s->buckets))) == NULL ||
        (workers > 0 &&
         (s->threads = calloc((size_t)workers, sizeof(pthread_t))) == NULL)) {
        modmta_err_set(err_r, NULL, "scheduler: out of memory");
        if (s != NULL)
            free(s->buckets);
        free(s);
        return NULL;
    }
    s->q = q;
    s->nworkers = workers;
    s->active_limit = 10000;
    s->nbuckets = SCHED_BUCKETS_MIN;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->idle, NULL);
    return s;
}

void
scheduler_set_dispatch(scheduler *s, dispatch *d)
{
    s->d = d;
}

void
scheduler_set_active_limit(scheduler *s, unsigned long n)
{
    pthread_mutex_lock(&s->lock);
    s->active_limit = n > 0 ? n : 1;
    pthread_mutex_unlock(&s->lock);
}

/* No more messages may be taken until an attempt ends (lock held). */
static int
scheduler_full(const scheduler *s)
{
    return s->st.active >= s->active_limit;
}

static int
scheduler_load_one(const queue_env *env, void *arg)
{
    scheduler *s = arg;
    struct sched_item *it;
    int created;

    pthread_mutex_lock(&s->lock);
    it = scheduler_insert(s, env->id, &created);
    if (it != NULL && created) {
        it->due = env->next_retry;
        it->held = env->held;
        it->quarantined = env->quarantine != NULL;
        scheduler_place(s, it);
    }
    pthread_mutex_unlock(&s->lock);
    if (it == NULL)
        modmta_logf(MODMTA_LOG_ERR, "%s: scheduler: out of memory", env->id);
    return 0;
}

static int
scheduler_wait_work(scheduler *s)
{
    struct timespec ts = {0, 0};

    if (s->heap_len == 0)
        return pthread_cond_wait(&s->work, &s->lock);
    ts.tv_sec = s->heap[0]->due;
    return pthread_cond_timedwait(&s->work, &s->lock, &ts);
}

static void
scheduler_attempt_done(void *arg, const char *id,
                       const struct deliver_outcome *out)
{
    scheduler_done(arg, id, out);
}

static void *
scheduler_worker(void *arg)
{
    scheduler *s = arg;
    char id[QUEUE_ID_MAX];

    for (;;) {
        if (scheduler_take(s, time(NULL), id)) {
            /* Returns once the message's local deliveries are done; its
             * transports' jobs end the attempt later. */
            deliver_start(s->q, s->d, id, scheduler_attempt_done, s);
            continue;
        }
        pthread_mutex_lock(&s->lock);
        if (s->running && scheduler_full(s))
            pthread_cond_wait(&s->work, &s->lock);
        else if (s->running &&
                 (s->heap_len == 0 || s->heap[0]->due > time(NULL)))
            scheduler_wait_work(s);
        if (!s->running) {
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        pthread_mutex_unlock(&s->lock);
    }
}

int
scheduler_start(scheduler *s)
{
    int rc = queue_foreach(s->q, scheduler_load_one, s);
    size_t count;

    if (rc < 0)
        return rc;
    pthread_mutex_lock(&s->lock);
    s->running = 1;
    count = s->count;
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->nworkers; i++) {
        if (pthread_create(&s->threads[i], NULL, scheduler_worker, s) != 0) {
            modmta_logf(MODMTA_LOG_ERR, "scheduler: cannot start worker %d",
                        i);
            scheduler_stop(s);
            return MODMTA_E_NOMEM;
        }
        s->started = i + 1;
    }
    modmta_logf(MODMTA_LOG_INFO, "scheduler: %zu queued, %d workers",
                count, s->nworkers);
    return 0;
}

int
scheduler_take(scheduler *s, time_t now, char id_r[QUEUE_ID_MAX])
{
    struct sched_item *it = NULL;

    pthread_mutex_lock(&s->lock);
    if (s->running && !scheduler_full(s) && s->heap_len > 0 &&
        s->heap[0]->due <= now) {
        it = s->heap[0];
        scheduler_heap_remove(s, it);
        it->busy = 1;
        s->st.active++;
        memcpy(id_r, it->id, QUEUE_ID_MAX);
    }
    pthread_mutex_unlock(&s->lock);
    return it != NULL;
}

static void
scheduler_count(scheduler *s, const struct deliver_outcome *out)
{
    if (scheduler_full(s))
        pthread_cond_signal(&s->work);  /* a worker may take again */
    s->st.active--;
    s->st.delivered += out->delivered;
    s->st.deferred += out->deferred;
    s->st.bounced += out->bounced;
    s->st.dsn_sent += out->dsn_sent;
}

void
scheduler_done(scheduler *s, const char *id,
               const struct deliver_outcome *out)
{
    struct sched_item *it;

    pthread_mutex_lock(&s->lock);
    scheduler_count(s, out);
    it = scheduler_find(s, id);         /* busy: nobody else drops it */
    switch (out->result) {
    case DELIVER_REMOVED:
    case DELIVER_GONE:
        scheduler_drop(s, it);
        pthread_cond_broadcast(&s->idle);
        it = NULL;
        break;
    case DELIVER_RETRY:
        it->due = out->next_retry;
        break;
    case DELIVER_HELD:
        it->held = 1;
        break;
    case DELIVER_QUARANTINED:
        it->quarantined = 1;
        break;
    }
    if (it != NULL)
        scheduler_unclaim(s, it);
    pthread_mutex_unlock(&s->lock);
    if (out->dsn_id[0] != '\0')
        scheduler_submit(s, out->dsn_id);
}

void
scheduler_submit(scheduler *s, const char *id)
{
    struct sched_item *it;
    int created;

    pthread_mutex_lock(&s->lock);
    it = scheduler_insert(s, id, &created);
    if (it != NULL) {
        if (created)
            s->st.received++;
        else if (it->heap_pos != SCHED_NOT_IN_HEAP && it->due != 0) {
            it->due = 0;
            scheduler_sift_up(s, it->heap_pos);
        }
        scheduler_place(s, it);
    }
    pthread_mutex_unlock(&s->lock);
    if (it == NULL)
        modmta_logf(MODMTA_LOG_ERR,
                    "%s: scheduler: out of memory, delivery at restart", id);
}

void
scheduler_flush(scheduler *s)
{
    if (s->d != NULL)
        dispatch_flush(s->d);
    pthread_mutex_lock(&s->lock);
    for (size_t b = 0; b < s->nbuckets; b++) {
        for (struct sched_item *it = s->buckets[b]; it; it = it->next) {
            if (it->busy)
                it->kick = !it->held && !it->quarantined;
            else
                it->due = 0;
        }
    }
    /* Every key in the heap became 0: order by seq again. */
    for (size_t i = s->heap_len / 2; i-- > 0;)
        scheduler_sift_down(s, i);
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
}

int
scheduler_delete(scheduler *s, const char *id)
{
    struct sched_item *it;

    int busy;

    pthread_mutex_lock(&s->lock);
    it = scheduler_claim(s, id, &busy);
    if (it != NULL) {
        scheduler_drop(s, it);
        pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->lock);
    return it != NULL ? 0 : busy ? MODMTA_E_TEMP : MODMTA_E_NOTFOUND;
}

/* The envelope is changed with the message claimed, so that no worker
 * writes it back meanwhile. Release also lifts a quarantine: both mean
 * "an administrator looked at it, deliver it". */
static int
scheduler_hold_env(scheduler *s, const char *id, int hold)
{
    queue_env *env = NULL;
    int rc = queue_load(s->q, id, &env);

    if (rc < 0)
        return rc;
    if (!env->held != !hold || (!hold && env->quarantine != NULL)) {
        env->held = hold;
        if (!hold) {
            free(env->quarantine);
            env->quarantine = NULL;
        }
        rc = queue_update_or_fail(s->q, env);
    }
    queue_env_free(env);
    return rc;
}

int
scheduler_hold(scheduler *s, const char *id, int hold)
{
    struct sched_item *it;
    int rc, claimed, created = 0, busy;

    pthread_mutex_lock(&s->lock);
    it = scheduler_claim(s, id, &busy);
    claimed = it != NULL;
    pthread_mutex_unlock(&s->lock);
    if (busy)
        return MODMTA_E_TEMP;

    rc = scheduler_hold_env(s, id, hold);

    pthread_mutex_lock(&s->lock);
    if (!claimed && rc == 0)
        it = scheduler_insert(s, id, &created);
    if (claimed && rc == MODMTA_E_NOTFOUND) {
        scheduler_drop(s, it);
        pthread_cond_broadcast(&s->idle);
    } else if (it != NULL) {
        scheduler_heap_remove(s, it);   /* its key may change */
        if (rc == 0) {
            it->held = hold;
            if (!hold) {
                it->quarantined = 0;
                it->due = 0;
            }
        }
        if (claimed)
            scheduler_unclaim(s, it);
        else if (!it->busy)
            scheduler_place(s, it);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void
scheduler_get_stats(scheduler *s, struct scheduler_stats *st)
{
    pthread_mutex_lock(&s->lock);
    *st = s->st;
    st->in_queue = s->count;
    pthread_mutex_unlock(&s->lock);
}

void
scheduler_stop(scheduler *s)
{
    pthread_mutex_lock(&s->lock);
    s->running = 0;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->started; i++)
        pthread_join(s->threads[i], NULL);
    s->started = 0;
}

void
scheduler_free(scheduler *s)
{
    if (s == NULL)
        return;
    scheduler_stop(s);
    for (size_t b = 0; b < s->nbuckets; b++) {
        struct sched_item *it = s->buckets[b], *next;

        for (; it != NULL; it = next) {
            next = it->next;
            free(it);
        }
    }
    free(s->buckets);
    free(s->heap);
    free(s->threads);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    free(s);
}
