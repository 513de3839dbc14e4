/* Unit tests of modmta-sendmail's option parser and message editing
 * (tools/sendmail_opts.c, tools/sendmail_msg.c) and of the maildrop
 * file format (core/maildrop.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <cmocka.h>

#include "maildrop.h"
#include "sendmail.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof(*(a))) - 1)

static void
test_opts_sendmail(void **state)
{
    char *argv[] = {"/usr/sbin/sendmail", "-oi", "-fbob@x.test", "-F",
                    "Bob B", "-t", "-v", "-oem", "-C", "/etc/m.json",
                    "a@x.test", "b", NULL};
    struct sm_opts o;
    char err[128];

    assert_int_equal(sm_parse_opts(ARGC(argv), argv, &o, err, sizeof(err)),
                     0);
    assert_int_equal(o.mode, SM_DELIVER);
    assert_true(o.ignore_dots);
    assert_true(o.extract);
    assert_true(o.verbose);
    assert_true(o.mail_errors);
    assert_string_equal(o.sender, "bob@x.test");
    assert_string_equal(o.fullname, "Bob B");
    assert_string_equal(o.config, "/etc/m.json");
    assert_int_equal(o.nrcpts, 2);
    assert_string_equal(o.rcpts[0], "a@x.test");
    assert_string_equal(o.rcpts[1], "b");
}

static void
test_opts_grouped_and_ignored(void **state)
{
    char *argv[] = {"sendmail", "-ti", "-odi", "-oep", "-N", "never",
                    "-Rhdrs", "-m", "-U", "-B8BITMIME", "-h", "5", "-bm",
                    "--", "-dash@x.test", NULL};
    struct sm_opts o;
    char err[128];

    assert_int_equal(sm_parse_opts(ARGC(argv), argv, &o, err, sizeof(err)),
                     0);
    assert_true(o.extract);
    assert_true(o.ignore_dots);
    assert_false(o.mail_errors);
    assert_int_equal(o.nrcpts, 1);
    assert_string_equal(o.rcpts[0], "-dash@x.test");
}

static void
test_opts_modes(void **state)
{
    char *mq[] = {"/usr/bin/mailq", NULL};
    char *na[] = {"newaliases", "-oA/etc/aliases", NULL};
    char *bp[] = {"sendmail", "-bp", NULL};
    char *bs[] = {"sendmail", "-bs", NULL};
    char *q[] = {"sendmail", "-q", NULL};
    char *qi[] = {"sendmail", "-q30m", NULL};
    char *bi[] = {"sendmail", "-bi", NULL};
    struct sm_opts o;
    char err[128];

    assert_int_equal(sm_parse_opts(ARGC(mq), mq, &o, err, 128), 0);
    assert_int_equal(o.mode, SM_MAILQ);
    assert_int_equal(sm_parse_opts(ARGC(na), na, &o, err, 128), 0);
    assert_int_equal(o.mode, SM_NEWALIASES);
    assert_string_equal(o.aliases, "/etc/aliases");
    assert_int_equal(sm_parse_opts(ARGC(bp), bp, &o, err, 128), 0);
    assert_int_equal(o.mode, SM_MAILQ);
    assert_int_equal(sm_parse_opts(ARGC(bs), bs, &o, err, 128), 0);
    assert_int_equal(o.mode, SM_SMTP);
    assert_int_equal(sm_parse_opts(ARGC(q), q, &o, err, 128), 0);
    assert_int_equal(o.mode, SM_FLUSH);
    /* An interval alone is accepted and starts no queue run. */
    assert_int_equal(sm_parse_opts(ARGC(qi), qi, &o, err, 128), 0);
    assert_int_equal(o.mode, SM_IGNORE);
    assert_int_equal(sm_parse_opts(ARGC(bi), bi, &o, err, 128), 0);
    assert_int_equal(o.mode, SM_NEWALIASES);
}

