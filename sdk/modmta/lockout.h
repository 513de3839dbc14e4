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
 * fail() after wrong ones. A limiter is safe to share between threads.
 *
 * Two variants behind the same calls:
 *
 *   modmta_lockout_new        (ABI 1.2) the table above, in memory, per
 *                             instance (one mutex): a reload starts
 *                             afresh. Time is CLOCK_MONOTONIC, seconds.
 *   modmta_lockout_new_shared (ABI 1.4) counted in the shared state
 *                             (modmta/shared.h) of the host: one count
 *                             per client for every node sharing the store
 *                             (Redis) and surviving reloads (memory).
 *
 * The shared variant keeps the rules (clients, the /48 rule, no reset on
 * success, max_failures and lockout_s) but counts with the store's
 * fixed-window counters: max_failures failures within one window of
 * lockout_s seconds, the window starting at the client's first failure,
 * lock the client for lockout_s seconds from the failure that reached
 * the limit. Where the table above forgets failures only after a pause
 * of lockout_s (a chain of failures each less than lockout_s after the
 * previous one locks however long it is), the window forgets them all
 * lockout_s after the first: a client stays below the limit by failing
 * fewer than max_failures times per lockout_s seconds, and may fail
 * 2 * (max_failures - 1) times in a row across the end of a window. In
 * the long run it allows what the table allows: under max_failures
 * guesses per lockout_s seconds.
 * Its keys ("lockout:NAME:fail:CLIENT", a counter, and
 * "lockout:NAME:lock:CLIENT", with a TTL) live at most lockout_s seconds
 * each; there is no table to fill, so it never answers
 * MODMTA_LOCKOUT_FULL: its memory is the store's (the process's memory
 * store drops expired keys; Redis holds them until they expire). A store
 * that cannot be reached (MODMTA_E_TEMP) or another store error makes
 * check() and fail() return that negative MODMTA_E_*: callers refuse the
 * login with a temporary error, as for MODMTA_LOCKOUT_FULL. A
 * lockout_s of 0 disables the shared variant like max_failures 0 (a
 * lock of no time locks nothing).
 */
#ifndef MODMTA_LOCKOUT_H
#define MODMTA_LOCKOUT_H

#include <modmta/err.h>
#include <modmta/module.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Clients one memory limiter (modmta_lockout_new) keeps track of. */
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
/* ABI 1.4: the same, counted in the shared state of host h under name
 * (1 to 128 letters, digits, '_', '.' or '-': the instance's name, so
 * that the nodes of a cluster, which share their config, share the
 * counts; limiters of different names count apart). The store is the
 * host's generation's, which outlives the instance. NULL with err_r
 * filled for a bad name or value, or on allocation failure. */
modmta_lockout *modmta_lockout_new_shared(const modmta_host *h,
                                          const char *name,
                                          unsigned max_failures,
                                          unsigned lockout_s,
                                          modmta_err *err_r);
/* Before a login from client_addr (as modmta_client_addr gives it):
 * MODMTA_LOCKOUT_OPEN, _LOCKED or _FULL; shared: or a negative
 * MODMTA_E_* (refuse, 4xx). */
int modmta_lockout_check(modmta_lockout *l, const char *client_addr);
/* After a failed login: MODMTA_LOCKOUT_COUNTED, _HIT, _LOCKED or _FULL.
 * *failures_r (may be NULL) gets the client's failures so far, this one
 * included, for logs; 0 when nothing was counted. Shared: or a
 * negative MODMTA_E_* (refuse, 4xx). */
int modmta_lockout_fail(modmta_lockout *l, const char *client_addr,
                        unsigned *failures_r);

#ifdef __cplusplus
}
#endif

#endif
