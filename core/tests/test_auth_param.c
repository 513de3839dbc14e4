/*
 * Unit tests of smtp_cmd_auth_mailbox: the MAIL FROM AUTH= value kept in
 * the transaction (RFC 4954 section 5).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "smtp_cmd.h"

static void
check(const char *value, int trusted, const char *want)
{
    char *got = smtp_cmd_auth_mailbox(value, trusted);

    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void
test_trusted_decoded(void **state)
{
    (void)state;
    check("alice@example.org", 1, "alice@example.org");
    check("x+2By@example.org", 1, "x+y@example.org");
    check("a+3Db@example.org", 1, "a=b@example.org");
    check("<>", 1, "<>");
}

/* A client that has not authenticated is not believed (section 5). */
static void
test_untrusted_is_empty(void **state)
{
    (void)state;
    check("alice@example.org", 0, "<>");
    check("<>", 0, "<>");
}

/* What does not decode to a mailbox is not passed on. */
static void
test_not_a_mailbox(void **state)
{
    (void)state;
    check("a+20b@example.org", 1, "<>");   /* space */
    check("a+00b@example.org", 1, "<>");   /* NUL */
    check("a+0Ab@example.org", 1, "<>");   /* LF */
    check("alice", 1, "<>");
    check("@example.org", 1, "<>");
    check("alice@", 1, "<>");
    check("a+2x@example.org", 1, "<>");    /* not xtext */
    check("a+2a@example.org", 1, "<>");    /* lower-case hex */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trusted_decoded),
        cmocka_unit_test(test_untrusted_is_empty),
        cmocka_unit_test(test_not_a_mailbox),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
