/*
 * Unit tests of sdk/src/budget.c: a hook call's deadline as a module
 * reads it (modmta_ctx_deadline, modmta_ctx_time_left) and as the SDK's
 * waits use it (budget_cut, budget_spent), on the calling thread only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdlib.h>
#include <cmocka.h>

#include <modmta/modmta.h>

#include "budget_priv.h"
#include "ctx_priv.h"
#include "fake.h"

static void
test_no_deadline(void **state)
{
    modmta_ctx *ctx = modmta_ctx_new(NULL);

    assert_int_equal(modmta_ctx_deadline(ctx), 0);
    assert_int_equal(modmta_ctx_deadline(NULL), 0);
    assert_int_equal(modmta_ctx_time_left(ctx, 5000), 5000);
    assert_int_equal(modmta_ctx_time_left(ctx, -1), 0);
    assert_int_equal(modmta_ctx_time_left(NULL, 7), 7);
    assert_int_equal(budget_cut(123456), 123456);
    assert_int_equal(budget_spent(), 0);
    assert_int_equal(budget_end(ctx), 0);
    modmta_ctx_free(ctx);
}

static void
test_deadline(void **state)
{
    modmta_ctx *ctx = modmta_ctx_new(NULL);
    long long now = budget_now_ms();
    int left;

    budget_begin(ctx, now + 60000);
    assert_int_equal(modmta_ctx_deadline(ctx), now + 60000);
    /* a shorter wait of its own is kept; a longer one is cut */
    assert_int_equal(modmta_ctx_time_left(ctx, 100), 100);
    left = modmta_ctx_time_left(ctx, 120000);
    assert_true(left > 0 && left <= 60000);
    assert_int_equal(budget_cut(now + 100), now + 100);
    assert_int_equal(budget_cut(now + 120000), now + 60000);
    /* not spent yet: a helper's own timeout stopped it */
    assert_int_equal(budget_spent(), 0);
    assert_int_equal(budget_end(ctx), 0);
    assert_int_equal(modmta_ctx_deadline(ctx), 0);
    assert_int_equal(budget_cut(now + 120000), now + 120000);
    modmta_ctx_free(ctx);
}

static void
test_spent(void **state)
{
    modmta_ctx *ctx = modmta_ctx_new(NULL);

    budget_begin(ctx, budget_now_ms() - 1);
    assert_int_equal(modmta_ctx_time_left(ctx, 5000), 0);
    assert_int_equal(budget_spent(), 1);
    assert_int_equal(budget_end(ctx), 1);
    /* the next call starts afresh */
    budget_begin(ctx, budget_now_ms() + 60000);
    assert_int_equal(budget_end(ctx), 0);
    modmta_ctx_free(ctx);
}

static void *
other_thread(void *arg)
{
    long long *cut = arg;

    *cut = budget_cut(*cut);
    return NULL;
}

/* The deadline is the calling thread's: another thread's waits (a
 * module's own thread, the store's) are not cut by it. */
static void
test_thread_local(void **state)
{
    modmta_ctx *ctx = modmta_ctx_new(NULL);
    long long far = budget_now_ms() + 120000, cut = far;
    pthread_t th;

    budget_begin(ctx, budget_now_ms() + 1000);
    assert_int_equal(pthread_create(&th, NULL, other_thread, &cut), 0);
    pthread_join(th, NULL);
    assert_int_equal(cut, far);
    assert_true(budget_cut(far) < far);
    budget_end(ctx);
    modmta_ctx_free(ctx);
}

/* What module authors use in their tests. */
static void
test_fakes(void **state)
{
    modmta_host *h = modmta_test_host_new("t", "localhost", NULL);
    modmta_ctx *ctx = modmta_test_ctx_new(h, "192.0.2.1");

    modmta_test_budget_begin(ctx, 50000);
    assert_true(modmta_ctx_deadline(ctx) > budget_now_ms());
    assert_int_equal(modmta_test_budget_end(ctx), 0);
    assert_int_equal(modmta_ctx_deadline(ctx), 0);
    modmta_test_budget_begin(ctx, -5);
    assert_int_equal(budget_spent(), 1);
    assert_int_equal(modmta_test_budget_end(ctx), 1);
    modmta_test_ctx_free(ctx);
    modmta_test_host_free(h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_deadline),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_spent),
        cmocka_unit_test(test_thread_local),
        cmocka_unit_test(test_fakes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
