/*
 * Stress mode: the threshold against max_sessions and against the
 * descriptor budget, the 90 % exit mark, and the timeouts it cuts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "stress.h"

static void
test_threshold_and_exit_mark(void **state)
{
    (void)state;
    stress_update(79, 100, 79, 0, 80);
    assert_false(stress_active());
    stress_update(80, 100, 80, 0, 80);
    assert_true(stress_active());
    /* stays on down to 90 % of the mark (72), off below it */
    stress_update(72, 100, 72, 0, 80);
    assert_true(stress_active());
    stress_update(71, 100, 71, 0, 80);
    assert_false(stress_active());
}

static void
test_descriptor_budget(void **state)
{
    (void)state;
    /* max_sessions far away; the descriptor budget decides */
    stress_update(800, 100000, 800, 1000, 80);
    assert_true(stress_active());
    stress_update(0, 100000, 0, 1000, 80);
    assert_false(stress_active());
    /* descriptors, not sessions: 100 sessions over 700 other ones */
    stress_update(100, 100000, 800, 1000, 80);
    assert_true(stress_active());
    stress_update(100, 100000, 100, 1000, 80);
    assert_false(stress_active());
}

static void
test_threshold_zero_is_off(void **state)
{
    (void)state;
    stress_update(1000, 1000, 1000, 1000, 0);
    assert_false(stress_active());
}

static void
test_timeouts(void **state)
{
    (void)state;
    stress_update(0, 10, 0, 0, 50);
    assert_int_equal(stress_timeout(300, 10), 300);
    stress_update(5, 10, 5, 0, 50);
    assert_int_equal(stress_timeout(300, 10), 10);
    /* never longer than the timeout it replaces */
    assert_int_equal(stress_timeout(5, 10), 5);
    stress_update(0, 10, 0, 0, 50);
    assert_int_equal(stress_timeout(300, 10), 300);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_and_exit_mark),
        cmocka_unit_test(test_descriptor_budget),
        cmocka_unit_test(test_threshold_zero_is_off),
        cmocka_unit_test(test_timeouts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
