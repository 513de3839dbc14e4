/* Unit tests of sdk/src/err.c: the one errno mapping and the texts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/err.h>

static void
test_from_errno(void **state)
{
    static const struct {
        int e, code;
    } table[] = {
        {ENOSPC, MODMTA_E_NOSPACE}, {EDQUOT, MODMTA_E_NOSPACE},
        {EFBIG, MODMTA_E_LIMIT},    {ENOENT, MODMTA_E_NOTFOUND},
        {ENOTDIR, MODMTA_E_NOTFOUND}, {EACCES, MODMTA_E_PERM},
        {EPERM, MODMTA_E_PERM},     {EROFS, MODMTA_E_PERM},
        {ELOOP, MODMTA_E_PERM},     {ENOMEM, MODMTA_E_NOMEM},
        {ETIMEDOUT, MODMTA_E_TIMEOUT}, {EIO, MODMTA_E_IO},
        {EBADF, MODMTA_E_IO},       {0, MODMTA_E_IO},
        {-1, MODMTA_E_IO},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (modmta_err_from_errno(table[i].e) != table[i].code)
            fail_msg("errno %d (%s): %d, expected %d", table[i].e,
                     strerror(table[i].e),
                     modmta_err_from_errno(table[i].e), table[i].code);
}

static void
test_strerror(void **state)
{
    (void)state;
    assert_string_equal(modmta_strerror(MODMTA_E_LIMIT), "limit exceeded");
    assert_string_equal(modmta_strerror(MODMTA_E_NOSPACE),
                        "no space left on device");
    assert_string_equal(modmta_strerror(-1000), "unknown error");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_errno),
        cmocka_unit_test(test_strerror),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
