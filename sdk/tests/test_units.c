/* Unit tests of sdk/src/units.c: the one duration and size syntax. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <modmta/conf.h>

static long long
ms(const char *s)
{
    long long v = -1;

    return modmta_parse_duration_ms(s, &v) == 0 ? v : -1;
}

static long long
bytes(const char *s)
{
    long long v = -1;

    return modmta_parse_size(s, &v) == 0 ? v : -1;
}

static void
test_durations(void **state)
{
    (void)state;
    assert_int_equal(ms("90"), 90000);      /* digits alone: seconds */
    assert_int_equal(ms("0"), 0);
    assert_int_equal(ms("500ms"), 500);
    assert_int_equal(ms("30s"), 30000);
    assert_int_equal(ms("15m"), 900000);
    assert_int_equal(ms("4h"), 14400000);
    assert_int_equal(ms("2d"), 172800000);
    assert_int_equal(ms("1w"), 604800000);
    assert_int_equal(ms("999999999999s"), 999999999999000LL);
}

static void
test_bad_durations(void **state)
{
    static const char *const bad[] = {
        "", "s", "ms", "-5", "+5", " 5", "5 ", "5 m", "1.5h", "5M", "5H",
        "5sec", "5mss", "0x10", "1000000000000", "5y", NULL,
    };

    (void)state;
    for (size_t i = 0; bad[i] != NULL; i++)
        assert_int_equal(ms(bad[i]), -1);
    assert_int_equal(modmta_parse_duration_ms(NULL, &(long long){0}),
                     MODMTA_E_INVAL);
}

static void
test_sizes(void **state)
{
    (void)state;
    assert_int_equal(bytes("512"), 512);
    assert_int_equal(bytes("512B"), 512);
    assert_int_equal(bytes("64k"), 65536);
    assert_int_equal(bytes("64K"), 65536);
    assert_int_equal(bytes("64KB"), 65536);
    assert_int_equal(bytes("10M"), 10485760);
    assert_int_equal(bytes("10m"), 10485760);
    assert_int_equal(bytes("2G"), 2147483648LL);
    assert_int_equal(bytes("1T"), 1099511627776LL);
    assert_int_equal(bytes("0"), 0);
}

static void
test_bad_sizes(void **state)
{
    static const char *const bad[] = {
        "", "k", "-1", "1.5M", "10 M", "10MiB", "10Mb", "10P", "0x10",
        "1000000000000", "999999999999T", NULL,
    };

    (void)state;
    for (size_t i = 0; bad[i] != NULL; i++)
        assert_int_equal(bytes(bad[i]), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_bad_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_bad_sizes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
