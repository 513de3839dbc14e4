/*
 * relay_access under the SDK fakes: the access table's parser and
 * matching (each tag, each action, specificity, IPv6, malformed lines
 * with file:line), the how-tos' example table, the relay decision and
 * POP-before-SMTP (the shared state's get is wrapped at link time,
 * -Wl,--wrap, to make it fail).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <modmta/modmta.h>
#include <fake.h>
#include <files.h>

#include "access_table.h"

extern const modmta_module modmta_descriptor;

int __real_modmta_shared_get(modmta_shared *s, const char *key,
                             char **value_r);
int __wrap_modmta_shared_get(modmta_shared *s, const char *key,
                             char **value_r);
static int store_down; /* every get fails: the store is unreachable */
static int store_gets; /* gets asked */

int
__wrap_modmta_shared_get(modmta_shared *s, const char *key, char **value_r)
{
    store_gets++;
    if (store_down) {
        if (value_r != NULL)
            *value_r = NULL;
        return MODMTA_E_TEMP;
    }
    return __real_modmta_shared_get(s, key, value_r);
}

static char tmpdir[128];

static const char *
write_file(const char *name, const char *text)
{
    static char path[512];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    modmta_test_write_file(path, text);
    return path;
}

static access_table *
table_file(const char *text, modmta_err *err)
{
    json_t *spec = json_pack("s+", "file:", write_file("access", text));
    access_table *t = access_table_open(spec, NULL, "$.modules[0].access",
                                        err);

    json_decref(spec);
    return t;
}

static access_table *
table_ok(const char *text)
{
    modmta_err err = {"", ""};
    access_table *t = table_file(text, &err);

    if (t == NULL)
        fail_msg("%s: %s", err.path, err.msg);
    return t;
}

static void
assert_client(access_table *t, const char *name, const char *ip,
              access_action want, const char *rule)
{
    access_result r;
    int rc = access_table_client(t, name, ip, &r);

    assert_int_equal(rc, want == ACCESS_NONE ? 0 : 1);
    assert_int_equal(r.action, want);
    if (rule != NULL)
        assert_string_equal(r.rule, rule);
}

static void
assert_addr(access_table *t, access_tag tag, const char *addr,
            access_action want, const char *rule)
{
    access_result r;
    int rc = access_table_address(t, tag, addr, &r);

    assert_int_equal(rc, want == ACCESS_NONE ? 0 : 1);
    assert_int_equal(r.action, want);
    if (rule != NULL)
        assert_string_equal(r.rule, rule);
}

/* recipient_delimiter: user+ext@domain, user@domain, the domains,
 * user+ext@, user@ (Postfix's access(5) order). */
static void
test_address_extension(void **state)
{
    modmta_host *h = modmta_test_host_new("relay_access", "localhost", NULL);
    json_t *spec = json_pack("s+", "file:", write_file("access",
        "To:bob@example.com REJECT\n"
        "To:bob+ok@example.com OK\n"
        "To:eve@ ERROR:5.7.1:550 no\n"
        "To:carol+x@ DISCARD\n"
        "To:dom.test OK\n"
        "To:ann@dom.test REJECT\n"));
    modmta_err err = {"", ""};
    access_table *t;

    (void)state;
    assert_int_equal(modmta_test_host_set_delimiter(h, "+"), 0);
    t = access_table_open(spec, h, "$.modules[0].access", &err);
    assert_non_null(t);
    assert_addr(t, ACCESS_TO, "bob+news@example.com", ACCESS_REJECT,
                "To:bob@example.com");
    assert_addr(t, ACCESS_TO, "bob+ok@example.com", ACCESS_OK, NULL);
    assert_addr(t, ACCESS_TO, "eve+x@any.test", ACCESS_ERROR, "To:eve@");
    assert_addr(t, ACCESS_TO, "carol+x@any.test", ACCESS_DISCARD, NULL);
    assert_addr(t, ACCESS_TO, "carol+y@any.test", ACCESS_NONE, NULL);
    /* user@domain before the domain, the domain before user@ */
    assert_addr(t, ACCESS_TO, "ann+x@dom.test", ACCESS_REJECT, NULL);
    assert_addr(t, ACCESS_TO, "eve+x@dom.test", ACCESS_OK, "To:dom.test");
    assert_addr(t, ACCESS_TO, "+bob@example.com", ACCESS_NONE, NULL);
    /* a local part needing quotes is not cut (nor by alias) */
    assert_addr(t, ACCESS_TO, "\"bob+a b\"@example.com", ACCESS_NONE, NULL);
    assert_addr(t, ACCESS_TO, "\"bob+a@b\"@example.com", ACCESS_NONE, NULL);
    access_table_close(t);
    json_decref(spec);
    /* none configured */
    assert_int_equal(modmta_test_host_set_delimiter(h, NULL), 0);
    t = table_ok("To:bob@example.com REJECT\n");
    assert_addr(t, ACCESS_TO, "bob+news@example.com", ACCESS_NONE, NULL);
    access_table_close(t);
    modmta_test_host_free(h);
}

