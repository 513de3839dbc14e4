/*
 * Unit tests of the RFC 5322 address-list tokenizer (addrlist.c): every
 * form of mailbox, groups, comments, folding, quoting, the errors that
 * make the caller leave a field alone, the bounds, and splicing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/err.h>

#include "addrlist.h"

static int
setup(void **state)
{
    *state = calloc(1, sizeof(addrlist));
    return *state == NULL;
}

static int
teardown(void **state)
{
    free(*state);
    return 0;
}

/* The text of address i's addr-spec. */
static const char *
span(const char *v, const addrlist *l, size_t i)
{
    static char buf[1024];
    size_t n = l->addrs[i].end - l->addrs[i].start;

    assert_true(n < sizeof(buf));
    memcpy(buf, v + l->addrs[i].start, n);
    buf[n] = '\0';
    return buf;
}

static void
parse_ok(const char *v, addrlist *l, size_t n)
{
    assert_int_equal(addrlist_parse(v, l), 0);
    assert_int_equal(l->n, n);
}

static void
test_plain(void **state)
{
    addrlist *l = *state;
    const char *v = "alice@Example.COM";

    parse_ok(v, l, 1);
    assert_string_equal(l->addrs[0].local, "alice");
    assert_string_equal(l->addrs[0].domain, "Example.COM");
    assert_string_equal(span(v, l, 0), "alice@Example.COM");
    assert_int_equal(l->addrs[0].local_end, 5);
    assert_false(l->addrs[0].angle);
    assert_false(l->addrs[0].group);
}

static void
test_display_names(void **state)
{
    addrlist *l = *state;
    const char *v = "\"Doe, John\" <john@example.com>, Jane Q. Public "
                    "<jane@example.com>,  =?utf-8?q?J=C3=B6rg?= "
                    "<joerg@example.com>, J\xc3\xbcrgen <juergen@x.org>";

    parse_ok(v, l, 4);
    assert_string_equal(span(v, l, 0), "john@example.com");
    assert_true(l->addrs[0].angle);
    assert_string_equal(span(v, l, 1), "jane@example.com");
    assert_string_equal(span(v, l, 2), "joerg@example.com");
    assert_string_equal(l->addrs[3].local, "juergen");
    assert_string_equal(l->addrs[3].domain, "x.org");
}

static void
test_comments_and_folding(void **state)
{
    addrlist *l = *state;
    const char *v = "(lead) john@example.com (John (the \\) one) Doe),\r\n"
                    "\tPete(A nice \\) chap) <pete(his account)@silly.test"
                    "(his host)>";

    parse_ok(v, l, 2);
    assert_string_equal(span(v, l, 0), "john@example.com");
    assert_string_equal(l->addrs[1].local, "pete");
    assert_string_equal(l->addrs[1].domain, "silly.test");
    /* the span runs over the inner comment, from local to domain */
    assert_string_equal(span(v, l, 1), "pete(his account)@silly.test");
}

static void
test_groups(void **state)
{
    addrlist *l = *state;
    const char *v = "A Group:Ed Jones <c@a.test>,joe@where.test,John "
                    "<jdoe@one.test>; , Mary <mary@x.test>, "
                    "undisclosed-recipients:;";

    parse_ok(v, l, 4);
    assert_string_equal(span(v, l, 0), "c@a.test");
    assert_true(l->addrs[0].group);
    assert_string_equal(span(v, l, 1), "joe@where.test");
    assert_true(l->addrs[1].group);
    assert_false(l->addrs[1].angle);
    assert_true(l->addrs[2].group);
    assert_string_equal(span(v, l, 3), "mary@x.test");
    assert_false(l->addrs[3].group);
    parse_ok("undisclosed-recipients: ;", l, 0);
    parse_ok("  (nothing) ", l, 0);
    parse_ok(",, ,", l, 0);
}

static void
test_quoted_local(void **state)
{
    addrlist *l = *state;
    const char *v = "\"john smith\"@example.com, \"a\\\"b\".c@x.test, "
                    "<\"weird,<>\"@y.test>";

    parse_ok(v, l, 3);
    assert_string_equal(l->addrs[0].local, "john smith");
    assert_int_equal(l->addrs[0].local_end, strlen("\"john smith\""));
    assert_string_equal(l->addrs[1].local, "a\"b.c");
    assert_string_equal(l->addrs[2].local, "weird,<>");
    assert_string_equal(l->addrs[2].domain, "y.test");
}

