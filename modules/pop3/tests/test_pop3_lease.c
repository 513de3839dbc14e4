/*
 * pop3's mailbox leases (pop3_lease.c) on the process's memory store of
 * a fake host: taken once, renewed past their TTL while held, given back
 * when dropped, lost to another owner, and a store outage (the store's
 * lease call wrapped at link time, -Wl,--wrap). TTLs are short; the
 * tests that need time to pass poll for what they wait for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modmta/modmta.h>
#include <fake.h>

#include "pop3_lease.h"

#define TTL_MS 4000 /* renewed every 1.3 s: a stall of over 2.6 s on a
                     * loaded machine would be needed to lose it */

int __real_modmta_shared_lease(modmta_shared *s, const char *key,
                               const char *owner, long ttl_ms);
int __wrap_modmta_shared_lease(modmta_shared *s, const char *key,
                               const char *owner, long ttl_ms);
static atomic_int store_down;    /* every lease call fails */
static atomic_int failed_calls;  /* lease calls that failed so */

int
__wrap_modmta_shared_lease(modmta_shared *s, const char *key,
                           const char *owner, long ttl_ms)
{
    if (store_down) {
        failed_calls++;
        return MODMTA_E_TEMP;
    }
    return __real_modmta_shared_lease(s, key, owner, ttl_ms);
}

struct t {
    modmta_host *h;
    modmta_shared *s;
    struct pop3_leases *ls;
};

static int
setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));

    t->h = modmta_test_host_new("pop3", NULL);
    t->s = modmta_host_shared(t->h);
    t->ls = pop3_leases_new(t->h, TTL_MS);
    assert_non_null(t->ls);
    store_down = 0;
    failed_calls = 0;
    *state = t;
    return 0;
}

static int
teardown(void **state)
{
    struct t *t = *state;

    pop3_leases_free(t->ls);
    modmta_test_host_free(t->h);
    free(t);
    return 0;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Who holds key in the store ("" for nobody). */
static void
assert_holder(struct t *t, const char *key, const char *want)
{
    char *v = NULL;
    int r = modmta_shared_get(t->s, key, &v);

    assert_int_equal(r, want[0] != '\0');
    if (r == 1)
        assert_string_equal(v, want);
    modmta_free(v);
}

static void
test_take_and_drop(void **state)
{
    struct t *t = *state;
    struct pop3_lease *a, *b;

    assert_int_equal(pop3_lease_take(t->ls, "l1:bob", "mx/A", &a), 1);
    assert_holder(t, "l1:bob", "mx/A");
    assert_int_equal(pop3_lease_take(t->ls, "l1:bob", "mx/B", &b), 0);
    assert_null(b);
    assert_int_equal(pop3_lease_held(t->ls, a), 1);
    pop3_lease_drop(t->ls, a);
    assert_holder(t, "l1:bob", "");
    assert_int_equal(pop3_lease_take(t->ls, "l1:bob", "mx/B", &b), 1);
    pop3_lease_drop(t->ls, b);
    pop3_lease_drop(t->ls, NULL);
}

/* Held well past its TTL without anything from the session. */
static void
test_renewed(void **state)
{
    struct t *t = *state;
    struct pop3_lease *a, *b;

    assert_int_equal(pop3_lease_take(t->ls, "l2:bob", "mx/A", &a), 1);
    sleep_ms(2 * TTL_MS);
    assert_holder(t, "l2:bob", "mx/A");
    assert_int_equal(pop3_lease_take(t->ls, "l2:bob", "mx/B", &b), 0);
    assert_int_equal(pop3_lease_held(t->ls, a), 1);
    pop3_lease_drop(t->ls, a);
    assert_holder(t, "l2:bob", "");
}

/* Taken by another owner (as after an outage longer than the TTL): the
 * next renewal marks it lost, and dropping it leaves the other's. */
static void
test_lost(void **state)
{
    struct t *t = *state;
    struct pop3_lease *a;
    int i;

    assert_int_equal(pop3_lease_take(t->ls, "l3:bob", "mx/A", &a), 1);
    assert_int_equal(modmta_shared_release(t->s, "l3:bob", "mx/A"), 1);
    assert_int_equal(__real_modmta_shared_lease(t->s, "l3:bob", "other/Z",
                                                60000), 1);
    for (i = 0; i < 2000 && pop3_lease_held(t->ls, a); i++)
        sleep_ms(10);
    assert_int_equal(pop3_lease_held(t->ls, a), 0);
    pop3_lease_drop(t->ls, a);
    assert_holder(t, "l3:bob", "other/Z");
}

/* A store outage: taking fails with the store's error; renewals that
 * fail leave the lease held, and it is renewed again once the store is
 * back. */
static void
test_store_error(void **state)
{
    struct t *t = *state;
    struct pop3_lease *a;
    int i;

    store_down = 1;
    assert_int_equal(pop3_lease_take(t->ls, "l4:bob", "mx/A", &a),
                     MODMTA_E_TEMP);
    assert_null(a);
    store_down = 0;
    assert_int_equal(pop3_lease_take(t->ls, "l4:bob", "mx/A", &a), 1);
    failed_calls = 0;
    store_down = 1;
    for (i = 0; i < 2000 && failed_calls < 2; i++)
        sleep_ms(10);
    assert_true(failed_calls >= 2);
    store_down = 0;
    assert_int_equal(pop3_lease_held(t->ls, a), 1);
    sleep_ms(2 * TTL_MS);
    assert_holder(t, "l4:bob", "mx/A");
    pop3_lease_drop(t->ls, a);
    assert_holder(t, "l4:bob", "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_take_and_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renewed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_error, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