/* The how-tos' table: a /24 relays, a /24 inside it does not, one host
 * inside that is fine again. */
static void
test_howto_example(void **state)
{
    access_table *t = table_ok("Connect:192.168.0 RELAY\n"
                               "Connect:192.168.123 REJECT\n"
                               "Connect:192.168.123.101 OK\n");

    (void)state;
    assert_client(t, NULL, "192.168.0.7", ACCESS_RELAY, "Connect:192.168.0");
    assert_client(t, NULL, "192.168.123.5", ACCESS_REJECT,
                  "Connect:192.168.123");
    assert_client(t, NULL, "192.168.123.101", ACCESS_OK,
                  "Connect:192.168.123.101");
    assert_client(t, NULL, "192.168.1.1", ACCESS_NONE, NULL);
    assert_client(t, NULL, "::ffff:192.168.123.9", ACCESS_REJECT,
                  "Connect:192.168.123");
    assert_client(t, "unknown", "10.0.0.1", ACCESS_NONE, NULL);
    access_table_close(t);
}

static void
test_connect_names_and_ipv6(void **state)
{
    access_table *t = table_ok(
        "Connect:spamrus.net REJECT\n"
        "Connect:ok.spamrus.net OK\n"
        "Connect:IPv6:2001:db8 REJECT\n"
        "Connect:IPv6:2001:db8:0:1 RELAY\n"
        "Connect:2001:db8::25 OK\n"
        "127.0.0.1 RELAY\n");

    (void)state;
    assert_client(t, "mx.SpamRUs.net.", "10.1.1.1", ACCESS_REJECT,
                  "Connect:spamrus.net");
    assert_client(t, "ok.spamrus.net", "10.1.1.1", ACCESS_OK, NULL);
    /* the name is only used when confirmed: "unknown" means none */
    assert_client(t, "unknown", "10.1.1.1", ACCESS_NONE, NULL);
    assert_client(t, NULL, "2001:db8:5::1", ACCESS_REJECT,
                  "Connect:IPv6:2001:0db8");
    assert_client(t, NULL, "2001:db8:0:1::9", ACCESS_RELAY,
                  "Connect:IPv6:2001:0db8:0000:0001");
    assert_client(t, NULL, "2001:DB8::25", ACCESS_OK, NULL);
    assert_client(t, NULL, "2001:db9::1", ACCESS_NONE, NULL);
    /* untagged keys match any tag */
    assert_client(t, NULL, "127.0.0.1", ACCESS_RELAY, "127.0.0.1");
    access_table_close(t);
}

