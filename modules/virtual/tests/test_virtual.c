/* Unit tests of the virtual module: the how-to's virtusertable verbatim,
 * lookup order, %1, lists, error: entries, virtual alias domains,
 * config errors, outage. */
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
#include <files.h>

extern const modmta_module modmta_descriptor;

struct fx {
    char dir[256];
    char table[512];
    modmta_host *host;
    void *inst;
    modmta_ctx *ctx;
};

/* The examples of how-tos 000 and 002, as written there. */
static const char howto_table[] =
    "user1@skils.com\t\t\tuser1@smile.com\n"
    "admin@123.com shopper\n"
    "admin@xyz.org jdj\n"
    "pageme@he.net lmiwtc@pg.com\n"
    "@cba.com cba@aol.com\n"
    "@dom1.org %1@dom2.org\n";

/* ---- helpers ---- */

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), "test_virtual");
    snprintf(fx->table, sizeof(fx->table), "%s/virtusertable", fx->dir);
    fx->host = modmta_test_host_new("virtual", "localhost", "mx.test",
                                    NULL);
    fx->ctx = modmta_test_ctx_new(fx->host, "192.0.2.1");
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    modmta_test_release(&modmta_descriptor, fx->inst, fx->ctx, fx->host);
    modmta_test_rmtree(fx->dir);
    free(fx);
    return 0;
}

static void *
create(struct fx *fx, const char *conf, modmta_err *err)
{
    return modmta_test_create(&modmta_descriptor, conf, fx->host, err);
}

/* An instance over a file: map holding text, with extra config keys. */
static void
create_file(struct fx *fx, const char *text, const char *extra)
{
    char conf[1200];

    modmta_test_write_file(fx->table, text);
    snprintf(conf, sizeof(conf), "{\"module\": \"virtual\", \"map\": "
             "\"file:%s\"%s}", fx->table, extra);
    fx->inst = modmta_test_create_ok(&modmta_descriptor, conf, fx->host);
}

static modmta_verdict
rcpt(struct fx *fx, const char *addr)
{
    modmta_test_enter(fx->ctx, MODMTA_PHASE_RCPT, &modmta_descriptor,
                      fx->inst);
    return modmta_descriptor.on_rcpt(fx->inst, fx->ctx, addr);
}

static void
assert_targets(struct fx *fx, const char *const *want)
{
    size_t i;

    for (i = 0; want[i] != NULL; i++) {
        assert_true(i < modmta_test_rewrite_count(fx->ctx));
        assert_string_equal(modmta_test_rewrite_at(fx->ctx, i), want[i]);
    }
    assert_int_equal(modmta_test_rewrite_count(fx->ctx), i);
}

static void
assert_rewrites_to(struct fx *fx, const char *addr, const char *target)
{
    assert_int_equal(rcpt(fx, addr), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){target, NULL});
}

static void
assert_reject(struct fx *fx, const char *addr, int code, const char *esc,
              const char *text)
{
    assert_int_equal(rcpt(fx, addr), code / 100 == 4 ? MODMTA_TEMPFAIL
                                                     : MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), code);
    assert_string_equal(modmta_test_reply_esc(fx->ctx), esc);
    if (strstr(modmta_test_reply_text(fx->ctx), text) == NULL)
        fail_msg("reply \"%s\" lacks \"%s\"",
                 modmta_test_reply_text(fx->ctx), text);
    assert_int_equal(modmta_test_rewrite_count(fx->ctx), 0);
}

/* ---- the how-tos ---- */

static void
test_howto(void **state)
{
    struct fx *fx = *state;

    create_file(fx, howto_table, "");
    assert_rewrites_to(fx, "user1@skils.com", "user1@smile.com");
    /* a bare user is qualified with the host name (Postfix's myorigin) */
    assert_rewrites_to(fx, "admin@123.com", "shopper@mx.test");
    assert_rewrites_to(fx, "admin@xyz.org", "jdj@mx.test");
    assert_rewrites_to(fx, "pageme@he.net", "lmiwtc@pg.com");
    /* the catch-all of a whole domain */
    assert_rewrites_to(fx, "anyone@cba.com", "cba@aol.com");
    assert_rewrites_to(fx, "Sales@CBA.com", "cba@aol.com");
    /* %1: the original user part */
    assert_rewrites_to(fx, "joe@dom1.org", "joe@dom2.org");
    assert_rewrites_to(fx, "Joe.Smith@dom1.org", "Joe.Smith@dom2.org");
    /* case-insensitive keys */
    assert_rewrites_to(fx, "PageMe@HE.net", "lmiwtc@pg.com");
    /* not in the table, domains not declared: not ours */
    assert_int_equal(rcpt(fx, "other@123.com"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, "user1@smile.com"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, "nobody@localhost"), MODMTA_CONTINUE);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 0);
}

