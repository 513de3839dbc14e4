/*
 * The failed-login limiter (modmta/lockout.h): a fixed table of clients
 * searched linearly, guarded by one mutex.
 *
 * IPv6 failures are counted twice: per /64 (the client) and per /48 (its
 * site), which locks after LOCKOUT_SITE_FACTOR times as many. Once a
 * site is locked, its /64 entries are released: one entry then holds
 * the whole site, so an attacker owning a /48 (65,536 /64s) cannot fill
 * the table and shut out every new client, which a locked table does.
 *
 * A limiter made by modmta_lockout_new_shared has no table: its calls go
 * to lockout_shared.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modmta/lockout.h>

#include "lockout_priv.h"

struct lockout_client {
    char key[LOCKOUT_KEY_MAX];
    char site[LOCKOUT_KEY_MAX]; /* an IPv6 client's /48, else "" */
    unsigned failures;
    time_t last;         /* monotonic second of the last failure */
    time_t locked_until; /* monotonic; locked while > now */
};

struct modmta_lockout {
    unsigned max_failures;
    unsigned lockout_s;
    pthread_mutex_t lock; /* guards clients and nclients */
    struct lockout_client *clients;
    size_t nclients;
    struct lockout_shared *shared; /* a shared limiter: no table */
};

static int
lockout_limits_ok(unsigned max_failures, unsigned lockout_s,
                  modmta_err *err_r)
{
    if (max_failures <= MODMTA_LOCKOUT_FAILURES_MAX
        && lockout_s <= MODMTA_LOCKOUT_SECONDS_MAX)
        return 1;
    modmta_err_set(err_r, NULL, "failed-login limit: expected at most "
                   "%u failures and %u seconds", MODMTA_LOCKOUT_FAILURES_MAX,
                   MODMTA_LOCKOUT_SECONDS_MAX);
    return 0;
}

modmta_lockout *
modmta_lockout_new(unsigned max_failures, unsigned lockout_s,
                   modmta_err *err_r)
{
    modmta_lockout *l;

    if (!lockout_limits_ok(max_failures, lockout_s, err_r))
        return NULL;
    l = calloc(1, sizeof(*l));
    /* calloc'ed in one piece: pages no client touched cost nothing */
    if (l != NULL && max_failures > 0)
        l->clients = calloc(MODMTA_LOCKOUT_CLIENTS_MAX, sizeof(*l->clients));
    if (l == NULL || (max_failures > 0 && l->clients == NULL)) {
        free(l);
        modmta_err_set(err_r, NULL, "out of memory");
        return NULL;
    }
    l->max_failures = max_failures;
    l->lockout_s = lockout_s;
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

modmta_lockout *
modmta_lockout_new_shared(const modmta_host *h, const char *name,
                          unsigned max_failures, unsigned lockout_s,
                          modmta_err *err_r)
{
    modmta_lockout *l;

    if (!lockout_limits_ok(max_failures, lockout_s, err_r))
        return NULL;
    if ((l = calloc(1, sizeof(*l))) == NULL) {
        modmta_err_set(err_r, NULL, "out of memory");
        return NULL;
    }
    l->max_failures = max_failures;
    l->lockout_s = lockout_s;
    pthread_mutex_init(&l->lock, NULL);
    l->shared = lockout_shared_new(modmta_host_shared(h), name, max_failures,
                                   lockout_s, err_r);
    if (l->shared == NULL) {
        modmta_lockout_free(l);
        return NULL;
    }
    return l;
}

void
modmta_lockout_free(modmta_lockout *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->lock);
    lockout_shared_free(l->shared);
    free(l->clients);
    free(l);
}

void
lockout_key(const char *addr, char *key, char *site)
{
    size_t cap = LOCKOUT_KEY_MAX;
    struct in6_addr a6;
    struct in_addr a4;
    char text[INET6_ADDRSTRLEN];

    site[0] = '\0';
    if (inet_pton(AF_INET6, addr, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            inet_ntop(AF_INET, &a6.s6_addr[12], key, (socklen_t)cap);
            return;
        }
        memset(&a6.s6_addr[8], 0, 8);
        inet_ntop(AF_INET6, &a6, text, sizeof(text));
        snprintf(key, cap, "%s/64", text);
        memset(&a6.s6_addr[6], 0, 2);
        inet_ntop(AF_INET6, &a6, text, sizeof(text));
        snprintf(site, cap, "%s/48", text);
    } else if (inet_pton(AF_INET, addr, &a4) == 1) {
        inet_ntop(AF_INET, &a4, key, (socklen_t)cap);
    } else {
        snprintf(key, cap, "%s", addr);
    }
}

/* With l->lock held: the client's entry, or NULL. */
static struct lockout_client *
lockout_find(modmta_lockout *l, const char *key)
{
    size_t i;

    for (i = 0; i < l->nclients; i++)
        if (strcmp(l->clients[i].key, key) == 0)
            return &l->clients[i];
    return NULL;
}

/* With l->lock held: the entry with the oldest failure that is not
 * locked, or NULL. */
static struct lockout_client *
lockout_victim(modmta_lockout *l, time_t now)
{
    struct lockout_client *cl = NULL;
    size_t i;

    for (i = 0; i < l->nclients; i++)
        if (l->clients[i].locked_until <= now
            && (cl == NULL || l->clients[i].last < cl->last))
            cl = &l->clients[i];
    return cl;
}

