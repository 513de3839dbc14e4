/*
 * The connection cache: idle sessions by destination, reused after an
 * RSET, closed when idle too long or connected too long ago (Postfix's
 * smtp_connection_cache_time_limit and smtp_connection_reuse_time_limit).
 *
 * One mutex guards the list and the counters; nothing does I/O under it
 * (RSET and QUIT happen on sessions taken out of the list). A reaper
 * thread, started by the first put, sleeps on a condition variable until
 * the next expiry and closes what expired, so an idle connection does not
 * hold a server's slot long after the last message.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtpc_priv.h"

struct smtpc_cache_entry {
    struct smtpc_cache_entry *next;
    char *key;
    smtpc_session *s;
    long long idle_since;          /* CLOCK_MONOTONIC ms */
};

struct smtpc_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* the reaper's: a put, or stop */
    struct smtpc_cache_entry *head; /* newest first */
    int idle_ms, max_age_ms;
    int reaper_started, stop;
    pthread_t reaper;
    unsigned long opened, reused;
};

static long long smtpc_cache_expiry(const smtpc_cache *c,
                                    const struct smtpc_cache_entry *e);
static struct smtpc_cache_entry *smtpc_cache_expired(smtpc_cache *c,
                                                     long long now,
                                                     long long *next_r);
static void smtpc_cache_close_all(struct smtpc_cache_entry *e);
static void *smtpc_cache_reap(void *arg);

smtpc_cache *
smtpc_cache_new(int idle_ms, int max_age_ms)
{
    smtpc_cache *c = calloc(1, sizeof(*c));
    pthread_condattr_t ca;

    if (c == NULL)
        return NULL;
    c->idle_ms = idle_ms;
    c->max_age_ms = max_age_ms;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    return c;
}

/* When e must be closed: idle too long, or connected too long ago. */
static long long
smtpc_cache_expiry(const smtpc_cache *c, const struct smtpc_cache_entry *e)
{
    long long idle = e->idle_since + c->idle_ms;
    long long age = e->s->opened_ms + c->max_age_ms;

    return idle < age ? idle : age;
}

/* Unlink the entries expired at now (mutex held); *next_r: the earliest
 * expiry left, or -1. */
static struct smtpc_cache_entry *
smtpc_cache_expired(smtpc_cache *c, long long now, long long *next_r)
{
    struct smtpc_cache_entry **pp = &c->head, *e, *out = NULL;
    long long when;

    *next_r = -1;
    while ((e = *pp) != NULL) {
        when = smtpc_cache_expiry(c, e);
        if (when <= now) {
            *pp = e->next;
            e->next = out;
            out = e;
            continue;
        }
        if (*next_r < 0 || when < *next_r)
            *next_r = when;
        pp = &e->next;
    }
    return out;
}

/* QUIT and free a list of entries (no mutex held). */
static void
smtpc_cache_close_all(struct smtpc_cache_entry *e)
{
    struct smtpc_cache_entry *next;

    for (; e != NULL; e = next) {
        next = e->next;
        smtpc_close(e->s);
        free(e->key);
        free(e);
    }
}

static void *
smtpc_cache_reap(void *arg)
{
    smtpc_cache *c = arg;
    struct smtpc_cache_entry *dead;
    struct timespec ts;
    long long next;

    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        dead = smtpc_cache_expired(c, smtpc_now_ms(), &next);
        if (dead != NULL) {
            pthread_mutex_unlock(&c->mu);
            smtpc_cache_close_all(dead);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (next < 0) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        ts.tv_sec = (time_t)(next / 1000);
        ts.tv_nsec = (long)(next % 1000) * 1000000L;
        (void)pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

void
smtpc_cache_count_open(smtpc_cache *c)
{
    pthread_mutex_lock(&c->mu);
    c->opened++;
    pthread_mutex_unlock(&c->mu);
}

smtpc_session *
smtpc_cache_get(smtpc_cache *c, const char *key)
{
    struct smtpc_cache_entry **pp, *e, *dead;
    struct smtpc_reply r;
    smtpc_session *s;
    long long next;

    for (;;) {
        pthread_mutex_lock(&c->mu);
        dead = smtpc_cache_expired(c, smtpc_now_ms(), &next);
        for (pp = &c->head; (e = *pp) != NULL; pp = &e->next)
            if (strcmp(e->key, key) == 0)
                break;
        if (e != NULL)
            *pp = e->next;
        pthread_mutex_unlock(&c->mu);
        smtpc_cache_close_all(dead);
        if (e == NULL)
            return NULL;
        s = e->s;
        free(e->key);
        free(e);
        /* the server may have closed it meanwhile: RSET tells */
        memset(&r, 0, sizeof(r));
        if (smtpc_rset(s, &r) == SMTPC_OK) {
            smtpc_reply_clear(&r);
            pthread_mutex_lock(&c->mu);
            c->reused++;
            pthread_mutex_unlock(&c->mu);
            return s;
        }
        smtpc_reply_clear(&r);
        smtpc_close(s);
    }
}

void
smtpc_cache_put(smtpc_cache *c, const char *key, smtpc_session *s)
{
    struct smtpc_cache_entry *e;
    long long now = smtpc_now_ms();

    if (!smtpc_usable(s) || now - s->opened_ms >= c->max_age_ms
        || (e = calloc(1, sizeof(*e))) == NULL) {
        smtpc_close(s);
        return;
    }
    if ((e->key = strdup(key)) == NULL) {
        free(e);
        smtpc_close(s);
        return;
    }
    e->s = s;
    e->idle_since = now;
    pthread_mutex_lock(&c->mu);
    e->next = c->head;
    c->head = e;
    if (!c->reaper_started
        && pthread_create(&c->reaper, NULL, smtpc_cache_reap, c) == 0)
        c->reaper_started = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void
smtpc_cache_stats(smtpc_cache *c, unsigned long *opened_r,
                  unsigned long *reused_r)
{
    pthread_mutex_lock(&c->mu);
    *opened_r = c->opened;
    *reused_r = c->reused;
    pthread_mutex_unlock(&c->mu);
}

void
smtpc_cache_free(smtpc_cache *c)
{
    struct smtpc_cache_entry *all;

    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->reaper_started)
        pthread_join(c->reaper, NULL);
    all = c->head;
    c->head = NULL;
    smtpc_cache_close_all(all);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
