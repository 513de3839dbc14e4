/*
 * Shared state, the front (shared.h): argument checks, the prefix, the
 * backend. See shared_priv.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/conf.h>

#include "ctx_priv.h"
#include "shared_priv.h"

#define SHARED_PREFIX_MAX 64

/*
 * The namespaces (a key's or channel's first ':'-separated component,
 * after redis.prefix) of the core's and the bundled modules' shared
 * state. redis: maps and passdbs refuse them as prefixes, so that
 * `modmtactl map set redis:ctl: ...` cannot read or overwrite the
 * cluster's registry, a lockout or a lease. Module authors: start every
 * key with a namespace of the module's own ("ratelimit:INSTANCE:..."),
 * and a module in this tree that adds one adds it here and to
 * docs/sdk.md "Shared state".
 */
static const char *const shared_reserved_names[] = {
    "ctl",              /* core/cluster.h: registry, reload requests */
    "greylist",         /* plugins/greylist: triplets */
    "lockout",          /* sdk/src/lockout_shared.c: failed logins */
    "pop3",             /* pop3: LOGIN-DELAY counts, mailbox leases */
    "popb4smtp",        /* pop3 writes, relay_access reads */
    "ratelimit",        /* ratelimit's counters */
    NULL,
};

struct modmta_shared {
    const struct shared_ops *ops;
    void *b;
    int cluster;
    char prefix[SHARED_PREFIX_MAX + 1];
    size_t prefix_len;
};

/* A front with prefix and no backend yet. */
static modmta_shared *
shared_new(const char *prefix, modmta_err *err_r)
{
    modmta_shared *s;

    if (strlen(prefix) > SHARED_PREFIX_MAX) {
        modmta_err_set(err_r, "$.redis.prefix", "at most %d octets",
                       SHARED_PREFIX_MAX);
        return NULL;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        modmta_err_set(err_r, "$.redis", "out of memory");
        return NULL;
    }
    memcpy(s->prefix, prefix, strlen(prefix) + 1);
    s->prefix_len = strlen(prefix);
    return s;
}

const char *
shared_reserved(const char *key)
{
    size_t n = strcspn(key, ":");

    for (size_t i = 0; shared_reserved_names[i] != NULL; i++)
        if (strlen(shared_reserved_names[i]) == n &&
            memcmp(shared_reserved_names[i], key, n) == 0)
            return shared_reserved_names[i];
    return NULL;
}

modmta_shared *
shared_new_mem(const char *prefix, modmta_err *err_r)
{
    modmta_shared *s = shared_new(prefix, err_r);

    if (s != NULL) {
        s->ops = shared_mem_ops();
        s->b = shared_mem_get_store();
    }
    return s;
}

