/* Unit tests of sdk/src/lockout.c: the failed-login limiter, with the
 * clock given to the _at functions (lockout_priv.h): nothing sleeps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/lockout.h>

#include "lockout_priv.h"

#define T0 ((time_t)100000)

static void
check_is(modmta_lockout *l, const char *addr, time_t now, int want)
{
    assert_int_equal(modmta_lockout_check_at(l, addr, now), want);
}

/* One failure of addr at now: asserts the result and the count. */
static void
fail_is(modmta_lockout *l, const char *addr, time_t now, int want,
        unsigned want_n)
{
    unsigned n = 12345;

    assert_int_equal(modmta_lockout_fail_at(l, addr, now, &n), want);
    assert_int_equal(n, want_n);
}

static modmta_lockout *
limiter(unsigned max_failures, unsigned lockout_s)
{
    modmta_err err;
    modmta_lockout *l = modmta_lockout_new(max_failures, lockout_s, &err);

    assert_non_null(l);
    return l;
}

/* The limit is hit at exactly max_failures; then refused until lockout
 * has passed, and counting starts afresh. */
static void
test_hit_and_cool_down(void **state)
{
    modmta_lockout *l = limiter(3, 300);

    check_is(l, "192.0.2.1", T0, MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", T0, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "192.0.2.1", T0 + 1, MODMTA_LOCKOUT_COUNTED, 2);
    check_is(l, "192.0.2.1", T0 + 2, MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", T0 + 2, MODMTA_LOCKOUT_HIT, 3);
    check_is(l, "192.0.2.1", T0 + 2, MODMTA_LOCKOUT_LOCKED);
    fail_is(l, "192.0.2.1", T0 + 3, MODMTA_LOCKOUT_LOCKED, 0);
    /* another client is not affected */
    check_is(l, "192.0.2.2", T0 + 3, MODMTA_LOCKOUT_OPEN);
    /* locked for 300 s from the hit, then open with a fresh count */
    check_is(l, "192.0.2.1", T0 + 301, MODMTA_LOCKOUT_LOCKED);
    check_is(l, "192.0.2.1", T0 + 302, MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", T0 + 302, MODMTA_LOCKOUT_COUNTED, 1);
    modmta_lockout_free(l);
}

/* A failure more than lockout seconds after the previous one starts the
 * count again; failures closer than that add up, however many. */
static void
test_old_failures_forgotten(void **state)
{
    modmta_lockout *l = limiter(3, 300);

    fail_is(l, "192.0.2.1", T0, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "192.0.2.1", T0 + 1, MODMTA_LOCKOUT_COUNTED, 2);
    fail_is(l, "192.0.2.1", T0 + 302, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "192.0.2.1", T0 + 601, MODMTA_LOCKOUT_COUNTED, 2);
    fail_is(l, "192.0.2.1", T0 + 900, MODMTA_LOCKOUT_HIT, 3);
    modmta_lockout_free(l);
}

/* There is no "success" call, and check() resets nothing: a client that
 * logs in between its guesses is still locked at the limit. */
static void
test_nothing_resets(void **state)
{
    modmta_lockout *l = limiter(3, 300);
    int i;

    fail_is(l, "192.0.2.1", T0, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "192.0.2.1", T0, MODMTA_LOCKOUT_COUNTED, 2);
    for (i = 0; i < 10; i++) /* good logins: checked, never failed */
        check_is(l, "192.0.2.1", T0 + 1, MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", T0 + 2, MODMTA_LOCKOUT_HIT, 3);
    modmta_lockout_free(l);
}

/* IPv6 clients by their /64, whatever the spelling; IPv4-mapped ones as
 * IPv4; an address-less client ("local") by its name. */
static void
test_keys(void **state)
{
    modmta_lockout *l = limiter(3, 300);

    fail_is(l, "2001:db8:1:2::a", T0, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "2001:db8:1:2:ffff::b", T0, MODMTA_LOCKOUT_COUNTED, 2);
    fail_is(l, "2001:db8:1:3::a", T0, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "2001:DB8:1:2:0:0:0:C", T0, MODMTA_LOCKOUT_HIT, 3);
    check_is(l, "2001:db8:1:2:1:2:3:4", T0, MODMTA_LOCKOUT_LOCKED);
    check_is(l, "2001:db8:1:3::a", T0, MODMTA_LOCKOUT_OPEN);

    fail_is(l, "::ffff:192.0.2.1", T0, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "192.0.2.1", T0, MODMTA_LOCKOUT_COUNTED, 2);
    fail_is(l, "::ffff:c000:201", T0, MODMTA_LOCKOUT_HIT, 3);
    /* nor with the other addresses of ::/64 (::1 is one) */
    check_is(l, "::ffff:192.0.2.2", T0, MODMTA_LOCKOUT_OPEN);
    fail_is(l, "::ffff:192.0.2.2", T0, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "::1", T0, MODMTA_LOCKOUT_COUNTED, 1);

    fail_is(l, "local", T0, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "local", T0, MODMTA_LOCKOUT_COUNTED, 2);
    modmta_lockout_free(l);
}

/* Fill the table: client i fails `times` times at now. */
static void
fill(modmta_lockout *l, size_t from, time_t now, int times, int want)
{
    char ip[32];
    size_t i;
    int j;

    for (i = from; i < MODMTA_LOCKOUT_CLIENTS_MAX; i++) {
        snprintf(ip, sizeof(ip), "10.0.%zu.%zu", i / 256, i % 256);
        for (j = 0; j < times; j++)
            fail_is(l, ip, now, j + 1 == times ? want
                                               : MODMTA_LOCKOUT_COUNTED,
                    (unsigned)j + 1);
    }
}

/* A table full of locked clients has no room: a newcomer is FULL (and so
 * refused), and no lockout is lifted; room comes back as locks expire. */
static void
test_full_of_locked(void **state)
{
    modmta_lockout *l = limiter(1, 300);

    fill(l, 0, T0, 1, MODMTA_LOCKOUT_HIT);
    check_is(l, "192.0.2.1", T0 + 1, MODMTA_LOCKOUT_FULL);
    fail_is(l, "192.0.2.1", T0 + 1, MODMTA_LOCKOUT_FULL, 0);
    check_is(l, "10.0.0.0", T0 + 1, MODMTA_LOCKOUT_LOCKED);
    check_is(l, "10.0.15.255", T0 + 1, MODMTA_LOCKOUT_LOCKED);
    check_is(l, "192.0.2.1", T0 + 300, MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", T0 + 300, MODMTA_LOCKOUT_HIT, 1);
    modmta_lockout_free(l);
}

/* One attacker's /48 (the review's attack: 5 failures from each of
 * 4,096 /64s of one /48 filled the table and every new client was
 * refused): the /48 locks after 16 times max_failures, which covers all
 * of its /64s with one entry and frees theirs; other clients still get
 * in, and nothing outside the /48 is locked. */
static void
test_site_of_one_attacker(void **state)
{
    modmta_lockout *l = limiter(5, 300);
    char ip[64];
    unsigned i, j, hits = 0;
    int r;

    for (i = 0; i < MODMTA_LOCKOUT_CLIENTS_MAX; i++) {
        snprintf(ip, sizeof(ip), "2001:db8:7:%x::1", i);
        for (j = 0; j < 5; j++) {
            r = modmta_lockout_fail_at(l, ip, T0 + 1, NULL);
            assert_true(r == MODMTA_LOCKOUT_COUNTED ||
                        r == MODMTA_LOCKOUT_HIT ||
                        r == MODMTA_LOCKOUT_LOCKED);
            hits += r == MODMTA_LOCKOUT_HIT;
        }
    }
    /* 16 /64s hit their own limit, the 16th also the site's */
    assert_int_equal(hits, 16);
    check_is(l, "2001:db8:7:ffff::9", T0 + 2, MODMTA_LOCKOUT_LOCKED);
    check_is(l, "2001:db8:7:3::1", T0 + 2, MODMTA_LOCKOUT_LOCKED);
    check_is(l, "2001:db8:8::1", T0 + 2, MODMTA_LOCKOUT_OPEN);
    check_is(l, "192.0.2.1", T0 + 2, MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", T0 + 2, MODMTA_LOCKOUT_COUNTED, 1);
    /* the site's lock ends like any other */
    check_is(l, "2001:db8:7:3::1", T0 + 301, MODMTA_LOCKOUT_OPEN);
    modmta_lockout_free(l);
}

/* When full, the unlocked entry with the oldest failure makes room,
 * never a locked one even if it is older. */
static void
test_eviction_spares_locked(void **state)
{
    modmta_lockout *l = limiter(2, 300);

    fail_is(l, "10.0.0.0", T0, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "10.0.0.0", T0, MODMTA_LOCKOUT_HIT, 2);   /* oldest */
    fail_is(l, "10.0.0.1", T0 + 1, MODMTA_LOCKOUT_COUNTED, 1);
    fill(l, 2, T0 + 2, 1, MODMTA_LOCKOUT_COUNTED);
    /* a newcomer takes 10.0.0.1's place, not the locked 10.0.0.0's */
    check_is(l, "192.0.2.1", T0 + 3, MODMTA_LOCKOUT_OPEN);
    fail_is(l, "192.0.2.1", T0 + 3, MODMTA_LOCKOUT_COUNTED, 1);
    check_is(l, "10.0.0.0", T0 + 3, MODMTA_LOCKOUT_LOCKED);
    fail_is(l, "10.0.0.1", T0 + 3, MODMTA_LOCKOUT_COUNTED, 1);
    fail_is(l, "192.0.2.1", T0 + 3, MODMTA_LOCKOUT_HIT, 2);
    modmta_lockout_free(l);
}

/* max_failures 0: no limit, and no table. */
static void
test_disabled(void **state)
{
    modmta_lockout *l = limiter(0, 300);
    int i;

    for (i = 0; i < 100; i++)
        fail_is(l, "192.0.2.1", T0, MODMTA_LOCKOUT_COUNTED, 0);
    check_is(l, "192.0.2.1", T0, MODMTA_LOCKOUT_OPEN);
    modmta_lockout_free(l);
}

/* The public calls, on the real clock (a lockout of a day cannot pass
 * during the test), and the limits of new(). */
static void
test_public_calls(void **state)
{
    modmta_lockout *l = limiter(2, 86400);
    modmta_err err;
    unsigned n;

    assert_int_equal(modmta_lockout_fail(l, "192.0.2.1", &n),
                     MODMTA_LOCKOUT_COUNTED);
    assert_int_equal(n, 1);
    assert_int_equal(modmta_lockout_fail(l, "192.0.2.1", NULL),
                     MODMTA_LOCKOUT_HIT);
    assert_int_equal(modmta_lockout_check(l, "192.0.2.1"),
                     MODMTA_LOCKOUT_LOCKED);
    modmta_lockout_free(l);
    modmta_lockout_free(NULL);
    assert_null(modmta_lockout_new(MODMTA_LOCKOUT_FAILURES_MAX + 1, 300,
                                   &err));
    assert_non_null(strstr(err.msg, "failures"));
    assert_null(modmta_lockout_new(5, MODMTA_LOCKOUT_SECONDS_MAX + 1,
                                   &err));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_and_cool_down),
        cmocka_unit_test(test_old_failures_forgotten),
        cmocka_unit_test(test_nothing_resets),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_full_of_locked),
        cmocka_unit_test(test_eviction_spares_locked),
        cmocka_unit_test(test_site_of_one_attacker),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_public_calls),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
