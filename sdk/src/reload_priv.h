/*
 * The reload helper's test seam (sdk/src/reload.c): not ABI, so no module
 * can change the clock of the daemon's maps; the SDK's own tests and
 * libmodmta-test (modmta_test_reload_clock) use it.
 */
#ifndef MODMTA_RELOAD_PRIV_H
#define MODMTA_RELOAD_PRIV_H

/* Milliseconds of a monotonic clock. */
typedef long long (*modmta_reload_clock_fn)(void *arg);

/* The clock of reload objects opened from now on in this process, so
 * that a test advances time instead of sleeping; NULL puts
 * CLOCK_MONOTONIC back. Set it before the module's create(). */
void modmta_reload_set_clock(modmta_reload_clock_fn now_ms, void *arg);

#endif