static void
test_address_specificity(void **state)
{
    access_table *t = table_ok(
        "From:90trialspammer@aol.com REJECT\n"
        "From:aol.com OK\n"
        "From:example.org DISCARD\n"
        "From:boss@example.org OK\n"
        "From:<> ERROR:4.7.1:451 later please\n"
        "To:nobody@ ERROR:550 bad name\n"
        "To:example.com REJECT\n"
        "To:sub.example.com SKIP\n"
        "To:relay.test RELAY\n"
        "skills.com RELAY\n");

    (void)state;
    assert_addr(t, ACCESS_FROM, "90TrialSpammer@AOL.com", ACCESS_REJECT,
                "From:90trialspammer@aol.com");
    assert_addr(t, ACCESS_FROM, "x@aol.com", ACCESS_OK, "From:aol.com");
    assert_addr(t, ACCESS_FROM, "x@mail.example.org", ACCESS_DISCARD,
                "From:example.org");
    assert_addr(t, ACCESS_FROM, "boss@example.org", ACCESS_OK, NULL);
    assert_addr(t, ACCESS_FROM, "", ACCESS_ERROR, "From:<>");
    /* From: keys do not match recipients */
    assert_addr(t, ACCESS_TO, "x@aol.com", ACCESS_NONE, NULL);
    assert_addr(t, ACCESS_TO, "nobody@anywhere.test", ACCESS_ERROR,
                "To:nobody@");
    /* the domain is more specific than user@ */
    assert_addr(t, ACCESS_TO, "nobody@example.com", ACCESS_REJECT,
                "To:example.com");
    assert_addr(t, ACCESS_TO, "a@deep.example.com", ACCESS_REJECT, NULL);
    /* SKIP stops the search: the parent's REJECT does not apply */
    assert_addr(t, ACCESS_TO, "a@sub.example.com", ACCESS_NONE, NULL);
    assert_addr(t, ACCESS_TO, "a@relay.test", ACCESS_RELAY, NULL);
    assert_addr(t, ACCESS_TO, "a@skills.com", ACCESS_RELAY, "skills.com");
    assert_addr(t, ACCESS_FROM, "a@skills.com", ACCESS_RELAY, "skills.com");
    access_table_close(t);
}

static void
test_actions(void **state)
{
    modmta_err err = {"", ""};
    access_result r;

    (void)state;
    assert_int_equal(access_action_parse("ok", &r, &err), 0);
    assert_int_equal(r.action, ACCESS_OK);
    assert_int_equal(access_action_parse("SKIP", &r, &err), 0);
    assert_int_equal(r.action, ACCESS_NONE);
    assert_int_equal(access_action_parse("ERROR:550 bad name", &r, &err), 0);
    assert_int_equal(r.action, ACCESS_ERROR);
    assert_int_equal(r.code, 550);
    assert_string_equal(r.esc, "");
    assert_string_equal(r.text, "bad name");
    assert_int_equal(access_action_parse("ERROR:5.7.1:553 go away", &r,
                                         &err), 0);
    assert_int_equal(r.code, 553);
    assert_string_equal(r.esc, "5.7.1");
    assert_string_equal(r.text, "go away");
    assert_int_equal(access_action_parse("ERROR:\"421 busy: later\"", &r,
                                         &err), 0);
    assert_int_equal(r.code, 421);
    assert_string_equal(r.text, "busy: later");
    assert_int_equal(access_action_parse("ERROR:4.7.1:550 x", &r, &err),
                     MODMTA_E_CONFIG);
    assert_int_equal(access_action_parse("ERROR:250 fine", &r, &err),
                     MODMTA_E_CONFIG);
    assert_int_equal(access_action_parse("ERROR:55 x", &r, &err),
                     MODMTA_E_CONFIG);
    assert_int_equal(access_action_parse("PERMIT", &r, &err),
                     MODMTA_E_CONFIG);
    assert_non_null(strstr(err.msg, "unknown action \"PERMIT\""));
}

