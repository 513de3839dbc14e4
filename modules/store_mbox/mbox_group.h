/*
 * store_mbox: group commit of appends to one mailbox.
 *
 * Delivery threads that want the same mailbox at the same moment do not
 * take the locks and fsync one after the other: the first becomes the
 * leader, takes every request queued for that mailbox, and appends them
 * all under one pair of locks and one fsync (mbox_write_batch); the
 * others wait for their result. One busy mailbox (an archive fed by
 * always_bcc, a list's, the benchmark's) then costs one lock and one
 * fsync per batch instead of per message. Requests for other mailboxes
 * never wait for each other, except when they hash to the same stripe.
 */
#ifndef STORE_MBOX_MBOX_GROUP_H
#define STORE_MBOX_MBOX_GROUP_H

#include <stddef.h>
#include <time.h>

#include "mbox_write.h"

/* One append request and, once done, its result. */
struct mbox_job {
    const mbox_write_req *req;
    char *why;              /* may be NULL */
    size_t whylen;
    int rc;                 /* as mbox_write_append() returns */
    /* private to mbox_group.c */
    struct timespec deadline;
    int state;
    struct mbox_job *next;
};

/* The most requests one leader appends under one lock. */
#define MBOX_GROUP_MAX 64

/* Append job->req, alone or in a batch with others for the same
 * mailbox; returns job->rc. A request still waiting for the leader's
 * turn at deadline (CLOCK_MONOTONIC) gives MODMTA_E_TIMEOUT; one a
 * leader has taken is always waited for (the leader's own waits are
 * bounded by its deadline). */
int mbox_group_append(struct mbox_job *job, const struct timespec *deadline);

#endif
