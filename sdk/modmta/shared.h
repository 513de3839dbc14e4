/*
 * modmta SDK: shared state (ABI 1.4). One key-value API for every module,
 * with two backends behind the same calls:
 *
 *   memory  the default: one table in the process, not in a config
 *           generation, so what it holds survives a reload; one node.
 *   redis   when the config has a "redis" section: every node sharing
 *           that Redis (or Sentinel-watched master) sees the same keys.
 *
 * A module written against it works on one node and on a cluster
 * unchanged. Keys are the module's own names, its name first
 * ("ratelimit:INSTANCE:conn:192.0.2.1"; the core's and the bundled
 * modules' first names are reserved: docs/sdk.md); the core puts the
 * config's redis "prefix" (default "modmta:") in front of every key and
 * channel in both backends, so two daemons sharing a Redis with
 * different prefixes never see each other's keys.
 *
 * Results, like map lookups (STYLE.md rule 5): >= 0 success, and
 * MODMTA_E_TEMP when the store cannot be reached within the configured
 * timeout (Redis down, failing over): answer 4xx (TEMPFAIL), never treat
 * it as "not found". MODMTA_E_INVAL for a key or value that is empty,
 * longer than MODMTA_SHARED_KEY_MAX / _VALUE_MAX, or (keys) holds a
 * space or a control character. Every call is thread-safe and ends
 * within the store's timeout; none formats data into a command string.
 */
#ifndef MODMTA_SHARED_H
#define MODMTA_SHARED_H

#include <modmta/module.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MODMTA_SHARED_KEY_MAX 512
#define MODMTA_SHARED_VALUE_MAX 65536

typedef struct modmta_shared modmta_shared;
typedef struct modmta_shared_sub modmta_shared_sub;

/* The shared state of the instance's generation (never NULL). */
modmta_shared *modmta_host_shared(const modmta_host *h);
/* 1 when the backend is Redis (state shared by every node), 0 memory. */
int modmta_shared_is_cluster(const modmta_shared *s);

/* ---- keys ---- */
/* 1 found (*value_r malloc'ed, free with modmta_free; may be NULL to
 * test only), 0 not found or expired, <0 error (MODMTA_E_INVAL: the
 * key holds no string, or one with a NUL octet). */
int modmta_shared_get(modmta_shared *s, const char *key, char **value_r);
/* Set key to value; ttl_ms > 0 makes it expire, 0 keeps it until
 * deleted. 0 or <0. */
int modmta_shared_set(modmta_shared *s, const char *key, const char *value,
                      long ttl_ms);
/* 1 deleted, 0 there was none, <0 error. */
int modmta_shared_del(modmta_shared *s, const char *key);

/* ---- counters (fixed windows) ----
 * Add `by` (may be negative) to the counter `key` and give its new value
 * in *value_r. A counter that did not exist starts at 0 and expires
 * window_s seconds after that first increment (0: never): a fixed
 * window, so "N per hour" counts from the first event of the hour and
 * starts afresh an hour later (the choice Postfix's anvil and most Redis
 * rate limiters make: one key, one round trip). A counter that has no
 * expiry (made with window_s 0) gets one, window_s from now, at an
 * increment with window_s > 0. 0 or <0. */
int modmta_shared_incr(modmta_shared *s, const char *key, long long by,
                       long window_s, long long *value_r);
/* Give back what was counted: take `by` (> 0) from the counter `key`
 * only if it exists. A counter that is missing (never made, its window
 * over, deleted) stays missing: nothing is ever created, so a give-back
 * after the window ended changes no later window. A counter brought to
 * 0 or below is deleted, so counts given back leave no key behind.
 * Atomic. 1 taken from an existing counter, 0 there was none, <0 error
 * (MODMTA_E_INVAL also for a key that holds a string). ABI 1.5. */
int modmta_shared_decr(modmta_shared *s, const char *key, long long by);

/* ---- leases ----
 * Take or renew the lease `key` for `owner` (a string unique to the
 * holder: "node-hostname/session-id") for ttl_ms: 1 held by owner now
 * (taken, or renewed when owner held it), 0 held by someone else, <0
 * error. A holder that dies loses it when ttl_ms passes. */
int modmta_shared_lease(modmta_shared *s, const char *key, const char *owner,
                        long ttl_ms);
/* Give a lease back if owner holds it: 1 released, 0 not held by owner. */
int modmta_shared_release(modmta_shared *s, const char *key,
                          const char *owner);

/* ---- gauges (things held at once; ABI 1.5) ----
 * A gauge counts its members: strings unique to a holder
 * ("node-hostname/session-id"), each expiring ttl_ms after it joined or
 * was last renewed, so the members of a node that died stop counting
 * when their TTL runs out. Renew each well before ttl_ms passes by
 * joining again. With Redis the expiries are Redis' clock: no two
 * nodes' clocks are compared.
 *
 * Join (or renew) member: 1 with *count_r the live members, member
 * included; 0 when member was not in and max > 0 members are in already
 * (member is not added; *count_r gets them). A member already in is
 * renewed whatever max; max 0: no limit. Atomic. <0 error. */
int modmta_shared_gauge_join(modmta_shared *s, const char *key,
                             const char *member, long long max,
                             long ttl_ms, long long *count_r);
/* Take member out: 1 it was in, 0 it was not, <0 error. The gauge goes
 * with its last member. */
int modmta_shared_gauge_leave(modmta_shared *s, const char *key,
                              const char *member);

/* ---- publish / subscribe (control messages) ----
 * Deliver msg to every subscriber of channel on every node (memory: in
 * this process). Returns how many subscribers got it where the store
 * knows (Redis' count), or <0. */
int modmta_shared_publish(modmta_shared *s, const char *channel,
                          const char *msg);
/* Call cb(arg, channel, msg) for each message on channel, on a thread of
 * the store's (never a session's): keep it short. The subscription lasts
 * until modmta_shared_unsubscribe, which waits for its running callback
 * (unless called from that callback: a callback may unsubscribe
 * itself); with Redis it resumes by itself after an outage (messages
 * published meanwhile are lost: pub/sub is not a queue). 0 with *sub_r,
 * or <0. */
int modmta_shared_subscribe(modmta_shared *s, const char *channel,
                            void (*cb)(void *arg, const char *channel,
                                       const char *msg),
                            void *arg, modmta_shared_sub **sub_r);
void modmta_shared_unsubscribe(modmta_shared_sub *sub);

#ifdef __cplusplus
}
#endif

#endif
