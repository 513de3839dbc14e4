/* Unit tests of smtpc's pure parts: reply parsing, EHLO keywords,
 * dot-stuffing, MAIL and RCPT lines. The conversations are tested against
 * scripted servers (test_smtpc_fake.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtpc_priv.h"

/* ---- replies ---- */

/* Parse lines (NULL-terminated) into r; returns the last result of
 * smtpc_rparse_line. */
static int
parse(struct smtpc_reply *r, const char **error_r, ...)
{
    struct smtpc_rparse p;
    const char *line;
    va_list ap;
    int rc = 0;

    memset(&p, 0, sizeof(p));
    memset(r, 0, sizeof(*r));
    va_start(ap, error_r);
    while ((line = va_arg(ap, const char *)) != NULL) {
        rc = smtpc_rparse_line(&p, line, strlen(line));
        if (rc != 0)
            break;
    }
    va_end(ap);
    *error_r = p.error;
    if (rc == 1)
        smtpc_rparse_take(&p, "RCPT TO", r);
    else
        smtpc_rparse_free(&p);
    return rc;
}

static void
test_reply_single(void **state)
{
    struct smtpc_reply r;
    const char *error;

    assert_int_equal(parse(&r, &error, "250 2.1.5 Ok", NULL), 1);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.esc, "2.1.5");
    assert_string_equal(r.text, "Ok");
    assert_string_equal(r.stage, "RCPT TO");
    assert_int_equal(smtpc_reply_class(&r), 2);
    smtpc_reply_clear(&r);

    /* no text, no esc, a bare code */
    assert_int_equal(parse(&r, &error, "354", NULL), 1);
    assert_int_equal(r.code, 354);
    assert_string_equal(r.esc, "");
    assert_string_equal(r.text, "");
    smtpc_reply_clear(&r);

    /* an esc alone */
    assert_int_equal(parse(&r, &error, "550 5.1.1", NULL), 1);
    assert_string_equal(r.esc, "5.1.1");
    assert_string_equal(r.text, "");
    smtpc_reply_clear(&r);
}

static void
test_reply_multiline(void **state)
{
    struct smtpc_reply r;
    const char *error;

    assert_int_equal(parse(&r, &error, "550-5.7.1 Rejected:", "550-5.7.1",
                           "550-see http://x.test/5.7.1 ", "550 5.7.1 bye",
                           NULL), 1);
    assert_int_equal(r.code, 550);
    assert_string_equal(r.esc, "5.7.1");
    assert_string_equal(r.text, "Rejected:\n\nsee http://x.test/5.7.1 \nbye");
    smtpc_reply_clear(&r);

    /* lines without the esc keep their text; "250-" is an empty line */
    assert_int_equal(parse(&r, &error, "250-mx.test", "250-", "250 SIZE 10",
                           NULL), 1);
    assert_string_equal(r.esc, "");
    assert_string_equal(r.text, "mx.test\n\nSIZE 10");
    smtpc_reply_clear(&r);
}

/* What is not an enhanced status code stays text. */
static void
test_reply_not_esc(void **state)
{
    static const char *const lines[] = {
        "250 2.0 ok",        "250 5.0.0 wrong class", "250 2.0.0ok",
        "250 2.1234.0 ok",   "250 2..0 ok",           "250 x.0.0 ok",
        "250 2.0.",
    };
    struct smtpc_reply r;
    const char *error;
    size_t i;

    for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        assert_int_equal(parse(&r, &error, lines[i], NULL), 1);
        assert_string_equal(r.esc, "");
        assert_string_equal(r.text, lines[i] + 4);
        smtpc_reply_clear(&r);
    }
    assert_int_equal(parse(&r, &error, "451 4.3.0", NULL), 1);
    assert_string_equal(r.esc, "4.3.0");
    assert_int_equal(smtpc_reply_class(&r), 4);
    smtpc_reply_clear(&r);
}

static void
test_reply_malformed(void **state)
{
    struct smtpc_reply r;
    const char *error;
    struct smtpc_rparse p;
    char line[16];
    int i, rc = 0;

    assert_int_equal(parse(&r, &error, "25", NULL), -1);
    assert_string_equal(error, "a reply line without a code");
    assert_int_equal(parse(&r, &error, "hello", NULL), -1);
    assert_int_equal(parse(&r, &error, "250x ok", NULL), -1);
    assert_string_equal(error, "a reply code not followed by a space or '-'");
    assert_int_equal(parse(&r, &error, "199 ok", NULL), -1);
    assert_string_equal(error, "a reply code out of 200-599");
    assert_int_equal(parse(&r, &error, "600 ok", NULL), -1);
    assert_int_equal(parse(&r, &error, "250-a", "251 b", NULL), -1);
    assert_string_equal(error, "reply lines with different codes");
    assert_int_equal(parse(&r, &error, "250-a", "x", NULL), -1);

    memset(&p, 0, sizeof(p));
    assert_int_equal(smtpc_rparse_line(&p, "250 a\0b", 7), -1);
    assert_string_equal(p.error, "a NUL in a reply");
    smtpc_rparse_free(&p);

    /* SMTPC_LINES_MAX lines, then one more */
    memset(&p, 0, sizeof(p));
    for (i = 0; i < SMTPC_LINES_MAX && rc == 0; i++) {
        snprintf(line, sizeof(line), "250-%d", i);
        rc = smtpc_rparse_line(&p, line, strlen(line));
    }
    assert_int_equal(rc, 0);
    assert_int_equal(smtpc_rparse_line(&p, "250 last", 8), -1);
    assert_string_equal(p.error, "a reply longer than 100 lines");
    smtpc_rparse_free(&p);
}

