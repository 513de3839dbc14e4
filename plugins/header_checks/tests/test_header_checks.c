/*
 * header_checks' unit tests: the regexp_table parser on the examples of
 * Postfix's regexp_table(5) and header_checks(5), its errors with
 * PATH:LINE, and the module's on_data through libmodmta-test's fakes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fake.h>
#include <files.h>

#include "header_checks.h"

extern const modmta_module modmta_descriptor;

static char dir[256];

static const char *
path_of(const char *name)
{
    static char p[2][400];
    static int k;

    k ^= 1;
    snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
    return p[k];
}

/* Load text as a table of kind; NULL with err filled on error. */
static struct hc_table *
load(const char *text, enum hc_file kind, modmta_err *err)
{
    const char *path = path_of("table");
    struct hc_table *t;
    FILE *f;

    modmta_test_write_file(path, text);
    f = fopen(path, "r");
    assert_non_null(f);
    memset(err, 0, sizeof(*err));
    t = hc_table_load(f, "table", &kind, err);
    fclose(f);
    return t;
}

/* The action of the rule matching s ("" for none), its text in text. */
static const char *
match(const struct hc_table *t, const char *s, char *text, size_t len,
      int *code_r)
{
    const struct hc_rule *r;
    char *out;
    int m = hc_match(t, s, &r, &out);

    assert_true(m >= 0);
    if (m == 0)
        return "";
    snprintf(text, len, "%s", out);
    free(out);
    if (code_r != NULL)
        *code_r = r->code;
    return hc_action_name(r->action);
}

static void
test_regexp_table_example(void **state)
{
    modmta_err err;
    char text[256];
    int code = 0;
    struct hc_table *t = load(
        "# Disallow sender-specified routing.\n"
        "/[%!@].*[%!@]/       550 Sender-specified routing rejected\n"
        "\n"
        "# Postmaster is OK\n"
        "/^postmaster@/       OK\n"
        "\n"
        "# Protect your outgoing majordomo exploders\n"
        "if !/^owner-/\n"
        "/^(.*)-outgoing@(.*)$/  550 Use ${1}@${2} instead\n"
        "endif\n", HC_FILE_HEADER, &err);

    (void)state;
    assert_non_null(t);
    assert_string_equal(match(t, "a%b@c", text, sizeof(text), &code),
                        "REJECT");
    assert_int_equal(code, 550);
    assert_string_equal(text, "Sender-specified routing rejected");
    assert_string_equal(match(t, "postmaster@x.test", text, sizeof(text),
                              NULL), "DUNNO");
    assert_string_equal(match(t, "list-outgoing@x.test", text,
                              sizeof(text), NULL), "REJECT");
    assert_string_equal(text, "Use list@x.test instead");
    assert_string_equal(match(t, "owner-list-outgoing@x.test", text,
                              sizeof(text), NULL), "");
    hc_table_free(t);
}

static void
test_header_checks_examples(void **state)
{
    modmta_err err;
    char text[256];
    struct hc_table *t = load(
        "/^Subject: make money fast/     REJECT\n"
        "/^To: friend@public\\.com/       REJECT\n"
        "/^Subject: (.*)\\[SPAM\\](.*)/   REPLACE Subject: $1$2\n"
        "/^X-Mailer: bulk/ warn bulk $$ mailer\n", HC_FILE_HEADER, &err);
    struct hc_table *b = load(
        "/^<iframe src=(3D)?cid:.* height=(3D)?0 width=(3D)?0>$/\n"
        "    REJECT IFRAME vulnerability exploit\n", HC_FILE_BODY, &err);

    (void)state;
    assert_non_null(t);
    assert_non_null(b);
    /* i is on by default: case does not matter */
    assert_string_equal(match(t, "SUBJECT: Make Money Fast!!", text,
                              sizeof(text), NULL), "REJECT");
    assert_string_equal(text, "");
    assert_string_equal(match(t, "To: friend@public.com", text,
                              sizeof(text), NULL), "REJECT");
    assert_string_equal(match(t, "To: friend@publicXcom", text,
                              sizeof(text), NULL), "");
    assert_string_equal(match(t, "Subject: hi [SPAM] there", text,
                              sizeof(text), NULL), "REPLACE");
    assert_string_equal(text, "Subject: hi  there");
    assert_string_equal(match(t, "X-Mailer: bulk 1", text, sizeof(text),
                              NULL), "WARN");
    assert_string_equal(text, "bulk $ mailer");
    assert_string_equal(match(b, "<iframe src=3Dcid:x height=3D0 "
                                 "width=3D0>", text, sizeof(text), NULL),
                        "REJECT");
    assert_string_equal(text, "IFRAME vulnerability exploit");
    hc_table_free(t);
    hc_table_free(b);
}