static void
test_order(void **state)
{
    struct fx *fx = *state;

    create_file(fx, "@ex.org catchall@localhost\n"
                    "info@ex.org info-team@localhost\n", "");
    assert_rewrites_to(fx, "info@ex.org", "info-team@localhost");
    assert_rewrites_to(fx, "else@ex.org", "catchall@localhost");
}

/* recipient_delimiter: the full address, then without the extension
 * (given on to the targets), then the catch-all. */
static void
test_extension(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(modmta_test_host_set_delimiter(fx->host, "+"), 0);
    create_file(fx, "@ex.org catchall@localhost\n"
                    "info@ex.org info-team@localhost, bob+own@remote.test\n"
                    "info+exact@ex.org exact@localhost\n", "");
    assert_rewrites_to(fx, "info+exact@ex.org", "exact@localhost");
    assert_int_equal(rcpt(fx, "info+news@ex.org"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"info-team+news@localhost",
                   "bob+own@remote.test", NULL});
    assert_rewrites_to(fx, "else+news@ex.org", "catchall@localhost");
    assert_rewrites_to(fx, "+info@ex.org", "catchall@localhost");
    /* routing characters in an extension are not given on */
    assert_int_equal(rcpt(fx, "info+x%evil.test@ex.org"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"info-team@localhost",
                   "bob+own@remote.test", NULL});
    assert_int_equal(rcpt(fx, "info+evil.test!x@ex.org"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"info-team@localhost",
                   "bob+own@remote.test", NULL});
    modmta_descriptor.destroy(fx->inst);
    create_file(fx, "info@ex.org info-team@localhost\n",
                ", \"propagate_extension\": false");
    assert_rewrites_to(fx, "info+news@ex.org", "info-team@localhost");
    /* none configured: the whole address only */
    assert_int_equal(modmta_test_host_set_delimiter(fx->host, NULL), 0);
    assert_int_equal(rcpt(fx, "info+news@ex.org"), MODMTA_CONTINUE);
}

static void
test_lists(void **state)
{
    struct fx *fx = *state;

    create_file(fx, "team@ex.org alice@localhost, bob,\n"
                    "  %1-copy@archive.example\n", "");
    assert_int_equal(rcpt(fx, "team@ex.org"), MODMTA_ACCEPT);
    assert_targets(fx, (const char *const[]){"alice@localhost",
                   "bob@mx.test", "team-copy@archive.example", NULL});
}

/* Quoted local parts stay whole; a target that parses only in part
 * ("a@example.org other") is refused, not cut short. */
static void
test_quoted_target(void **state)
{
    struct fx *fx = *state;

    create_file(fx, "js@ex.org \"john smith\"@example.org\n"
                    "junk@ex.org \"a@example.org other\"\n"
                    "@dom1.org %1@dom2.org\n", "");
    assert_rewrites_to(fx, "js@ex.org", "\"john smith\"@example.org");
    assert_rewrites_to(fx, "\"john smith\"@dom1.org",
                       "\"john smith\"@dom2.org");
    assert_reject(fx, "junk@ex.org", 451, "4.3.0", "temporary");
}

static void
test_errors(void **state)
{
    struct fx *fx = *state;

    create_file(fx, "gone@ex.org error:5.1.1:550 User has moved\n"
                    "later@ex.org error:4.2.1:450 Try again later\n"
                    "nouser@ex.org error:nouser No such user here\n"
                    "bare@ex.org error:550 Go away\n"
                    "bad@ex.org error:whatever\n"
                    "prog@ex.org |/bin/cat\n", "");
    assert_reject(fx, "gone@ex.org", 550, "5.1.1", "User has moved");
    assert_reject(fx, "later@ex.org", 450, "4.2.1", "Try again later");
    assert_reject(fx, "nouser@ex.org", 550, "5.1.1", "No such user here");
    assert_int_equal(rcpt(fx, "bare@ex.org"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx->ctx), 550);
    assert_non_null(strstr(modmta_test_reply_text(fx->ctx), "Go away"));
    /* a malformed entry is the administrator's to fix: 4xx */
    assert_reject(fx, "bad@ex.org", 451, "4.3.0", "temporary");
    assert_reject(fx, "prog@ex.org", 550, "5.7.1", "command or a file");
}

