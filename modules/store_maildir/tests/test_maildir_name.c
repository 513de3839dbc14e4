/* Unit tests of store_maildir's file names: the unique name, its token
 * (queue ID and recipient), the final name's S= and W=, and finding a
 * delivery by its token in new/, cur/ and tmp/ names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>

#include <cmocka.h>

#include "maildir_name.h"

static void
test_token(void **state)
{
    char a[MAILDIR_TOKEN_MAX], b[MAILDIR_TOKEN_MAX], c[MAILDIR_TOKEN_MAX];

    (void)state;
    assert_int_equal(maildir_name_token("0QK3ABCD1234EFGH5678", "bob@x.test",
                                        a, sizeof(a)), 0);
    assert_int_equal(strncmp(a, "Q0QK3ABCD1234EFGH5678R", 22), 0);
    assert_int_equal(strlen(a), 22 + 16);
    /* the recipient counts, in any case */
    assert_int_equal(maildir_name_token("0QK3ABCD1234EFGH5678", "BOB@X.test",
                                        b, sizeof(b)), 0);
    assert_string_equal(a, b);
    assert_int_equal(maildir_name_token("0QK3ABCD1234EFGH5678",
                                        "alice@x.test", c, sizeof(c)), 0);
    assert_string_not_equal(a, c);
    /* nothing but letters and digits from the queue ID */
    assert_int_equal(maildir_name_token("a/b:c.d", "bob", a, sizeof(a)), 0);
    assert_int_equal(strncmp(a, "Qa_b_c_dR", 9), 0);
    assert_int_equal(maildir_name_token("ID", "bob", a, 8), -1);
}

static void
test_unique(void **state)
{
    struct timeval tv = { .tv_sec = 1764000000, .tv_usec = 42 };
    char name[MAILDIR_NAME_MAX], fin[MAILDIR_NAME_MAX];

    (void)state;
    assert_int_equal(maildir_name_unique(&tv, 4242, "QABCR0123456789abcdef",
                                         "mx.example.org", name,
                                         sizeof(name)), 0);
    assert_string_equal(name, "1764000000.M000042P4242QABCR0123456789abcdef"
                              ".mx.example.org");
    /* '/', ':' and ',' (and anything odd) never in a name */
    assert_int_equal(maildir_name_unique(&tv, 1, "QAR0", "a/b:c,d e", name,
                                         sizeof(name)), 0);
    assert_string_equal(name, "1764000000.M000042P1QAR0.a\\057b\\072c\\054d"
                              "\\040e");
    assert_int_equal(maildir_name_final(name, 1234, 1260, fin, sizeof(fin)),
                     0);
    assert_non_null(strstr(fin, ",S=1234,W=1260"));
    assert_int_equal(maildir_name_size(fin), 1234);
    assert_int_equal(maildir_name_unique(&tv, 1, "QAR0", "host", name, 20),
                     -1);
}

static void
test_has_token(void **state)
{
    const char *tok = "QABCDR0123456789abcdef";

    (void)state;
    assert_true(maildir_name_has_token(
        "1764000000.M000042P4242QABCDR0123456789abcdef.mx", tok));
    assert_true(maildir_name_has_token(
        "1764000000.M000042P4242QABCDR0123456789abcdef.mx,S=10,W=11:2,S",
        tok));
    /* another recipient, another message, a name that only contains it */
    assert_false(maildir_name_has_token(
        "1764000000.M000042P4242QABCDR0123456789abcdee.mx", tok));
    assert_false(maildir_name_has_token(
        "1764000000.M000042P4242QXABCDR0123456789abcdef.mx", tok));
    assert_false(maildir_name_has_token(
        "1764000000.M000042PQABCDR0123456789abcdef.mx", tok));
    assert_false(maildir_name_has_token("QABCDR0123456789abcdef.mx", tok));
    assert_false(maildir_name_has_token(
        "1764000000.M000042P4242QABCDR0123456789abcdefX.mx", tok));
    /* Dovecot's own names */
    assert_false(maildir_name_has_token(
        "1764000000.M1P2Q3.host,S=5,W=6:2,", tok));
}

static void
test_size(void **state)
{
    (void)state;
    assert_int_equal(maildir_name_size("1.M1P1.h,S=77,W=80:2,S"), 77);
    assert_int_equal(maildir_name_size("1.M1P1.h,W=80,S=77"), 77);
    assert_int_equal(maildir_name_size("1.M1P1.h"), -1);
    assert_int_equal(maildir_name_size("1.M1P1.h,S=x"), -1);
    assert_int_equal(maildir_name_size("1.M1P1.h,S=7x"), -1);
    assert_int_equal(maildir_name_size("1.M1P1.h:2,S=5"), -1);
    assert_int_equal(maildir_name_size("1.M1P1.h,S=99999999999999999999"),
                     -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_unique),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_size),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