static void
test_flags_and_nesting(void **state)
{
    modmta_err err;
    char text[64];
    struct hc_table *t = load(
        "/^Subject: CASE/i   WARN exact case\n"
        "/^ folded/m          WARN multi-line\n"
        "/^ second/           WARN never\n"
        "IF /^From:/\n"
        "if !/example\\.com/\n"
        "/./                  HOLD outside\n"
        "endif\n"
        "ENDIF\n", HC_FILE_HEADER, &err);

    (void)state;
    assert_non_null(t);
    assert_string_equal(match(t, "Subject: case", text, sizeof(text), NULL),
                        "");
    assert_string_equal(match(t, "Subject: CASE", text, sizeof(text), NULL),
                        "WARN");
    assert_string_equal(match(t, "X-A: one\n folded", text, sizeof(text),
                              NULL), "WARN");
    assert_string_equal(text, "multi-line");
    assert_string_equal(match(t, "X-A: one\n second", text, sizeof(text),
                              NULL), "");
    assert_string_equal(match(t, "From: a@example.com", text, sizeof(text),
                              NULL), "");
    assert_string_equal(match(t, "From: a@other.test", text, sizeof(text),
                              NULL), "HOLD");
    assert_string_equal(match(t, "To: a@other.test", text, sizeof(text),
                              NULL), "");
    hc_table_free(t);
}

/* text must fail to load as kind with a message starting with want. */
static void
load_fails(const char *text, enum hc_file kind, const char *want)
{
    modmta_err err;
    struct hc_table *t = load(text, kind, &err);

    if (t != NULL || strncmp(err.msg, want, strlen(want)) != 0)
        fail_msg("loaded or wrong error for \"%s\": %s", text, err.msg);
}

static void
test_errors_name_file_and_line(void **state)
{
    (void)state;
    load_fails("# c\n/a/ REJECT\nif /b/\n/c/ WARN\n", HC_FILE_HEADER,
               "table:3: if without endif");
    load_fails("/a/ REJECT\nendif\n", HC_FILE_HEADER,
               "table:2: endif without if");
    load_fails("/a/ FROB x\n", HC_FILE_HEADER, "table:1: unknown action");
    load_fails("/a/ REDIRECT x@y\n", HC_FILE_HEADER,
               "table:1: action not supported");
    load_fails("\n/a/ IGNORE\n", HC_FILE_BODY,
               "table:2: not possible in body_checks");
    load_fails("/a(/ REJECT\n", HC_FILE_HEADER,
               "table:1: bad regular expression");
    load_fails("/(a)/ REJECT $2\n", HC_FILE_HEADER,
               "table:1: no such group");
    load_fails("!/(a)/ REJECT $1\n", HC_FILE_HEADER,
               "table:1: no such group");
    load_fails("/a/q REJECT\n", HC_FILE_HEADER,
               "table:1: unknown pattern flag");
    load_fails("/a REJECT\n", HC_FILE_HEADER,
               "table:1: missing the closing delimiter");
    load_fails("/a/\n", HC_FILE_HEADER, "table:1: missing the action");
    load_fails("  /a/ REJECT\n", HC_FILE_HEADER,
               "table:1: continuation line");
    load_fails("/a/ PREPEND no colon\n", HC_FILE_HEADER,
               "table:1: expected a header");
}

/* ---- the module ---- */

struct m {
    modmta_host *h;
    modmta_ctx *ctx;
    void *inst;
};

static struct m
m_new(const char *headers, const char *body)
{
    char conf[1024];
    struct m m;

    snprintf(conf, sizeof(conf), "{\"header_checks\": \"%s\"",
             path_of("header_checks"));
    modmta_test_write_file(path_of("header_checks"), headers);
    snprintf(conf + strlen(conf), sizeof(conf) - strlen(conf),
             ", \"body_checks\": \"%s\"}", path_of("body_checks"));
    modmta_test_write_file(path_of("body_checks"), body);
    m.h = modmta_test_host_new("header_checks", "example.com", NULL);
    m.inst = modmta_test_create_ok(&modmta_descriptor, conf, m.h);
    m.ctx = modmta_test_ctx_new(m.h, "192.0.2.1");
    modmta_test_set_sender(m.ctx, "Q1", "a@remote.test");
    return m;
}

/* A message with these headers (name, value pairs, NULL-terminated)
 * and body; the verdict of on_data. */
