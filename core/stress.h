/*
 * Stress mode: the session table is nearly full (limits.stress_threshold
 * percent of max_sessions, or descriptors in use at that percent of the
 * descriptor budget), and sessions cut their timeouts to
 * limits.stress_timeout so idle clients cannot starve new ones. One flag, written by the listener (under its session table
 * mutex), read by any session thread.
 */
#ifndef MODMTA_CORE_STRESS_H
#define MODMTA_CORE_STRESS_H

/* Recompute the state from the session count against max_sessions and
 * the descriptors in use against the descriptor budget (0: no bound);
 * log a transition once. Called with the session table mutex held, so
 * calls never interleave. */
void stress_update(unsigned long active, long max_sessions,
                   unsigned long fds, long fd_budget, long threshold_pct);
/* 1 while under stress. */
int stress_active(void);
/* The timeout to apply: base, or stress_s if lower, under stress (both
 * in the caller's unit). */
long stress_timeout(long base, long stress_s);

#endif
