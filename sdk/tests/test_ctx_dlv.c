/*
 * Unit tests of sdk/src/ctx_dlv.c, the context of message-level delivery
 * (ABI 1.3): the phase each call belongs to, what it refuses, and what
 * the core reads back, through the SDK fakes a transport's tests use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include <modmta/modmta.h>

#include "fake.h"

static const modmta_module test_mod = {
    .abi = MODMTA_ABI_VERSION, .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG, .name = "t", .version = "0",
};

struct env {
    modmta_host *host;
    modmta_ctx *ctx;
};

static int
setup(void **state)
{
    static struct env e;

    e.host = modmta_test_host_new("t", "localhost", NULL);
    e.ctx = modmta_test_ctx_new(e.host, "127.0.0.1");
    modmta_test_set_delivery(e.ctx, "Q1", "a@example.org", 0);
    *state = &e;
    return 0;
}

static int
teardown(void **state)
{
    struct env *e = *state;

    modmta_test_release(NULL, NULL, e->ctx, e->host);
    return 0;
}

static void
test_route(void **state)
{
    struct env *e = *state;

    modmta_test_enter(e->ctx, MODMTA_PHASE_DELIVER, &test_mod, NULL);
    assert_int_equal(modmta_dlv_route(e->ctx, "x.test"), MODMTA_E_STATE);
    modmta_test_enter(e->ctx, MODMTA_PHASE_ROUTE, &test_mod, NULL);
    assert_null(modmta_test_route(e->ctx));
    assert_int_equal(modmta_dlv_route(e->ctx, ""), MODMTA_E_INVAL);
    assert_int_equal(modmta_dlv_route(e->ctx, "a b"), MODMTA_E_INVAL);
    assert_int_equal(modmta_dlv_route(e->ctx, "x\r\ny"), MODMTA_E_INVAL);
    assert_int_equal(modmta_dlv_route(e->ctx, "[10.0.0.1]:587"), 0);
    assert_string_equal(modmta_test_route(e->ctx), "[10.0.0.1]:587");
}

static void
test_group_and_results(void **state)
{
    struct env *e = *state;
    static const char *const rcpts[] = {"a@x.test", "b@x.test", "c@x.test"};
    modmta_dstatus st;
    const char *esc, *stage, *text, *addr;
    int code, port;

    modmta_test_set_dlv_group(e->ctx, rcpts, 3);
    modmta_test_set_dlv_param(e->ctx, 1, "NOTIFY", "SUCCESS,DELAY");
    modmta_test_set_dlv_param(e->ctx, 1, "ORCPT", "rfc822;b+40x.test");
    modmta_test_enter(e->ctx, MODMTA_PHASE_DELIVER, &test_mod, NULL);
    assert_int_equal(modmta_dlv_rcpt_count(e->ctx), 3);
    assert_string_equal(modmta_dlv_rcpt_at(e->ctx, 2), "c@x.test");
    assert_null(modmta_dlv_rcpt_at(e->ctx, 3));
    assert_null(modmta_dlv_rcpt_param(e->ctx, 0, "NOTIFY"));
    assert_string_equal(modmta_dlv_rcpt_param(e->ctx, 1, "notify"),
                        "SUCCESS,DELAY");
    assert_string_equal(modmta_dlv_rcpt_param(e->ctx, 1, "ORCPT"),
                        "rfc822;b+40x.test");
    assert_null(modmta_dlv_rcpt_param(e->ctx, 1, "SIZE"));

    /* results must match their class and index */
    assert_int_equal(modmta_dlv_result(e->ctx, 3, MODMTA_DELIVERED, 250,
                                       NULL, NULL, "ok"), MODMTA_E_INVAL);
    assert_int_equal(modmta_dlv_result(e->ctx, 0, MODMTA_DELIVERED, 451,
                                       NULL, NULL, "ok"), MODMTA_E_INVAL);
    assert_int_equal(modmta_dlv_result(e->ctx, 0, MODMTA_FAILED, 550,
                                       "4.1.1", NULL, "x"), MODMTA_E_INVAL);
    assert_int_equal(modmta_dlv_result(e->ctx, 0, MODMTA_DECLINED, 0, NULL,
                                       NULL, "x"), MODMTA_E_INVAL);
    assert_int_equal(modmta_dlv_result(e->ctx, 0, MODMTA_DEFERRED, 99,
                                       NULL, NULL, "x"), MODMTA_E_INVAL);
    assert_int_equal(modmta_test_dlv_result(e->ctx, 0, NULL, NULL, NULL,
                                            NULL, NULL), 0);

    /* before any server: none; then the server sticks to later results */
    assert_int_equal(modmta_dlv_result(e->ctx, 0, MODMTA_DEFERRED, 0,
                                       "4.4.1", NULL, "connect refused"), 0);
    assert_int_equal(modmta_dlv_remote(e->ctx, "mx1.x.test", "192.0.2.1",
                                       25), 0);
    assert_int_equal(modmta_dlv_remote_tls(e->ctx, "TLSv1.3",
                                           "TLS_AES_256_GCM_SHA384"), 0);
    assert_int_equal(modmta_dlv_result(e->ctx, 1, MODMTA_RELAYED, 250,
                                       "2.0.0", "end of DATA",
                                       "Ok: queued\nas X"), 0);
    assert_int_equal(modmta_dlv_remote(e->ctx, NULL, NULL, 0), 0);
    assert_int_equal(modmta_dlv_result(e->ctx, 2, MODMTA_FAILED, 550,
                                       "5.1.1", "RCPT TO", "no user"), 0);

    assert_int_equal(modmta_test_dlv_result(e->ctx, 0, &st, &code, &esc,
                                            &stage, &text), 1);
    assert_int_equal(st, MODMTA_DEFERRED);
    assert_int_equal(code, 0);
    assert_string_equal(esc, "4.4.1");
    assert_null(stage);
    assert_null(modmta_test_dlv_remote(e->ctx, 0, NULL, NULL));
    assert_int_equal(modmta_test_dlv_result(e->ctx, 1, &st, &code, &esc,
                                            &stage, &text), 1);
    assert_int_equal(st, MODMTA_RELAYED);
    assert_string_equal(stage, "end of DATA");
    assert_string_equal(text, "Ok: queued\nas X");
    assert_string_equal(modmta_test_dlv_remote(e->ctx, 1, &addr, &port),
                        "mx1.x.test");
    assert_string_equal(addr, "192.0.2.1");
    assert_int_equal(port, 25);
    assert_null(modmta_test_dlv_remote(e->ctx, 2, NULL, NULL));

    assert_int_equal(modmta_test_dlv_dest_down(e->ctx), 0);
    assert_int_equal(modmta_dlv_dest_down(e->ctx), 0);
    assert_int_equal(modmta_test_dlv_dest_down(e->ctx), 1);

    /* outside deliver_msg nothing is taken */
    modmta_test_enter(e->ctx, MODMTA_PHASE_RCPT, &test_mod, NULL);
    assert_int_equal(modmta_dlv_result(e->ctx, 0, MODMTA_DELIVERED, 250,
                                       NULL, NULL, "ok"), MODMTA_E_STATE);
    assert_int_equal(modmta_dlv_remote(e->ctx, "h", "a", 25),
                     MODMTA_E_STATE);
    assert_int_equal(modmta_dlv_dest_down(e->ctx), MODMTA_E_STATE);
}

