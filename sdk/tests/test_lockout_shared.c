/* Unit tests of sdk/src/lockout_shared.c: the failed-login limiter
 * counted in the shared state (modmta_lockout_new_shared), on the
 * process's memory store of a fake host. The limiter's sources are built
 * into this test with the store's calls wrapped (-Wl,--wrap), so that a
 * store outage can be made at any call. Time is the store's: the tests
 * that need a lock or a window to end use lockout_s 2 and poll for it.
 * Each test names its limiter apart: the memory store is the process's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <modmta/modmta.h>

#include "fake.h"
#include "lockout_priv.h"

/* The store's calls: the nth from now (1: the next) and all after it
 * fail with MODMTA_E_TEMP; 0: none fails. */
static _Atomic int store_fail_in;
static _Atomic int store_calls; /* calls made: "the store was not asked" */

int __real_modmta_shared_get(modmta_shared *s, const char *key,
                             char **value_r);
int __real_modmta_shared_set(modmta_shared *s, const char *key,
                             const char *value, long ttl_ms);
int __real_modmta_shared_incr(modmta_shared *s, const char *key,
                              long long by, long window_s,
                              long long *value_r);
int __wrap_modmta_shared_get(modmta_shared *s, const char *key,
                             char **value_r);
int __wrap_modmta_shared_set(modmta_shared *s, const char *key,
                             const char *value, long ttl_ms);
int __wrap_modmta_shared_incr(modmta_shared *s, const char *key,
                              long long by, long window_s,
                              long long *value_r);

static int
store_down(void)
{
    store_calls++;
    if (store_fail_in == 0)
        return 0;
    if (store_fail_in > 1) {
        store_fail_in--;
        return 0;
    }
    return 1;
}

int
__wrap_modmta_shared_get(modmta_shared *s, const char *key, char **value_r)
{
    return store_down() ? MODMTA_E_TEMP
                        : __real_modmta_shared_get(s, key, value_r);
}

int
__wrap_modmta_shared_set(modmta_shared *s, const char *key,
                         const char *value, long ttl_ms)
{
    return store_down() ? MODMTA_E_TEMP
                        : __real_modmta_shared_set(s, key, value, ttl_ms);
}

int
__wrap_modmta_shared_incr(modmta_shared *s, const char *key, long long by,
                          long window_s, long long *value_r)
{
    return store_down() ? MODMTA_E_TEMP
                        : __real_modmta_shared_incr(s, key, by, window_s,
                                                    value_r);
}

static modmta_host *host;

static int
setup(void **state)
{
    (void)state;
    store_fail_in = 0;
    store_calls = 0;
    host = modmta_test_host_new("pop3", NULL);
    return host != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    modmta_test_host_free(host);
    host = NULL;
    return 0;
}

static modmta_lockout *
limiter(const char *name, unsigned max_failures, unsigned lockout_s)
{
    modmta_err err;
    modmta_lockout *l = modmta_lockout_new_shared(host, name, max_failures,
                                                  lockout_s, &err);

    if (l == NULL)
        fail_msg("modmta_lockout_new_shared: %s", err.msg);
    return l;
}

static void
check_is(modmta_lockout *l, const char *addr, int want)
{
    assert_int_equal(modmta_lockout_check(l, addr), want);
}

static void
fail_is(modmta_lockout *l, const char *addr, int want, unsigned want_n)
{
    unsigned n = 12345;

    assert_int_equal(modmta_lockout_fail(l, addr, &n), want);
    assert_int_equal(n, want_n);
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Is key in the store (as the limiter wrote it, under the prefix)? */
static int
stored(const char *key)
{
    return __real_modmta_shared_get(modmta_host_shared(host), key, NULL);
}

/* Wait (at most 6 s) until key has expired. */
static void
wait_gone(const char *key)
{
    int i;

    for (i = 0; i < 600 && stored(key) == 1; i++)
        sleep_ms(10);
    assert_int_equal(stored(key), 0);
}

/* The limit is hit at exactly max_failures, the lock and the counter
 * are the documented keys, and when the lock ends the count starts
 * afresh (the window ended before the lock). */
static void
test_hit_and_expiry(void **state)
{
    modmta_lockout *l = limiter("t-hit", 3, 2);

    (void)state;
    check_is(l, "192.0.2.1", MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 2);
    assert_int_equal(stored("lockout:t-hit:fail:192.0.2.1"), 1);
    assert_int_equal(stored("lockout:t-hit:lock:192.0.2.1"), 0);
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_HIT, 3);
    assert_int_equal(stored("lockout:t-hit:lock:192.0.2.1"), 1);
    check_is(l, "192.0.2.1", MODMTA_LOCKOUT_LOCKED);
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_LOCKED, 0);
    check_is(l, "192.0.2.2", MODMTA_LOCKOUT_OPEN);
    wait_gone("lockout:t-hit:lock:192.0.2.1");
    check_is(l, "192.0.2.1", MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 1);
    modmta_lockout_free(l);
}

