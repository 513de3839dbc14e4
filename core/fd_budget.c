/*
 * The descriptor budget. See fd_budget.h.
 */
#include <limits.h>
#include <stdio.h>
#include <sys/resource.h>

#include "config.h"
#include "fd_budget.h"

long
fd_budget_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    return rl.rlim_cur > LONG_MAX ? LONG_MAX : (long)rl.rlim_cur;
}

long
fd_budget_reserve(long nofile, long workers, long outbound_workers)
{
    long r = 128 + 4 * (workers + outbound_workers);

    if (r < nofile / 10)
        r = nofile / 10;
    if (r > nofile / 2)
        r = nofile / 2;
    return r;
}

int
fd_budget_over(int fd, const struct config *cfg, char *why, size_t len)
{
    long nofile = fd_budget_nofile(), reserve;

    if (nofile <= 0)
        return 0;
    reserve = fd_budget_reserve(nofile, cfg->queue.workers,
                                cfg->queue.outbound_workers);
    if (fd < nofile - reserve)
        return 0;
    snprintf(why, len, "too many open files (descriptor %d of limit %ld, "
             "reserve %ld)", fd, nofile, reserve);
    return 1;
}