static void
test_reply_local(void **state)
{
    struct smtpc_reply r;

    memset(&r, 0, sizeof(r));
    assert_int_equal(smtpc_reply_local(&r, "DATA", "5.3.4", "size %d", 7),
                     0);
    assert_int_equal(r.code, 0);
    assert_int_equal(smtpc_reply_class(&r), 5);
    assert_string_equal(r.text, "size 7");
    smtpc_reply_clear(&r);
    smtpc_reply_local(&r, NULL, "", "x");
    assert_int_equal(smtpc_reply_class(&r), 4);
    smtpc_reply_clear(&r);
}

/* ---- EHLO ---- */

static void
test_ehlo(void **state)
{
    struct smtpc_ehlo e;

    smtpc_ehlo_parse(&e, "mx.test greets you\nPIPELINING\nSIZE 10240000\n"
                         "8bitmime\nSMTPUTF8\nDSN\nSTARTTLS\n"
                         "AUTH CRAM-MD5 LOGIN plain\nENHANCEDSTATUSCODES\n"
                         "CHUNKING\nX-UNKNOWN args");
    assert_int_equal(e.ext, SMTPC_EXT_PIPELINING | SMTPC_EXT_SIZE
                                | SMTPC_EXT_8BITMIME | SMTPC_EXT_SMTPUTF8
                                | SMTPC_EXT_DSN | SMTPC_EXT_STARTTLS
                                | SMTPC_EXT_AUTH
                                | SMTPC_EXT_ENHANCEDSTATUSCODES);
    assert_int_equal(e.size_max, 10240000);
    assert_int_equal(e.auth, SMTPC_AUTH_PLAIN | SMTPC_AUTH_LOGIN);

    /* the first line is the server's name, never a keyword */
    smtpc_ehlo_parse(&e, "PIPELINING");
    assert_int_equal(e.ext, 0);

    /* SIZE without a limit; the old AUTH= form; a mechanism we lack */
    smtpc_ehlo_parse(&e, "mx\nSIZE\nAUTH=LOGIN\nAUTH CRAM-MD5");
    assert_int_equal(e.ext, SMTPC_EXT_SIZE | SMTPC_EXT_AUTH);
    assert_int_equal(e.size_max, 0);
    assert_int_equal(e.auth, SMTPC_AUTH_LOGIN);

    /* an unparsable SIZE is no limit; a keyword is a whole word */
    smtpc_ehlo_parse(&e, "mx\nSIZE 12x\nPIPELININGX\nDSNX");
    assert_int_equal(e.ext, SMTPC_EXT_SIZE);
    assert_int_equal(e.size_max, 0);
}

/* ---- dot-stuffing ---- */

static char *
stuff(const char *in, size_t len, size_t chunk)
{
    struct smtpc_stuff st;
    char *out = malloc(2 * len + 8);
    size_t i, n, o = 0;

    assert_non_null(out);
    smtpc_stuff_init(&st);
    for (i = 0; i < len; i += n) {
        n = len - i < chunk ? len - i : chunk;
        o += smtpc_stuff(&st, in + i, n, out + o);
    }
    o += smtpc_stuff_end(&st, out + o);
    out[o] = '\0';
    return out;
}

/* Each input in chunks of every size from 1 up: the state carries over. */
static void
stuff_is(const char *in, const char *want)
{
    size_t chunk;
    char *out;

    for (chunk = 1; chunk <= strlen(in) + 1; chunk++) {
        out = stuff(in, strlen(in), chunk);
        assert_string_equal(out, want);
        free(out);
    }
}

static void
test_stuffing(void **state)
{
    stuff_is("", ".\r\n");
    stuff_is("a\r\n", "a\r\n.\r\n");
    stuff_is(".\r\n", "..\r\n.\r\n");
    stuff_is("a\r\n.b\r\n..\r\nc.\r\n", "a\r\n..b\r\n...\r\nc.\r\n.\r\n");
    /* the last line without CRLF gets one; a dot alone on it too */
    stuff_is("a\r\nb", "a\r\nb\r\n.\r\n");
    stuff_is("a\r\n.", "a\r\n..\r\n.\r\n");
    stuff_is("a\r", "a\r\n.\r\n");
    /* a bare LF becomes CRLF, and starts a line */
    stuff_is("a\n.b\n", "a\r\n..b\r\n.\r\n");
    /* a bare CR does not end a line */
    stuff_is("a\r.b\r\n", "a\r.b\r\n.\r\n");
    stuff_is("\r\n\r\n", "\r\n\r\n.\r\n");
}

