/*
 * Unit tests of the bcc module: always, sender and recipient maps (the
 * how-to's always_bcc), one copy per message however many recipients ask
 * for it, no header, no DSN for the copy, <> and "bounces", a map
 * outage, config errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
    fx->host = modmta_test_host_new("bcc", "localhost", "example.com", NULL);
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

/* One message from sender to the NULL-terminated recipients. */
static modmta_verdict
run(struct fx *fx, const char *sender, ...)
{
    const char *rcpt;
    va_list ap;

    if (fx->ctx != NULL)
        modmta_test_ctx_free(fx->ctx);
    fx->ctx = modmta_test_ctx_new(fx->host, "127.0.0.1");
    assert_non_null(fx->ctx);
    modmta_test_set_sender(fx->ctx, "QID1", sender);
    va_start(ap, sender);
    while ((rcpt = va_arg(ap, const char *)) != NULL)
        modmta_test_add_rcpt(fx->ctx, rcpt);
    va_end(ap);
    modmta_test_add_header(fx->ctx, "Subject", "hi");
    modmta_test_enter(fx->ctx, MODMTA_PHASE_DATA, &modmta_descriptor,
                      fx->inst);
    return modmta_descriptor.on_data(fx->inst, fx->ctx);
}

static size_t
added(struct fx *fx)
{
    return modmta_test_added_count(fx->ctx);
}

static const char *
added_at(struct fx *fx, size_t i)
{
    return modmta_test_added_at(fx->ctx, i);
}

/* ---- tests ---- */

static void
test_caps(void **state)
{
    assert_true(modmta_descriptor.caps & MODMTA_CAP_ADDRCPT);
    assert_false(modmta_descriptor.caps & MODMTA_CAP_ADDHDRS);
}

/* The how-to: always_bcc = boss@example.com. One copy per message, not
 * per recipient; no header; never a DSN for it. */
static void
test_always_howto(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"bcc\", \"always\": \"boss@example.com\"}");
    assert_int_equal(run(fx, "alice@remote.test", "bob@localhost",
                         "carol@localhost", "dave@remote.test", NULL),
                     MODMTA_CONTINUE);
    assert_int_equal(added(fx), 1);
    assert_string_equal(added_at(fx, 0), "boss@example.com");
    assert_true(modmta_test_added_no_dsn(fx->ctx, "boss@example.com"));
    assert_int_equal(modmta_hdr_count(fx->ctx), 1);
    assert_null(modmta_hdr_get(fx->ctx, "Bcc", 0));
}

/* recipient_map hits for several recipients name one copy: added once;
 * lookups by user@domain, by user (local domains only), by @domain. */
static void
test_recipient_map_once(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"bcc\", \"always\": \"archive@example.com\", "
               "\"recipient_map\": {\"bob@localhost\": \"boss@example.com\","
               " \"carol\": \"BOSS@example.com\", "
               "\"@remote.test\": \"out@example.com\", "
               "\"erin\": \"never@example.com\"}}");
    run(fx, "alice@localhost", "bob@localhost", "carol@example.com",
        "dave@remote.test", "erin@other.test", "frank@remote.test", NULL);
    assert_int_equal(added(fx), 3);
    assert_string_equal(added_at(fx, 0), "archive@example.com");
    assert_string_equal(added_at(fx, 1), "boss@example.com");
    assert_string_equal(added_at(fx, 2), "out@example.com");
    assert_true(modmta_test_added_no_dsn(fx->ctx, "out@example.com"));
}

static void
test_sender_map(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"bcc\", \"sender_map\": "
               "{\"alice@localhost\": \"sent@example.com, copy@example.com\","
               " \"@example.com\": \"dom@example.com\"}}");
    run(fx, "alice@localhost", "bob@remote.test", NULL);
    assert_int_equal(added(fx), 2);
    assert_string_equal(added_at(fx, 0), "sent@example.com");
    assert_string_equal(added_at(fx, 1), "copy@example.com");
    run(fx, "zed@example.com", "bob@remote.test", NULL);
    assert_int_equal(added(fx), 1);
    assert_string_equal(added_at(fx, 0), "dom@example.com");
    run(fx, "zed@remote.test", "bob@remote.test", NULL);
    assert_int_equal(added(fx), 0);
}

/* No copy of a bounce unless "bounces" is set. */
static void
test_bounces(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"bcc\", \"always\": \"archive@example.com\"}");
    run(fx, "", "bob@localhost", NULL);
    assert_int_equal(added(fx), 0);
    modmta_descriptor.destroy(fx->inst);
    create(fx, "{\"module\": \"bcc\", \"always\": \"archive@example.com\", "
               "\"bounces\": true}");
    run(fx, "", "bob@localhost", NULL);
    assert_int_equal(added(fx), 1);
}

/* A copy to someone who is already a recipient is not added (and the
 * recipient keeps its DSNs). */
static void
test_already_recipient(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"bcc\", \"always\": \"Bob@localhost\", "
               "\"recipient_map\": {\"carol@localhost\": \"bob@localhost\"}}");
    run(fx, "alice@localhost", "bob@localhost", "carol@localhost", NULL);
    assert_int_equal(added(fx), 0);
    assert_false(modmta_test_added_no_dsn(fx->ctx, "bob@localhost"));
}

/* A map value that is not an address is skipped, the rest used. */
static void
test_bad_entry(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"bcc\", \"recipient_map\": "
               "{\"bob@localhost\": \"<bad, ok@example.com\"}}");
    assert_int_equal(run(fx, "a@localhost", "bob@localhost", NULL),
                     MODMTA_CONTINUE);
    assert_int_equal(added(fx), 1);
    assert_string_equal(added_at(fx, 0), "ok@example.com");
}

static void
test_map_outage(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"module\": \"bcc\", \"recipient_map\": \"failtest:x\"}");
    assert_int_equal(run(fx, "a@localhost", "bob@localhost", NULL),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 451);
    assert_int_equal(added(fx), 0);
}

static void
test_config_errors(void **state)
{
    static const struct {
        const char *conf, *path;
    } cases[] = {
        {"{\"always\": \"two words@example.com\"}", "$.modules[0].always"},
        {"{\"always\": \"<>\"}", "$.modules[0].always"},
        {"{\"always\": 3}", "$.modules[0].always"},
        {"{\"bounces\": \"no\"}", "$.modules[0].bounces"},
        {"{\"sender\": \"x@y.test\"}", "$.modules[0].sender"},
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
        T(test_always_howto),
        T(test_recipient_map_once),
        T(test_sender_map),
        T(test_bounces),
        T(test_already_recipient),
        T(test_bad_entry),
        T(test_map_outage),
        T(test_config_errors),
#undef T
    };

    return cmocka_run_group_tests(tests, group_setup, NULL);
}