modmta_shared *
modmta_shared_new(const json_t *redis, modmta_err *err_r)
{
    const char *prefix = json_string_value(json_object_get(redis, "prefix"));
    modmta_shared *s;

    if (redis == NULL)
        return shared_new_mem("modmta:", err_r);
    if ((s = shared_new(prefix != NULL ? prefix : "modmta:", err_r)) == NULL)
        return NULL;
    s->ops = shared_redis_ops();
    s->cluster = 1;
    if ((s->b = shared_redis_new(redis, err_r)) == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

modmta_shared *
shared_new_backend(const struct shared_ops *ops, void *b)
{
    modmta_shared *s = modmta_shared_new(NULL, NULL);

    if (s != NULL) {
        s->ops = ops;
        s->b = b;
    }
    return s;
}

void *
shared_backend(const modmta_shared *s)
{
    return s->b;
}

void
modmta_shared_free(modmta_shared *s)
{
    if (s == NULL)
        return;
    if (s->ops->free != NULL)
        s->ops->free(s->b);
    free(s);
}

modmta_shared *
modmta_host_shared(const modmta_host *h)
{
    return h->shared;
}

int
modmta_shared_is_cluster(const modmta_shared *s)
{
    return s->cluster;
}

/* A key or channel: not empty, no space or control character, short
 * enough. */
static int
shared_key_ok(const char *k)
{
    size_t n = 0;

    if (k == NULL || *k == '\0')
        return 0;
    for (; k[n] != '\0'; n++)
        if ((unsigned char)k[n] <= ' ' || k[n] == 0x7f ||
            n >= MODMTA_SHARED_KEY_MAX)
            return 0;
    return 1;
}

static int
shared_value_ok(const char *v)
{
    return v != NULL && strnlen(v, MODMTA_SHARED_VALUE_MAX + 1) <=
                            MODMTA_SHARED_VALUE_MAX;
}

/* prefix + key into buf (sized for both). */
static const char *
shared_full(const modmta_shared *s, const char *key,
            char buf[SHARED_PREFIX_MAX + MODMTA_SHARED_KEY_MAX + 1])
{
    memcpy(buf, s->prefix, s->prefix_len);
    memcpy(buf + s->prefix_len, key, strlen(key) + 1);
    return buf;
}

#define SHARED_FULL_MAX (SHARED_PREFIX_MAX + MODMTA_SHARED_KEY_MAX + 1)

int
modmta_shared_get(modmta_shared *s, const char *key, char **value_r)
{
    char full[SHARED_FULL_MAX];

    if (value_r != NULL)
        *value_r = NULL;
    if (!shared_key_ok(key))
        return MODMTA_E_INVAL;
    return s->ops->get(s->b, shared_full(s, key, full), value_r);
}

int
modmta_shared_set(modmta_shared *s, const char *key, const char *value,
                  long ttl_ms)
{
    char full[SHARED_FULL_MAX];

    if (!shared_key_ok(key) || !shared_value_ok(value) || ttl_ms < 0)
        return MODMTA_E_INVAL;
    return s->ops->set(s->b, shared_full(s, key, full), value, ttl_ms);
}

int
modmta_shared_del(modmta_shared *s, const char *key)
{
    char full[SHARED_FULL_MAX];

    if (!shared_key_ok(key))
        return MODMTA_E_INVAL;
    return s->ops->del(s->b, shared_full(s, key, full));
}

int
modmta_shared_incr(modmta_shared *s, const char *key, long long by,
                   long window_s, long long *value_r)
{
    char full[SHARED_FULL_MAX];
    long long v;

    if (!shared_key_ok(key) || window_s < 0)
        return MODMTA_E_INVAL;
    return s->ops->incr(s->b, shared_full(s, key, full), by, window_s,
                        value_r != NULL ? value_r : &v);
}

int
modmta_shared_decr(modmta_shared *s, const char *key, long long by)
{
    char full[SHARED_FULL_MAX];

    if (!shared_key_ok(key) || by <= 0)
        return MODMTA_E_INVAL;
    return s->ops->decr(s->b, shared_full(s, key, full), by);
}

int
modmta_shared_gauge_join(modmta_shared *s, const char *key,
                         const char *member, long long max, long ttl_ms,
                         long long *count_r)
{
    char full[SHARED_FULL_MAX];
    long long n;

    if (!shared_key_ok(key) || !shared_key_ok(member) || max < 0 ||
        ttl_ms <= 0)
        return MODMTA_E_INVAL;
    return s->ops->gauge_join(s->b, shared_full(s, key, full), member, max,
                              ttl_ms, count_r != NULL ? count_r : &n);
}

int
modmta_shared_gauge_leave(modmta_shared *s, const char *key,
                          const char *member)
{
    char full[SHARED_FULL_MAX];

    if (!shared_key_ok(key) || !shared_key_ok(member))
        return MODMTA_E_INVAL;
    return s->ops->gauge_leave(s->b, shared_full(s, key, full), member);
}

int
modmta_shared_lease(modmta_shared *s, const char *key, const char *owner,
                    long ttl_ms)
{
    char full[SHARED_FULL_MAX];

    if (!shared_key_ok(key) || !shared_key_ok(owner) || ttl_ms <= 0)
        return MODMTA_E_INVAL;
    return s->ops->lease(s->b, shared_full(s, key, full), owner, ttl_ms);
}

int
modmta_shared_release(modmta_shared *s, const char *key, const char *owner)
{
    char full[SHARED_FULL_MAX];

    if (!shared_key_ok(key) || !shared_key_ok(owner))
        return MODMTA_E_INVAL;
    return s->ops->release(s->b, shared_full(s, key, full), owner);
}

int
modmta_shared_publish(modmta_shared *s, const char *channel, const char *msg)
{
    char full[SHARED_FULL_MAX];

    if (!shared_key_ok(channel) || !shared_value_ok(msg))
        return MODMTA_E_INVAL;
    return s->ops->publish(s->b, shared_full(s, channel, full), msg);
}

int
modmta_shared_subscribe(modmta_shared *s, const char *channel,
                        void (*cb)(void *arg, const char *channel,
                                   const char *msg),
                        void *arg, modmta_shared_sub **sub_r)
{
    char full[SHARED_FULL_MAX];

    *sub_r = NULL;
    if (!shared_key_ok(channel) || cb == NULL)
        return MODMTA_E_INVAL;
    return s->ops->subscribe(s->b, shared_full(s, channel, full),
                             s->prefix_len, cb, arg, sub_r);
}

void
modmta_shared_unsubscribe(modmta_shared_sub *sub)
{
    if (sub != NULL)
        sub->ops->unsubscribe(sub);
}

/* ---- modmtactl map import ---- */

static int
shared_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
shared_keys(modmta_shared *s, const char *start, char ***keys_r,
            size_t *n_r)
{
    char full[SHARED_FULL_MAX], **keys = NULL, **list;
    size_t n = 0, m = 0, slen = strlen(start);
    int rc;

    *keys_r = NULL;
    *n_r = 0;
    if (!shared_key_ok(start))
        return MODMTA_E_INVAL;
    if (s->ops->keys == NULL)
        return MODMTA_E_UNSUPPORTED;
    if ((rc = s->ops->keys(s->b, shared_full(s, start, full), &keys,
                           &n)) < 0)
        return rc;
    /* sorted on the whole key: the same order without the prefix */
    if (n > 1)
        qsort(keys, n, sizeof(*keys), shared_cmp);
    for (size_t i = 0; i < n; i++) {
        char *k = keys[i];

        /* keys under start only, whatever a pattern let through */
        if (strncmp(k, full, s->prefix_len + slen) != 0 ||
            !shared_key_ok(k + s->prefix_len) ||
            (m > 0 && strcmp(keys[m - 1], k + s->prefix_len) == 0)) {
            free(k);
            continue;
        }
        memmove(k, k + s->prefix_len, strlen(k + s->prefix_len) + 1);
        keys[m++] = k;
    }
    if ((list = realloc(keys, (m + 1) * sizeof(*keys))) == NULL) {
        while (m > 0)
            free(keys[--m]);
        free(keys);
        return MODMTA_E_NOMEM;
    }
    list[m] = NULL;
    *keys_r = list;
    *n_r = m;
    return 0;
}

int
shared_write_all(modmta_shared *s, char *const *del, size_t ndel,
                 char *const *keys, const char *const *values, size_t n)
{
    char **full;
    size_t i;
    int rc = 0;

    if (s->ops->write_all == NULL)
        return MODMTA_E_UNSUPPORTED;
    for (i = 0; i < ndel + n; i++)
        if (!shared_key_ok(i < ndel ? del[i] : keys[i - ndel]) ||
            (i >= ndel && !shared_value_ok(values[i - ndel])))
            return MODMTA_E_INVAL;
    if ((full = calloc(ndel + n + 1, sizeof(*full))) == NULL)
        return MODMTA_E_NOMEM;
    for (i = 0; i < ndel + n && rc == 0; i++) {
        const char *k = i < ndel ? del[i] : keys[i - ndel];
        size_t len = strlen(k);

        if ((full[i] = malloc(s->prefix_len + len + 1)) == NULL) {
            rc = MODMTA_E_NOMEM;
            break;
        }
        memcpy(full[i], s->prefix, s->prefix_len);
        memcpy(full[i] + s->prefix_len, k, len + 1);
    }
    if (rc == 0)
        rc = s->ops->write_all(s->b, full, ndel, full + ndel, values, n);
    modmta_strlist_free(full);
    return rc;
}