static void
assert_malformed(const char *text, const char *where, const char *what)
{
    modmta_err err = {"", ""};
    char want[600];

    assert_null(table_file(text, &err));
    assert_string_equal(err.path, "$.modules[0].access");
    snprintf(want, sizeof(want), "%s/access:%s: ", tmpdir, where);
    if (strncmp(err.msg, want, strlen(want)) != 0)
        fail_msg("expected \"%s...\", got \"%s\"", want, err.msg);
    if (strstr(err.msg, what) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", what, err.msg);
}

static void
test_malformed_lines(void **state)
{
    (void)state;
    assert_malformed("# c\n\nConnect:10 OK\nConnect:10.3 PERMIT\n", "4",
                     "unknown action");
    assert_malformed("Connect:10 OK\nSpam:x.test REJECT\n", "2",
                     "unknown tag");
    assert_malformed("Connect:192.168.300 RELAY\n", "1", "malformed key");
    assert_malformed("Connect:IPv6:2001:zz REJECT\n", "1", "malformed key");
    assert_malformed("From:a@b@c REJECT\n", "1", "malformed key");
    assert_malformed("To:1.2.3 REJECT\n", "1", "malformed key");
    assert_malformed("a.test OK\n\nb.test\n", "3", "has no action");
    assert_malformed("  RELAY\n", "1", "continuation");
    assert_malformed("x.test ERROR:5.7.1:650 no\n", "1", "ERROR");
}

static void
test_reload_keeps_old_table(void **state)
{
    access_table *t;

    (void)state;
    modmta_test_reload_clock();
    t = table_ok("Connect:10.1 REJECT\n");
    assert_client(t, NULL, "10.1.2.3", ACCESS_REJECT, NULL);
    /* a different size: the change is seen whatever the mtime says */
    write_file("access", "Connect:10.1 OK\nConnect:10.2 NOPE\n");
    modmta_test_reload_advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_client(t, NULL, "10.1.2.3", ACCESS_REJECT, NULL);
    write_file("access", "Connect:10.1 RELAY\n# now good again\n");
    /* not before it is due (at most once a second) */
    assert_client(t, NULL, "10.1.2.3", ACCESS_REJECT, NULL);
    modmta_test_reload_advance(MODMTA_RELOAD_INTERVAL_MS);
    assert_client(t, NULL, "10.1.2.3", ACCESS_RELAY, NULL);
    access_table_close(t);
}

/* ---- the module ---- */

struct fixture {
    modmta_host *host;
    void *inst;
    modmta_ctx *ctx;
};

static void
fx_open(struct fixture *fx, const char *json, const char *client)
{
    modmta_err err = {"", ""};
    json_t *conf = json_loads(json, 0, NULL);

    assert_non_null(conf);
    fx->host = modmta_test_host_new("relay_access", "example.com",
                                    "localhost", NULL);
    fx->inst = modmta_descriptor.create(conf, fx->host, &err);
    json_decref(conf);
    if (fx->inst == NULL)
        fail_msg("%s: %s", err.path, err.msg);
    fx->ctx = modmta_test_ctx_new(fx->host, client);
    modmta_test_set_sender(fx->ctx, "Q1", "s@sender.test");
}

static void
fx_close(struct fixture *fx)
{
    modmta_test_ctx_free(fx->ctx);
    modmta_descriptor.destroy(fx->inst);
    modmta_test_host_free(fx->host);
}

static modmta_verdict
fx_rcpt(struct fixture *fx, const char *rcpt)
{
    modmta_test_enter(fx->ctx, MODMTA_PHASE_RCPT, &modmta_descriptor,
                      fx->inst);
    return modmta_descriptor.on_rcpt(fx->inst, fx->ctx, rcpt);
}

static void
test_relay_decision(void **state)
{
    struct fixture fx;

    (void)state;
    fx_open(&fx, "{\"relay_domains\": [\"partner.test\"]}", "192.0.2.1");
    assert_int_equal(fx_rcpt(&fx, "bob@example.com"), MODMTA_CONTINUE);
    assert_int_equal(fx_rcpt(&fx, "bob@partner.test"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(&fx, "bob@mx.partner.test"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(&fx, "bob@notpartner.test"), MODMTA_REJECT);
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 554);
    assert_string_equal(modmta_test_reply_esc(fx.ctx), "5.7.1");
    assert_string_equal(modmta_test_reply_text(fx.ctx),
                        "<bob@remote.test>: Relay access denied");
    modmta_test_set_auth(fx.ctx, "alice");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_ACCEPT);
    fx_close(&fx);

    fx_open(&fx, "{}", "127.0.0.1");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_ACCEPT);
    fx_close(&fx);
    fx_open(&fx, "{}", "::1");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_ACCEPT);
    fx_close(&fx);
    fx_open(&fx, "{\"mynetworks\": [\"2001:db8::/32\", \"10.0.0.0/9\"]}",
            "2001:db8:1::2");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_ACCEPT);
    fx_close(&fx);
    fx_open(&fx, "{\"mynetworks\": [\"10.0.0.0/9\"]}", "10.128.0.1");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_REJECT);
    fx_close(&fx);
    fx_open(&fx, "{\"mynetworks\": [\"10.0.0.0/9\"]}", "127.0.0.1");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_REJECT);
    fx_close(&fx);
}