static void
test_unqualified(void **state)
{
    addrlist *l = *state;
    const char *v = "root, Charlie Root <root>, first.last";

    parse_ok(v, l, 3);
    assert_string_equal(l->addrs[0].local, "root");
    assert_string_equal(l->addrs[0].domain, "");
    assert_string_equal(span(v, l, 1), "root");
    assert_true(l->addrs[1].angle);
    assert_string_equal(l->addrs[2].local, "first.last");
}

static void
test_literal_route_null(void **state)
{
    addrlist *l = *state;
    const char *v = "a@[192.0.2.1], <@relay.test,@r2.test:user@host.test>,"
                    " Nobody <>";

    parse_ok(v, l, 2);
    assert_string_equal(l->addrs[0].domain, "[192.0.2.1]");
    assert_string_equal(span(v, l, 1), "user@host.test");
    assert_string_equal(l->addrs[1].local, "user");
}

static void
test_errors(void **state)
{
    static const char *const bad[] = {
        "\"unterminated@x.test",
        "a@b.test (open comment",
        "<a@b.test",
        "a@b.test>",
        "John Doe",
        "team: a@b.test",
        "a@",
        "@b.test",
        "a@b.test;",
        "a@b.test.",
        "a.@b.test",
        "x <a@b.test> y",
        "<a@b.test> <c@d.test>",
        "a@b.test)",
        "a@[x[y]",
        "a@b.test [x]",
        "a\x01@b.test",
        "a@b\\.test",
        "g1: g2: a@b.test;;",
        "<<a@b.test>>",
        "a@b@c.test",
        "@r.test:",
    };
    addrlist *l = *state;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = addrlist_parse(bad[i], l);

        if (rc != MODMTA_E_INVAL)
            fail_msg("\"%s\": %d, expected MODMTA_E_INVAL", bad[i], rc);
        assert_int_equal(l->n, 0);
    }
}

static void
test_limits(void **state)
{
    static char v[ADDRLIST_VALUE_MAX + 2];
    addrlist *l = *state;
    size_t i, off = 0;

    /* ADDRLIST_ADDRS_MAX addresses fit; one more does not */
    for (i = 0; i < ADDRLIST_ADDRS_MAX; i++)
        off += (size_t)sprintf(v + off, "u%zu@x.test,", i);
    parse_ok(v, l, ADDRLIST_ADDRS_MAX);
    strcpy(v + off, "one@more.test");
    assert_int_equal(addrlist_parse(v, l), MODMTA_E_LIMIT);

    /* a local part longer than the buffer */
    memset(v, 'a', 300);
    strcpy(v + 300, "@x.test");
    assert_int_equal(addrlist_parse(v, l), MODMTA_E_LIMIT);

    /* a value over the bound, even of harmless white space */
    memset(v, ' ', ADDRLIST_VALUE_MAX + 1);
    v[ADDRLIST_VALUE_MAX + 1] = '\0';
    assert_int_equal(addrlist_parse(v, l), MODMTA_E_LIMIT);
    v[ADDRLIST_VALUE_MAX] = '\0';
    parse_ok(v, l, 0);

    /* too many tokens within the length bound */
    for (i = 0; i < ADDRLIST_TOKENS_MAX + 1; i++)
        v[i] = ',';
    v[i] = '\0';
    assert_int_equal(addrlist_parse(v, l), MODMTA_E_LIMIT);
}

static void
test_splice(void **state)
{
    addrlist *l = *state;
    const char *v = "\"Doe, John\" <john@host.example.com> (boss),\r\n"
                    " root, jane@host.example.com";
    const char *repl[3] = {"john@example.com", NULL, "jane@example.com"};
    char *out;

    parse_ok(v, l, 3);
    assert_int_equal(addrlist_splice(v, l, repl, &out), 0);
    assert_string_equal(out, "\"Doe, John\" <john@example.com> (boss),\r\n"
                             " root, jane@example.com");
    free(out);
    repl[0] = repl[2] = NULL;
    repl[1] = "root@mx.test";
    assert_int_equal(addrlist_splice(v, l, repl, &out), 0);
    assert_string_equal(out, "\"Doe, John\" <john@host.example.com> "
                             "(boss),\r\n root@mx.test, "
                             "jane@host.example.com");
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_plain),
        T(test_display_names),
        T(test_comments_and_folding),
        T(test_groups),
        T(test_quoted_local),
        T(test_unqualified),
        T(test_literal_route_null),
        T(test_errors),
        T(test_limits),
        T(test_splice),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
