/*
 * modmta SDK: a limit on failed logins per client, for modules that check
 * passwords (auth_sasl's SMTP AUTH, pop3's logins).
 *
 * A client is an IPv4 address or an IPv6 /64 (a host usually holds a
 * whole /64 and could otherwise guess from a fresh address each time);
 * an IPv4-mapped IPv6 address counts as its IPv4 address. Any other
 * string ("local") is a client of its own.
 *
 * After max_failures failed logins with less than lockout_s seconds
 * between them, the client is locked: refused for lockout_s seconds.
 * IPv6 failures count for the client's /48 (its site) too, which locks
 * after 16 times max_failures: one entry then covers the whole site, so
 * an attacker owning a /48 cannot fill the table with its /64s.
 * Failures older than lockout_s are forgotten. There is deliberately no
 * "success" call: a good login must not reset the count, else one account
 * the attacker holds, interleaved with guesses, would lift the limit for
 * every other account.
 *
 * The table holds at most MODMTA_LOCKOUT_CLIENTS_MAX clients. When it is
 * full, the entry with the oldest failure that is not locked makes room; a
 * locked entry is never evicted (flooding the table must not lift a
 * lockout). When every entry is locked, a new client's failure cannot be
 * counted: check() and fail() say MODMTA_LOCKOUT_FULL and the caller
 * refuses the login with a temporary error.
 *
 * Use: check() before reading credentials (and again after right ones,
 * since parallel sessions of the client may have locked it meanwhile),
 * fail() after wrong ones. A limiter is safe to share between threads
 * (one mutex); it lives in memory, per instance, so a reload starts
 * afresh. Time is CLOCK_MONOTONIC, in seconds.
 *
 * A Redis-backed variant, shared by the nodes of a cluster (DESIGN.md,
 * "Shared state in Redis"), will implement these same calls; it may then
 * also return a negative MODMTA_E_* (MODMTA_E_TEMP: Redis unreachable),
 * which callers should already treat like MODMTA_LOCKOUT_FULL: refuse.
 */
#ifndef MODMTA_LOCKOUT_H
#define MODMTA_LOCKOUT_H

#include <modmta/err.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Clients one limiter keeps track of. */
#define MODMTA_LOCKOUT_CLIENTS_MAX 4096
/* Largest accepted max_failures and lockout_s. */
#define MODMTA_LOCKOUT_FAILURES_MAX 1000000u
#define MODMTA_LOCKOUT_SECONDS_MAX 2592000u /* 30 days */

/* Results of check() and fail(). Append-only. */
enum modmta_lockout_result {
    MODMTA_LOCKOUT_OPEN = 0,    /* check(): the client may try */
    MODMTA_LOCKOUT_COUNTED = 1, /* fail(): counted, below the limit */
    MODMTA_LOCKOUT_HIT = 2,     /* fail(): this one reached the limit:
                                 * locked from now on */
    MODMTA_LOCKOUT_LOCKED = 3,  /* locked already: refuse */
    MODMTA_LOCKOUT_FULL = 4,    /* no room to count the client's failures
                                 * (every entry locked): refuse, 4xx */
};

typedef struct modmta_lockout modmta_lockout;

/* A limiter: max_failures failures lock a client for lockout_s seconds.
 * max_failures 0 disables it (check: OPEN, fail: COUNTED with 0
 * failures). NULL with err_r filled when a value is above its _MAX or on
 * allocation failure. */
modmta_lockout *modmta_lockout_new(unsigned max_failures,
                                   unsigned lockout_s, modmta_err *err_r);
void modmta_lockout_free(modmta_lockout *l);
/* Before a login from client_addr (as modmta_client_addr gives it):
 * MODMTA_LOCKOUT_OPEN, _LOCKED or _FULL. */
int modmta_lockout_check(modmta_lockout *l, const char *client_addr);
/* After a failed login: MODMTA_LOCKOUT_COUNTED, _HIT, _LOCKED or _FULL.
 * *failures_r (may be NULL) gets the client's failures so far, this one
 * included, for logs; 0 when nothing was counted. */
int modmta_lockout_fail(modmta_lockout *l, const char *client_addr,
                        unsigned *failures_r);

#ifdef __cplusplus
}
#endif

#endif
