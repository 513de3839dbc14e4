/*
 * Unit tests of the masquerade module: Sendmail's MASQUERADE_AS with
 * masquerade_envelope and masquerade_entire_domain, Postfix's
 * masquerade_domains / masquerade_exceptions / myorigin, the generic map
 * (the how-to's smtp_generic_maps example, verbatim), which senders count
 * as local, fields left alone, a map outage, config errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <modmta/modmta.h>
#include <fake.h>
#include <files.h>

extern const modmta_module modmta_descriptor;

struct fx {
    modmta_host *host;
    void *inst;
    modmta_ctx *ctx;
    const char *rcpts[4];      /* the envelope recipients of run() */
};

static const char *const remote_rcpt[] = {"carol@remote.test", NULL};

static int
group_setup(void **state)
{
    return modmta_test_register_failing_map();
}

/* ---- helpers ---- */

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    /* hostname "mx.test" (the default myorigin) */
    fx->host = modmta_test_host_new("masquerade", "mx.test", "localhost",
                                    "mail.example.com", "mail.baidu.com",
                                    NULL);
    memcpy(fx->rcpts, remote_rcpt, sizeof(remote_rcpt));
    *state = fx;
    return fx->host == NULL;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    modmta_test_release(&modmta_descriptor, fx->inst, fx->ctx, fx->host);
    free(fx);
    return 0;
}

static void
create(struct fx *fx, const char *conf_text)
{
    fx->inst = modmta_test_create_ok(&modmta_descriptor, conf_text,
                                     fx->host);
}

/* A transaction from `sender` with headers given as name, value pairs
 * (NULL-terminated), run through on_data. */
static modmta_verdict
run(struct fx *fx, const char *sender, ...)
{
    const char *name, *value;
    va_list ap;

    if (fx->ctx != NULL)
        modmta_test_ctx_free(fx->ctx);
    fx->ctx = modmta_test_ctx_new(fx->host, "127.0.0.1");
    assert_non_null(fx->ctx);
    modmta_test_set_sender(fx->ctx, "QID1", sender);
    for (size_t i = 0; i < 4 && fx->rcpts[i] != NULL; i++)
        modmta_test_add_rcpt(fx->ctx, fx->rcpts[i]);
    va_start(ap, sender);
    while ((name = va_arg(ap, const char *)) != NULL) {
        value = va_arg(ap, const char *);
        modmta_test_add_header(fx->ctx, name, value);
    }
    va_end(ap);
    modmta_test_enter(fx->ctx, MODMTA_PHASE_DATA, &modmta_descriptor,
                      fx->inst);
    return modmta_descriptor.on_data(fx->inst, fx->ctx);
}

static const char *
hdr(struct fx *fx, const char *name)
{
    return modmta_hdr_get(fx->ctx, name, 0);
}

/* ---- tests ---- */

static void
test_caps(void **state)
{
    assert_true(modmta_descriptor.caps & MODMTA_CAP_CHGHDRS);
    assert_true(modmta_descriptor.caps & MODMTA_CAP_CHGFROM);
    assert_non_null(modmta_descriptor.on_data);
}

