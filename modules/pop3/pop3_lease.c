/*
 * pop3: mailbox leases (see pop3_lease.h).
 *
 * One mutex guards the list and the renewer's state; no store call is
 * made under it (a store may take its whole timeout). The renewer marks
 * the lease it is renewing busy and drops the mutex for the call;
 * pop3_lease_drop waits until its lease is not busy before unlinking
 * it, so the renewer never touches a freed lease, and the instance
 * (whose destroy joins the renewer) outlives every call.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pop3_lease.h"

struct pop3_lease {
    struct pop3_lease *prev, *next;
    char *key;
    char *owner;
    int busy; /* the renewer is renewing it now */
    int lost; /* a renewal found it held by another owner */
};

struct pop3_leases {
    const modmta_host *h;
    modmta_shared *s;
    long ttl_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* stop; a renewal done (busy cleared) */
    struct pop3_lease *head;
    int started, stop;
    pthread_t renewer;
};

static long long
pop3_lease_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct pop3_leases *
pop3_leases_new(const modmta_host *h, long ttl_ms)
{
    struct pop3_leases *ls = calloc(1, sizeof(*ls));
    pthread_condattr_t ca;

    if (ls == NULL)
        return NULL;
    ls->h = h;
    ls->s = modmta_host_shared(h);
    ls->ttl_ms = ttl_ms;
    pthread_mutex_init(&ls->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ls->cv, &ca);
    pthread_condattr_destroy(&ca);
    return ls;
}

void
pop3_leases_free(struct pop3_leases *ls)
{
    if (ls == NULL)
        return;
    pthread_mutex_lock(&ls->mu);
    ls->stop = 1;
    pthread_cond_broadcast(&ls->cv);
    pthread_mutex_unlock(&ls->mu);
    if (ls->started)
        pthread_join(ls->renewer, NULL);
    pthread_cond_destroy(&ls->cv);
    pthread_mutex_destroy(&ls->mu);
    free(ls);
}

/* One round over the leases (mutex held, dropped for each call); the
 * number of renewals that failed for a store error, *err_r the last. */
static int
pop3_lease_round(struct pop3_leases *ls, int *err_r)
{
    struct pop3_lease *l;
    int r, failed = 0;

    for (l = ls->head; l != NULL && !ls->stop; l = l->next) {
        l->busy = 1;
        pthread_mutex_unlock(&ls->mu);
        r = modmta_shared_lease(ls->s, l->key, l->owner, ls->ttl_ms);
        pthread_mutex_lock(&ls->mu);
        l->busy = 0;
        if (r == 0)
            l->lost = 1;
        if (r < 0) {
            failed++;
            *err_r = r;
        }
        pthread_cond_broadcast(&ls->cv);
    }
    return failed;
}

static void *
pop3_lease_renew(void *arg)
{
    struct pop3_leases *ls = arg;
    long long next = pop3_lease_now_ms() + ls->ttl_ms / 3;
    struct timespec ts;
    int failed, err = 0;

    pthread_mutex_lock(&ls->mu);
    while (!ls->stop) {
        if (pop3_lease_now_ms() < next) {
            ts.tv_sec = (time_t)(next / 1000);
            ts.tv_nsec = (long)(next % 1000) * 1000000L;
            (void)pthread_cond_timedwait(&ls->cv, &ls->mu, &ts);
            continue;
        }
        if ((failed = pop3_lease_round(ls, &err)) > 0)
            modmta_log_host(ls->h, MODMTA_LOG_WARN, "pop3 lease renewal "
                            "failed leases=%d error=\"%s\"", failed,
                            modmta_strerror(err));
        /* from the end of the round: a slow store does not make the
         * rounds follow each other at once */
        next = pop3_lease_now_ms() + ls->ttl_ms / 3;
    }
    pthread_mutex_unlock(&ls->mu);
    return NULL;
}

static void
pop3_lease_free(struct pop3_lease *l)
{
    if (l == NULL)
        return;
    free(l->key);
    free(l->owner);
    free(l);
}

/* Link l in and start the renewer if need be (mutex held). */
static int
pop3_lease_link(struct pop3_leases *ls, struct pop3_lease *l)
{
    if (!ls->started) {
        if (pthread_create(&ls->renewer, NULL, pop3_lease_renew, ls) != 0)
            return MODMTA_E_NOMEM;
        ls->started = 1;
    }
    l->next = ls->head;
    if (ls->head != NULL)
        ls->head->prev = l;
    ls->head = l;
    return 0;
}

int
pop3_lease_take(struct pop3_leases *ls, const char *key, const char *owner,
                struct pop3_lease **lease_r)
{
    struct pop3_lease *l = calloc(1, sizeof(*l));
    int r;

    *lease_r = NULL;
    if (l == NULL || (l->key = strdup(key)) == NULL ||
        (l->owner = strdup(owner)) == NULL) {
        pop3_lease_free(l);
        return MODMTA_E_NOMEM;
    }
    if ((r = modmta_shared_lease(ls->s, key, owner, ls->ttl_ms)) != 1) {
        pop3_lease_free(l);
        return r;
    }
    pthread_mutex_lock(&ls->mu);
    r = pop3_lease_link(ls, l);
    pthread_mutex_unlock(&ls->mu);
    if (r < 0) {
        (void)modmta_shared_release(ls->s, key, owner);
        pop3_lease_free(l);
        return r;
    }
    *lease_r = l;
    return 1;
}

int
pop3_lease_held(struct pop3_leases *ls, const struct pop3_lease *l)
{
    int lost;

    pthread_mutex_lock(&ls->mu);
    lost = l->lost;
    pthread_mutex_unlock(&ls->mu);
    return !lost;
}

int
pop3_lease_confirm(struct pop3_leases *ls, struct pop3_lease *l)
{
    int r;

    if (!pop3_lease_held(ls, l))
        return 0;
    r = modmta_shared_lease(ls->s, l->key, l->owner, ls->ttl_ms);
    if (r == 0) {
        pthread_mutex_lock(&ls->mu);
        l->lost = 1;
        pthread_mutex_unlock(&ls->mu);
    }
    return r;
}

void
pop3_lease_drop(struct pop3_leases *ls, struct pop3_lease *l)
{
    int r;

    if (l == NULL)
        return;
    pthread_mutex_lock(&ls->mu);
    while (l->busy)
        pthread_cond_wait(&ls->cv, &ls->mu);
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        ls->head = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    pthread_mutex_unlock(&ls->mu);
    /* a lost lease is someone else's: the owner check leaves it be */
    r = modmta_shared_release(ls->s, l->key, l->owner);
    if (r < 0)
        modmta_log_host(ls->h, MODMTA_LOG_WARN, "pop3 lease release "
                        "failed key=%s error=\"%s\" (it expires by itself)",
                        l->key, modmta_strerror(r));
    pop3_lease_free(l);
}