static modmta_verdict
m_data(struct m *m, const char *body, ...)
{
    char msg[2048] = "";
    const char *name, *value;
    va_list ap;

    va_start(ap, body);
    while ((name = va_arg(ap, const char *)) != NULL) {
        value = va_arg(ap, const char *);
        modmta_test_add_header(m->ctx, name, value);
        snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "%s: %s\r\n",
                 name, value);
    }
    va_end(ap);
    snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "\r\n%s", body);
    modmta_test_write_file(path_of("msg"), msg);
    modmta_test_set_message(m->ctx, path_of("msg"));
    modmta_test_enter(m->ctx, MODMTA_PHASE_DATA, &modmta_descriptor,
                      m->inst);
    return modmta_descriptor.on_data(m->inst, m->ctx);
}

static const char rules[] =
    "/^Subject: .*viagra/  REJECT 5.7.0 no pills\n"
    "/^Subject: (.*)\\[SPAM\\]/ REPLACE Subject: $1\n"
    "/^X-Secret:/           IGNORE\n"
    "/^X-Mailer: (.*)/      REPLACE X-Old-Mailer: $1\n"
    "/^From:/               PREPEND X-Checked: yes\n"
    "/^X-Tempfail:/         451 later please\n"
    "/^X-Drop:/             DISCARD\n"
    "/^X-Hold:/             HOLD held for review\n";

static void
test_reject_by_subject(void **state)
{
    struct m m = m_new(rules, "/^never$/ REJECT\n");

    (void)state;
    assert_int_equal(m_data(&m, "hi\r\n", "Subject", "cheap VIAGRA", NULL),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(m.ctx), 550);
    assert_string_equal(modmta_test_reply_esc(m.ctx), "5.7.0");
    assert_string_equal(modmta_test_reply_text(m.ctx), "no pills");
    modmta_test_release(&modmta_descriptor, m.inst, m.ctx, m.h);
}

static void
test_header_edits(void **state)
{
    struct m m = m_new(rules, "/^never$/ REJECT\n");

    (void)state;
    assert_int_equal(m_data(&m, "hi\r\n", "From", "<a@remote.test>",
                            "Subject", "hello [SPAM]", "X-Secret", "s",
                            "X-Mailer", "Bulk\r\n 2.0", NULL),
                     MODMTA_CONTINUE);
    assert_string_equal(modmta_hdr_get(m.ctx, "Subject", 0), "hello ");
    assert_null(modmta_hdr_get(m.ctx, "X-Secret", 0));
    assert_null(modmta_hdr_get(m.ctx, "X-Mailer", 0));
    assert_string_equal(modmta_hdr_get(m.ctx, "X-Old-Mailer", 0),
                        "Bulk\r\n 2.0");
    assert_string_equal(modmta_hdr_get(m.ctx, "X-Checked", 0), "yes");
    modmta_test_release(&modmta_descriptor, m.inst, m.ctx, m.h);
}

static void
test_codes_discard_hold(void **state)
{
    struct m m = m_new(rules, "/^never$/ REJECT\n");

    (void)state;
    assert_int_equal(m_data(&m, "x\r\n", "X-Tempfail", "1", NULL),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(m.ctx), 451);
    assert_string_equal(modmta_test_reply_esc(m.ctx), "4.7.1");
    modmta_test_release(&modmta_descriptor, m.inst, m.ctx, m.h);
    m = m_new(rules, "/^never$/ REJECT\n");
    assert_int_equal(m_data(&m, "x\r\n", "X-Drop", "1", "Subject", "viagra",
                            NULL), MODMTA_DISCARD);
    modmta_test_release(&modmta_descriptor, m.inst, m.ctx, m.h);
    /* HOLD goes on: a later REJECT still rejects */
    m = m_new(rules, "/^never$/ REJECT\n");
    assert_int_equal(m_data(&m, "x\r\n", "X-Hold", "1", NULL),
                     MODMTA_CONTINUE);
    modmta_test_release(&modmta_descriptor, m.inst, m.ctx, m.h);
    m = m_new(rules, "/^never$/ REJECT\n");
    assert_int_equal(m_data(&m, "x\r\n", "X-Hold", "1", "Subject", "viagra",
                            NULL), MODMTA_REJECT);
    modmta_test_release(&modmta_descriptor, m.inst, m.ctx, m.h);
}