/* Fixed windows: failures in one window add up however close; a window
 * ends lockout_s after its first failure and takes its count along. */
static void
test_window(void **state)
{
    modmta_lockout *l = limiter("t-window", 3, 2);

    (void)state;
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 2);
    wait_gone("lockout:t-window:fail:192.0.2.1");
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 1);
    /* checks (good logins) reset nothing */
    check_is(l, "192.0.2.1", MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 2);
    check_is(l, "192.0.2.1", MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_HIT, 3);
    modmta_lockout_free(l);
}

/* Clients as the memory table names them: IPv6 by /64, IPv4-mapped as
 * IPv4, "local" as itself. */
static void
test_keys(void **state)
{
    modmta_lockout *l = limiter("t-keys", 3, 300);

    (void)state;
    fail_is(l, "2001:db8:1:2::a", MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "2001:db8:1:2:ffff::b", MODMTA_LOCKOUT_COUNTED, 2);
    fail_is(l, "2001:db8:1:3::a", MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "2001:DB8:1:2:0:0:0:C", MODMTA_LOCKOUT_HIT, 3);
    assert_int_equal(stored("lockout:t-keys:lock:2001:db8:1:2::/64"), 1);
    assert_int_equal(stored("lockout:t-keys:fail:2001:db8:1::/48"), 1);
    check_is(l, "2001:db8:1:2:1:2:3:4", MODMTA_LOCKOUT_LOCKED);
    check_is(l, "2001:db8:1:3::a", MODMTA_LOCKOUT_OPEN);

    fail_is(l, "::ffff:192.0.2.1", MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 2);
    fail_is(l, "::ffff:c000:201", MODMTA_LOCKOUT_HIT, 3);
    check_is(l, "::ffff:192.0.2.2", MODMTA_LOCKOUT_OPEN);

    fail_is(l, "local", MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "local", MODMTA_LOCKOUT_COUNTED, 2);
    modmta_lockout_free(l);
}

/* The /48 locks after 16 times max_failures from its /64s; then a /64
 * of it that never failed is locked too, and other clients are not. */
static void
test_site(void **state)
{
    modmta_lockout *l = limiter("t-site", 1, 300);
    char ip[64];
    unsigned i;

    (void)state;
    for (i = 0; i < 16; i++) {
        snprintf(ip, sizeof(ip), "2001:db8:7:%x::1", i);
        fail_is(l, ip, MODMTA_LOCKOUT_HIT, 1);
    }
    assert_int_equal(stored("lockout:t-site:lock:2001:db8:7::/48"), 1);
    check_is(l, "2001:db8:7:ffff::9", MODMTA_LOCKOUT_LOCKED);
    fail_is(l, "2001:db8:7:ffff::9", MODMTA_LOCKOUT_LOCKED, 0);
    check_is(l, "2001:db8:8::1", MODMTA_LOCKOUT_OPEN);
    check_is(l, "192.0.2.1", MODMTA_LOCKOUT_OPEN);
    modmta_lockout_free(l);
}

/* A new limiter of the same name (the instance after a reload, or on
 * another node) sees the lock; another name does not. */
static void
test_survives_reload(void **state)
{
    modmta_lockout *l = limiter("t-reload", 2, 300), *other;
    modmta_host *h2;
    modmta_err err;

    (void)state;
    fail_is(l, "192.0.2.9", MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "192.0.2.9", MODMTA_LOCKOUT_HIT, 2);
    modmta_lockout_free(l);
    h2 = modmta_test_host_new("pop3", NULL); /* the next generation's */
    assert_non_null(h2);
    l = modmta_lockout_new_shared(h2, "t-reload", 2, 300, &err);
    assert_non_null(l);
    check_is(l, "192.0.2.9", MODMTA_LOCKOUT_LOCKED);
    other = limiter("t-reload-2", 2, 300);
    check_is(other, "192.0.2.9", MODMTA_LOCKOUT_OPEN);
    modmta_lockout_free(other);
    modmta_lockout_free(l);
    modmta_test_host_free(h2);
}

/* Parallel failures of one client: each count is given once, exactly
 * one failure is the HIT, the rest are LOCKED. */
#define RACE_THREADS 8
#define RACE_EACH 4

struct race {
    modmta_lockout *l;
    int results[RACE_EACH];
};

static void *
race_thread(void *arg)
{
    struct race *r = arg;
    int i;

    for (i = 0; i < RACE_EACH; i++)
        r->results[i] = modmta_lockout_fail(r->l, "198.51.100.7", NULL);
    return NULL;
}

