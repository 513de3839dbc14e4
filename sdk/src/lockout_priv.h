/*
 * The failed-login limiter's inside (not installed).
 *
 * modmta_lockout_check and _fail are the _at functions with the
 * CLOCK_MONOTONIC second; tests call them with the time they need
 * instead of sleeping. A shared limiter (modmta_lockout_new_shared)
 * ignores `now`: its time is the store's.
 *
 * lockout.c is the front and the memory table; lockout_shared.c counts
 * in the shared state (modmta/shared.h). Both name a client the same
 * way (lockout_key).
 */
#ifndef MODMTA_LOCKOUT_PRIV_H
#define MODMTA_LOCKOUT_PRIV_H

#include <arpa/inet.h>
#include <time.h>

#include <modmta/lockout.h>
#include <modmta/shared.h>

#define LOCKOUT_KEY_MAX (INET6_ADDRSTRLEN + 3) /* "2001:db8::/64" */
/* An IPv6 site (/48) locks after this many times max_failures. */
#define LOCKOUT_SITE_FACTOR 16

int modmta_lockout_check_at(modmta_lockout *l, const char *client_addr,
                            time_t now);
int modmta_lockout_fail_at(modmta_lockout *l, const char *client_addr,
                           time_t now, unsigned *failures_r);

/* The keys of a client address: key "192.0.2.1" (also for
 * "::ffff:192.0.2.1"), "2001:db8:1:2::/64", or the string as it is
 * (cut to LOCKOUT_KEY_MAX - 1 octets); site "2001:db8:1::/48" for an
 * IPv6 client, "" for any other. Both hold LOCKOUT_KEY_MAX octets. */
void lockout_key(const char *addr, char *key, char *site);

/* The shared variant: limits already checked; name as lockout.h says.
 * NULL with err_r filled. */
struct lockout_shared;
struct lockout_shared *lockout_shared_new(modmta_shared *s, const char *name,
                                          unsigned max_failures,
                                          unsigned lockout_s,
                                          modmta_err *err_r);
void lockout_shared_free(struct lockout_shared *sh);
/* check() and fail() for a client's key and site (lockout_key). */
int lockout_shared_check(struct lockout_shared *sh, const char *key,
                         const char *site);
int lockout_shared_fail(struct lockout_shared *sh, const char *key,
                        const char *site, unsigned *failures_r);

#endif
