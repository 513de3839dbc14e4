/*
 * Shared state, the core's and the backends' side (not installed).
 *
 * shared.c is the front: it checks keys and values, puts the prefix in
 * front of keys and channels, and calls a backend through struct
 * shared_ops. shared_mem.c is the process's in-memory store (one for the
 * process, whatever the generation); shared_redis.c is Redis. The chain
 * makes one modmta_shared per config generation (modmta_shared_new) and
 * lends it to every host.
 */
#ifndef MODMTA_SHARED_PRIV_H
#define MODMTA_SHARED_PRIV_H

#include <jansson.h>

#include <modmta/shared.h>

/* A backend. Keys and channels arrive prefixed and checked. Results as
 * in shared.h. */
struct shared_ops {
    int (*get)(void *b, const char *key, char **value_r);
    int (*set)(void *b, const char *key, const char *value, long ttl_ms);
    int (*del)(void *b, const char *key);
    int (*incr)(void *b, const char *key, long long by, long window_s,
                long long *value_r);
    int (*lease)(void *b, const char *key, const char *owner, long ttl_ms);
    int (*release)(void *b, const char *key, const char *owner);
    int (*publish)(void *b, const char *channel, const char *msg);
    /* cb gets the channel without the prefix */
    int (*subscribe)(void *b, const char *channel, size_t prefix_len,
                     void (*cb)(void *arg, const char *channel,
                                const char *msg),
                     void *arg, modmta_shared_sub **sub_r);
    void (*unsubscribe)(modmta_shared_sub *sub);
    void (*free)(void *b);
    int (*decr)(void *b, const char *key, long long by);
    int (*gauge_join)(void *b, const char *key, const char *member,
                      long long max, long ttl_ms, long long *count_r);
    int (*gauge_leave)(void *b, const char *key, const char *member);
    /* Optional (NULL: MODMTA_E_UNSUPPORTED), for modmtactl map import:
     * every key starting with start (malloc'ed, *n_r of them, in any
     * order, maybe repeated); delete del[0..ndel) and set keys[i] to
     * values[i] (no expiry) as one atomic step. */
    int (*keys)(void *b, const char *start, char ***keys_r, size_t *n_r);
    int (*write_all)(void *b, char *const *del, size_t ndel,
                     char *const *keys, const char *const *values,
                     size_t n);
};

/* A backend's subscription starts with this (it embeds it first). */
struct modmta_shared_sub {
    const struct shared_ops *ops;
};

/* The shared state for a generation: Redis when `redis` (the config's
 * "redis" object with its defaults filled in) is not NULL, else the
 * process's memory store, both with redis's "prefix" (default
 * "modmta:"). Cheap: nothing is connected until the first call. NULL
 * with err_r filled. */
modmta_shared *modmta_shared_new(const json_t *redis, modmta_err *err_r);
void modmta_shared_free(modmta_shared *s);

/* A front over another backend (b its state, freed with ops->free),
 * with the default prefix: the test fakes' failing store. NULL when out
 * of memory. */
modmta_shared *shared_new_backend(const struct shared_ops *ops, void *b);
/* b of a front made with shared_new_backend. */
void *shared_backend(const modmta_shared *s);
/* The memory store under another prefix than "modmta:" (tests: two
 * stores that must not see each other's keys). NULL with err_r. */
modmta_shared *shared_new_mem(const char *prefix, modmta_err *err_r);

/* Every key that starts with start (prefix added, and taken off the
 * keys found), sorted, each once, NULL-terminated (free with
 * modmta_strlist_free): 0 with *keys_r and *n_r; <0 as any call,
 * MODMTA_E_UNSUPPORTED in memory. Keys no call could name (white
 * space...) are left out. With Redis a walk of the whole database
 * (SCAN), one command at a time: keys written meanwhile may be missed. */
int shared_keys(modmta_shared *s, const char *start, char ***keys_r,
                size_t *n_r);
/* Delete del[0..ndel) and set keys[i] to values[i] (no expiry), all in
 * one atomic step (with Redis one command: after a failure nothing was
 * written or, if Redis got it before the timeout, everything). 0, or
 * <0 (MODMTA_E_INVAL for a bad key or value, before anything is sent;
 * MODMTA_E_UNSUPPORTED in memory). */
int shared_write_all(modmta_shared *s, char *const *del, size_t ndel,
                     char *const *keys, const char *const *values,
                     size_t n);

/* The reserved namespace key starts with (its first ':'-separated
 * component is one the core or a bundled module uses: the list is in
 * shared.c), or NULL. */
const char *shared_reserved(const char *key);

/* The memory backend: the one store of the process, of at most
 * SHARED_MEM_KEYS_MAX keys (documented in docs/sdk.md). */
#define SHARED_MEM_KEYS_MAX 1000000
const struct shared_ops *shared_mem_ops(void);
void *shared_mem_get_store(void);
/* Another most (tests: a full store without a million keys). */
void shared_mem_set_max(size_t max);

/* The Redis backend for a "redis" object (keys absent take their
 * defaults, wrong ones are refused with their path). Connects nothing.
 * NULL with err_r filled. */
const struct shared_ops *shared_redis_ops(void);
void *shared_redis_new(const json_t *redis, modmta_err *err_r);

#endif