static void
test_opts_errors(void **state)
{
    char *unknown[] = {"sendmail", "-Z", "a", NULL};
    char *missing[] = {"sendmail", "a", "-f", NULL};
    char *noarg[] = {"sendmail", "-f", NULL};
    char *bd[] = {"sendmail", "-bd", NULL};
    char *norcpt[] = {"sendmail", "-oi", NULL};
    struct sm_opts o;
    char err[128];

    assert_int_equal(sm_parse_opts(ARGC(unknown), unknown, &o, err, 128),
                     EX_USAGE);
    assert_non_null(strstr(err, "-Z"));
    /* Options come first: "-f" after an operand is an operand. */
    assert_int_equal(sm_parse_opts(ARGC(missing), missing, &o, err, 128),
                     0);
    assert_int_equal(o.nrcpts, 2);
    assert_int_equal(sm_parse_opts(ARGC(noarg), noarg, &o, err, 128),
                     EX_USAGE);
    assert_non_null(strstr(err, "needs an argument"));
    assert_int_equal(sm_parse_opts(ARGC(bd), bd, &o, err, 128), EX_USAGE);
    assert_int_equal(sm_parse_opts(ARGC(norcpt), norcpt, &o, err, 128),
                     EX_USAGE);
}

static void
free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

static void
test_extract(void **state)
{
    const char hdr[] =
        "From: Me <me@x.test>\n"
        "To: \"Doe, John\" <john@x.test>, root,\n"
        "\tann@y.test (Ann, the boss)\n"
        "Cc: Team: a@x.test, b@x.test;, <c@x.test>\n"
        "bcc: hidden\n"
        "Reply-To: nobody@x.test\n"
        "Subject: To: not@this.test\n"
        "\n"
        "To: nor@this.test\n";
    char **l = NULL;
    size_t n = 0;

    assert_int_equal(sm_extract_rcpts(hdr, sm_header_len(hdr, strlen(hdr)),
                                      "x.test", &l, &n), 0);
    assert_int_equal(n, 7);
    assert_string_equal(l[0], "john@x.test");
    assert_string_equal(l[1], "root@x.test");
    assert_string_equal(l[2], "ann@y.test");
    assert_string_equal(l[3], "a@x.test");
    assert_string_equal(l[4], "b@x.test");
    assert_string_equal(l[5], "c@x.test");
    assert_string_equal(l[6], "hidden@x.test");
    free_list(l, n);
}

static void
test_bcc_removed(void **state)
{
    const char msg[] = "To: a\nBcc: b,\n c\nSubject: s\nBCC: d\n\nBcc: "
                       "body\n";
    struct sm_buf b = {0};

    assert_int_equal(sm_append(&b, msg, strlen(msg)), 0);
    assert_true(sm_has_field(&b, "bcc"));
    sm_remove_field(&b, "Bcc");
    assert_string_equal(b.p, "To: a\nSubject: s\n\nBcc: body\n");
    assert_false(sm_has_field(&b, "Bcc"));
    assert_int_equal(sm_prepend(&b, "Date: x\n"), 0);
    assert_true(sm_has_field(&b, "date"));
    free(b.p);
}

static void
test_read_message(void **state)
{
    const char in[] = "From someone Sun Dec  6\nSubject: s\r\n\r\nline\n.."
                      "\n.\nafter\n";
    struct sm_buf b = {0};
    FILE *f = fmemopen((void *)in, strlen(in), "r");

    assert_int_equal(sm_read_message(f, 0, 0, &b), 0);
    assert_string_equal(b.p, "Subject: s\n\nline\n..\n");
    fclose(f);
    free(b.p);
    memset(&b, 0, sizeof(b));
    f = fmemopen((void *)in, strlen(in), "r");
    assert_int_equal(sm_read_message(f, 1, 0, &b), 0);
    assert_non_null(strstr(b.p, "\n.\nafter\n"));
    fclose(f);
    free(b.p);
    memset(&b, 0, sizeof(b));
    f = fmemopen((void *)in, strlen(in), "r");
    assert_int_equal(sm_read_message(f, 1, 10, &b), -2);
    fclose(f);
    free(b.p);
}

/* A read error on the input (EIO on stdin; getline() short of memory
 * looks the same) fails the read: the lines before it are not a
 * message. */
static ssize_t
failing_read(void *cookie, char *buf, size_t size)
{
    int *calls = cookie;

    if ((*calls)++ > 0) {
        errno = EIO;
        return -1;
    }
    snprintf(buf, size, "Subject: s\n\nfirst line\n");
    return (ssize_t)strlen(buf);
}

static void
test_read_message_error(void **state)
{
    cookie_io_functions_t io = {.read = failing_read};
    struct sm_buf b = {0};
    int calls = 0;
    FILE *f = fopencookie(&calls, "r", io);

    (void)state;
    assert_non_null(f);
    assert_int_equal(sm_read_message(f, 0, 0, &b), -3);
    assert_int_equal(errno, EIO);
    assert_int_equal(calls, 2);
    fclose(f);
    free(b.p);
}

