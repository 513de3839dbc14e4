/* Unit tests of the SMTP command parser (smtp_cmd.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "queue.h"
#include "smtp_cmd.h"

static void
test_verb(void **state)
{
    struct smtp_cmd c;
    char l1[] = "mail FROM:<a@b>  ", l2[] = "QUIT", l3[] = "NOOP   x  ";
    char l4[] = "MA1L x", l5[] = " HELO x", l6[] = "VERYLONGVERBNAMEX";
    char l7[] = "";

    assert_int_equal(smtp_cmd_parse(l1, &c), 0);
    assert_string_equal(c.verb, "MAIL");
    assert_string_equal(c.args, "FROM:<a@b>");
    assert_int_equal(smtp_cmd_parse(l2, &c), 0);
    assert_string_equal(c.verb, "QUIT");
    assert_string_equal(c.args, "");
    assert_int_equal(smtp_cmd_parse(l3, &c), 0);
    assert_string_equal(c.args, "x");
    assert_int_equal(smtp_cmd_parse(l4, &c), -1);
    assert_int_equal(smtp_cmd_parse(l5, &c), -1);
    assert_int_equal(smtp_cmd_parse(l6, &c), -1);
    assert_int_equal(smtp_cmd_parse(l7, &c), -1);
}

static void
test_mail_path(void **state)
{
    struct smtp_path p;
    struct smtp_status st;
    char a1[] = "FROM:<User@Example.COM> SIZE=100 body=8bitmime";
    char a2[] = "from:<>", a3[] = "FROM: <a@b.c>", a4[] = "FROM:a@b.c";
    char a5[] = "TO:<a@b.c>", a6[] = "FROM:<a@b.c>x", a7[] = "FROM:<a@@b>";

    assert_int_equal(smtp_cmd_parse_path(a1, 1, NULL, &p, &st), 0);
    assert_string_equal(p.str, "User@example.com");
    assert_int_equal(p.nparams, 2);
    assert_string_equal(p.params[0].keyword, "SIZE");
    assert_string_equal(p.params[0].value, "100");
    assert_string_equal(p.params[1].keyword, "BODY");
    assert_string_equal(p.params[1].value, "8bitmime");
    assert_int_equal(smtp_cmd_parse_path(a2, 1, NULL, &p, &st), 0);
    assert_string_equal(p.str, "");
    assert_true(p.addr.is_null);
    assert_int_equal(smtp_cmd_parse_path(a3, 1, NULL, &p, &st), 0);
    assert_string_equal(p.str, "a@b.c");
    assert_int_equal(smtp_cmd_parse_path(a4, 1, NULL, &p, &st), -1);
    assert_int_equal(st.code, 501);
    assert_string_equal(st.esc, "5.1.7");
    assert_int_equal(smtp_cmd_parse_path(a5, 1, NULL, &p, &st), -1);
    assert_string_equal(st.esc, "5.5.4");
    assert_int_equal(smtp_cmd_parse_path(a6, 1, NULL, &p, &st), -1);
    assert_string_equal(st.esc, "5.1.7");
    assert_int_equal(smtp_cmd_parse_path(a7, 1, NULL, &p, &st), -1);
}

static void
test_rcpt_path(void **state)
{
    struct smtp_path p;
    struct smtp_status st;
    char a1[] = "TO:<Postmaster>", a2[] = "TO:<bob>", a3[] = "TO:<>";
    char a4[] = "TO:<@relay.example:bob@example.org>";
    struct smtp_rcpt_opts o;

    assert_int_equal(smtp_cmd_parse_path(a1, 0, NULL, &p, &st), 0);
    assert_int_equal(smtp_cmd_check_rcpt(&p, 0, &o, &st), 0);
    assert_int_equal(o.notify, 0);
    assert_null(o.orcpt);
    assert_int_equal(smtp_cmd_parse_path(a2, 0, NULL, &p, &st), -1);
    assert_int_equal(st.code, 501);
    assert_string_equal(st.esc, "5.1.3");
    assert_int_equal(smtp_cmd_parse_path(a3, 0, NULL, &p, &st), -1);
    assert_string_equal(st.esc, "5.1.3");
    assert_int_equal(smtp_cmd_parse_path(a4, 0, NULL, &p, &st), 0);
    assert_string_equal(p.str, "bob@example.org");
}

static void
test_lenient_paths(void **state)
{
    struct smtp_path p;
    struct smtp_status st;
    char a1[] = "FROM:user1@Smile.COM", a2[] = "TO: root";
    char a3[] = "TO:bob@example.org NOTIFY=NEVER", a4[] = "FROM:<>";
    char a5[] = "TO:<Postmaster>", a6[] = "TO:a b@c", a7[] = "FROM:";
    char a8[] = "TO:user%remote@mx.example", a9[] = "FROM:<postmaster>";

    assert_int_equal(smtp_cmd_parse_path(a1, 1, "MX.example", &p, &st), 0);
    assert_string_equal(p.str, "user1@smile.com");
    assert_int_equal(smtp_cmd_parse_path(a2, 0, "MX.example", &p, &st), 0);
    assert_string_equal(p.str, "root@mx.example");
    assert_int_equal(smtp_cmd_parse_path(a3, 0, "mx.example", &p, &st), 0);
    assert_string_equal(p.str, "bob@example.org");
    assert_int_equal(p.nparams, 1);
    assert_string_equal(p.params[0].keyword, "NOTIFY");
    assert_int_equal(smtp_cmd_parse_path(a4, 1, "mx.example", &p, &st), 0);
    assert_string_equal(p.str, "");
    assert_int_equal(smtp_cmd_parse_path(a5, 0, "mx.example", &p, &st), 0);
    assert_string_equal(p.str, "Postmaster");
    /* "a" is the path, "b@c" a malformed parameter */
    assert_int_equal(smtp_cmd_parse_path(a6, 0, "mx.example", &p, &st), -1);
    assert_string_equal(st.esc, "5.5.4");
    assert_int_equal(smtp_cmd_parse_path(a7, 1, "mx.example", &p, &st), -1);
    assert_string_equal(st.esc, "5.1.7");
    /* A percent hack stays one local address: relay_access decides. */
    assert_int_equal(smtp_cmd_parse_path(a8, 0, "mx.example", &p, &st), 0);
    assert_string_equal(p.str, "user%remote@mx.example");
    /* a sender always gets a domain, postmaster too: it may be relayed */
    assert_int_equal(smtp_cmd_parse_path(a9, 1, "mx.example", &p, &st), 0);
    assert_string_equal(p.str, "postmaster@mx.example");
}