/* ---- command lines ---- */

static void
test_mail_line(void **state)
{
    struct smtpc_ehlo all = {.ext = SMTPC_EXT_SIZE | SMTPC_EXT_8BITMIME
                                    | SMTPC_EXT_SMTPUTF8 | SMTPC_EXT_DSN
                                    | SMTPC_EXT_AUTH};
    struct smtpc_ehlo none = {0};
    struct smtpc_msg m = {.sender = "a@b.test", .need_8bit = 1,
                          .need_smtputf8 = 1, .ret = "HDRS",
                          .envid = "QQ+2Bx", .auth = "<>"};
    char line[SMTPC_CMD_MAX];

    assert_int_equal(smtpc_txn_mail_line(line, sizeof(line), &m, &all, 1234),
                     0);
    assert_string_equal(line, "MAIL FROM:<a@b.test> SIZE=1234 BODY=8BITMIME"
                              " SMTPUTF8 RET=HDRS ENVID=QQ+2Bx AUTH=<>");
    assert_int_equal(smtpc_txn_mail_line(line, sizeof(line), &m, &none, 1),
                     0);
    assert_string_equal(line, "MAIL FROM:<a@b.test>");
    /* not asked: not sent, even when offered */
    m.sender = "";
    m.need_8bit = m.need_smtputf8 = 0;
    m.ret = m.envid = m.auth = NULL;
    assert_int_equal(smtpc_txn_mail_line(line, sizeof(line), &m, &all, 0),
                     0);
    assert_string_equal(line, "MAIL FROM:<> SIZE=0");
    /* never a CR, LF or a broken parameter on the wire */
    m.sender = "a@b\r\nRCPT TO:<x@y>";
    assert_int_equal(smtpc_txn_mail_line(line, sizeof(line), &m, &all, 0),
                     -1);
    m.sender = "a@b";
    m.envid = "a b";
    assert_int_equal(smtpc_txn_mail_line(line, sizeof(line), &m, &all, 0),
                     -1);
    m.envid = "";
    assert_int_equal(smtpc_txn_mail_line(line, sizeof(line), &m, &all, 0),
                     -1);
    m.envid = NULL;
    assert_int_equal(smtpc_txn_mail_line(line, 20, &m, &all, 0), -1);
}

static void
test_rcpt_line(void **state)
{
    struct smtpc_ehlo dsn = {.ext = SMTPC_EXT_DSN};
    struct smtpc_ehlo none = {0};
    struct smtpc_rcpt r = {"bob@c.test", "SUCCESS,DELAY",
                           "rfc822;bob+2Bx@c.test"};
    char line[SMTPC_CMD_MAX];

    assert_int_equal(smtpc_txn_rcpt_line(line, sizeof(line), &r, &dsn), 0);
    assert_string_equal(line, "RCPT TO:<bob@c.test> NOTIFY=SUCCESS,DELAY "
                              "ORCPT=rfc822;bob+2Bx@c.test");
    assert_int_equal(smtpc_txn_rcpt_line(line, sizeof(line), &r, &none), 0);
    assert_string_equal(line, "RCPT TO:<bob@c.test>");
    r.notify = NULL;
    assert_int_equal(smtpc_txn_rcpt_line(line, sizeof(line), &r, &dsn), 0);
    assert_string_equal(line, "RCPT TO:<bob@c.test> "
                              "ORCPT=rfc822;bob+2Bx@c.test");
    r.addr = "";
    assert_int_equal(smtpc_txn_rcpt_line(line, sizeof(line), &r, &dsn), -1);
    r.addr = "bob@c.test\n";
    assert_int_equal(smtpc_txn_rcpt_line(line, sizeof(line), &r, &dsn), -1);
    /* UTF-8 is not a control character */
    r.addr = "j\xc3\xb6rg@c.test";
    r.orcpt = NULL;
    assert_int_equal(smtpc_txn_rcpt_line(line, sizeof(line), &r, &none), 0);
    assert_string_equal(line, "RCPT TO:<j\xc3\xb6rg@c.test>");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_single),
        cmocka_unit_test(test_reply_multiline),
        cmocka_unit_test(test_reply_not_esc),
        cmocka_unit_test(test_reply_malformed),
        cmocka_unit_test(test_reply_local),
        cmocka_unit_test(test_ehlo),
        cmocka_unit_test(test_stuffing),
        cmocka_unit_test(test_mail_line),
        cmocka_unit_test(test_rcpt_line),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