/* With l->lock held: a cleared entry for key, or NULL when every entry
 * is locked (evicting one would lift its lockout). */
static struct lockout_client *
lockout_add(modmta_lockout *l, const char *key, time_t now)
{
    struct lockout_client *cl;

    cl = l->nclients < MODMTA_LOCKOUT_CLIENTS_MAX
             ? &l->clients[l->nclients++]
             : lockout_victim(l, now);
    if (cl == NULL)
        return NULL;
    memset(cl, 0, sizeof(*cl));
    snprintf(cl->key, sizeof(cl->key), "%s", key);
    return cl;
}

/* With l->lock held: 1 if the entry of key (a site: may be "") is
 * locked. */
static int
lockout_locked(modmta_lockout *l, const char *key, time_t now)
{
    struct lockout_client *cl;

    if (key[0] == '\0')
        return 0;
    cl = lockout_find(l, key);
    return cl != NULL && cl->locked_until > now;
}

/* With l->lock held: count one failure on key's entry (made if need
 * be), which locks at limit; *n_r gets its count. */
static int
lockout_count(modmta_lockout *l, const char *key, const char *site,
              unsigned limit, time_t now, unsigned *n_r)
{
    struct lockout_client *cl = lockout_find(l, key);

    *n_r = 0;
    if (cl == NULL && (cl = lockout_add(l, key, now)) != NULL)
        snprintf(cl->site, sizeof(cl->site), "%s", site);
    if (cl == NULL)
        return MODMTA_LOCKOUT_FULL;
    if (cl->locked_until > now)
        return MODMTA_LOCKOUT_LOCKED;
    if (now - cl->last > (time_t)l->lockout_s)
        cl->failures = 0; /* old failures are forgotten */
    *n_r = ++cl->failures;
    cl->last = now;
    if (cl->failures < limit)
        return MODMTA_LOCKOUT_COUNTED;
    cl->locked_until = now + (time_t)l->lockout_s;
    cl->failures = 0;
    return MODMTA_LOCKOUT_HIT;
}

/* With l->lock held: the site's lock covers its /64 entries; release
 * them, so that they can make room for other clients. */
static void
lockout_release_site(modmta_lockout *l, const char *site)
{
    size_t i;

    for (i = 0; i < l->nclients; i++)
        if (strcmp(l->clients[i].site, site) == 0) {
            l->clients[i].locked_until = 0;
            l->clients[i].failures = 0;
        }
}

/* No limit: max_failures 0; for a shared limiter also lockout_s 0 (a
 * key with no TTL would never expire). */
static int
lockout_off(const modmta_lockout *l)
{
    return l->max_failures == 0 || (l->shared != NULL && l->lockout_s == 0);
}

int
modmta_lockout_check_at(modmta_lockout *l, const char *client_addr,
                        time_t now)
{
    struct lockout_client *cl;
    char key[LOCKOUT_KEY_MAX], site[LOCKOUT_KEY_MAX];
    int r = MODMTA_LOCKOUT_OPEN;

    if (lockout_off(l))
        return MODMTA_LOCKOUT_OPEN;
    lockout_key(client_addr, key, site);
    if (l->shared != NULL)
        return lockout_shared_check(l->shared, key, site);
    pthread_mutex_lock(&l->lock);
    cl = lockout_find(l, key);
    if (lockout_locked(l, site, now) || (cl != NULL && cl->locked_until > now))
        r = MODMTA_LOCKOUT_LOCKED;
    else if (cl == NULL && l->nclients == MODMTA_LOCKOUT_CLIENTS_MAX
             && lockout_victim(l, now) == NULL)
        r = MODMTA_LOCKOUT_FULL;
    pthread_mutex_unlock(&l->lock);
    return r;
}

/* The lock is checked again here: parallel sessions of one client may
 * all have passed check() before the first of them got it locked. */
int
modmta_lockout_fail_at(modmta_lockout *l, const char *client_addr,
                       time_t now, unsigned *failures_r)
{
    char key[LOCKOUT_KEY_MAX], site[LOCKOUT_KEY_MAX];
    unsigned n = 0, site_n;
    int r;

    if (failures_r == NULL)
        failures_r = &n;
    *failures_r = 0;
    if (lockout_off(l))
        return MODMTA_LOCKOUT_COUNTED;
    lockout_key(client_addr, key, site);
    if (l->shared != NULL)
        return lockout_shared_fail(l->shared, key, site, failures_r);
    pthread_mutex_lock(&l->lock);
    if (lockout_locked(l, site, now))
        r = MODMTA_LOCKOUT_LOCKED;
    else
        r = lockout_count(l, key, site, l->max_failures, now, failures_r);
    if (site[0] != '\0' && r != MODMTA_LOCKOUT_LOCKED &&
        lockout_count(l, site, "", l->max_failures * LOCKOUT_SITE_FACTOR,
                      now, &site_n) == MODMTA_LOCKOUT_HIT) {
        lockout_release_site(l, site);
        r = MODMTA_LOCKOUT_HIT;
    }
    pthread_mutex_unlock(&l->lock);
    return r;
}

static time_t
lockout_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

int
modmta_lockout_check(modmta_lockout *l, const char *client_addr)
{
    return modmta_lockout_check_at(l, client_addr, lockout_now());
}

int
modmta_lockout_fail(modmta_lockout *l, const char *client_addr,
                    unsigned *failures_r)
{
    return modmta_lockout_fail_at(l, client_addr, lockout_now(),
                                  failures_r);
}