static void
test_params_syntax(void **state)
{
    struct smtp_path p;
    struct smtp_status st;
    char a1[] = "FROM:<a@b.c> SIZE=", a2[] = "FROM:<a@b.c> =x";
    char a3[] = "FROM:<a@b.c> SIZE=1 SIZE=2", a4[] = "FROM:<a@b.c> X_Y=1";
    char a5[] = "FROM:<a@b.c> A=b=c", a6[] = "FROM:<a@b.c> X-FOO";

    assert_int_equal(smtp_cmd_parse_path(a1, 1, NULL, &p, &st), -1);
    assert_int_equal(st.code, 501);
    assert_string_equal(st.esc, "5.5.4");
    assert_int_equal(smtp_cmd_parse_path(a2, 1, NULL, &p, &st), -1);
    assert_int_equal(smtp_cmd_parse_path(a3, 1, NULL, &p, &st), -1);
    assert_int_equal(smtp_cmd_parse_path(a4, 1, NULL, &p, &st), -1);
    assert_int_equal(smtp_cmd_parse_path(a5, 1, NULL, &p, &st), -1);
    assert_int_equal(smtp_cmd_parse_path(a6, 1, NULL, &p, &st), 0);
    assert_null(p.params[0].value);
}

static int
check_mail(const char *args, long long limit, struct smtp_mail_opts *o,
           struct smtp_status *st)
{
    struct smtp_path p;
    char buf[512];

