/*
 * The descriptor budget: RLIMIT_NOFILE less a reserve kept for what is
 * not a session (queue commits, maps, deliveries, the control socket,
 * modules' connections). Sessions and the spool file each SMTP
 * transaction holds must stay below it; see docs/architecture.md.
 */
#ifndef MODMTA_CORE_FD_BUDGET_H
#define MODMTA_CORE_FD_BUDGET_H

#include <stddef.h>

struct config;

/* RLIMIT_NOFILE now (an operator may change it with prlimit), 0 if
 * unlimited. */
long fd_budget_nofile(void);
/* The reserve for a limit of nofile descriptors. */
long fd_budget_reserve(long nofile, long workers, long outbound_workers);
/* 1 if descriptor fd (just opened) lies in the reserve of cfg's budget,
 * why then names the descriptor, the limit and the reserve. The kernel
 * hands out the lowest free number: a descriptor this high means at
 * least that many are open. */
int fd_budget_over(int fd, const struct config *cfg, char *why,
                   size_t len);

#endif
