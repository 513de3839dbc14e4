/* Unit tests of the example module hello with the SDK fakes
 * (libmodmta-test, <fake.h>): config errors, session data, RCPT reject
 * and pass, the X-Hello header and its capability. docs/sdk.md quotes
 * the shape of these tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <modmta/modmta.h>
#include <fake.h>

extern const modmta_module modmta_descriptor;

struct fx {
    modmta_host *host;
    void *inst;
    modmta_ctx *ctx;
};

static void *
create(const modmta_host *h, const char *json, modmta_err *err)
{
    json_error_t jerr;
    json_t *conf = json_loads(json, 0, &jerr);
    void *inst;

    assert_non_null(conf);
    memset(err, 0, sizeof(*err));
    inst = modmta_descriptor.create(conf, h, err);
    json_decref(conf); /* conf is borrowed: create() must not keep it */
    return inst;
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    modmta_err err;

    assert_non_null(f);
    f->host = modmta_test_host_new("hello", "localhost", NULL);
    f->inst = create(f->host, "{\"module\": \"hello\", \"greeting\": \"hi\","
                     " \"reject_domains\": [\"Spam.Test\"]}", &err);
    assert_non_null(f->inst);
    f->ctx = modmta_test_ctx_new(f->host, "192.0.2.1");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    modmta_test_ctx_free(f->ctx); /* runs hello's session destructor */
    modmta_descriptor.destroy(f->inst);
    modmta_test_host_free(f->host);
    free(f);
    return 0;
}

static void
expect_conf_error(const char *json, const char *path)
{
    modmta_host *h = modmta_test_host_new("hello", NULL);
    modmta_err err;

    assert_null(create(h, json, &err));
    assert_string_equal(err.path, path);
    modmta_test_host_free(h);
}

static void
test_config_errors(void **state)
{
    expect_conf_error("{\"module\": \"hello\", \"bogus\": 1}",
                      "$.modules[0].bogus");
    expect_conf_error("{\"greeting\": 42}", "$.modules[0].greeting");
    expect_conf_error("{\"greeting\": \"a\\r\\nBcc: x@y\"}",
                      "$.modules[0].greeting");
    expect_conf_error("{\"greeting\": \"\"}", "$.modules[0].greeting");
    expect_conf_error("{\"reject_domains\": \"spam.test\"}",
                      "$.modules[0].reject_domains");
    expect_conf_error("{\"reject_domains\": [\"a.test\", \"\"]}",
                      "$.modules[0].reject_domains[1]");
}

static void
test_config_defaults(void **state)
{
    modmta_host *h = modmta_test_host_new("hello", NULL);
    modmta_ctx *ctx = modmta_test_ctx_new(h, "192.0.2.1");
    modmta_err err;
    void *inst = create(h, "{\"module\": \"hello\", \"name\": \"hi2\"}", &err);

    assert_non_null(inst);
    /* No reject_domains: every recipient is left to the next module. */
    modmta_test_enter(ctx, MODMTA_PHASE_RCPT, &modmta_descriptor, inst);
    assert_int_equal(modmta_descriptor.on_rcpt(inst, ctx, "a@spam.test"),
                     MODMTA_CONTINUE);
    modmta_test_enter(ctx, MODMTA_PHASE_DATA, &modmta_descriptor, inst);
    assert_int_equal(modmta_descriptor.on_data(inst, ctx), MODMTA_CONTINUE);
    assert_string_equal(modmta_hdr_get(ctx, "x-hello", 0),
                        "Hello from modmta");
    modmta_test_ctx_free(ctx);
    modmta_descriptor.destroy(inst);
    modmta_test_host_free(h);
}

static void
test_rcpt_reject(void **state)
{
    struct fx *f = *state;

    modmta_test_enter(f->ctx, MODMTA_PHASE_RCPT, &modmta_descriptor,
                      f->inst);
    assert_int_equal(modmta_descriptor.on_rcpt(f->inst, f->ctx,
                                               "bob@spam.test"),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(f->ctx), 550);
    assert_string_equal(modmta_test_reply_esc(f->ctx), "5.7.1");
    assert_non_null(strstr(modmta_test_reply_text(f->ctx), "bob@spam.test"));
}

static void
test_rcpt_continue(void **state)
{
    struct fx *f = *state;
    static const char *const ok[] = {
        "bob@localhost", "bob@notspam.test", "bob@spam.test.example",
        "postmaster",
    };
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        modmta_test_enter(f->ctx, MODMTA_PHASE_RCPT, &modmta_descriptor,
                          f->inst);
        assert_int_equal(modmta_descriptor.on_rcpt(f->inst, f->ctx, ok[i]),
                         MODMTA_CONTINUE);
        assert_int_equal(modmta_test_reply_code(f->ctx), 0);
    }
}

static void
test_helo_session_data(void **state)
{
    struct fx *f = *state;
    const char *helo;

    assert_null(modmta_ctx_get_data(f->ctx, f->inst));
    modmta_test_enter(f->ctx, MODMTA_PHASE_HELO, &modmta_descriptor,
                      f->inst);
    assert_int_equal(modmta_descriptor.on_helo(f->inst, f->ctx, "a.test"),
                     MODMTA_CONTINUE);
    /* A second HELO updates the same data (no leak: ASan would say). */
    assert_int_equal(modmta_descriptor.on_helo(f->inst, f->ctx, "b.test"),
                     MODMTA_CONTINUE);
    helo = modmta_ctx_get_data(f->ctx, f->inst);
    assert_non_null(helo);
    assert_string_equal(helo, "b.test"); /* first member: the name */
}

static void
test_data_header(void **state)
{
    struct fx *f = *state;

    modmta_test_add_header(f->ctx, "Subject", "x");
    modmta_test_enter(f->ctx, MODMTA_PHASE_DATA, &modmta_descriptor,
                      f->inst);
    assert_int_equal(modmta_descriptor.on_data(f->inst, f->ctx),
                     MODMTA_CONTINUE);
    assert_string_equal(modmta_hdr_get(f->ctx, "X-Hello", 0), "hi");
    assert_null(modmta_hdr_get(f->ctx, "X-Hello", 1));
}

/* Without MODMTA_CAP_ADDHDRS the SDK refuses the action and hello answers
 * TEMPFAIL: an internal error is never a 5xx. */
static void
test_data_without_cap(void **state)
{
    struct fx *f = *state;
    modmta_module nocap = modmta_descriptor;

    nocap.caps = 0;
    modmta_test_enter(f->ctx, MODMTA_PHASE_DATA, &nocap, f->inst);
    assert_int_equal(modmta_hdr_add(f->ctx, "X-Test", "1"), MODMTA_E_PERM);
    assert_int_equal(nocap.on_data(f->inst, f->ctx), MODMTA_TEMPFAIL);
    assert_null(modmta_hdr_get(f->ctx, "X-Hello", 0));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test_setup_teardown(test_rcpt_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_helo_session_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_data_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_without_cap, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
