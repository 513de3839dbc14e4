/*
 * The failed-login limiter counted in the shared state (lockout.h,
 * modmta_lockout_new_shared). Per client (and per IPv6 site) two keys:
 *
 *   lockout:NAME:fail:CLIENT  a counter with a window of lockout_s
 *   lockout:NAME:lock:CLIENT  "locked", with a TTL of lockout_s, set by
 *                             the failure that reaches the limit
 *
 * The counter is not reset when the lock is set: its window began at
 * the first failure, so it ends before the lock does, and the client
 * starts afresh when its lock ends. Failures that raced past the lock
 * check of a parallel session count above the limit: each of them sets
 * the lock again and is answered LOCKED; only the one that reached the
 * limit is HIT. The check looks at the counter too: a count at the limit
 * without a lock (the store failed between the failure's two calls) is
 * locked, and the check sets the lock then, so no guess gets through.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockout_priv.h"

#define LOCKOUT_NAME_MAX 128

struct lockout_shared {
    modmta_shared *s;
    unsigned max_failures;
    long window_s;
    long lock_ms;
    char name[LOCKOUT_NAME_MAX + 1];
};

/* Letters, digits, '_', '.', '-' (an instance name). */
static int
lockout_shared_name_ok(const char *name)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
    size_t n = name != NULL ? strlen(name) : 0;

    return n > 0 && n <= LOCKOUT_NAME_MAX && strspn(name, ok) == n;
}

struct lockout_shared *
lockout_shared_new(modmta_shared *s, const char *name, unsigned max_failures,
                   unsigned lockout_s, modmta_err *err_r)
{
    struct lockout_shared *sh;
    long long ms = (long long)lockout_s * 1000;

    if (!lockout_shared_name_ok(name)) {
        modmta_err_set(err_r, NULL, "failed-login limit: invalid name "
                       "\"%s\" (expected 1 to %d letters, digits, _ . -)",
                       name != NULL ? name : "", LOCKOUT_NAME_MAX);
        return NULL;
    }
    if ((sh = calloc(1, sizeof(*sh))) == NULL) {
        modmta_err_set(err_r, NULL, "out of memory");
        return NULL;
    }
    sh->s = s;
    sh->max_failures = max_failures;
    sh->window_s = (long)lockout_s;
    sh->lock_ms = ms > LONG_MAX ? LONG_MAX : (long)ms;
    memcpy(sh->name, name, strlen(name) + 1);
    return sh;
}

void
lockout_shared_free(struct lockout_shared *sh)
{
    free(sh);
}

/* "lockout:NAME:WHAT:CLIENT" into buf. */
static const char *
lockout_shared_keyname(const struct lockout_shared *sh, const char *what,
                       const char *client, char *buf, size_t cap)
{
    snprintf(buf, cap, "lockout:%s:%s:%s", sh->name, what, client);
    return buf;
}

#define LOCKOUT_FULLKEY_MAX (LOCKOUT_NAME_MAX + LOCKOUT_KEY_MAX + 16)

/* 1 if client (a key or a site; "" is none) is locked, 0 not, <0:
 * its lock is set, or its failures reached limit (a lock that could not
 * be set: set it now). */
static int
lockout_shared_locked(struct lockout_shared *sh, const char *client,
                      unsigned limit)
{
    char k[LOCKOUT_FULLKEY_MAX], *v = NULL;
    long long n;
    int r;

    if (client[0] == '\0')
        return 0;
    r = modmta_shared_get(sh->s, lockout_shared_keyname(sh, "lock", client,
                                                        k, sizeof(k)),
                          NULL);
    if (r != 0)
        return r;
    r = modmta_shared_get(sh->s, lockout_shared_keyname(sh, "fail", client,
                                                        k, sizeof(k)),
                          &v);
    n = r == 1 ? strtoll(v, NULL, 10) : 0;
    free(v);
    if (r != 1 || n < (long long)limit)
        return r < 0 ? r : 0;
    (void)modmta_shared_set(sh->s, lockout_shared_keyname(sh, "lock", client,
                                                          k, sizeof(k)),
                            "locked", sh->lock_ms);
    return 1;
}

int
lockout_shared_check(struct lockout_shared *sh, const char *key,
                     const char *site)
{
    int r = lockout_shared_locked(sh, site,
                                  sh->max_failures * LOCKOUT_SITE_FACTOR);

    if (r == 0)
        r = lockout_shared_locked(sh, key, sh->max_failures);
    if (r < 0)
        return r;
    return r == 1 ? MODMTA_LOCKOUT_LOCKED : MODMTA_LOCKOUT_OPEN;
}

/* Count one failure of client against limit; lock it there. COUNTED,
 * HIT, LOCKED (counted above the limit: a race) or <0; *n_r gets the
 * count (0 when LOCKED). */
static int
lockout_shared_count(struct lockout_shared *sh, const char *client,
                     unsigned limit, unsigned *n_r)
{
    char k[LOCKOUT_FULLKEY_MAX];
    long long n = 0;
    int r;

    *n_r = 0;
    r = modmta_shared_incr(sh->s, lockout_shared_keyname(sh, "fail", client,
                                                         k, sizeof(k)),
                           1, sh->window_s, &n);
    if (r < 0)
        return r;
    if (n < (long long)limit) {
        *n_r = (unsigned)n;
        return MODMTA_LOCKOUT_COUNTED;
    }
    r = modmta_shared_set(sh->s, lockout_shared_keyname(sh, "lock", client,
                                                        k, sizeof(k)),
                          "locked", sh->lock_ms);
    if (r < 0)
        return r;
    if (n > (long long)limit)
        return MODMTA_LOCKOUT_LOCKED;
    *n_r = limit;
    return MODMTA_LOCKOUT_HIT;
}

/* As the memory table: a locked site or client counts nothing; the
 * client's failure also counts for its site, whose hit is the
 * failure's. */
int
lockout_shared_fail(struct lockout_shared *sh, const char *key,
                    const char *site, unsigned *failures_r)
{
    unsigned site_n;
    int r, rs;

    *failures_r = 0;
    if ((r = lockout_shared_check(sh, key, site)) != MODMTA_LOCKOUT_OPEN)
        return r;
    if ((r = lockout_shared_count(sh, key, sh->max_failures,
                                  failures_r)) < 0 ||
        r == MODMTA_LOCKOUT_LOCKED || site[0] == '\0')
        return r;
    rs = lockout_shared_count(sh, site,
                              sh->max_failures * LOCKOUT_SITE_FACTOR,
                              &site_n);
    if (rs < 0)
        return rs;
    return rs == MODMTA_LOCKOUT_HIT ? MODMTA_LOCKOUT_HIT : r;
}