    snprintf(buf, sizeof(buf), "%s", args);
    if (smtp_cmd_parse_path(buf, 1, NULL, &p, st) < 0)
        return -2;
    return smtp_cmd_check_mail(&p, limit, o, st);
}

static void
test_mail_params(void **state)
{
    struct smtp_mail_opts o;
    struct smtp_status st;

    assert_int_equal(check_mail("FROM:<a@b.c> SIZE=1000 BODY=8BITMIME "
                                "SMTPUTF8 AUTH=<>", 1000, &o, &st), 0);
    assert_int_equal(o.size, 1000);
    assert_true(o.body8);
    assert_true(o.utf8);
    assert_int_equal(check_mail("FROM:<a@b.c> SIZE=1001", 1000, &o, &st), -1);
    assert_int_equal(st.code, 552);
    assert_string_equal(st.esc, "5.3.4");
    assert_int_equal(check_mail("FROM:<a@b.c> SIZE=99999999", 0, &o, &st), 0);
    assert_int_equal(check_mail("FROM:<a@b.c> SIZE=12x", 0, &o, &st), -1);
    assert_int_equal(st.code, 501);
    /* 20 digits is well-formed (RFC 1870) even past 64 bits: over limit */
    assert_int_equal(check_mail("FROM:<a@b.c> SIZE=99999999999999999999",
                                1000, &o, &st), -1);
    assert_int_equal(st.code, 552);
    assert_int_equal(check_mail("FROM:<a@b.c> SIZE=999999999999999999999",
                                1000, &o, &st), -1);
    assert_int_equal(st.code, 501);
    assert_int_equal(check_mail("FROM:<a@b.c> SIZE=-1", 0, &o, &st), -1);
    assert_int_equal(st.code, 501);
    assert_int_equal(check_mail("FROM:<a@b.c> BODY=BINARYMIME", 0, &o, &st),
                     -1);
    assert_int_equal(st.code, 504);
    assert_int_equal(check_mail("FROM:<a@b.c> FOO=bar", 0, &o, &st), -1);
    assert_int_equal(st.code, 555);
    assert_int_equal(check_mail("FROM:<a@b.c> SMTPUTF8=yes", 0, &o, &st), -1);
    assert_int_equal(st.code, 501);
    assert_int_equal(check_mail("FROM:<a@b.c> AUTH=a+2Bb", 0, &o, &st), 0);
    assert_int_equal(check_mail("FROM:<a@b.c> AUTH=a+2bb", 0, &o, &st), -1);
    /* UTF-8 address: only with SMTPUTF8 */
    assert_int_equal(check_mail("FROM:<j\xc3\xb6rg@b.c>", 0, &o, &st), -1);
    assert_int_equal(st.code, 553);
    assert_int_equal(check_mail("FROM:<j\xc3\xb6rg@b.c> SMTPUTF8", 0, &o,
                                &st), 0);
}

static int
check_rcpt(const char *args, struct smtp_rcpt_opts *o, struct smtp_status *st)
{
    static char buf[1024];
    struct smtp_path p;

    snprintf(buf, sizeof(buf), "%s", args);
    if (smtp_cmd_parse_path(buf, 0, NULL, &p, st) < 0)
        return -2;
    return smtp_cmd_check_rcpt(&p, 0, o, st);
}

