/*
 * Stress mode. See stress.h.
 */
#include <stdatomic.h>

#include <modmta/log.h>

#include "stress.h"

static atomic_int stress_on;

/* 1 if active is at pct percent of bound or more (leave: below 90 % of
 * that, so a table hovering at the threshold does not flap). */
static int
stress_over(unsigned long active, long bound, long pct, int on)
{
    unsigned long long mark;

    if (bound <= 0)
        return 0;
    mark = (unsigned long long)bound * (unsigned long long)pct;
    if (on)
        mark = mark * 9 / 10;
    return (unsigned long long)active * 100 >= mark;
}

void
stress_update(unsigned long active, long max_sessions, unsigned long fds,
              long fd_budget, long threshold_pct)
{
    int was = atomic_load(&stress_on), now;

    now = threshold_pct > 0 &&
          (stress_over(active, max_sessions, threshold_pct, was) ||
           stress_over(fds, fd_budget, threshold_pct, was));
    if (now == was)
        return;
    atomic_store(&stress_on, now);
    modmta_logf(MODMTA_LOG_WARN, "stress: %s sessions=%lu max_sessions=%ld "
                "descriptors=%lu descriptor_budget=%ld threshold=%ld%%",
                now ? "on" : "off", active, max_sessions, fds, fd_budget,
                threshold_pct);
}

int
stress_active(void)
{
    return atomic_load(&stress_on);
}

long
stress_timeout(long base, long stress_s)
{
    if (stress_active() && stress_s > 0 && stress_s < base)
        return stress_s;
    return base;
}
