/*
 * The scheduler's worker protocol, exposed for unit tests: a worker
 * claims a due message with scheduler_take, delivers it, and gives it
 * back with scheduler_done. A scheduler made with 0 workers runs no
 * threads, so a test drives these by hand with the clock it chooses.
 */
#ifndef MODMTA_CORE_SCHEDULER_PRIV_H
#define MODMTA_CORE_SCHEDULER_PRIV_H

#include "deliver.h"
#include "scheduler.h"

/* Claim the message that is due at `now` and was due first (FIFO among
 * equals); it stays claimed until scheduler_done. 1 with its ID in id_r,
 * 0 when nothing is due. Never blocks. */
int scheduler_take(scheduler *s, time_t now, char id_r[QUEUE_ID_MAX]);
/* Give back a message claimed by scheduler_take, with what the attempt
 * did to it; a DSN it queued is submitted. */
void scheduler_done(scheduler *s, const char *id,
                    const struct deliver_outcome *out);

#endif
