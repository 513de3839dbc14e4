/*
 * Unit tests of sdk/src/ctx_stream.c (ABI 1.6): header insertion, the
 * ESMTP parameters of a sender change and of an added recipient, body
 * replacement, multi-line replies and the session details, through the
 * fakes a module's tests use: capabilities, phases, what is refused.
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

#include <modmta/modmta.h>

#include "fake.h"
#include "files.h"

static const modmta_module all_caps = {
    .abi = MODMTA_ABI_VERSION, .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG, .name = "t", .version = "0",
    .caps = MODMTA_CAP_ADDHDRS | MODMTA_CAP_CHGHDRS | MODMTA_CAP_CHGFROM |
            MODMTA_CAP_ADDRCPT | MODMTA_CAP_CHGBODY,
};

static const modmta_module no_caps = {
    .abi = MODMTA_ABI_VERSION, .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG, .name = "n", .version = "0",
};

struct env {
    modmta_host *host;
    modmta_ctx *ctx;
    char dir[64];
};

static int
setup(void **state)
{
    static struct env e;

    e.host = modmta_test_host_new("t", "localhost", NULL);
    e.ctx = modmta_test_ctx_new(e.host, "127.0.0.1");
    modmta_test_set_sender(e.ctx, "Q1", "a@example.org");
    modmta_test_add_rcpt(e.ctx, "b@example.org");
    modmta_test_add_header(e.ctx, "Received", "from x");
    modmta_test_add_header(e.ctx, "From", "a@example.org");
    modmta_test_add_header(e.ctx, "Subject", "hi");
    modmta_test_tmpdir(e.dir, sizeof(e.dir), "test_ctx_stream");
    *state = &e;
    return 0;
}

static int
teardown(void **state)
{
    struct env *e = *state;

    modmta_test_release(NULL, NULL, e->ctx, e->host);
    modmta_test_rmtree(e->dir);
    return 0;
}

static void
test_hdr_insert(void **state)
{
    struct env *e = *state;
    const char *name, *value;

    modmta_test_enter(e->ctx, MODMTA_PHASE_STREAM, &all_caps, NULL);
    assert_int_equal(modmta_hdr_insert(e->ctx, 1, "X-A", "1"),
                     MODMTA_E_STATE);
    modmta_test_enter(e->ctx, MODMTA_PHASE_DATA, &no_caps, NULL);
    assert_int_equal(modmta_hdr_insert(e->ctx, 1, "X-A", "1"),
                     MODMTA_E_PERM);
    modmta_test_enter(e->ctx, MODMTA_PHASE_DATA, &all_caps, NULL);
    assert_int_equal(modmta_hdr_insert(e->ctx, 1, "X A", "1"),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_hdr_insert(e->ctx, 1, "X-A", "1\r\nX-B: 2"),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_hdr_count(e->ctx), 3);
    /* index 1 is the second live header: a deleted one does not count */
    assert_int_equal(modmta_hdr_delete(e->ctx, "From", 0), 0);
    assert_int_equal(modmta_hdr_insert(e->ctx, 1, "X-A", "1"), 0);
    assert_int_equal(modmta_hdr_insert(e->ctx, 0, "X-Top", "0"), 0);
    assert_int_equal(modmta_hdr_insert(e->ctx, 99, "X-End", "e"), 0);
    assert_int_equal(modmta_hdr_count(e->ctx), 6);
    static const char *const want[] = {"X-Top", "Received", "From", "X-A",
                                       "Subject", "X-End"};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(modmta_hdr_at(e->ctx, i, &name, &value), 0);
        assert_string_equal(name, want[i]);
        if (i == 2)
            assert_null(value);
    }
    assert_string_equal(modmta_hdr_get(e->ctx, "x-a", 0), "1");
}