/* DESIGN.md's example entry, on the host's local domains. */
static void
test_design_example(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"masquerade\", \"as\": \"example.com\", "
               "\"envelope\": true, \"entire_domain\": true, "
               "\"exceptions\": [\"root\"]}");
    assert_int_equal(run(fx, "alice@mail.example.com",
                         "From", "Alice <alice@mail.example.com>",
                         "Sender", "bob@host.mail.example.com (Bob)",
                         "Reply-To", "root@mail.example.com, "
                                     "Ops <ops@localhost>",
                         "To", "carol@mail.example.com",
                         "Cc", "dave@localhost", NULL),
                     MODMTA_CONTINUE);
    assert_string_equal(hdr(fx, "From"), "Alice <alice@example.com>");
    /* entire_domain: a host under a local domain */
    assert_string_equal(hdr(fx, "Sender"), "bob@example.com (Bob)");
    /* root is an exception; localhost is a local domain */
    assert_string_equal(hdr(fx, "Reply-To"),
                        "root@mail.example.com, Ops <ops@example.com>");
    /* recipients are never touched */
    assert_string_equal(hdr(fx, "To"), "carol@mail.example.com");
    assert_string_equal(hdr(fx, "Cc"), "dave@localhost");
    assert_string_equal(modmta_sender(fx->ctx), "alice@example.com");
    assert_string_equal(modmta_rcpt_at(fx->ctx, 0), "carol@remote.test");

    /* the exception holds for the envelope too */
    run(fx, "root@mail.example.com", "From", "root@mail.example.com", NULL);
    assert_string_equal(modmta_sender(fx->ctx), "root@mail.example.com");
    assert_string_equal(hdr(fx, "From"), "root@mail.example.com");
}

/* The Sendmail how-to: MASQUERADE_AS(`baidu.com'),
 * FEATURE(masquerade_envelope), FEATURE(masquerade_entire_domain). */
static void
test_sendmail_howto(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"masquerade\", \"as\": \"baidu.com\", "
               "\"envelope\": true, \"entire_domain\": true}");
    run(fx, "user1@mail.baidu.com",
        "From", "user1@mail.baidu.com",
        "Reply-To", "user2@www.baidu.com, x@baidu.com, y@remote.test", NULL);
    assert_string_equal(hdr(fx, "From"), "user1@baidu.com");
    assert_string_equal(hdr(fx, "Reply-To"),
                        "user2@baidu.com, x@baidu.com, y@remote.test");
    assert_string_equal(modmta_sender(fx->ctx), "user1@baidu.com");
}

/* Without entire_domain only the local domains themselves; without
 * envelope the envelope sender stays. */
static void
test_exact_domains_no_envelope(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"masquerade\", \"as\": \"example.com\", "
               "\"domains\": [\"corp.test\"]}");
    run(fx, "alice@mail.example.com",
        "From", "alice@mail.example.com, b@host.mail.example.com, "
                "c@corp.test, d@x.corp.test", NULL);
    assert_string_equal(hdr(fx, "From"),
                        "alice@example.com, b@host.mail.example.com, "
                        "c@example.com, d@x.corp.test");
    assert_string_equal(modmta_sender(fx->ctx), "alice@mail.example.com");
}

/* Unqualified addresses get myorigin (default: the host name); an
 * exception is qualified but not masqueraded. */
static void
test_unqualified(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"masquerade\", \"as\": \"example.com\", "
               "\"exceptions\": [\"root\"]}");
    run(fx, "alice@mx.test", "From", "Charlie Root <root>, alice", NULL);
    assert_string_equal(hdr(fx, "From"),
                        "Charlie Root <root@mx.test>, alice@example.com");

    /* the Postfix how-to: myorigin = $mydomain,
     * masquerade_exceptions = root */
    modmta_descriptor.destroy(fx->inst);
    create(fx, "{\"module\": \"masquerade\", \"myorigin\": \"Example.COM\", "
               "\"exceptions\": [\"root\"]}");
    run(fx, "root", "From", "root", "Sender", "alice", NULL);
    assert_string_equal(hdr(fx, "From"), "root@example.com");
    assert_string_equal(hdr(fx, "Sender"), "alice@example.com");
}

/* Postfix masquerade_domains: first match in order; "!" excludes; the
 * domain itself is left as it is. */
static void
test_postfix_domains(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"masquerade\", \"envelope\": true, "
               "\"domains\": [\"!sub.example.org\", \"foo.example.org\", "
               "\"example.org\"], \"exceptions\": [\"root\", "
               "\"Keep@host.example.org\"]}");
    run(fx, "alice@host.example.org",
        "From", "alice@host.example.org",
        "Sender", "b@a.sub.example.org",
        "Reply-To", "c@x.foo.example.org, d@foo.example.org, "
                    "root@host.example.org, keep@HOST.example.org, "
                    "e@example.org", NULL);
    assert_string_equal(hdr(fx, "From"), "alice@example.org");
    assert_string_equal(hdr(fx, "Sender"), "b@a.sub.example.org");
    assert_string_equal(hdr(fx, "Reply-To"),
                        "c@foo.example.org, d@foo.example.org, "
                        "root@host.example.org, keep@HOST.example.org, "
                        "e@example.org");
    assert_string_equal(modmta_sender(fx->ctx), "alice@example.org");
}

