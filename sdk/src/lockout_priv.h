/*
 * The failed-login limiter with the clock as an argument (not installed):
 * modmta_lockout_check and _fail are these with the CLOCK_MONOTONIC
 * second; tests call them with the time they need instead of sleeping.
 */
#ifndef MODMTA_LOCKOUT_PRIV_H
#define MODMTA_LOCKOUT_PRIV_H

#include <time.h>

#include <modmta/lockout.h>

int modmta_lockout_check_at(modmta_lockout *l, const char *client_addr,
                            time_t now);
int modmta_lockout_fail_at(modmta_lockout *l, const char *client_addr,
                           time_t now, unsigned *failures_r);

#endif