static void
test_sender_params(void **state)
{
    struct env *e = *state;

    modmta_test_add_mail_param(e->ctx, "RET", "FULL");
    modmta_test_add_mail_param(e->ctx, "ENVID", "client");
    modmta_test_enter(e->ctx, MODMTA_PHASE_DATA, &no_caps, NULL);
    assert_int_equal(modmta_sender_set_params(e->ctx, "n@x.test", NULL),
                     MODMTA_E_PERM);
    modmta_test_enter(e->ctx, MODMTA_PHASE_DATA, &all_caps, NULL);
    static const char *const bad[] = {
        "RET=ALL", "ENVID=a=b", "NOTIFY=NEVER", "AUTH=<>", "SMTPUTF8=yes",
        "BODY", "RET=FULL RET=HDRS", "SIZE=12x", "XFOO=1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(modmta_sender_set_params(e->ctx, "n@x.test",
                                                  bad[i]), MODMTA_E_INVAL);
    /* an address that could break a line, or a queue file, is refused */
    assert_int_equal(modmta_sender_set_params(e->ctx, "n@x.test\r\nX-I: 1",
                                              "RET=HDRS"), MODMTA_E_INVAL);
    /* refused calls changed nothing */
    assert_string_equal(modmta_sender(e->ctx), "a@example.org");
    assert_string_equal(modmta_mail_param(e->ctx, "RET"), "FULL");
    assert_int_equal(modmta_sender_set_params(e->ctx, "n@x.test",
                                              "ret=hdrs SIZE=100 "
                                              "ENVID=x+2By SMTPUTF8"), 0);
    assert_string_equal(modmta_sender(e->ctx), "n@x.test");
    assert_string_equal(modmta_mail_param(e->ctx, "RET"), "HDRS");
    assert_string_equal(modmta_mail_param(e->ctx, "ENVID"), "x+2By");
    assert_string_equal(modmta_mail_param(e->ctx, "SMTPUTF8"), "");
    assert_null(modmta_mail_param(e->ctx, "SIZE"));
    /* no parameters: the client's are gone */
    assert_int_equal(modmta_sender_set_params(e->ctx, "", ""), 0);
    assert_string_equal(modmta_sender(e->ctx), "");
    assert_null(modmta_mail_param(e->ctx, "RET"));
}

static void
test_rcpt_params(void **state)
{
    struct env *e = *state;
    const char *notify, *orcpt;

    modmta_test_enter(e->ctx, MODMTA_PHASE_DATA, &all_caps, NULL);
    assert_int_equal(modmta_rcpt_add_params(e->ctx, "c@x.test",
                                            "NOTIFY=NEVER,SUCCESS"),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_rcpt_add_params(e->ctx, "c@x.test",
                                            "ORCPT=rfc822"), MODMTA_E_INVAL);
    assert_int_equal(modmta_rcpt_add_params(e->ctx, "c@x.test", "RET=FULL"),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_rcpt_add_params(e->ctx, "c@x.test\n", NULL),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_test_added_count(e->ctx), 0);
    assert_int_equal(modmta_rcpt_add_params(e->ctx, "c@x.test",
                                            "notify=success,delay "
                                            "ORCPT=rfc822;c+40y.test"), 0);
    assert_int_equal(modmta_rcpt_add_params(e->ctx, "d@x.test", NULL), 0);
    assert_int_equal(modmta_test_added_count(e->ctx), 2);
    assert_int_equal(modmta_test_added_params(e->ctx, "C@x.test", &notify,
                                              &orcpt), 1);
    assert_string_equal(notify, "SUCCESS,DELAY");
    assert_string_equal(orcpt, "rfc822;c+40y.test");
    assert_int_equal(modmta_test_added_params(e->ctx, "d@x.test", &notify,
                                              &orcpt), 0);
    assert_null(notify);
}

static void
test_body_replace(void **state)
{
    struct env *e = *state;
    char path[128];
    char *got;

    snprintf(path, sizeof(path), "%s/new.body", e->dir);
    modmta_test_enter(e->ctx, MODMTA_PHASE_DATA, &no_caps, NULL);
    assert_int_equal(modmta_body_replace(e->ctx, "x", 1), MODMTA_E_PERM);
    modmta_test_enter(e->ctx, MODMTA_PHASE_STREAM, &all_caps, NULL);
    assert_int_equal(modmta_body_replace(e->ctx, "x", 1), MODMTA_E_STATE);
    modmta_test_enter(e->ctx, MODMTA_PHASE_DATA, &all_caps, NULL);
    /* nowhere to write it yet */
    assert_int_equal(modmta_body_replace(e->ctx, "x", 1), MODMTA_E_STATE);
    modmta_test_set_body_path(e->ctx, path);
    assert_int_equal(modmta_body_replace(e->ctx, NULL, 1), MODMTA_E_INVAL);
    assert_false(modmta_test_body_replaced(e->ctx));
    assert_int_equal(modmta_body_replace(e->ctx, "new\r\n", 5), 0);
    assert_int_equal(modmta_body_replace(e->ctx, "body\r\n", 6), 0);
    assert_true(modmta_test_body_replaced(e->ctx));
    got = modmta_test_read_file(path, NULL);
    assert_string_equal(got, "new\r\nbody\r\n");
    free(got);
    /* the end of the transaction removes it */
    modmta_test_set_body_path(e->ctx, NULL);
    assert_int_equal(access(path, F_OK), -1);
}