/* The how-to's /etc/postfix/generic, verbatim, as a file map. */
static void
test_generic_howto(void **state)
{
    static const char text[] =
        "# /etc/postfix/generic:\n"
        "his@localdomain.local hisaccount@hisisp.example\n"
        "her@localdomain.local heraccount@herisp.example\n"
        "@localdomain.local hisaccount+local@hisisp.example\n";
    struct fx *fx = *state;
    char dir[256], path[300], conf[512];

    modmta_test_tmpdir(dir, sizeof(dir), "modmta-generic");
    snprintf(path, sizeof(path), "%s/generic", dir);
    modmta_test_write_file(path, text);
    snprintf(conf, sizeof(conf), "{\"module\": \"masquerade\", "
             "\"envelope\": true, \"generic\": \"file:%s\"}", path);
    create(fx, conf);
    run(fx, "his@localdomain.local",
        "From", "His Name <his@localdomain.local>",
        "Reply-To", "her@localdomain.local, other@localdomain.local, "
                    "x@remote.test", NULL);
    assert_string_equal(hdr(fx, "From"),
                        "His Name <hisaccount@hisisp.example>");
    assert_string_equal(hdr(fx, "Reply-To"),
                        "heraccount@herisp.example, "
                        "hisaccount+local@hisisp.example, x@remote.test");
    assert_string_equal(modmta_sender(fx->ctx), "hisaccount@hisisp.example");
    modmta_test_rmtree(dir);
}

/* A generic entry wins over masquerading, and is applied even to an
 * exception (it is an explicit, per-address rule). */
static void
test_generic_before_masquerade(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"masquerade\", \"as\": \"example.com\", "
               "\"exceptions\": [\"root\"], \"generic\": "
               "{\"bob@mx.test\": \"robert@isp.test\", "
               "\"root@mx.test\": \"admin@isp.test\"}}");
    run(fx, "bob@mx.test", "From", "bob@mx.test, carl@mx.test, root", NULL);
    assert_string_equal(hdr(fx, "From"),
                        "robert@isp.test, carl@example.com, admin@isp.test");
}

static int
owns_virtual(void *inst, const char *domain)
{
    return strcmp(domain, "virtual.test") == 0;
}

/* The generic map is for mail that leaves (Postfix's smtp_generic_maps,
 * applied by its SMTP client): not used when every recipient is in an
 * inbound domain (local, or owned by a module); used for the whole
 * message, local recipients included, when one is not. Masquerading
 * proper applies either way. */
static void
test_generic_leaving_only(void **state)
{
    static const char *const local[] = {"bob@mx.test", "postmaster",
                                        "v@virtual.test", NULL};
    static const char *const mixed[] = {"bob@mx.test", "x@remote.test",
                                        NULL};
    struct fx *fx = *state;

    assert_int_equal(modmta_test_host_add_owner(fx->host, owns_virtual,
                                                NULL), 0);
    create(fx, "{\"module\": \"masquerade\", \"as\": \"example.com\", "
               "\"envelope\": true, \"generic\": "
               "{\"bob@mx.test\": \"robert@isp.test\"}}");
    memcpy(fx->rcpts, local, sizeof(local));
    run(fx, "bob@mx.test", "From", "bob@mx.test, carl@mx.test", NULL);
    assert_string_equal(hdr(fx, "From"), "bob@example.com, carl@example.com");
    assert_string_equal(modmta_sender(fx->ctx), "bob@example.com");

    memcpy(fx->rcpts, mixed, sizeof(mixed));
    run(fx, "bob@mx.test", "From", "bob@mx.test, carl@mx.test", NULL);
    assert_string_equal(hdr(fx, "From"), "robert@isp.test, carl@example.com");
    assert_string_equal(modmta_sender(fx->ctx), "robert@isp.test");
}