/* A bare CR becomes a line end and a NUL goes: the daemon's SMTP
 * session refuses both (554 5.5.0), Postfix's sendmail takes them. */
static void
test_read_message_bare_cr_nul(void **state)
{
    const char in[] = "Subject: a\rb\r\r\n\nx\0y\rz\r\n";
    struct sm_buf b = {0};
    FILE *f = fmemopen((void *)in, sizeof(in) - 1, "r");

    (void)state;
    assert_int_equal(sm_read_message(f, 0, 0, &b), 0);
    assert_int_equal(b.len, strlen("Subject: a\nb\n\nxy\nz\n"));
    assert_memory_equal(b.p, "Subject: a\nb\n\nxy\nz\n", b.len);
    fclose(f);
    free(b.p);
}

/* The maildrop writer does the same with what it is given. */
static void
test_maildrop_write_bare_cr_nul(void **state)
{
    const char data[] = "S: a\rb\r\r\n\nx\0y\rz\r\n";
    char dir[] = "/tmp/test_maildrop.XXXXXX", name[256], err[256];
    char path[512], buf[256], *rcpt = "b@x.test";
    struct submit_msg m = {"a@x.test", &rcpt, 1, data, sizeof(data) - 1};
    FILE *f;
    size_t n;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(maildrop_write(dir, &m, name, sizeof(name), err,
                                    sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_non_null(f = fopen(path, "r"));
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    unlink(path);
    rmdir(dir);
    assert_int_equal(n, strlen(MAILDROP_MAGIC "S a@x.test\nR b@x.test\n\n"
                               "S: a\nb\n\nxy\nz\n"));
    assert_memory_equal(buf, MAILDROP_MAGIC "S a@x.test\nR b@x.test\n\n"
                        "S: a\nb\n\nxy\nz\n", n);
}

static void
test_maildrop_parse(void **state)
{
    const char ok[] = MAILDROP_MAGIC "S a@x.test\nR b@x.test\nR c\n\nbody\n";
    const char bad[][64] = {
        "MODMTA-MAILDROP 2\nS a\nR b\n\nx",
        MAILDROP_MAGIC "S a\n\nx",
        MAILDROP_MAGIC "S a\nR b<c>\n\nx",
        MAILDROP_MAGIC "R b\n\nx",
        MAILDROP_MAGIC "S a\nR b",
    };
    struct submit_msg m;
    char err[64];

    assert_int_equal(maildrop_parse(ok, strlen(ok), &m, err, 64), 0);
    assert_string_equal(m.sender, "a@x.test");
    assert_int_equal(m.nrcpts, 2);
    assert_string_equal(m.rcpts[1], "c");
    assert_int_equal(m.len, 5);
    maildrop_free(&m);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(maildrop_parse(bad[i], strlen(bad[i]), &m, err,
                                        64), -1);
}

/* Pickup's file for deferred recipients names the submitter's uid. */
static void
test_maildrop_uid(void **state)
{
    const char with[] = MAILDROP_MAGIC "U 1001\nS a\nR b\n\nx\n";
    const char bad[][48] = {
        MAILDROP_MAGIC "U -1\nS a\nR b\n\nx\n",
        MAILDROP_MAGIC "U 12x\nS a\nR b\n\nx\n",
        MAILDROP_MAGIC "S a\nR b\n\nx\n",
    };
    struct submit_msg m;
    char err[64];

    (void)state;
    assert_int_equal(maildrop_uid(with, strlen(with)), 1001);
    assert_int_equal(maildrop_parse(with, strlen(with), &m, err, 64), 0);
    assert_string_equal(m.sender, "a");
    assert_int_equal(m.nrcpts, 1);
    maildrop_free(&m);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(maildrop_uid(bad[i], strlen(bad[i])), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opts_sendmail),
        cmocka_unit_test(test_opts_grouped_and_ignored),
        cmocka_unit_test(test_opts_modes),
        cmocka_unit_test(test_opts_errors),
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_bcc_removed),
        cmocka_unit_test(test_read_message),
        cmocka_unit_test(test_maildrop_parse),
        cmocka_unit_test(test_maildrop_uid),
        cmocka_unit_test(test_read_message_bare_cr_nul),
        cmocka_unit_test(test_read_message_error),
        cmocka_unit_test(test_maildrop_write_bare_cr_nul),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