static void
test_virtual_domains(void **state)
{
    struct fx *fx = *state;

    /* declared by a line of its own (Postfix) or by "domains" */
    create_file(fx, "xyz.org virtual\n"
                    "admin@xyz.org jdj\n"
                    "admin@123.com shopper\n",
                ", \"domains\": [\"123.com\"]");
    assert_rewrites_to(fx, "admin@xyz.org", "jdj@mx.test");
    assert_reject(fx, "other@xyz.org", 550, "5.1.1", "User unknown");
    assert_reject(fx, "other@123.com", 550, "5.1.1", "<other@123.com>");
    /* the domain line is not an address entry */
    assert_int_equal(rcpt(fx, "xyz.org@localhost"), MODMTA_CONTINUE);
    assert_int_equal(rcpt(fx, "other@unrelated.example"), MODMTA_CONTINUE);
}

static void
test_local_domain_miss(void **state)
{
    struct fx *fx = *state;

    /* a local domain with entries: the others fall through */
    create_file(fx, "info@localhost bob@localhost\n",
                ", \"domains\": [\"localhost\"]");
    assert_rewrites_to(fx, "info@localhost", "bob@localhost");
    assert_int_equal(rcpt(fx, "bob@localhost"), MODMTA_CONTINUE);
}

static void
test_qualify_domain(void **state)
{
    struct fx *fx = *state;

    create_file(fx, "admin@123.com shopper\n",
                ", \"qualify_domain\": \"localhost\"");
    assert_rewrites_to(fx, "admin@123.com", "shopper@localhost");
}

static void
test_config_errors(void **state)
{
    struct fx *fx = *state;
    modmta_err err;

    assert_null(create(fx, "{\"module\": \"virtual\"}", &err));
    assert_string_equal(err.path, "$.modules[0]");
    assert_non_null(strstr(err.msg, "\"map\""));
    assert_null(create(fx, "{\"module\": \"virtual\", \"map\": {}, "
                       "\"qualify_domain\": \"a@b\"}", &err));
    assert_string_equal(err.path, "$.modules[0].qualify_domain");
    assert_null(create(fx, "{\"module\": \"virtual\", \"map\": {}, "
                       "\"domains\": \"x\"}", &err));
    assert_string_equal(err.path, "$.modules[0].domains");
    assert_null(create(fx, "{\"module\": \"virtual\", \"map\": {}, "
                       "\"catchall\": 1}", &err));
    assert_string_equal(err.path, "$.modules[0].catchall");
}

static void
test_outage(void **state)
{
    struct fx *fx = *state;
    modmta_err err;

    assert_int_equal(modmta_test_register_failing_map(), 0);
    fx->inst = create(fx, "{\"module\": \"virtual\", \"map\": "
                      "\"failtest:x\"}", &err);
    assert_non_null(fx->inst);
    assert_int_equal(rcpt(fx, "a@ex.org"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_rewrite_count(fx->ctx), 0);
    /* no domain: nothing to look up */
    assert_int_equal(rcpt(fx, "postmaster"), MODMTA_CONTINUE);
}

/* owns_domain: the "domains" key and the map's domain lines, which makes
 * them inbound for relay_access through modmta_is_inbound_domain. */
static void
test_owns_domain(void **state)
{
    struct fx *fx = *state;
    modmta_err err;
    void *failing;

    create_file(fx, "xyz.org virtual\n"
                    "admin@xyz.org jdj\n"
                    "admin@123.com shopper\n",
                ", \"domains\": [\"123.com\"]");
    assert_int_equal(modmta_descriptor.owns_domain(fx->inst, "xyz.org"), 1);
    assert_int_equal(modmta_descriptor.owns_domain(fx->inst, "123.com"), 1);
    assert_int_equal(modmta_descriptor.owns_domain(fx->inst, "ex.org"), 0);
    assert_int_equal(modmta_is_inbound_domain(fx->ctx, "XYZ.org."), 0);
    assert_int_equal(modmta_test_host_add_owner(fx->host,
                                                modmta_descriptor.owns_domain,
                                                fx->inst), 0);
    assert_int_equal(modmta_is_inbound_domain(fx->ctx, "XYZ.org."), 1);
    assert_int_equal(modmta_is_inbound_domain(fx->ctx, "ex.org"), 0);
    /* an outage: yes, so that on_rcpt answers 4xx rather than a 554 */
    assert_int_equal(modmta_test_register_failing_map(), 0);
    failing = create(fx, "{\"module\": \"virtual\", \"map\": "
                     "\"failtest:x\"}", &err);
    assert_non_null(failing);
    assert_int_equal(modmta_descriptor.owns_domain(failing, "ex.org"), 1);
    modmta_descriptor.destroy(failing);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_howto),
        T(test_order),
        T(test_extension),
        T(test_lists),
        T(test_errors),
        T(test_quoted_target),
        T(test_virtual_domains),
        T(test_local_domain_miss),
        T(test_qualify_domain),
        T(test_config_errors),
        T(test_outage),
        T(test_owns_domain),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
