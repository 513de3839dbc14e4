/*
 * Unit tests of the deliver_lmtp module under the SDK fakes: create()
 * (the server forms, every key's errors with its JSON path), on_rcpt()
 * and route() with and without "domains", and deliver_msg() when the
 * server is not there (a missing socket, a refused port). Conversations
 * with a real LMTP server: tests/e2e/test_lmtp.py (Dovecot).
 */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <modmta/modmta.h>
#include <fake.h>
#include <servers.h>

extern const modmta_module modmta_descriptor;

struct fx {
    modmta_host *host;
    void *inst;
    modmta_ctx *ctx;
};

/* ---- fixtures ---- */

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    fx->host = modmta_test_host_new("deliver_lmtp", "localhost",
                                    "example.com", NULL);
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
create(struct fx *fx, const char *conf)
{
    if (fx->inst != NULL)
        modmta_descriptor.destroy(fx->inst);
    fx->inst = modmta_test_create_ok(&modmta_descriptor, conf, fx->host);
}

static modmta_ctx *
new_ctx(struct fx *fx, modmta_phase phase)
{
    if (fx->ctx != NULL)
        modmta_test_ctx_free(fx->ctx);
    fx->ctx = modmta_test_ctx_new(fx->host, NULL);
    assert_non_null(fx->ctx);
    modmta_test_set_delivery(fx->ctx, "QID1", "alice@remote.test", 0);
    modmta_test_enter(fx->ctx, phase, &modmta_descriptor, fx->inst);
    return fx->ctx;
}

/* rcpt is claimed for dest (NULL: not claimed) at delivery, and
 * accepted (or not) at RCPT. */
static void
routes(struct fx *fx, const char *rcpt, const char *dest)
{
    modmta_ctx *ctx = new_ctx(fx, MODMTA_PHASE_RCPT);
    modmta_verdict v = modmta_descriptor.on_rcpt(fx->inst, ctx, rcpt);

    if (v != (dest != NULL ? MODMTA_ACCEPT : MODMTA_CONTINUE))
        fail_msg("<%s>: verdict %d at RCPT", rcpt, v);
    ctx = new_ctx(fx, MODMTA_PHASE_ROUTE);
    v = modmta_descriptor.route(fx->inst, ctx, rcpt);

    if (dest == NULL) {
        if (v != MODMTA_CONTINUE)
            fail_msg("<%s>: verdict %d, expected CONTINUE", rcpt, v);
        assert_null(modmta_test_route(ctx));
        return;
    }
    if (v != MODMTA_ACCEPT)
        fail_msg("<%s>: verdict %d, expected ACCEPT to %s", rcpt, v, dest);
    assert_string_equal(modmta_test_route(ctx), dest);
}

/* ---- create() ---- */

