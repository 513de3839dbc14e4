/* pop3: the command parser, numbers, mailbox names, APOP digests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/err.h>

#include "pop3_cmd.h"

static int
parse(const char *line, struct pop3_cmd *c)
{
    return pop3_cmd_parse(line, strlen(line), c);
}

static void
test_keywords(void **state)
{
    struct pop3_cmd c;

    (void)state;
    assert_int_equal(parse("stat", &c), 0);
    assert_int_equal(c.verb, POP3_STAT);
    assert_int_equal(c.nargs, 0);
    assert_int_equal(parse("Top 3 10", &c), 0);
    assert_int_equal(c.verb, POP3_TOP);
    assert_int_equal(c.nargs, 2);
    assert_string_equal(c.arg[0], "3");
    assert_string_equal(c.arg[1], "10");
    assert_int_equal(parse("XTND foo", &c), 0);
    assert_int_equal(c.verb, POP3_UNKNOWN);
    assert_int_equal(parse("STATS", &c), 0);
    assert_int_equal(c.verb, POP3_UNKNOWN);
}

static void
test_pass_keeps_spaces(void **state)
{
    struct pop3_cmd c;

    (void)state;
    assert_int_equal(parse("PASS my secret  pw", &c), 0);
    assert_int_equal(c.verb, POP3_PASS);
    assert_string_equal(c.arg[0], "my secret  pw");
}

static void
test_bad_syntax(void **state)
{
    struct pop3_cmd c;
    char big[400];

    (void)state;
    assert_int_equal(parse("", &c), MODMTA_E_INVAL);
    assert_int_equal(parse(" LIST", &c), MODMTA_E_INVAL);
    assert_int_equal(parse("LIST  1", &c), MODMTA_E_INVAL);
    assert_int_equal(parse("LIST 1 ", &c), MODMTA_E_INVAL);
    assert_int_equal(parse("TOP 1 2 3", &c), MODMTA_E_INVAL);
    assert_int_equal(parse("USER a\tb", &c), MODMTA_E_INVAL);
    assert_int_equal(pop3_cmd_parse("USER a\0b", 8, &c), MODMTA_E_INVAL);
    memset(big, 'x', sizeof(big));
    memcpy(big, "USER ", 5);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(parse(big, &c), MODMTA_E_LIMIT);
}

static void
test_numbers(void **state)
{
    (void)state;
    assert_int_equal(pop3_cmd_num("1"), 1);
    assert_int_equal(pop3_cmd_num("42"), 42);
    assert_int_equal(pop3_cmd_num("0"), 0);
    assert_int_equal(pop3_cmd_num("-1"), 0);
    assert_int_equal(pop3_cmd_num("+1"), 0);
    assert_int_equal(pop3_cmd_num("1x"), 0);
    assert_int_equal(pop3_cmd_num("9999999999"), 0);
    assert_int_equal(pop3_cmd_lines("0"), 0);
    assert_int_equal(pop3_cmd_lines(""), -1);
}

static void
test_mailbox_names(void **state)
{
    char name[65];

    (void)state;
    assert_int_equal(pop3_cmd_mailbox_name("Bob", name), 0);
    assert_string_equal(name, "bob");
    assert_int_equal(pop3_cmd_mailbox_name("Bob@Example.COM", name), 0);
    assert_string_equal(name, "bob");
    assert_int_equal(pop3_cmd_mailbox_name("../etc/passwd", name),
                     MODMTA_E_INVAL);
    assert_int_equal(pop3_cmd_mailbox_name("a/b", name), MODMTA_E_INVAL);
    assert_int_equal(pop3_cmd_mailbox_name(".hidden", name), MODMTA_E_INVAL);
    assert_int_equal(pop3_cmd_mailbox_name("a..b", name), MODMTA_E_INVAL);
    assert_int_equal(pop3_cmd_mailbox_name("bob.lock", name),
                     MODMTA_E_INVAL);
    assert_int_equal(pop3_cmd_mailbox_name("@x", name), MODMTA_E_INVAL);
    assert_int_equal(pop3_cmd_mailbox_name("a b", name), MODMTA_E_INVAL);
}

static void
test_apop_digest(void **state)
{
    const char *stamp = "<1896.697170952@dbc.mtview.ca.us>";

    (void)state;
    /* RFC 1939 section 7 */
    assert_int_equal(pop3_cmd_apop_check(stamp, "tanstaaf",
                     "c4c9334bac560ecc979e58001b3e22fb"), 1);
    assert_int_equal(pop3_cmd_apop_check(stamp, "tanstaag",
                     "c4c9334bac560ecc979e58001b3e22fb"), 0);
    assert_int_equal(pop3_cmd_apop_check(stamp, "tanstaaf",
                     "c4c9334bac560ecc979e58001b3e22fc"), 0);
    assert_int_equal(pop3_cmd_apop_check(stamp, "tanstaaf",
                     "c4c9334bac560ecc979e58001b3e22f"), 0);
    assert_int_equal(pop3_cmd_apop_check("<1896.697170953@dbc.mtview.ca.us>",
                     "tanstaaf", "c4c9334bac560ecc979e58001b3e22fb"), 0);
    assert_int_equal(pop3_cmd_apop_check(stamp, "tanstaaf", ""), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_pass_keeps_spaces),
        cmocka_unit_test(test_bad_syntax),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_mailbox_names),
        cmocka_unit_test(test_apop_digest),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
