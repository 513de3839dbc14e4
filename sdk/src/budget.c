/*
 * Hook time budgets: see budget_priv.h.
 */
#include <time.h>

#include "budget_priv.h"
#include "ctx_priv.h"

/* The budgeted call running on this thread. */
struct budget_call {
    long long deadline_ms;      /* 0: none */
    int spent;                  /* a helper ran out of it */
};

static _Thread_local struct budget_call budget_call;

long long
budget_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
budget_begin(modmta_ctx *ctx, long long deadline_ms)
{
    ctx->deadline_ms = deadline_ms;
    budget_call.deadline_ms = deadline_ms;
    budget_call.spent = 0;
}

int
budget_end(modmta_ctx *ctx)
{
    int spent = budget_call.spent;

    ctx->deadline_ms = 0;
    budget_call.deadline_ms = 0;
    budget_call.spent = 0;
    return spent;
}

void
budget_set(long long deadline_ms)
{
    budget_call.deadline_ms = deadline_ms;
    budget_call.spent = 0;
}

long long
budget_cut(long long deadline_ms)
{
    long long d = budget_call.deadline_ms;

    return d != 0 && d < deadline_ms ? d : deadline_ms;
}

int
budget_spent(void)
{
    if (budget_call.deadline_ms == 0 ||
        budget_now_ms() < budget_call.deadline_ms)
        return 0;
    budget_call.spent = 1;
    return 1;
}

int64_t
modmta_ctx_deadline(const modmta_ctx *ctx)
{
    return ctx != NULL ? ctx->deadline_ms : 0;
}

int
modmta_ctx_time_left(const modmta_ctx *ctx, int max_ms)
{
    long long left;

    if (max_ms < 0)
        max_ms = 0;
    if (ctx == NULL || ctx->deadline_ms == 0)
        return max_ms;
    left = ctx->deadline_ms - budget_now_ms();
    if (left <= 0)
        return 0;
    return left < max_ms ? (int)left : max_ms;
}
