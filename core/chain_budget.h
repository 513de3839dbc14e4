/*
 * Hook time budgets of the chain's instances (chain_budget.c).
 *
 * Every module entry may carry "hook_timeout" (how long one call of its
 * hooks may take: "500ms", "2s", "1m", or an integer of seconds; 1 ms to
 * 1 h, default 30 s) and "on_hook_timeout" ("tempfail", the default, or
 * "continue"). The chain starts a timer before each budgeted call, which
 * also sets the call's deadline in the ctx and on the thread
 * (budget_priv.h); when the call returns it is timed on CLOCK_MONOTONIC:
 * a slow one is logged, one that ended after its deadline (or whose SDK
 * waits ran out of it) has its verdict replaced by on_hook_timeout's.
 */
#ifndef MODMTA_CORE_CHAIN_BUDGET_H
#define MODMTA_CORE_CHAIN_BUDGET_H

#include <jansson.h>

#include <modmta/module.h>

#include "config.h"

#define CHAIN_BUDGET_DEFAULT_MS 30000LL
#define CHAIN_BUDGET_MAX_MS 3600000LL

enum chain_on_timeout {
    CHAIN_ON_TIMEOUT_TEMPFAIL = 0,
    CHAIN_ON_TIMEOUT_CONTINUE = 1,
};

struct chain_budget {
    long long timeout_ms;
    enum chain_on_timeout on_timeout;
};

/* One budgeted call in progress. */
struct chain_timer {
    long long start_ms;
    long long deadline_ms;
};

/* The budget of the module entry el at path ("$.modules[2]"): the two
 * keys, or their defaults. 0, or -1 with the errors in errs. */
int chain_budget_parse(const json_t *el, const char *path,
                       struct chain_budget *b, struct config_errors *errs);

/* Before the call: its deadline into ctx and onto this thread. */
void chain_budget_start(const struct chain_budget *b, modmta_ctx *ctx,
                        struct chain_timer *t);
/* After it, while ctx still names the instance: clears the deadline and
 * logs a slow call or one over its budget, naming hook. 1 if it overran
 * (then the verdict must be discarded), else 0. notify: the hook's
 * verdict is not used anyway (on_queued, on_disconnect, on_auth). */
int chain_budget_stop(const struct chain_budget *b, modmta_ctx *ctx,
                      const struct chain_timer *t, const char *hook,
                      int notify);
/* What replaces the verdict of a call that overran: CONTINUE (reply
 * cleared; always for a notification), or TEMPFAIL with 451 4.3.0. */
modmta_verdict chain_budget_verdict(const struct chain_budget *b,
                                    modmta_ctx *ctx, int notify);

#endif
