/*
 * Hook time budgets (not installed). The chain gives each budgeted hook
 * call a deadline (budget_begin ... budget_end, on the calling thread);
 * a module reads it through its ctx (modmta_ctx_deadline), and the
 * SDK's own waits that have no ctx at hand (Redis, DNS, connections)
 * read it from the thread: a hook runs on one thread, start to end.
 *
 * A helper cuts its own deadline with budget_cut(); when a wait of its
 * ends for time it calls budget_spent(), which says whether the hook's
 * deadline was what stopped it and then records that for budget_end.
 * Outside a budgeted call (delivery, verbs, a module's own thread) there
 * is no deadline and both are no-ops, unless the thread set one of its
 * own with budget_set (a tool's loop that must end in time: modmtactl
 * reload --cluster).
 */
#ifndef MODMTA_BUDGET_PRIV_H
#define MODMTA_BUDGET_PRIV_H

#include <modmta/ctx.h>

/* CLOCK_MONOTONIC in milliseconds: the clock of every deadline here. */
long long budget_now_ms(void);
/* A budgeted hook call starts on this thread with ctx; deadline_ms 0:
 * none. */
void budget_begin(modmta_ctx *ctx, long long deadline_ms);
/* It returned: clears the deadline; 1 if a helper ran out of it. */
int budget_end(modmta_ctx *ctx);
/* Outside a hook call: this thread's waits end by deadline_ms as a
 * hook's would (0: none again). */
void budget_set(long long deadline_ms);
/* deadline_ms, or the running hook's deadline if that is earlier. */
long long budget_cut(long long deadline_ms);
/* After a wait ended for time: 1 (and noted) if the running hook's
 * deadline has passed, 0 otherwise (the helper's own timeout). */
int budget_spent(void);

#endif
