/*
 * The outbound dispatcher: see dispatch.h.
 *
 * Destinations live in a hash table by key. One with waiting jobs that
 * may run one now (fewer than `limit` running, or down: its jobs are
 * skipped at once) is on the ready list, a FIFO; a thread takes the
 * first destination of the list, its first job, and puts the destination
 * back at the tail if it is still ready: destinations take turns.
 * A destination with nothing waiting, nothing running and no down mark
 * is freed; one that is only down stays until its mark expires (checked
 * when it is looked up, and by a sweep every DISPATCH_SWEEP submits).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modmta/log.h>

#include "dispatch.h"

#define DISPATCH_STACK (512 * 1024)
#define DISPATCH_BUCKETS 256
#define DISPATCH_SWEEP 1024
/* Jobs that may wait per unit of a destination's concurrency: beyond,
 * dispatch_submit refuses (a slow destination cannot fill memory). */
#define DISPATCH_WAIT_PER_SLOT 100

struct dispatch_job {
    const struct dispatch_ops *ops;
    void *job;
    struct dispatch_job *next;
};

struct dispatch_dest {
    char key[DISPATCH_KEY_MAX + 1];
    int limit;
    int running;
    struct dispatch_job *head, *tail;   /* waiting, FIFO */
    size_t nwaiting;
    time_t down_until;                  /* 0: up */
    char *down_reason;
    int ready;                          /* on the ready list */
    struct dispatch_dest *ready_next;
    struct dispatch_dest *hnext;        /* hash chain */
};

struct dispatch {
    pthread_mutex_t lock;
    pthread_cond_t work;                /* ready list not empty, or stop */
    struct dispatch_dest *buckets[DISPATCH_BUCKETS];
    struct dispatch_dest *ready_head, *ready_tail;
    pthread_t *threads;
    int max_threads, nthreads, idle_threads;
    int wakeups;                        /* signals idle threads have not
                                         * taken yet: they are not idle */
    unsigned long running, waiting, ndest, submits;
    int stopping;
    volatile sig_atomic_t interrupt;
};