/* MAIL parameters answer at delivery as at MAIL. */
static void
test_mail_params(void **state)
{
    struct env *e = *state;

    modmta_test_add_mail_param(e->ctx, "RET", "HDRS");
    modmta_test_add_mail_param(e->ctx, "SMTPUTF8", "");
    modmta_test_enter(e->ctx, MODMTA_PHASE_DELIVER, &test_mod, NULL);
    assert_string_equal(modmta_mail_param(e->ctx, "ret"), "HDRS");
    assert_string_equal(modmta_mail_param(e->ctx, "SMTPUTF8"), "");
    assert_null(modmta_mail_param(e->ctx, "ENVID"));
}

static int
own(const modmta_host *h, const char *ip, int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port)};

    assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return modmta_host_is_own_address(h, (const struct sockaddr *)&sin,
                                      sizeof(sin));
}

/* An exact listener is itself only; a 0.0.0.0 listener answers on all of
 * 127.0.0.0/8 (on its port), which no interface lists. */
static void
test_own_address(void **state)
{
    struct env *e = *state;

    assert_int_equal(modmta_test_host_add_own(e->host, "127.0.0.1", 2525), 0);
    assert_int_equal(own(e->host, "127.0.0.1", 2525), 1);
    assert_int_equal(own(e->host, "127.0.0.1", 25), 0);
    assert_int_equal(own(e->host, "127.0.0.31", 2525), 0);
    assert_int_equal(modmta_test_host_add_own(e->host, "0.0.0.0", 25), 0);
    assert_int_equal(own(e->host, "127.0.0.31", 25), 1);
    assert_int_equal(own(e->host, "127.0.0.31", 26), 0);
    assert_int_equal(own(e->host, "192.0.2.1", 25), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_and_results, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_address, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
