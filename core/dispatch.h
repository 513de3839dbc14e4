/*
 * The outbound dispatcher (dispatch.c): per-destination job queues and
 * the pool of outbound threads that run them.
 *
 * A job is one deliver_msg() call: a group of recipients of one message
 * for one destination ("instance/dest"). Jobs of a destination run in
 * the order they came, at most `limit` at once (the limit given with the
 * job that created the destination's entry, queue.destination_concurrency
 * of its generation); destinations take turns, so a busy or slow one
 * never starves the others. A destination marked down (a job found no
 * server to talk to) has its waiting and new jobs skipped — completed at
 * once as deferred, with the reason it went down — until the mark
 * expires or dispatch_flush(). Threads start on demand, up to the
 * maximum, and live until dispatch_stop().
 *
 * Every job ends in exactly one of its three callbacks, on an outbound
 * thread (or the thread calling dispatch_stop for cancel): run (deliver
 * it), skip (its destination is down), cancel (the dispatcher stops).
 *
 * Lock: the dispatcher's mutex guards every field; it is never held
 * while a callback runs.
 */
#ifndef MODMTA_CORE_DISPATCH_H
#define MODMTA_CORE_DISPATCH_H

#include <signal.h>

#include <modmta/err.h>

#define DISPATCH_KEY_MAX 300    /* octets of a destination key */

typedef struct dispatch dispatch;

struct dispatch_ops {
    void (*run)(void *job);
    void (*skip)(void *job, const char *reason);
    void (*cancel)(void *job);
};

struct dispatch_stats {
    unsigned long threads, running, waiting, destinations, down;
};

dispatch *dispatch_new(int max_threads, modmta_err *err_r);
/* Queue a job for destination `key` (at most 300 characters). 0, or
 * MODMTA_E_STATE once stopped, MODMTA_E_LIMIT when 100 jobs per unit of
 * `limit` already wait for that destination, MODMTA_E_NOMEM: the caller
 * then owns the job still (no callback will run). */
int dispatch_submit(dispatch *d, const char *key, int limit,
                    const struct dispatch_ops *ops, void *job);
/* Mark `key` down for `seconds` with `reason` (copied). */
void dispatch_mark_down(dispatch *d, const char *key, long seconds,
                        const char *reason);
/* Forget every down mark (modmtactl flush: retry everything now). */
void dispatch_flush(dispatch *d);
/* Set while the dispatcher stops: running deliveries watch it through
 * their connections and give up within about a second. */
const volatile sig_atomic_t *dispatch_interrupt(dispatch *d);
void dispatch_get_stats(dispatch *d, struct dispatch_stats *st);
/* Stop: waiting jobs are cancelled, running ones interrupted and waited
 * for, threads joined. Idempotent. */
void dispatch_stop(dispatch *d);
void dispatch_free(dispatch *d);

#endif
