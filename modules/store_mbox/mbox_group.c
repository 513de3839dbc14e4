/*
 * store_mbox: group commit of appends to one mailbox (see mbox_group.h).
 *
 * Mailboxes are hashed into stripes; each stripe has a queue of waiting
 * jobs and at most one leader at work. The file locks, taken by the
 * leader, still exclude other processes (mutt, s-nail, Dovecot, pop3).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <modmta/err.h>

#include "mbox_group.h"

#define MBOX_GROUP_STRIPES 256

enum { MBOX_JOB_QUEUED, MBOX_JOB_TAKEN, MBOX_JOB_DONE };

struct mbox_stripe {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a batch ended */
    int busy;               /* a leader is appending */
    struct mbox_job *head;  /* queued jobs, oldest first */
};

static struct mbox_stripe mbox_group_stripes[MBOX_GROUP_STRIPES];
static pthread_once_t mbox_group_once = PTHREAD_ONCE_INIT;

static void
mbox_group_init(void)
{
    pthread_condattr_t ca;
    size_t i;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (i = 0; i < MBOX_GROUP_STRIPES; i++) {
        pthread_mutex_init(&mbox_group_stripes[i].mu, NULL);
        pthread_cond_init(&mbox_group_stripes[i].cv, &ca);
    }
    pthread_condattr_destroy(&ca);
}

static struct mbox_stripe *
mbox_group_stripe(const char *mailbox)
{
    unsigned h = 2166136261u;

    pthread_once(&mbox_group_once, mbox_group_init);
    for (; *mailbox; mailbox++)
        h = (h ^ (unsigned char)*mailbox) * 16777619u;
    return &mbox_group_stripes[h % MBOX_GROUP_STRIPES];
}

/* With st->mu held. */
static void
mbox_group_enqueue(struct mbox_stripe *st, struct mbox_job *job)
{
    struct mbox_job **p = &st->head;

    while (*p != NULL)
        p = &(*p)->next;
    job->next = NULL;
    job->state = MBOX_JOB_QUEUED;
    *p = job;
}

/* With st->mu held. */
static void
mbox_group_unlink(struct mbox_stripe *st, struct mbox_job *job)
{
    struct mbox_job **p = &st->head;

    while (*p != NULL && *p != job)
        p = &(*p)->next;
    if (*p != NULL)
        *p = job->next;
}

/* With st->mu held: move leader's job, then the other queued jobs for
 * its mailbox, oldest first, into batch; returns how many. */
static size_t
mbox_group_take(struct mbox_stripe *st, struct mbox_job *leader,
                struct mbox_job **batch)
{
    struct mbox_job **p = &st->head;
    size_t n = 1;

    mbox_group_unlink(st, leader);
    leader->state = MBOX_JOB_TAKEN;
    batch[0] = leader;
    while (*p != NULL && n < MBOX_GROUP_MAX) {
        if (strcmp((*p)->req->mailbox, leader->req->mailbox) == 0) {
            batch[n] = *p;
            batch[n++]->state = MBOX_JOB_TAKEN;
            *p = (*p)->next;
        } else {
            p = &(*p)->next;
        }
    }
    return n;
}

/* Wait to lead or to be done; 1 to lead, 0 done, <0 timed out. */
static int
mbox_group_wait(struct mbox_stripe *st, struct mbox_job *job,
                const struct timespec *deadline)
{
    for (;;) {
        if (job->state == MBOX_JOB_DONE)
            return 0;
        if (job->state == MBOX_JOB_QUEUED && !st->busy)
            return 1;
        if (job->state == MBOX_JOB_TAKEN) {
            pthread_cond_wait(&st->cv, &st->mu);
        } else if (pthread_cond_timedwait(&st->cv, &st->mu, deadline) ==
                       ETIMEDOUT && job->state == MBOX_JOB_QUEUED &&
                   st->busy) {
            mbox_group_unlink(st, job);
            return -1;
        }
    }
}

/* The latest deadline of a batch: the leader may be the job with the
 * least time left; the others must not fail early because of it. */
static const struct timespec *
mbox_group_latest(struct mbox_job *const *batch, size_t n)
{
    const struct timespec *t = &batch[0]->deadline;
    size_t i;

    for (i = 1; i < n; i++)
        if (batch[i]->deadline.tv_sec > t->tv_sec ||
            (batch[i]->deadline.tv_sec == t->tv_sec &&
             batch[i]->deadline.tv_nsec > t->tv_nsec))
            t = &batch[i]->deadline;
    return t;
}

int
mbox_group_append(struct mbox_job *job, const struct timespec *deadline)
{
    struct mbox_stripe *st = mbox_group_stripe(job->req->mailbox);
    struct mbox_job *batch[MBOX_GROUP_MAX];
    size_t n, i;
    int w;

    job->deadline = *deadline;
    pthread_mutex_lock(&st->mu);
    mbox_group_enqueue(st, job);
    w = mbox_group_wait(st, job, deadline);
    if (w <= 0) {
        pthread_mutex_unlock(&st->mu);
        if (w < 0) {
            if (job->why != NULL && job->whylen > 0)
                snprintf(job->why, job->whylen,
                         "mailbox %s busy in this process", job->req->mailbox);
            job->rc = MODMTA_E_TIMEOUT;
        }
        return job->rc;
    }
    st->busy = 1;
    n = mbox_group_take(st, job, batch);
    pthread_mutex_unlock(&st->mu);
    mbox_write_batch(batch, n, mbox_group_latest(batch, n));
    pthread_mutex_lock(&st->mu);
    for (i = 0; i < n; i++)
        batch[i]->state = MBOX_JOB_DONE;
    st->busy = 0;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return job->rc;
}