/* A fake virtual: owns virt.test. */
static int
fake_owns_domain(void *inst, const char *domain)
{
    (void)inst;
    return strcmp(domain, "virt.test") == 0;
}

/* A domain another module owns is inbound: left to the chain (CONTINUE),
 * even when relay_domains lists it, never claimed for relaying. */
static void
test_owned_domain_is_inbound(void **state)
{
    struct fixture fx;

    (void)state;
    fx_open(&fx, "{\"mynetworks\": [], \"relay_domains\": [\"virt.test\"]}",
            "192.0.2.1");
    assert_int_equal(fx_rcpt(&fx, "nosuch@virt.test"), MODMTA_ACCEPT);
    assert_int_equal(modmta_test_host_add_owner(fx.host, fake_owns_domain,
                                                NULL), 0);
    assert_int_equal(fx_rcpt(&fx, "info@virt.test"), MODMTA_CONTINUE);
    assert_int_equal(fx_rcpt(&fx, "nosuch@VIRT.TEST."), MODMTA_CONTINUE);
    assert_int_equal(fx_rcpt(&fx, "a@remote.test"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 554);
    fx_close(&fx);

    fx_open(&fx, "{\"mynetworks\": []}", "192.0.2.1");
    assert_int_equal(fx_rcpt(&fx, "info@virt.test"), MODMTA_REJECT);
    assert_int_equal(modmta_test_host_add_owner(fx.host, fake_owns_domain,
                                                NULL), 0);
    assert_int_equal(fx_rcpt(&fx, "info@virt.test"), MODMTA_CONTINUE);
    fx_close(&fx);
}

/* "To:user@ RELAY" names no domain: it must not open relaying to that
 * user everywhere. Its other actions still apply. */
static void
test_user_key_never_relays(void **state)
{
    struct fixture fx;

    (void)state;
    fx_open(&fx, "{\"mynetworks\": [], \"access\": {"
            "\"To:postmaster@\": \"RELAY\","
            "\"To:abuse@\": \"REJECT\","
            "\"To:ceo@partner.test\": \"RELAY\","
            "\"To:mirror.test\": \"RELAY\"}}", "192.0.2.1");
    assert_int_equal(fx_rcpt(&fx, "postmaster@remote.test"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 554);
    assert_string_equal(modmta_test_reply_esc(fx.ctx), "5.7.1");
    assert_int_equal(fx_rcpt(&fx, "postmaster@example.com"), MODMTA_CONTINUE);
    assert_int_equal(fx_rcpt(&fx, "abuse@example.com"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 550);
    assert_int_equal(fx_rcpt(&fx, "ceo@partner.test"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(&fx, "cfo@partner.test"), MODMTA_REJECT);
    assert_int_equal(fx_rcpt(&fx, "anyone@mirror.test"), MODMTA_ACCEPT);
    fx_close(&fx);
}

static void
test_access_in_module(void **state)
{
    struct fixture fx;

    (void)state;
    fx_open(&fx, "{\"mynetworks\": [], \"access\": {"
            "\"Connect:192.0.2\": \"RELAY\","
            "\"Connect:198.51.100\": \"DISCARD\","
            "\"To:blocked.test\": \"ERROR:5.7.1:553 not here\","
            "\"From:bad@sender.test\": \"REJECT\"}}", "192.0.2.9");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_ACCEPT);
    assert_int_equal(fx_rcpt(&fx, "bob@blocked.test"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 553);
    assert_string_equal(modmta_test_reply_text(fx.ctx), "not here");
    modmta_test_enter(fx.ctx, MODMTA_PHASE_MAIL, &modmta_descriptor,
                      fx.inst);
    assert_int_equal(modmta_descriptor.on_mail(fx.inst, fx.ctx,
                                               "bad@sender.test"),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 550);
    fx_close(&fx);

    fx_open(&fx, "{\"access\": {\"Connect:198.51.100\": \"DISCARD\"}}",
            "198.51.100.1");
    modmta_test_enter(fx.ctx, MODMTA_PHASE_CONNECT, &modmta_descriptor,
                      fx.inst);
    assert_int_equal(modmta_descriptor.on_connect(fx.inst, fx.ctx),
                     MODMTA_CONTINUE);
    modmta_test_enter(fx.ctx, MODMTA_PHASE_MAIL, &modmta_descriptor,
                      fx.inst);
    assert_int_equal(modmta_descriptor.on_mail(fx.inst, fx.ctx, "a@b.test"),
                     MODMTA_DISCARD);
    fx_close(&fx);
}

static void
test_connect_reject(void **state)
{
    struct fixture fx;

    (void)state;
    fx_open(&fx, "{\"access\": {\"Connect:192.168.123\": \"REJECT\"}}",
            "192.168.123.5");
    modmta_test_enter(fx.ctx, MODMTA_PHASE_CONNECT, &modmta_descriptor,
                      fx.inst);
    assert_int_equal(modmta_descriptor.on_connect(fx.inst, fx.ctx),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 554);
    fx_close(&fx);
}

/* Against a client that may not relay: none of these may be accepted
 * by this module. */
static void
test_address_tricks(void **state)
{
    static const char *const tricks[] = {
        "user%remote.test@example.com", "USER%REMOTE.TEST@EXAMPLE.COM",
        "remote.test!user@example.com", "\"user@remote.test\"@example.com",
        "\"user%remote.test\"@localhost", "user%remote.test@partner.test",
        "user@[192.0.2.7]", "user@remote.test.", "USER@REMOTE.TEST",
        "\"user@remote.test\"@remote.test",
    };
    struct fixture fx;
    size_t i;

    (void)state;
    fx_open(&fx, "{\"relay_domains\": [\"partner.test\"]}", "192.0.2.1");
    for (i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
        if (fx_rcpt(&fx, tricks[i]) != MODMTA_REJECT)
            fail_msg("%s was not rejected", tricks[i]);
        assert_int_equal(modmta_test_reply_code(fx.ctx), 554);
    }
    /* a trusted client's literal local part is just a local part */
    modmta_test_set_auth(fx.ctx, "alice");
    assert_int_equal(fx_rcpt(&fx, "user%x@example.com"), MODMTA_CONTINUE);
    fx_close(&fx);
}

/* What pop3 does at a login (its README: the contract). */
static void
popb4_record(struct fixture *fx, const char *addr, long ttl_ms)
{
    char key[128];

    snprintf(key, sizeof(key), "popb4smtp:%s", addr);
    assert_int_equal(modmta_shared_set(modmta_host_shared(fx->host), key,
                                       "alice", ttl_ms), 0);
}

/* A recorded address relays (as from mynetworks), an unrecorded one
 * does not; without the option nothing is looked up. */
static void
test_pop_before_smtp(void **state)
{
    struct fixture fx;

    (void)state;
    fx_open(&fx, "{\"pop_before_smtp\": true, \"mynetworks\": []}",
            "192.0.2.50");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 554);
    assert_int_equal(fx_rcpt(&fx, "user%remote.test@example.com"),
                     MODMTA_REJECT);
    popb4_record(&fx, "192.0.2.50", 60000);
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_ACCEPT);
    /* trusted as mynetworks is: a literal local part is a local part */
    assert_int_equal(fx_rcpt(&fx, "user%remote.test@example.com"),
                     MODMTA_CONTINUE);
    /* an inbound recipient is left to the chain, as ever */
    assert_int_equal(fx_rcpt(&fx, "bob@example.com"), MODMTA_CONTINUE);
    fx_close(&fx);
    /* another address is not let through */
    fx_open(&fx, "{\"pop_before_smtp\": true, \"mynetworks\": []}",
            "192.0.2.51");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_REJECT);
    fx_close(&fx);
    /* the same address through an IPv4-mapped IPv6 listener */
    fx_open(&fx, "{\"pop_before_smtp\": true, \"mynetworks\": []}",
            "::ffff:192.0.2.50");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_ACCEPT);
    fx_close(&fx);
    /* an IPv6 client by its whole address, not its /64 */
    fx_open(&fx, "{\"pop_before_smtp\": true, \"mynetworks\": []}",
            "2001:db8::5");
    popb4_record(&fx, "2001:db8::5", 60000);
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_ACCEPT);
    fx_close(&fx);
    fx_open(&fx, "{\"pop_before_smtp\": true, \"mynetworks\": []}",
            "2001:db8::6");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_REJECT);
    fx_close(&fx);
    /* off (the default): a recorded address relays no more, unasked */
    fx_open(&fx, "{\"mynetworks\": []}", "192.0.2.50");
    store_gets = 0;
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_REJECT);
    assert_int_equal(store_gets, 0);
    fx_close(&fx);
}

