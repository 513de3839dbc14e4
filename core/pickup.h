/*
 * Pickup (pickup.c): the maildrop's files, left by modmta-sendmail while
 * the daemon was down, fed one by one to a local session through a
 * socketpair, at start and every local_submission.pickup_interval
 * seconds. The uid is the file's owner (fstat of the open descriptor).
 * A file is removed once queued; recipients refused with a 4xx go to a
 * new file for the next scan (pickup_bounce.h), those refused with a 5xx
 * are bounced to the sender; a 4xx for the whole message leaves the file
 * for the next scan (up to queue.lifetime after it was written); a file
 * that cannot be trusted or read is renamed NAME.bad and logged. See docs/architecture.md.
 */
#ifndef MODMTA_CORE_PICKUP_H
#define MODMTA_CORE_PICKUP_H

#include <modmta/err.h>

#include "config.h"
#include "queue.h"
#include "scheduler.h"
#include "submit.h"

typedef struct pickup pickup;

/* Start the scanning thread on cfg's maildrop (which submit_start made).
 * max_size: the largest message taken (0: limits.message_size's "no
 * limit", then 1 GiB); the file may be 64 KiB larger (its envelope).
 * q and sched: where the bounces of refused recipients are queued. */
pickup *pickup_start(const struct config *cfg, long long max_size,
                     queue *q, scheduler *sched, local_session_fn fn,
                     void *arg, modmta_err *err_r);
/* Stop (a file being fed finishes first) and free. NULL is a no-op. */
void pickup_stop(pickup *p);

#endif
