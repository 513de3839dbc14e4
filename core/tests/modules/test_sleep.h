/*
 * Sleeping in the test modules' hooks (script.c, transport.c), for the
 * hook time budget tests.
 */
#ifndef MODMTA_TEST_SLEEP_H
#define MODMTA_TEST_SLEEP_H

#include <time.h>

#include <modmta/ctx.h>

static inline void
test_sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (ms > 0 && nanosleep(&ts, &ts) < 0)
        ;
}

/* Until just past the running call's deadline; at once without one. */
static inline void
test_sleep_past_deadline(modmta_ctx *ctx)
{
    struct timespec now;

    if (modmta_ctx_deadline(ctx) == 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    test_sleep_ms(modmta_ctx_deadline(ctx) + 5 -
                  ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000));
}

#endif