/* The record's TTL: once it has passed, relaying is refused again. */
static void
test_pop_before_smtp_expired(void **state)
{
    struct timespec ms10 = {0, 10000000L};
    struct fixture fx;
    int i;

    (void)state;
    fx_open(&fx, "{\"pop_before_smtp\": true, \"mynetworks\": []}",
            "192.0.2.60");
    popb4_record(&fx, "192.0.2.60", 1000);
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_ACCEPT);
    for (i = 0; i < 500 && modmta_shared_get(modmta_host_shared(fx.host),
                                             "popb4smtp:192.0.2.60",
                                             NULL) == 1; i++)
        nanosleep(&ms10, NULL);
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 554);
    fx_close(&fx);
}

/* The store cannot be reached: 451 4.3.0 (TEMPFAIL), never "denied";
 * recipients that need no lookup are decided as usual. */
static void
test_pop_before_smtp_store_error(void **state)
{
    struct fixture fx;

    (void)state;
    fx_open(&fx, "{\"pop_before_smtp\": true, \"mynetworks\": [], "
            "\"relay_domains\": [\"partner.test\"]}", "192.0.2.70");
    store_down = 1;
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 451);
    assert_string_equal(modmta_test_reply_esc(fx.ctx), "4.3.0");
    assert_int_equal(fx_rcpt(&fx, "user%remote.test@example.com"),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(fx.ctx), 451);
    assert_int_equal(fx_rcpt(&fx, "bob@example.com"), MODMTA_CONTINUE);
    assert_int_equal(fx_rcpt(&fx, "bob@partner.test"), MODMTA_ACCEPT);
    modmta_test_set_auth(fx.ctx, "carol");
    assert_int_equal(fx_rcpt(&fx, "bob@remote.test"), MODMTA_ACCEPT);
    store_down = 0;
    fx_close(&fx);
}

