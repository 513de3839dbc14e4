/*
 * What pickup does with the recipients a local session refused (as
 * Postfix's pickup and cleanup do): a 5xx is bounced to the sender with
 * a DSN made by the queue's DSN code (core/dsn.c), a 4xx is kept in a
 * new maildrop file for the next scan.
 */
#ifndef MODMTA_CORE_PICKUP_BOUNCE_H
#define MODMTA_CORE_PICKUP_BOUNCE_H

#include <sys/types.h>
#include <time.h>

#include "queue.h"
#include "scheduler.h"
#include "submit_client.h"

struct pickup_refusal {
    char addr[512];
    int code;                    /* 0: the line could not be parsed */
    const char *reply;           /* "550 5.1.1 ..." inside the line */
};

/* Split one submit_result refusal line ("<addr>: 550 5.1.1 ..."). */
void pickup_refusal_parse(const char *line, struct pickup_refusal *out);

/* Queue one DSN to m's sender reporting rcpts[i] failed with replies[i]
 * (arrival: when the file was written). 0 when it was queued or the
 * sender is <> (nothing to tell), <0 when it could not be. */
int pickup_bounce(queue *q, scheduler *sched, const char *hostname,
                  long lifetime, const struct submit_msg *m, time_t arrival,
                  char *const *rcpts, char *const *replies, size_t n);

#endif