/* RFC 3461 4.1 and 4.2: NOTIFY and ORCPT, each malformed form a 501. */
static void
test_rcpt_dsn(void **state)
{
    static const char *const bad_notify[] = {
        "NOTIFY=", "NOTIFY", "NOTIFY=NEVER,SUCCESS", "NOTIFY=FAILURE,NEVER",
        "NOTIFY=SUCCESS,SUCCESS", "NOTIFY=SUCCESS,", "NOTIFY=,DELAY",
        "NOTIFY=SOMETIMES", "NOTIFY=SUCCESS,,DELAY", "NOTIFY=NEVERX",
        "NOTIFY=NEVER,NEVER",
    };
    static const char *const bad_orcpt[] = {
        "ORCPT", "ORCPT=rfc822", "ORCPT=;a@b.c", "ORCPT=rfc822;",
        "ORCPT=rfc822;a+2x@b.c", "ORCPT=rfc822;a+00@b.c",
        "ORCPT=rfc(822);a@b.c", "ORCPT=rfc\"822;a@b.c",
    };
    struct smtp_rcpt_opts o;
    struct smtp_status st;
    char big[700];

    assert_int_equal(check_rcpt("TO:<a@b.c> NOTIFY=NEVER", &o, &st), 0);
    assert_int_equal(o.notify, QNOTIFY_NEVER);
    assert_int_equal(check_rcpt("TO:<a@b.c> notify=delay,Success,FAILURE",
                                &o, &st), 0);
    assert_int_equal(o.notify,
                     QNOTIFY_SUCCESS | QNOTIFY_FAILURE | QNOTIFY_DELAY);
    assert_null(o.orcpt);
    assert_int_equal(check_rcpt("TO:<a@b.c> NOTIFY=success", &o, &st), 0);
    assert_int_equal(o.notify, QNOTIFY_SUCCESS);
    assert_int_equal(check_rcpt("TO:<a@b.c> ORCPT=rfc822;x+2By@b.c "
                                "NOTIFY=FAILURE", &o, &st), 0);
    assert_string_equal(o.orcpt, "rfc822;x+2By@b.c");
    assert_int_equal(o.notify, QNOTIFY_FAILURE);
    assert_int_equal(check_rcpt("TO:<a@b.c> ORCPT=UTF-8;"
                                "j\xc3\xb6rg@b.c", &o, &st), 0);
    assert_int_equal(check_rcpt("TO:<a@b.c> ORCPT=x-local;bob", &o, &st),
                     0);
    for (size_t i = 0; i < sizeof(bad_notify) / sizeof(bad_notify[0]);
         i++) {
        snprintf(big, sizeof(big), "TO:<a@b.c> %s", bad_notify[i]);
        assert_true(check_rcpt(big, &o, &st) < 0);
        assert_int_equal(st.code, 501);
        assert_string_equal(st.esc, "5.5.4");
    }
    for (size_t i = 0; i < sizeof(bad_orcpt) / sizeof(bad_orcpt[0]); i++) {
        snprintf(big, sizeof(big), "TO:<a@b.c> %s", bad_orcpt[i]);
        assert_true(check_rcpt(big, &o, &st) < 0);
        assert_int_equal(st.code, 501);
        assert_string_equal(st.esc, "5.5.4");
    }
    /* 500 characters at most */
    snprintf(big, sizeof(big), "TO:<a@b.c> ORCPT=rfc822;%0*d@b.c",
             500 - 11, 0);
    assert_int_equal(check_rcpt(big, &o, &st), 0);
    assert_int_equal(strlen(o.orcpt), 500);
    snprintf(big, sizeof(big), "TO:<a@b.c> ORCPT=rfc822;%0*d@b.c",
             500 - 10, 0);
    assert_int_equal(check_rcpt(big, &o, &st), -1);
    assert_int_equal(st.code, 501);
    /* each once; any other parameter is not offered */
    assert_int_equal(check_rcpt("TO:<a@b.c> NOTIFY=NEVER NOTIFY=NEVER", &o,
                                &st), -2);
    assert_int_equal(st.code, 501);
    assert_int_equal(check_rcpt("TO:<a@b.c> FOO=bar", &o, &st), -1);
    assert_int_equal(st.code, 555);
}

static void
test_rcpt_params(void **state)
{
    struct smtp_path p;
    struct smtp_rcpt_opts o;
    struct smtp_status st;
    char a2[] = "TO:<\xc3\xa5@b.c>";

    assert_int_equal(smtp_cmd_parse_path(a2, 0, NULL, &p, &st), 0);
    assert_int_equal(smtp_cmd_check_rcpt(&p, 0, &o, &st), -1);
    assert_int_equal(st.code, 553);
    assert_int_equal(smtp_cmd_check_rcpt(&p, 1, &o, &st), 0);
}

