/*
 * Delivery of one queued message (deliver.c, deliver_job.c,
 * deliver_result.c), started by a scheduler worker that owns the message
 * until the attempt's completion callback has run.
 *
 * Every pending recipient goes through the current generation's deliver
 * chain (chain_route): a module's deliver() delivers it at once on the
 * calling thread (store_mbox); a transport's route() claims it, and the
 * recipients a transport claims are grouped by destination and envelope
 * sender into jobs for the outbound dispatcher (dispatch.h), which runs
 * deliver_msg() on its threads. When the last job is done the attempt is
 * finished: the envelope is saved once, DSNs are queued (never to <>), a
 * message with nothing pending is removed, one past queue.lifetime has
 * its pending recipients failed with 4.4.7, anything else is rescheduled
 * with exponential back-off. A crash at any point redelivers only what
 * the envelope on disk still has pending.
 */
#ifndef MODMTA_CORE_DELIVER_H
#define MODMTA_CORE_DELIVER_H

#include <time.h>

#include <modmta/ctx.h>

#include "dispatch.h"
#include "generation.h"
#include "queue.h"

/* Retry delay used when no generation is installed or the envelope cannot
 * be read or written (an I/O problem, not the message's fault). */
#define DELIVER_RETRY_ERROR 60

enum deliver_result {
    DELIVER_REMOVED = 0,   /* done: the message left the queue */
    DELIVER_RETRY,         /* still queued: try again at next_retry */
    DELIVER_HELD,          /* held (modmtactl hold): wait for release */
    DELIVER_QUARANTINED,   /* quarantined: never delivered */
    DELIVER_GONE,          /* no such message (deleted meanwhile) */
};

struct deliver_outcome {
    enum deliver_result result;
    time_t next_retry;          /* DELIVER_RETRY only */
    char dsn_id[QUEUE_ID_MAX];  /* a DSN queued by this attempt, or "" */
    unsigned long delivered, deferred, bounced, dsn_sent; /* recipients */
};

/* Called once per attempt, on the thread that finished it. */
typedef void deliver_done_fn(void *arg, const char *id,
                             const struct deliver_outcome *out);

/* Start an attempt on message `id`. Jobs for transports go to d; d NULL
 * runs them here, in order, before returning. done(arg, ...) runs exactly
 * once: before return when nothing was handed to d, else on a dispatcher
 * thread (or the one stopping it). Never fails as such: every problem
 * becomes an outcome (an I/O error is a DELIVER_RETRY). */
void deliver_start(queue *q, dispatch *d, const char *id,
                   deliver_done_fn *done, void *arg);

/* Deliver message `id` now, every job on this thread (deliver_start with
 * no dispatcher), and return the outcome in *out. */
void deliver_message(queue *q, const char *id, struct deliver_outcome *out);

/* The effective envelope sender of r ("" for <>). */
const char *deliver_rcpt_sender(const queue_env *env, const queue_rcpt *r);

/* A delivery ctx for env's message (its content at path) with g's core
 * host: queue ID, sender, arrival, crash flag, content, MAIL parameters,
 * notes. NULL out of memory. */
modmta_ctx *deliver_ctx_for(const generation *g, const queue_env *env,
                            const char *path, const char *sender);

/* Delay before the next attempt once `attempts` attempts were made (>= 1):
 * retry_min doubled per further attempt, capped at retry_max, never less
 * than retry_min (nor than 1 second). */
long deliver_backoff(int attempts, long retry_min, long retry_max);

#endif