static void
test_reply_lines(void **state)
{
    struct env *e = *state;
    const char *three[] = {"one", "two x", "three"};
    const char *bad[] = {"one", "two\r\nthree"};
    const char *tab[] = {"one\ttab"};
    const char *many[MODMTA_REPLY_LINES_MAX + 1];
    char longline[MODMTA_REPLY_LINE_MAX + 2];
    const char *text;

    for (size_t i = 0; i <= MODMTA_REPLY_LINES_MAX; i++)
        many[i] = "x";
    memset(longline, 'a', sizeof(longline) - 1);
    longline[sizeof(longline) - 1] = '\0';
    const char *toolong[] = {longline};
    modmta_test_enter(e->ctx, MODMTA_PHASE_DATA, &no_caps, NULL);
    assert_int_equal(modmta_reply_lines(e->ctx, 550, "5.7.1", bad, 2),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_reply_lines(e->ctx, 550, "5.7.1", tab, 1),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_reply_lines(e->ctx, 550, "5.7.1", three, 0),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_reply_lines(e->ctx, 550, "5.7.1", many,
                                        MODMTA_REPLY_LINES_MAX + 1),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_reply_lines(e->ctx, 550, "5.7.1", toolong, 1),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_reply_lines(e->ctx, 550, "4.7.1", three, 3),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_test_reply_lines(e->ctx, NULL), 0);
    assert_int_equal(modmta_reply_lines(e->ctx, 550, "5.7.1", many,
                                        MODMTA_REPLY_LINES_MAX), 0);
    assert_int_equal(modmta_reply_lines(e->ctx, 550, "5.7.1", three, 3), 0);
    assert_int_equal(modmta_test_reply_lines(e->ctx, &text), 3);
    assert_string_equal(text, "one\ntwo x\nthree");
    assert_string_equal(modmta_test_reply_text(e->ctx), "one");
    /* a one-line reply replaces it */
    assert_int_equal(modmta_reply(e->ctx, 451, "4.3.0", "later"), 0);
    assert_int_equal(modmta_test_reply_lines(e->ctx, &text), 1);
    assert_string_equal(text, "later");
}

static void
test_session_details(void **state)
{
    struct env *e = *state;

    assert_null(modmta_local_addr(e->ctx));
    assert_int_equal(modmta_local_port(e->ctx), 0);
    assert_null(modmta_auth_mech(e->ctx));
    assert_null(modmta_tls_version(e->ctx));
    assert_int_equal(modmta_tls_cipher_bits(e->ctx), 0);
    assert_int_equal(modmta_body_size(e->ctx), -1);
    modmta_test_set_local(e->ctx, "::1", 25);
    modmta_test_set_auth_mech(e->ctx, "PLAIN");
    assert_null(modmta_auth_mech(e->ctx)); /* no user: no mechanism */
    modmta_test_set_auth(e->ctx, "bob");
    modmta_test_set_tls_info(e->ctx, "TLSv1.3", "TLS_AES_256_GCM_SHA384",
                             256);
    modmta_test_set_body_size(e->ctx, 42);
    assert_string_equal(modmta_local_addr(e->ctx), "::1");
    assert_int_equal(modmta_local_port(e->ctx), 25);
    assert_string_equal(modmta_auth_mech(e->ctx), "PLAIN");
    assert_string_equal(modmta_tls_version(e->ctx), "TLSv1.3");
    assert_string_equal(modmta_tls_cipher(e->ctx), "TLS_AES_256_GCM_SHA384");
    assert_int_equal(modmta_tls_cipher_bits(e->ctx), 256);
    assert_int_equal(modmta_body_size(e->ctx), 42);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hdr_insert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sender_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_details, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
