/*
 * Delivery of one queued message (deliver.c), called by a scheduler
 * worker that owns the message for the duration of the call.
 *
 * Every pending recipient goes through the current generation's deliver
 * chain. The envelope on disk is updated after each recipient whose state
 * became final, so a crash at any point redelivers only the recipients
 * still pending. Failed recipients get one RFC 3464 DSN (never to <>);
 * a message with nothing pending is removed; one past queue.lifetime has
 * its pending recipients failed with 4.4.7; anything else is rescheduled
 * with exponential back-off.
 */
#ifndef MODMTA_CORE_DELIVER_H
#define MODMTA_CORE_DELIVER_H

#include <time.h>

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

/* Deliver message `id` now. Never fails as such: every problem becomes an
 * outcome (an I/O error is a DELIVER_RETRY). */
void deliver_message(queue *q, const char *id, struct deliver_outcome *out);

/* Delay before the next attempt once `attempts` attempts were made (>= 1):
 * retry_min doubled per further attempt, capped at retry_max, never less
 * than retry_min (nor than 1 second). */
long deliver_backoff(int attempts, long retry_min, long retry_max);

#endif