static void
test_body_checks(void **state)
{
    struct m m = m_new("/^X-Nothing:/ WARN\n",
                       "/^Subject:/ REJECT headers are not body\n"
                       "/^buy (now|today)$/ REJECT spam body\n");

    (void)state;
    assert_int_equal(m_data(&m, "line one\r\nbuy today\r\n", "Subject",
                            "x", NULL), MODMTA_REJECT);
    assert_string_equal(modmta_test_reply_text(m.ctx), "spam body");
    modmta_test_release(&modmta_descriptor, m.inst, m.ctx, m.h);
    m = m_new("/^X-Nothing:/ WARN\n", "/^buy (now|today)$/ REJECT\n");
    assert_int_equal(m_data(&m, "Subject: buy now\r\nbuy later\r\n",
                            "Subject", "buy now", NULL), MODMTA_CONTINUE);
    modmta_test_release(&modmta_descriptor, m.inst, m.ctx, m.h);
}

static void
test_body_long_line(void **state)
{
    /* a line of 100000 octets is inspected in pieces of 2048, as Postfix
     * breaks it: a pattern in a later piece is still found, up to
     * body_checks_size_limit */
    struct m m = m_new("/^X-Nothing:/ WARN\n", "/FORBIDDEN/ REJECT long\n");
    static char msg[100100];
    size_t n;

    (void)state;
    n = (size_t)snprintf(msg, sizeof(msg), "Subject: x\r\n\r\n");
    memset(msg + n, 'a', 100000 - n);
    memcpy(msg + 100000, "\r\n", 3);
    modmta_test_add_header(m.ctx, "Subject", "x");
    modmta_test_set_message(m.ctx, path_of("msg"));
    /* within body_checks_size_limit (51200): found */
    memcpy(msg + 30000, "FORBIDDEN", 9);
    modmta_test_write_file(path_of("msg"), msg);
    modmta_test_enter(m.ctx, MODMTA_PHASE_DATA, &modmta_descriptor, m.inst);
    assert_int_equal(modmta_descriptor.on_data(m.inst, m.ctx),
                     MODMTA_REJECT);
    assert_string_equal(modmta_test_reply_text(m.ctx), "long");
    /* past it: not inspected */
    memset(msg + 30000, 'a', 9);
    memcpy(msg + 99000, "FORBIDDEN", 9);
    modmta_test_write_file(path_of("msg"), msg);
    modmta_test_enter(m.ctx, MODMTA_PHASE_DATA, &modmta_descriptor, m.inst);
    assert_int_equal(modmta_descriptor.on_data(m.inst, m.ctx),
                     MODMTA_CONTINUE);
    modmta_test_release(&modmta_descriptor, m.inst, m.ctx, m.h);
}

static void
test_reload(void **state)
{
    struct m m;

    (void)state;
    modmta_test_reload_clock();
    m = m_new("/^Subject: old/ REJECT\n", "/^never$/ REJECT\n");
    assert_int_equal(m_data(&m, "x\r\n", "Subject", "new", NULL),
                     MODMTA_CONTINUE);
    modmta_test_replace_file(path_of("header_checks"),
                             "/^Subject: new/ REJECT renewed\n");
    modmta_test_reload_advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_int_equal(m_data(&m, "x\r\n", NULL), MODMTA_REJECT);
    assert_string_equal(modmta_test_reply_text(m.ctx), "renewed");
    /* a broken file keeps the rules in service */
    modmta_test_replace_file(path_of("header_checks"), "/^Subject: (/ X\n");
    modmta_test_reload_advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_int_equal(m_data(&m, "x\r\n", NULL), MODMTA_REJECT);
    modmta_test_release(&modmta_descriptor, m.inst, m.ctx, m.h);
}

static void
test_config_errors(void **state)
{
    modmta_host *h = modmta_test_host_new("header_checks", NULL);
    char conf[600];

    (void)state;
    modmta_test_create_fails(&modmta_descriptor, "{}", h, "$.modules[0]");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"header_checks\": \"/nonexistent/x\"}", h,
                             "$.modules[0].header_checks");
    modmta_test_write_file(path_of("bad"), "\n\n/a/ IGNORE\n");
    snprintf(conf, sizeof(conf), "{\"body_checks\": \"%s\"}",
             path_of("bad"));
    modmta_test_create_fails_with(&modmta_descriptor, conf, h,
                                  "$.modules[0].body_checks", ":3: ");
    modmta_test_host_free(h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regexp_table_example),
        cmocka_unit_test(test_header_checks_examples),
        cmocka_unit_test(test_flags_and_nesting),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_reject_by_subject),
        cmocka_unit_test(test_header_edits),
        cmocka_unit_test(test_codes_discard_hold),
        cmocka_unit_test(test_body_checks),
        cmocka_unit_test(test_body_long_line),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_config_errors),
    };
    int r;

    modmta_test_tmpdir(dir, sizeof(dir), "test_header_checks");
    r = cmocka_run_group_tests(tests, NULL, NULL);
    modmta_test_rmtree(dir);
    return r;
}
