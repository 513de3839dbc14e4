/*
 * ratelimit: the client_connections gauge (see ratelimit.h).
 *
 * One mutex guards the list and the renewer's state; no store call is
 * made under it (a store may take its whole timeout). The renewer marks
 * the place it is renewing busy and drops the mutex for the call;
 * ratelimit_conn_leave waits until its place is not busy before
 * unlinking it, so the renewer never touches a freed session, and the
 * instance (whose destroy joins the renewer) outlives every call.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ratelimit.h"

struct ratelimit_conns {
    const modmta_host *h;
    modmta_shared *s;
    long ttl_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* stop; a renewal done (busy cleared) */
    struct ratelimit_conn *head;
    int started, stop;
    pthread_t renewer;
};

static long long
ratelimit_conn_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct ratelimit_conns *
ratelimit_conns_new(const modmta_host *h, long ttl_ms)
{
    struct ratelimit_conns *cs = calloc(1, sizeof(*cs));
    pthread_condattr_t ca;

    if (cs == NULL)
        return NULL;
    cs->h = h;
    cs->s = modmta_host_shared(h);
    cs->ttl_ms = ttl_ms;
    pthread_mutex_init(&cs->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cs->cv, &ca);
    pthread_condattr_destroy(&ca);
    return cs;
}

void
ratelimit_conns_free(struct ratelimit_conns *cs)
{
    if (cs == NULL)
        return;
    pthread_mutex_lock(&cs->mu);
    cs->stop = 1;
    pthread_cond_broadcast(&cs->cv);
    pthread_mutex_unlock(&cs->mu);
    if (cs->started)
        pthread_join(cs->renewer, NULL);
    pthread_cond_destroy(&cs->cv);
    pthread_mutex_destroy(&cs->mu);
    free(cs);
}

/* Renew every place once (mutex held, dropped for each call): a place
 * whose member expired meanwhile (a store outage longer than the TTL)
 * joins again, whatever the limit. The number of renewals that failed,
 * *err_r the last error. */
static int
ratelimit_conn_round(struct ratelimit_conns *cs, int *err_r)
{
    struct ratelimit_conn *c;
    int r, failed = 0;

    for (c = cs->head; c != NULL && !cs->stop; c = c->next) {
        c->busy = 1;
        pthread_mutex_unlock(&cs->mu);
        r = modmta_shared_gauge_join(cs->s, c->key, c->member, 0,
                                     cs->ttl_ms, NULL);
        pthread_mutex_lock(&cs->mu);
        c->busy = 0;
        if (r < 0) {
            failed++;
            *err_r = r;
        }
        pthread_cond_broadcast(&cs->cv);
    }
    return failed;
}

static void *
ratelimit_conn_renew(void *arg)
{
    struct ratelimit_conns *cs = arg;
    long long next = ratelimit_conn_now_ms() + cs->ttl_ms / 3;
    struct timespec ts;
    int failed, err = 0;

    pthread_mutex_lock(&cs->mu);
    while (!cs->stop) {
        if (ratelimit_conn_now_ms() < next) {
            ts.tv_sec = (time_t)(next / 1000);
            ts.tv_nsec = (long)(next % 1000) * 1000000L;
            (void)pthread_cond_timedwait(&cs->cv, &cs->mu, &ts);
            continue;
        }
        if ((failed = ratelimit_conn_round(cs, &err)) > 0)
            modmta_log_host(cs->h, MODMTA_LOG_WARN, "ratelimit: store "
                            "error: limit=client_connections renewals=%d "
                            "error=\"%s\" (retried)", failed,
                            modmta_strerror(err));
        next = ratelimit_conn_now_ms() + cs->ttl_ms / 3;
    }
    pthread_mutex_unlock(&cs->mu);
    return NULL;
}

int
ratelimit_conn_join(struct ratelimit_conns *cs, struct ratelimit_conn *c,
                    long long max, long long *count_r)
{
    int r = modmta_shared_gauge_join(cs->s, c->key, c->member, max,
                                     cs->ttl_ms, count_r);

    if (r != 1)
        return r;
    pthread_mutex_lock(&cs->mu);
    if (!cs->started) {
        if (pthread_create(&cs->renewer, NULL, ratelimit_conn_renew,
                           cs) != 0)
            r = MODMTA_E_NOMEM;
        else
            cs->started = 1;
    }
    if (r == 1) {
        c->prev = NULL;
        c->next = cs->head;
        if (cs->head != NULL)
            cs->head->prev = c;
        cs->head = c;
        c->linked = 1;
    }
    pthread_mutex_unlock(&cs->mu);
    if (r < 0)
        (void)modmta_shared_gauge_leave(cs->s, c->key, c->member);
    return r;
}

int
ratelimit_conn_leave(struct ratelimit_conns *cs, struct ratelimit_conn *c)
{
    if (!c->linked)
        return 0;
    pthread_mutex_lock(&cs->mu);
    while (c->busy)
        pthread_cond_wait(&cs->cv, &cs->mu);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        cs->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->linked = 0;
    pthread_mutex_unlock(&cs->mu);
    return modmta_shared_gauge_leave(cs->s, c->key, c->member);
}