static void
test_config_errors(void **state)
{
    static const char *const bad[][2] = {
        {"{\"mynetworks\": [\"10.0.0.0/33\"]}", "$.modules[0].mynetworks[0]"},
        {"{\"mynetworks\": [\"127.0.0.1\", \"nope\"]}",
         "$.modules[0].mynetworks[1]"},
        {"{\"relay_domains\": [\"a@b\"]}", "$.modules[0].relay_domains[0]"},
        {"{\"access\": {\"Connect:1.2.3\": \"MAYBE\"}}",
         "$.modules[0].access.Connect:1.2.3"},
        {"{\"access\": 3}", "$.modules[0].access"},
        {"{\"relay\": true}", "$.modules[0].relay"},
        {"{\"pop_before_smtp\": \"30m\"}", "$.modules[0].pop_before_smtp"},
    };
    modmta_host *h = modmta_test_host_new("relay_access", "localhost", NULL);
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        modmta_test_create_fails(&modmta_descriptor, bad[i][0], h,
                                 bad[i][1]);
    modmta_test_host_free(h);
}

static int
setup(void **state)
{
    (void)state;
    modmta_test_tmpdir(tmpdir, sizeof(tmpdir), "relay_access_test");
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    return modmta_test_rmtree(tmpdir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_howto_example),
        cmocka_unit_test(test_connect_names_and_ipv6),
        cmocka_unit_test(test_address_specificity),
        cmocka_unit_test(test_address_extension),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_malformed_lines),
        cmocka_unit_test(test_reload_keeps_old_table),
        cmocka_unit_test(test_relay_decision),
        cmocka_unit_test(test_access_in_module),
        cmocka_unit_test(test_owned_domain_is_inbound),
        cmocka_unit_test(test_user_key_never_relays),
        cmocka_unit_test(test_connect_reject),
        cmocka_unit_test(test_address_tricks),
        cmocka_unit_test(test_pop_before_smtp),
        cmocka_unit_test(test_pop_before_smtp_expired),
        cmocka_unit_test(test_pop_before_smtp_store_error),
        cmocka_unit_test(test_config_errors),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