static size_t
dispatch_hash(const char *key)
{
    uint64_t h = 14695981039346656037ULL;   /* FNV-1a */

    for (; *key != '\0'; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ULL;
    return (size_t)(h % DISPATCH_BUCKETS);
}

static struct dispatch_dest *
dispatch_find(dispatch *d, const char *key)
{
    struct dispatch_dest *e = d->buckets[dispatch_hash(key)];

    while (e != NULL && strcmp(e->key, key) != 0)
        e = e->hnext;
    return e;
}

static int
dispatch_is_down(struct dispatch_dest *e, time_t now)
{
    if (e->down_until != 0 && e->down_until <= now) {
        e->down_until = 0;
        free(e->down_reason);
        e->down_reason = NULL;
    }
    return e->down_until != 0;
}

/* Can a thread take a job of e now? */
static int
dispatch_can_run(struct dispatch_dest *e, time_t now)
{
    return e->head != NULL &&
           (e->running < e->limit || dispatch_is_down(e, now));
}

static void dispatch_kick(dispatch *d);

static void
dispatch_make_ready(dispatch *d, struct dispatch_dest *e)
{
    if (e->ready || !dispatch_can_run(e, time(NULL)))
        return;
    e->ready = 1;
    e->ready_next = NULL;
    if (d->ready_tail != NULL)
        d->ready_tail->ready_next = e;
    else
        d->ready_head = e;
    d->ready_tail = e;
    dispatch_kick(d);
}

/* Free e if nothing refers to it any more (it is not on the ready list:
 * only destinations with waiting jobs are). */
static void
dispatch_maybe_drop(dispatch *d, struct dispatch_dest *e)
{
    struct dispatch_dest **p;

    if (e->head != NULL || e->running > 0 || e->ready ||
        dispatch_is_down(e, time(NULL)))
        return;
    for (p = &d->buckets[dispatch_hash(e->key)]; *p != e; p = &(*p)->hnext)
        ;
    *p = e->hnext;
    free(e->down_reason);
    free(e);
    d->ndest--;
}

static void
dispatch_sweep(dispatch *d)
{
    for (size_t b = 0; b < DISPATCH_BUCKETS; b++) {
        struct dispatch_dest *e = d->buckets[b], *next;

        for (; e != NULL; e = next) {
            next = e->hnext;
            dispatch_maybe_drop(d, e);
        }
    }
}

static struct dispatch_job *
dispatch_pop(struct dispatch_dest *e)
{
    struct dispatch_job *j = e->head;

    e->head = j->next;
    if (e->head == NULL)
        e->tail = NULL;
    e->nwaiting--;
    return j;
}

/* The next job a thread may take, with its destination, or NULL. A down
 * destination's job comes with *reason_r (a copy): skip it. */
static struct dispatch_job *
dispatch_take(dispatch *d, struct dispatch_dest **e_r, char **reason_r)
{
    struct dispatch_dest *e;
    struct dispatch_job *j;
    time_t now = time(NULL);

    while ((e = d->ready_head) != NULL) {
        d->ready_head = e->ready_next;
        if (d->ready_head == NULL)
            d->ready_tail = NULL;
        e->ready = 0;
        if (!dispatch_can_run(e, now))
            continue;               /* its limit was reached meanwhile */
        j = dispatch_pop(e);
        d->waiting--;
        *reason_r = NULL;
        if (dispatch_is_down(e, now))
            *reason_r = strdup(e->down_reason != NULL ? e->down_reason
                                                      : "destination down");
        e->running++;
        d->running++;
        dispatch_make_ready(d, e);
        *e_r = e;
        return j;
    }
    return NULL;
}

static void
dispatch_done(dispatch *d, struct dispatch_dest *e)
{
    e->running--;
    d->running--;
    dispatch_make_ready(d, e);
    dispatch_maybe_drop(d, e);
}

static void *
dispatch_thread(void *arg)
{
    dispatch *d = arg;
    struct dispatch_dest *e;
    struct dispatch_job *j;
    char *reason;

    pthread_mutex_lock(&d->lock);
    for (;;) {
        if (d->stopping)
            break;
        j = dispatch_take(d, &e, &reason);
        if (j == NULL) {
            d->idle_threads++;
            pthread_cond_wait(&d->work, &d->lock);
            d->idle_threads--;
            if (d->wakeups > 0)
                d->wakeups--;
            continue;
        }
        /* More work ready: another thread takes it, not this one later. */
        dispatch_kick(d);
        pthread_mutex_unlock(&d->lock);
        if (reason != NULL)
            j->ops->skip(j->job, reason);
        else
            j->ops->run(j->job);
        free(reason);
        free(j);
        pthread_mutex_lock(&d->lock);
        dispatch_done(d, e);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

dispatch *
dispatch_new(int max_threads, modmta_err *err_r)
{
    dispatch *d = calloc(1, sizeof(*d));

    if (d == NULL || max_threads < 1 ||
        (d->threads = calloc((size_t)max_threads, sizeof(pthread_t))) ==
            NULL) {
        modmta_err_set(err_r, "$.queue.outbound_workers",
                       max_threads < 1 ? "must be at least 1"
                                       : "out of memory");
        free(d);
        return NULL;
    }
    d->max_threads = max_threads;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->work, NULL);
    return d;
}

/* One more thread, up to the maximum. */
static void
dispatch_grow(dispatch *d)
{
    pthread_attr_t attr;

    if (d->nthreads >= d->max_threads)
        return;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, DISPATCH_STACK);
    if (pthread_create(&d->threads[d->nthreads], &attr, dispatch_thread,
                       d) == 0)
        d->nthreads++;
    else if (d->nthreads == 0)
        modmta_logf(MODMTA_LOG_ERR, "dispatch: cannot start a thread");
    pthread_attr_destroy(&attr);
}

/* Work is ready: wake an idle thread no signal is on its way to yet,
 * else start one. Counting the signals in flight matters: a signalled
 * thread still counts as idle until it runs, and a burst of jobs would
 * otherwise wait for the few threads that happened to be idle. */
static void
dispatch_kick(dispatch *d)
{
    if (d->ready_head == NULL || d->stopping)
        return;
    if (d->idle_threads > d->wakeups) {
        d->wakeups++;
        pthread_cond_signal(&d->work);
        return;
    }
    dispatch_grow(d);
}

int
dispatch_submit(dispatch *d, const char *key, int limit,
                const struct dispatch_ops *ops, void *job)
{
    struct dispatch_job *j;
    struct dispatch_dest *e;
    size_t h;

    if (strlen(key) > DISPATCH_KEY_MAX)
        return MODMTA_E_INVAL;
    if ((j = calloc(1, sizeof(*j))) == NULL)
        return MODMTA_E_NOMEM;
    j->ops = ops;
    j->job = job;
    pthread_mutex_lock(&d->lock);
    if (d->stopping) {
        pthread_mutex_unlock(&d->lock);
        free(j);
        return MODMTA_E_STATE;
    }
    if ((e = dispatch_find(d, key)) == NULL) {
        if ((e = calloc(1, sizeof(*e))) == NULL) {
            pthread_mutex_unlock(&d->lock);
            free(j);
            return MODMTA_E_NOMEM;
        }
        memcpy(e->key, key, strlen(key) + 1);
        h = dispatch_hash(key);
        e->hnext = d->buckets[h];
        d->buckets[h] = e;
        d->ndest++;
    }
    e->limit = limit > 0 ? limit : 1;
    if (e->nwaiting >= (size_t)e->limit * DISPATCH_WAIT_PER_SLOT) {
        pthread_mutex_unlock(&d->lock);
        free(j);
        return MODMTA_E_LIMIT;
    }
    if (e->tail != NULL)
        e->tail->next = j;
    else
        e->head = j;
    e->tail = j;
    e->nwaiting++;
    d->waiting++;
    dispatch_make_ready(d, e);
    if (++d->submits % DISPATCH_SWEEP == 0)
        dispatch_sweep(d);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

void
dispatch_mark_down(dispatch *d, const char *key, long seconds,
                   const char *reason)
{
    struct dispatch_dest *e;
    char *copy = strdup(reason != NULL ? reason : "destination down");

    pthread_mutex_lock(&d->lock);
    e = dispatch_find(d, key);
    if (e != NULL && copy != NULL) {
        free(e->down_reason);
        e->down_reason = copy;
        copy = NULL;
        e->down_until = time(NULL) + (seconds > 0 ? seconds : 1);
        modmta_logf(MODMTA_LOG_NOTICE, "destination %s down for %lds: %s",
                    key, seconds, e->down_reason);
        dispatch_make_ready(d, e);  /* its waiting jobs are skipped now */
    }
    pthread_mutex_unlock(&d->lock);
    free(copy);
}

void
dispatch_flush(dispatch *d)
{
    pthread_mutex_lock(&d->lock);
    for (size_t b = 0; b < DISPATCH_BUCKETS; b++) {
        for (struct dispatch_dest *e = d->buckets[b]; e; e = e->hnext) {
            if (e->down_until != 0)
                e->down_until = 1;      /* expired: cleared when seen */
        }
    }
    dispatch_sweep(d);
    pthread_mutex_unlock(&d->lock);
}

const volatile sig_atomic_t *
dispatch_interrupt(dispatch *d)
{
    return &d->interrupt;
}

void
dispatch_get_stats(dispatch *d, struct dispatch_stats *st)
{
    time_t now = time(NULL);

    pthread_mutex_lock(&d->lock);
    st->threads = (unsigned long)d->nthreads;
    st->running = d->running;
    st->waiting = d->waiting;
    st->destinations = d->ndest;
    st->down = 0;
    for (size_t b = 0; b < DISPATCH_BUCKETS; b++)
        for (struct dispatch_dest *e = d->buckets[b]; e; e = e->hnext)
            st->down += e->down_until > now;
    pthread_mutex_unlock(&d->lock);
}

/* Take every waiting job off its destination (lock held); the caller
 * cancels them with the lock released. */
static struct dispatch_job *
dispatch_drain(dispatch *d)
{
    struct dispatch_job *all = NULL, *j;

    for (size_t b = 0; b < DISPATCH_BUCKETS; b++) {
        for (struct dispatch_dest *e = d->buckets[b]; e; e = e->hnext) {
            while (e->head != NULL) {
                j = dispatch_pop(e);
                d->waiting--;
                j->next = all;
                all = j;
            }
            e->ready = 0;
        }
    }
    d->ready_head = d->ready_tail = NULL;
    return all;
}

void
dispatch_stop(dispatch *d)
{
    struct dispatch_job *jobs, *next;
    int n;

    pthread_mutex_lock(&d->lock);
    d->stopping = 1;
    d->interrupt = 1;
    jobs = dispatch_drain(d);
    pthread_cond_broadcast(&d->work);
    n = d->nthreads;
    d->nthreads = 0;
    pthread_mutex_unlock(&d->lock);
    for (; jobs != NULL; jobs = next) {
        next = jobs->next;
        jobs->ops->cancel(jobs->job);
        free(jobs);
    }
    for (int i = 0; i < n; i++)
        pthread_join(d->threads[i], NULL);
}

void
dispatch_free(dispatch *d)
{
    if (d == NULL)
        return;
    dispatch_stop(d);
    for (size_t b = 0; b < DISPATCH_BUCKETS; b++) {
        struct dispatch_dest *e = d->buckets[b], *next;

        for (; e != NULL; e = next) {
            next = e->hnext;
            free(e->down_reason);
            free(e);
        }
    }
    free(d->threads);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->work);
    free(d);
}