static const struct bad_conf {
    const char *conf;
    const char *path;           /* after "$.modules[0]" */
    const char *what;
} bad_confs[] = {
    { "{}", "", "missing required key \"server\"" },
    { "{\"server\": \"unix:/run/lmtp\", \"bogus\": 1}", ".bogus",
      "unknown key" },
    { "{\"server\": 24}", ".server", "" },
    { "{\"server\": \"\"}", ".server", "\"unix:/path\" or" },
    { "{\"server\": \"/run/lmtp\"}", ".server", "\"unix:/path\" or" },
    { "{\"server\": \"unix:run/lmtp\"}", ".server", "\"unix:/path\" or" },
    { "{\"server\": \"unix:/run/my lmtp\"}", ".server", "\"unix:/path\" or" },
    { "{\"server\": \"inet:127.0.0.1\"}", ".server", "\"unix:/path\" or" },
    { "{\"server\": \"inet:127.0.0.1:0\"}", ".server", "\"unix:/path\" or" },
    { "{\"server\": \"inet:::1:24\"}", ".server", "\"unix:/path\" or" },
    { "{\"server\": \"tcp:127.0.0.1:24\"}", ".server", "\"unix:/path\" or" },
    { "{\"server\": \"lmtp:smtp:[127.0.0.1]:24\"}", ".server",
      "\"unix:/path\" or" },
    { "{\"server\": \"smtp:[127.0.0.1]:24\"}", ".server",
      "\"unix:/path\" or" },
    { "{\"server\": \"unix:/run/lmtp\", \"domains\": \"dove.test\"}",
      ".domains", "" },
    { "{\"server\": \"unix:/run/lmtp\", \"domains\": []}", ".domains",
      "leave the key out" },
    { "{\"server\": \"unix:/run/lmtp\", \"domains\": [\"ok.test\", \"\"]}",
      ".domains[1]", "expected a domain name" },
    { "{\"server\": \"unix:/run/lmtp\", \"domains\": [\"a b.test\"]}",
      ".domains[0]", "expected a domain name" },
    { "{\"server\": \"unix:/run/lmtp\", \"domains\": [\"@dove.test\"]}",
      ".domains[0]", "expected a domain name" },
    { "{\"server\": \"unix:/run/lmtp\", \"helo_name\": \"a\\nb\"}",
      ".helo_name", "a host name" },
    { "{\"server\": \"unix:/run/lmtp\", \"connection_cache\": 1}",
      ".connection_cache", "" },
    { "{\"server\": \"unix:/run/lmtp\", \"connect_timeout\": 0}",
      ".connect_timeout", "out of range 1s..1h" },
    { "{\"server\": \"unix:/run/lmtp\", \"command_timeout\": 3601}",
      ".command_timeout", "out of range 1s..1h" },
    { "{\"server\": \"unix:/run/lmtp\", \"data_timeout\": 0}",
      ".data_timeout", "out of range 1s..1h" },
};

static void
test_create_errors(void **state)
{
    struct fx *fx = *state;
    char path[100];

    for (size_t i = 0; i < sizeof(bad_confs) / sizeof(bad_confs[0]); i++) {
        snprintf(path, sizeof(path), "$.modules[0]%s", bad_confs[i].path);
        modmta_test_create_fails_with(&modmta_descriptor, bad_confs[i].conf,
                                      fx->host, path, bad_confs[i].what);
    }
}

/* A server string longer than a destination may be is refused, never
 * cut short (a cut port would be another server). */
static void
test_create_long_server(void **state)
{
    struct fx *fx = *state;
    char host[300], conf[400], want[300];

    memset(host, 'h', sizeof(host));
    /* the port stays whole */
    snprintf(conf, sizeof(conf), "{\"server\": \"inet:%.125s:2525\"}", host);
    create(fx, conf);
    snprintf(want, sizeof(want), "lmtp:inet:%.125s:2525", host);
    routes(fx, "bob@example.com", want);
    /* "lmtp:inet:" host ":2525": 255 octets */
    snprintf(conf, sizeof(conf), "{\"server\": \"inet:%.240s:2525\"}", host);
    create(fx, conf);
    snprintf(conf, sizeof(conf), "{\"server\": \"inet:%.241s:2525\"}", host);
    modmta_test_create_fails(&modmta_descriptor, conf, fx->host,
                             "$.modules[0].server");
    snprintf(conf, sizeof(conf), "{\"server\": \"unix:/%.120s\"}", host);
    modmta_test_create_fails(&modmta_descriptor, conf, fx->host,
                             "$.modules[0].server");
}