/* Mail from a remote sender or from <> is left alone. */
static void
test_remote_sender(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"masquerade\", \"as\": \"example.com\", "
               "\"envelope\": true}");
    run(fx, "x@remote.test", "From", "alice@mx.test", NULL);
    assert_string_equal(hdr(fx, "From"), "alice@mx.test");
    assert_string_equal(modmta_sender(fx->ctx), "x@remote.test");
    run(fx, "", "From", "MAILER-DAEMON@mx.test", NULL);
    assert_string_equal(hdr(fx, "From"), "MAILER-DAEMON@mx.test");
    assert_string_equal(modmta_sender(fx->ctx), "");
}

/* Folding, comments and quoting outside the address survive; a field
 * that does not parse is not touched; every instance of a field is. */
static void
test_fields_kept(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"masquerade\", \"as\": \"example.com\"}");
    run(fx, "john@mx.test",
        "From", "\"Doe, John\"\r\n <john@mx.test> (work)",
        "Sender", "broken <john@mx.test",
        "Reply-To", "a@mx.test",
        "Reply-To", "\"quoted local\"@mx.test",
        "Subject", "john@mx.test", NULL);
    assert_string_equal(hdr(fx, "From"),
                        "\"Doe, John\"\r\n <john@example.com> (work)");
    assert_string_equal(hdr(fx, "Sender"), "broken <john@mx.test");
    assert_string_equal(modmta_hdr_get(fx->ctx, "Reply-To", 0),
                        "a@example.com");
    assert_string_equal(modmta_hdr_get(fx->ctx, "Reply-To", 1),
                        "\"quoted local\"@example.com");
    assert_string_equal(hdr(fx, "Subject"), "john@mx.test");
}

static void
test_map_outage(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"masquerade\", \"as\": \"example.com\", "
               "\"generic\": \"failtest:x\"}");
    assert_int_equal(run(fx, "a@mx.test", "From", "a@mx.test", NULL),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), "4.3.0");
    /* mail that stays here never asks the map */
    fx->rcpts[0] = "bob@mx.test";
    assert_int_equal(run(fx, "a@mx.test", "From", "a@mx.test", NULL),
                     MODMTA_CONTINUE);
    assert_string_equal(hdr(fx, "From"), "a@example.com");
}

static void
test_config_errors(void **state)
{
    static const struct {
        const char *conf, *path;
    } cases[] = {
        {"{\"as\": \"not a domain\"}", "$.modules[0].as"},
        {"{\"as\": \"a..b\"}", "$.modules[0].as"},
        {"{\"myorigin\": \"\"}", "$.modules[0].myorigin"},
        {"{\"domains\": [\"ok.test\", \"!bad domain\"]}",
         "$.modules[0].domains[1]"},
        {"{\"exceptions\": [\"\"]}", "$.modules[0].exceptions[0]"},
        {"{\"envelope\": \"yes\"}", "$.modules[0].envelope"},
        {"{\"bogus\": 1}", "$.modules[0].bogus"},
    };
    struct fx *fx = *state;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        modmta_test_create_fails(&modmta_descriptor, cases[i].conf,
                                 fx->host, cases[i].path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_caps),
        T(test_design_example),
        T(test_sendmail_howto),
        T(test_exact_domains_no_envelope),
        T(test_unqualified),
        T(test_postfix_domains),
        T(test_generic_howto),
        T(test_generic_before_masquerade),
        T(test_generic_leaving_only),
        T(test_remote_sender),
        T(test_fields_kept),
        T(test_map_outage),
        T(test_config_errors),
#undef T
    };

    return cmocka_run_group_tests(tests, group_setup, NULL);
}