static void
test_race(void **state)
{
    struct race r[RACE_THREADS];
    pthread_t t[RACE_THREADS];
    modmta_lockout *l = limiter("t-race", 5, 300);
    int i, j, counted = 0, hit = 0, locked = 0;

    (void)state;
    for (i = 0; i < RACE_THREADS; i++) {
        r[i].l = l;
        assert_int_equal(pthread_create(&t[i], NULL, race_thread, &r[i]), 0);
    }
    for (i = 0; i < RACE_THREADS; i++)
        pthread_join(t[i], NULL);
    for (i = 0; i < RACE_THREADS; i++)
        for (j = 0; j < RACE_EACH; j++) {
            counted += r[i].results[j] == MODMTA_LOCKOUT_COUNTED;
            hit += r[i].results[j] == MODMTA_LOCKOUT_HIT;
            locked += r[i].results[j] == MODMTA_LOCKOUT_LOCKED;
        }
    assert_int_equal(counted, 4);
    assert_int_equal(hit, 1);
    assert_int_equal(locked, RACE_THREADS * RACE_EACH - 5);
    check_is(l, "198.51.100.7", MODMTA_LOCKOUT_LOCKED);
    modmta_lockout_free(l);
}

/* A store outage is a negative MODMTA_E_* from check() and fail(), at
 * whichever call it happens; a count that reached the limit when the
 * lock could not be set is a lock all the same: the next check says
 * LOCKED (no extra guess) and sets the lock. */
static void
test_store_error(void **state)
{
    modmta_lockout *l = limiter("t-down", 2, 300);

    (void)state;
    store_fail_in = 1;
    assert_int_equal(modmta_lockout_check(l, "192.0.2.1"), MODMTA_E_TEMP);
    assert_int_equal(modmta_lockout_fail(l, "192.0.2.1", NULL),
                     MODMTA_E_TEMP);
    store_fail_in = 0;
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 1);
    /* the count reaches the limit, then setting the lock fails: fail()
     * asks get (lock), get (count), incr, set */
    store_fail_in = 4;
    assert_int_equal(modmta_lockout_fail(l, "192.0.2.1", NULL),
                     MODMTA_E_TEMP);
    store_fail_in = 0;
    assert_int_equal(stored("lockout:t-down:lock:192.0.2.1"), 0);
    check_is(l, "192.0.2.1", MODMTA_LOCKOUT_LOCKED);
    assert_int_equal(stored("lockout:t-down:lock:192.0.2.1"), 1);
    fail_is(l, "192.0.2.1", MODMTA_LOCKOUT_LOCKED, 0);
    check_is(l, "192.0.2.1", MODMTA_LOCKOUT_LOCKED);
    /* an IPv6 client's /64, asked after its site */
    store_fail_in = 3;
    assert_int_equal(modmta_lockout_check(l, "2001:db8::1"), MODMTA_E_TEMP);
    store_fail_in = 0;
    modmta_lockout_free(l);
}

/* max_failures 0 or lockout_s 0: no limit, and the store is not asked. */
static void
test_disabled(void **state)
{
    modmta_lockout *a = limiter("t-off", 0, 300);
    modmta_lockout *b = limiter("t-off", 3, 0);
    int i;

    (void)state;
    store_fail_in = 1;
    for (i = 0; i < 10; i++) {
        fail_is(a, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 0);
        fail_is(b, "192.0.2.1", MODMTA_LOCKOUT_COUNTED, 0);
    }
    check_is(a, "192.0.2.1", MODMTA_LOCKOUT_OPEN);
    check_is(b, "192.0.2.1", MODMTA_LOCKOUT_OPEN);
    assert_int_equal(store_calls, 0);
    modmta_lockout_free(a);
    modmta_lockout_free(b);
}

/* Bad names and values are refused with a message. */
static void
test_new_errors(void **state)
{
    char name[200];
    modmta_err err;

    (void)state;
    memset(name, 'a', 129);
    name[129] = '\0';
    assert_null(modmta_lockout_new_shared(host, "a b", 5, 300, &err));
    assert_non_null(strstr(err.msg, "invalid name"));
    assert_null(modmta_lockout_new_shared(host, "", 5, 300, &err));
    assert_null(modmta_lockout_new_shared(host, "x:y", 5, 300, &err));
    assert_null(modmta_lockout_new_shared(host, NULL, 5, 300, &err));
    assert_null(modmta_lockout_new_shared(host, name, 5, 300, &err));
    name[128] = '\0';
    modmta_lockout_free(limiter(name, 5, 300));
    assert_null(modmta_lockout_new_shared(host, "ok",
                                          MODMTA_LOCKOUT_FAILURES_MAX + 1,
                                          300, &err));
    assert_non_null(strstr(err.msg, "failures"));
    assert_null(modmta_lockout_new_shared(host, "ok", 5,
                                          MODMTA_LOCKOUT_SECONDS_MAX + 1,
                                          &err));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hit_and_expiry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_site, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_errors, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