/* The server forms and their destinations. */
static void
test_create_servers(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"server\": \"unix:/run/dovecot/lmtp\"}");
    routes(fx, "bob@example.com", "lmtp:unix:/run/dovecot/lmtp");
    create(fx, "{\"server\": \"lmtp:unix:/run/dovecot/lmtp\"}");
    routes(fx, "bob@example.com", "lmtp:unix:/run/dovecot/lmtp");
    create(fx, "{\"server\": \"inet:127.0.0.1:24\"}");
    routes(fx, "bob@example.com", "lmtp:inet:127.0.0.1:24");
    create(fx, "{\"server\": \"inet:[::1]:24\"}");
    routes(fx, "bob@example.com", "lmtp:inet:[::1]:24");
    create(fx, "{\"server\": \"inet:lmtp.example.net:2424\"}");
    routes(fx, "bob@example.com", "lmtp:inet:lmtp.example.net:2424");
    create(fx, "{\"server\": \"unix:/run/lmtp\", \"helo_name\": "
           "\"mx.example.com\", \"connection_cache\": false, "
           "\"connect_timeout\": 1, \"command_timeout\": 3600, "
           "\"data_timeout\": 3600, \"domains\": [\"Dove.Test\"]}");
    routes(fx, "bob@dove.test", "lmtp:unix:/run/lmtp");
}

/* ---- route() ---- */

static int
owns(void *inst, const char *domain)
{
    (void)inst;
    return strcasecmp(domain, "virt.test") == 0;
}

/* No "domains": every local recipient (local_domains, the domains
 * another module receives for, a bare local name); nothing else. */
static void
test_route_local(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"server\": \"unix:/run/lmtp\"}");
    routes(fx, "bob@example.com", "lmtp:unix:/run/lmtp");
    routes(fx, "bob@EXAMPLE.COM", "lmtp:unix:/run/lmtp");
    routes(fx, "bob@localhost", "lmtp:unix:/run/lmtp");
    routes(fx, "postmaster", "lmtp:unix:/run/lmtp");
    routes(fx, "bob@remote.test", NULL);
    routes(fx, "bob@virt.test", NULL);
    assert_int_equal(modmta_test_host_add_owner(fx->host, owns, NULL), 0);
    routes(fx, "bob@virt.test", "lmtp:unix:/run/lmtp");
}

/* "domains": those, any case, and nothing else (not even a local
 * domain or a bare name: another module delivers them). */
static void
test_route_domains(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"server\": \"inet:127.0.0.1:24\", "
           "\"domains\": [\"dove.test\", \"Other.Test\"]}");
    routes(fx, "bob@dove.test", "lmtp:inet:127.0.0.1:24");
    routes(fx, "bob@DOVE.test", "lmtp:inet:127.0.0.1:24");
    routes(fx, "bob@other.test", "lmtp:inet:127.0.0.1:24");
    routes(fx, "bob@sub.dove.test", NULL);
    routes(fx, "bob@example.com", NULL);
    routes(fx, "postmaster", NULL);
    routes(fx, "bob@remote.test", NULL);
}

/* "users": an unknown user is refused at RCPT (550 5.1.1), a known one
 * (by address or by local part) accepted, a lookup failure tempfails. */
static void
test_users(void **state)
{
    struct fx *fx = *state;
    modmta_ctx *ctx;

    create(fx, "{\"server\": \"unix:/run/lmtp\", \"domains\": "
           "[\"dove.test\"], \"users\": [\"bob\", \"carol@dove.test\"]}");
    routes(fx, "bob@dove.test", "lmtp:unix:/run/lmtp");
    routes(fx, "carol@dove.test", "lmtp:unix:/run/lmtp");
    ctx = new_ctx(fx, MODMTA_PHASE_RCPT);
    assert_int_equal(modmta_descriptor.on_rcpt(fx->inst, ctx,
                                               "nosuch@dove.test"),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 550);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.1.1");
    /* not its domain: not its business */
    ctx = new_ctx(fx, MODMTA_PHASE_RCPT);
    assert_int_equal(modmta_descriptor.on_rcpt(fx->inst, ctx,
                                               "nosuch@other.test"),
                     MODMTA_CONTINUE);
    assert_int_equal(modmta_test_register_failing_map(), 0);
    create(fx, "{\"server\": \"unix:/run/lmtp\", \"domains\": "
           "[\"dove.test\"], \"users\": \"failtest:x\"}");
    ctx = new_ctx(fx, MODMTA_PHASE_RCPT);
    assert_int_equal(modmta_descriptor.on_rcpt(fx->inst, ctx,
                                               "bob@dove.test"),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(ctx), 451);
}

