/*
 * Scheduler and delivery workers (scheduler.c, deliver.c). The scheduler
 * keeps an in-memory index of queued message IDs with their next attempt
 * time, hands due ones to a pool of worker threads (one message to one
 * worker at a time), and re-reads the queue at start (recovery). A
 * message stays claimed until its attempt ends, which for transports'
 * deliveries happens later, on an outbound thread (deliver.h).
 * Delivery runs each pending recipient through the current generation's
 * deliver chain; DEFERRED retries with exponential back-off between
 * queue.retry_min and queue.retry_max; FAILED, or older than
 * queue.lifetime, queues an RFC 3464 DSN to the sender (never to <>).
 */
#ifndef MODMTA_CORE_SCHEDULER_H
#define MODMTA_CORE_SCHEDULER_H

#include "dispatch.h"
#include "queue.h"

typedef struct scheduler scheduler;

struct scheduler_stats {
    unsigned long received, delivered, deferred, bounced, dsn_sent,
        in_queue, active;
};

scheduler *scheduler_new(queue *q, int workers, modmta_err *err_r);
/* Transports' deliveries go to d (before scheduler_start); without one
 * they run on the message workers. flush also clears d's down marks. */
void scheduler_set_dispatch(scheduler *s, dispatch *d);
/* At most n messages in delivery at once (claimed and not given back:
 * attempts waiting for outbound deliveries count), Postfix's
 * qmgr_message_active_limit; default 10000. */
void scheduler_set_active_limit(scheduler *s, unsigned long n);
/* Load the queue (recovered messages included) and start the workers. */
int scheduler_start(scheduler *s);
/* A message was just committed: deliver it now. */
void scheduler_submit(scheduler *s, const char *id);
/* Everything not held becomes due now (modmtactl flush). */
void scheduler_flush(scheduler *s);
/* Forget a message (after delete); waits a few seconds if an attempt
 * holds it: MODMTA_E_TEMP if it still does (nothing changed). */
int scheduler_delete(scheduler *s, const char *id);
/* Hold or release; MODMTA_E_TEMP as for delete. */
int scheduler_hold(scheduler *s, const char *id, int hold);
void scheduler_get_stats(scheduler *s, struct scheduler_stats *st);
/* Stop handing out work, let running deliveries finish, join. */
void scheduler_stop(scheduler *s);
void scheduler_free(scheduler *s);

#endif