/* RFC 3461 4.3, 4.4: RET and ENVID. */
static void
test_mail_dsn(void **state)
{
    static const char *const bad[] = {
        "RET", "RET=", "RET=ALL", "RET=FULL,HDRS", "ENVID", "ENVID=",
        "ENVID=a+2", "ENVID=a+0A", "ENVID=a+7F",
    };
    struct smtp_mail_opts o;
    struct smtp_status st;
    char buf[300];

    assert_int_equal(check_mail("FROM:<a@b.c> RET=FULL ENVID=QQ314159",
                                0, &o, &st), 0);
    assert_int_equal(check_mail("FROM:<a@b.c> ret=hdrs envid=a+2Bb+20c",
                                0, &o, &st), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "FROM:<a@b.c> %s", bad[i]);
        assert_true(check_mail(buf, 0, &o, &st) < 0);
        assert_int_equal(st.code, 501);
        assert_string_equal(st.esc, "5.5.4");
    }
    /* 100 characters at most */
    snprintf(buf, sizeof(buf), "FROM:<a@b.c> ENVID=%0*d", 100, 0);
    assert_int_equal(check_mail(buf, 0, &o, &st), 0);
    snprintf(buf, sizeof(buf), "FROM:<a@b.c> ENVID=%0*d", 101, 0);
    assert_int_equal(check_mail(buf, 0, &o, &st), -1);
    assert_int_equal(st.code, 501);
    assert_int_equal(check_mail("FROM:<a@b.c> RET=FULL RET=HDRS", 0, &o,
                                &st), -2);
    assert_int_equal(st.code, 501);
}

static void
test_xtext(void **state)
{
    assert_true(smtp_cmd_is_xtext("abc+2B+3D"));
    assert_false(smtp_cmd_is_xtext(""));
    assert_false(smtp_cmd_is_xtext("a=b"));
    assert_false(smtp_cmd_is_xtext("a+2"));
    assert_false(smtp_cmd_is_xtext("a b"));
}

/* RFC 5321 4.5.3.1.4, raised by the MAIL and RCPT parameters. */
static void
test_line_max(void **state)
{
    assert_int_equal(smtp_cmd_line_max("NOOP"), 512);
    assert_int_equal(smtp_cmd_line_max("RCPT"), 1012);
    assert_true(smtp_cmd_line_max("MAIL") >= 512 + 26 + 100 + 500);
    assert_int_equal(smtp_cmd_line_max("AUTH"), SMTP_AUTH_LINE_MAX);
}

static void
test_xtext_decode(void **state)
{
    char out[8];

    assert_int_equal(smtp_cmd_xtext_decode("a+2Bb+3D", out, sizeof(out)),
                     4);
    assert_string_equal(out, "a+b=");
    assert_int_equal(smtp_cmd_xtext_decode("abcdefg", out, sizeof(out)), 7);
    assert_int_equal(smtp_cmd_xtext_decode("abcdefgh", out, sizeof(out)),
                     -1);
    assert_int_equal(smtp_cmd_xtext_decode("a+00", out, sizeof(out)), -1);
    assert_int_equal(smtp_cmd_xtext_decode("a+2b", out, sizeof(out)), -1);
    assert_int_equal(smtp_cmd_xtext_decode("", out, sizeof(out)), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verb),
        cmocka_unit_test(test_mail_path),
        cmocka_unit_test(test_rcpt_path),
        cmocka_unit_test(test_lenient_paths),
        cmocka_unit_test(test_params_syntax),
        cmocka_unit_test(test_mail_params),
        cmocka_unit_test(test_rcpt_params),
        cmocka_unit_test(test_rcpt_dsn),
        cmocka_unit_test(test_mail_dsn),
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_xtext_decode),
        cmocka_unit_test(test_line_max),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