/* recipient_delimiter: "users" is asked for bob+x@d, bob@d, bob+x, bob
 * (an exact entry wins; the LMTP server gets the address as it is). */
static void
test_users_extension(void **state)
{
    struct fx *fx = *state;
    static const char *const ok[] = {
        "bob+x@dove.test", "carol+x@dove.test", "dan+y@dove.test",
    };
    size_t i;

    assert_int_equal(modmta_test_host_set_delimiter(fx->host, "+"), 0);
    create(fx, "{\"server\": \"unix:/run/lmtp\", \"domains\": "
           "[\"dove.test\"], \"users\": [\"bob\", \"carol@dove.test\", "
           "\"dan+y\"]}");
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_int_equal(modmta_descriptor.on_rcpt(
                             fx->inst, new_ctx(fx, MODMTA_PHASE_RCPT), ok[i]),
                         MODMTA_ACCEPT);
    assert_int_equal(modmta_descriptor.on_rcpt(
                         fx->inst, new_ctx(fx, MODMTA_PHASE_RCPT),
                         "dan+z@dove.test"), MODMTA_REJECT);
    assert_int_equal(modmta_test_host_set_delimiter(fx->host, NULL), 0);
    create(fx, "{\"server\": \"unix:/run/lmtp\", \"domains\": "
           "[\"dove.test\"], \"users\": [\"bob\"]}");
    assert_int_equal(modmta_descriptor.on_rcpt(
                         fx->inst, new_ctx(fx, MODMTA_PHASE_RCPT),
                         "bob+x@dove.test"), MODMTA_REJECT);
}

/* ---- deliver_msg() without a server ---- */

static void
deliver(struct fx *fx, const char *dest)
{
    const char *rcpts[] = { "bob@example.com", "carol@example.com" };
    modmta_ctx *ctx = new_ctx(fx, MODMTA_PHASE_DELIVER);

    modmta_test_set_dlv_group(ctx, rcpts, 2);
    modmta_descriptor.deliver_msg(fx->inst, ctx, dest);
}

/* Both recipients deferred with 4.4.1 and a reason naming what; the
 * destination down. */
static void
deferred_down(struct fx *fx, const char *what)
{
    for (size_t i = 0; i < 2; i++) {
        modmta_dstatus st;
        const char *esc = NULL, *text = NULL;
        int code = -1;

        assert_int_equal(modmta_test_dlv_result(fx->ctx, i, &st, &code,
                                                &esc, NULL, &text), 1);
        assert_int_equal(st, MODMTA_DEFERRED);
        assert_int_equal(code, 0);
        assert_string_equal(esc, "4.4.1");
        if (strstr(text, what) == NULL)
            fail_msg("\"%s\" does not name %s", text, what);
    }
    assert_true(modmta_test_dlv_dest_down(fx->ctx));
}

static void
test_deliver_no_socket(void **state)
{
    struct fx *fx = *state;

    create(fx, "{\"server\": \"unix:/nonexistent/lmtp\"}");
    deliver(fx, "lmtp:unix:/nonexistent/lmtp");
    deferred_down(fx, "connect to /nonexistent/lmtp: ");
}

static void
test_deliver_refused(void **state)
{
    struct fx *fx = *state;
    char conf[100], dest[64], what[64];
    int fd, port = modmta_test_bind(SOCK_STREAM, INADDR_LOOPBACK, 0, &fd);

    assert_true(port > 0);
    snprintf(conf, sizeof(conf), "{\"server\": \"inet:127.0.0.1:%d\"}",
             port);
    snprintf(dest, sizeof(dest), "lmtp:inet:127.0.0.1:%d", port);
    snprintf(what, sizeof(what), "127.0.0.1[127.0.0.1]:%d: ", port);
    create(fx, conf);
    deliver(fx, dest);
    close(fd);
    deferred_down(fx, what);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_long_server, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_create_servers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_domains, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users_extension, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_no_socket, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_refused, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
