/* Unit tests of the AUTH verb through the SDK fakes, public headers
 * only: the client is the SDK's connection fake (modmta_test_conn), its
 * lines sent before the call, or during it from another thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <modmta/modmta.h>
#include <fake.h>
#include <files.h>

extern const modmta_module modmta_descriptor;

/* The limiter's calls, wrapped at link time (-Wl,--wrap): a shared state
 * that cannot be reached. check_down: the nth check() from now fails (0:
 * none); fail_down: every fail() fails. */
int __real_modmta_lockout_check(modmta_lockout *l, const char *addr);
int __wrap_modmta_lockout_check(modmta_lockout *l, const char *addr);
int __real_modmta_lockout_fail(modmta_lockout *l, const char *addr,
                               unsigned *failures_r);
int __wrap_modmta_lockout_fail(modmta_lockout *l, const char *addr,
                               unsigned *failures_r);
static int check_down, fail_down;

int
__wrap_modmta_lockout_check(modmta_lockout *l, const char *addr)
{
    if (check_down > 0 && --check_down == 0)
        return MODMTA_E_TEMP;
    return __real_modmta_lockout_check(l, addr);
}

int
__wrap_modmta_lockout_fail(modmta_lockout *l, const char *addr,
                           unsigned *failures_r)
{
    if (fail_down) {
        *failures_r = 0;
        return MODMTA_E_TEMP;
    }
    return __real_modmta_lockout_fail(l, addr, failures_r);
}

struct t {
    modmta_host *h;
    json_t *conf;
    void *inst;
    char path[64];
};

static int
setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    modmta_err err;

    snprintf(t->path, sizeof(t->path), "/tmp/auth-sasl-%d.passwd",
             (int)getpid());
    modmta_test_write_file(t->path, "bob:{PLAIN}pw\n");
    t->h = modmta_test_host_new("auth", NULL);
    t->conf = json_pack("{s:s, s:s+, s:[s,s,s], s:i}", "module", "auth_sasl",
                        "passdb", "file:", t->path, "mechanisms", "PLAIN",
                        "LOGIN", "CRAM-MD5", "max_failures", 3);
    t->inst = modmta_descriptor.create(t->conf, t->h, &err);
    assert_non_null(t->inst);
    *state = t;
    return 0;
}

static int
teardown(void **state)
{
    struct t *t = *state;

    modmta_descriptor.destroy(t->inst);
    json_decref(t->conf);
    modmta_test_host_free(t->h);
    unlink(t->path);
    free(t);
    return 0;
}

/* Run "AUTH args" with the client lines `input` queued; returns the
 * verdict; out gets what the server wrote. */
static modmta_verdict
run(struct t *t, modmta_ctx *ctx, const char *args, const char *input,
    char *out, size_t cap)
{
    modmta_test_conn *tc = modmta_test_conn_new(input);
    modmta_verdict v;

    modmta_test_enter(ctx, MODMTA_PHASE_VERB, &modmta_descriptor, t->inst);
    v = modmta_descriptor.commands[0].handler(t->inst, ctx,
                                              modmta_test_conn_get(tc), args);
    snprintf(out, cap, "%s", modmta_test_conn_output(tc));
    modmta_test_conn_free(tc);
    return v;
}

static modmta_ctx *
session(struct t *t, const char *ip, int tls)
{
    modmta_ctx *ctx = modmta_test_ctx_new(t->h, ip);

    modmta_test_set_helo(ctx, "client.test");
    modmta_test_set_tls(ctx, tls);
    return ctx;
}

static void
test_plain(void **state)
{
    struct t *t = *state;
    modmta_ctx *ctx = session(t, "192.0.2.1", 1);
    char out[256];

    /* "\0bob\0pw" */
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw==", "", out, 256),
                     MODMTA_ACCEPT);
    assert_int_equal(modmta_test_reply_code(ctx), 235);
    assert_string_equal(modmta_auth_user(ctx), "bob");
    /* twice: 503 */
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw==", "", out, 256),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 503);
    modmta_test_ctx_free(ctx);
}

static void
test_plain_challenge_and_errors(void **state)
{
    struct t *t = *state;
    modmta_ctx *ctx = session(t, "192.0.2.2", 1);
    char out[256];

    assert_int_equal(run(t, ctx, "PLAIN", "AGJvYgBwdw==\r\n", out, 256),
                     MODMTA_ACCEPT);
    assert_string_equal(out, "334 \r\n");
    modmta_test_ctx_free(ctx);
    ctx = session(t, "192.0.2.2", 1);
    assert_int_equal(run(t, ctx, "PLAIN", "*\r\n", out, 256),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 501);
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw=", "", out, 256),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 501);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.5.2");
    /* "\0bob\0pw" with the unused bits of the last group set: strict
     * base64 has one encoding for it (RFC 4648 3.5) */
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdx==", "", out, 256),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 501);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.5.2");
    /* LOGIN: a stray tab in the answer */
    assert_int_equal(run(t, ctx, "LOGIN", "Ym9i\r\ncHc=\tcHc=\r\n", out,
                         256), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 501);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.5.2");
    assert_int_equal(run(t, ctx, "GSSAPI", "", out, 256), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 504);
    assert_null(modmta_auth_user(ctx));
    modmta_test_ctx_free(ctx);
}

static void
test_login_and_cram(void **state)
{
    struct t *t = *state;
    modmta_ctx *ctx = session(t, "192.0.2.3", 1);
    char out[512];

    assert_int_equal(run(t, ctx, "LOGIN", "Ym9i\r\ncHc=\r\n", out, 512),
                     MODMTA_ACCEPT);
    assert_string_equal(out, "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n");
    assert_string_equal(modmta_auth_user(ctx), "bob");
    modmta_test_ctx_free(ctx);
    /* CRAM-MD5: a response with a wrong digest is a failure */
    ctx = session(t, "192.0.2.3", 1);
    assert_int_equal(run(t, ctx, "CRAM-MD5",
                         "Ym9iIDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw"
                         "\r\n", out, 512), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 535);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.7.8");
    assert_int_equal(strncmp(out, "334 ", 4), 0);
    modmta_test_ctx_free(ctx);
}

static void
test_needs_tls(void **state)
{
    struct t *t = *state;
    modmta_ctx *ctx = session(t, "127.0.0.1", 0);
    char out[256];

    /* allow_plaintext_loopback is off by default */
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw==", "", out, 256),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 538);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.7.11");
    modmta_test_enter(ctx, MODMTA_PHASE_EHLO, &modmta_descriptor, t->inst);
    modmta_descriptor.ehlo(t->inst, ctx);
    assert_int_equal(modmta_test_ehlo_count(ctx), 0);
    modmta_test_set_tls(ctx, 1);
    modmta_descriptor.ehlo(t->inst, ctx);
    assert_int_equal(modmta_test_ehlo_count(ctx), 1);
    assert_string_equal(modmta_test_ehlo_at(ctx, 0),
                        "AUTH PLAIN LOGIN CRAM-MD5");
    modmta_test_ctx_free(ctx);
}

static void
test_lockout(void **state)
{
    struct t *t = *state;
    modmta_ctx *ctx = session(t, "192.0.2.9", 1);
    char out[256];
    int i;

    /* "\0bob\0no" three times: 535, 535, then 421 */
    for (i = 0; i < 2; i++) {
        assert_int_equal(run(t, ctx, "PLAIN AGJvYgBubw==", "", out, 256),
                         MODMTA_REJECT);
        assert_int_equal(modmta_test_reply_code(ctx), 535);
    }
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBubw==", "", out, 256),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(ctx), 421);
    /* locked: even the right password gets 421 */
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw==", "", out, 256),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(ctx), 421);
    assert_null(modmta_auth_user(ctx));
    modmta_test_ctx_free(ctx);
    /* another client is not affected */
    ctx = session(t, "192.0.2.10", 1);
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw==", "", out, 256),
                     MODMTA_ACCEPT);
    modmta_test_ctx_free(ctx);
}

/* A good login between failures does not reset the count: one account
 * the guesser holds must not lift the limit for the others. */
static void
test_lockout_success_no_reset(void **state)
{
    struct t *t = *state;
    modmta_ctx *ctx;
    char out[256];
    int i;

    for (i = 0; i < 4; i++) {
        ctx = session(t, "192.0.2.11", 1);
        /* fail, fail, "\0bob\0pw", fail */
        assert_int_equal(run(t, ctx, i == 2 ? "PLAIN AGJvYgBwdw=="
                                            : "PLAIN AGJvYgBubw==",
                             "", out, 256),
                         i == 2 ? MODMTA_ACCEPT
                         : i < 3 ? MODMTA_REJECT : MODMTA_TEMPFAIL);
        assert_int_equal(modmta_test_reply_code(ctx),
                         i == 2 ? 235 : i < 3 ? 535 : 421);
        modmta_test_ctx_free(ctx);
    }
}

/* CRAM-MD5 for an unknown user fails as a wrong digest does (that it
 * costs the same HMAC is tested with libmodmta's SASL, test_sasl.c). */
static void
test_cram_unknown_user(void **state)
{
    struct t *t = *state;
    modmta_ctx *ctx = session(t, "192.0.2.4", 1);
    char out[512];

    /* "eve 000...0" */
    assert_int_equal(run(t, ctx, "CRAM-MD5",
                         "ZXZlIDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw"
                         "\r\n", out, 512), MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 535);
    modmta_test_ctx_free(ctx);
}

/* IPv6 clients share one failure counter per /64. */
static void
test_lockout_ipv6_prefix(void **state)
{
    static const char *const ips[] = {
        "2001:db8:1:2::a", "2001:db8:1:2:ffff::b", "2001:db8:1:2::c",
    };
    struct t *t = *state;
    modmta_ctx *ctx;
    char out[256];
    int i;

    for (i = 0; i < 3; i++) {
        ctx = session(t, ips[i], 1);
        assert_int_equal(run(t, ctx, "PLAIN AGJvYgBubw==", "", out, 256),
                         i < 2 ? MODMTA_REJECT : MODMTA_TEMPFAIL);
        assert_int_equal(modmta_test_reply_code(ctx), i < 2 ? 535 : 421);
        modmta_test_ctx_free(ctx);
    }
    ctx = session(t, "2001:db8:1:2:1:2:3:4", 1);
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw==", "", out, 256),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(ctx), 421);
    modmta_test_ctx_free(ctx);
    /* the next /64 is someone else */
    ctx = session(t, "2001:db8:1:3::a", 1);
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw==", "", out, 256),
                     MODMTA_ACCEPT);
    modmta_test_ctx_free(ctx);
}

/* One failed AUTH from a fresh client; returns the reply code. */
static int
fail_once(struct t *t, void *inst, const char *ip)
{
    modmta_ctx *ctx = session(t, ip, 1);
    void *saved = t->inst;
    char out[256];
    int code;

    t->inst = inst;
    run(t, ctx, "PLAIN AGJvYgBubw==", "", out, 256);
    t->inst = saved;
    code = modmta_test_reply_code(ctx);
    modmta_test_ctx_free(ctx);
    return code;
}

/* The counts are in the shared state under the instance's name: the
 * instance of the next generation (a reload) still refuses a locked
 * client; an instance of another name counts apart. */
static void
test_lockout_survives_reload(void **state)
{
    struct t *t = *state;
    modmta_host *other = modmta_test_host_new("auth-2", NULL);
    modmta_err err;
    void *inst;
    int i;

    for (i = 0; i < 3; i++)
        assert_int_equal(fail_once(t, t->inst, "198.51.100.1"),
                         i < 2 ? 535 : 421);
    modmta_descriptor.destroy(t->inst);
    t->inst = modmta_descriptor.create(t->conf, t->h, &err);
    assert_non_null(t->inst);
    assert_int_equal(fail_once(t, t->inst, "198.51.100.1"), 421);
    inst = modmta_descriptor.create(t->conf, other, &err);
    assert_non_null(inst);
    assert_int_equal(fail_once(t, inst, "198.51.100.1"), 535);
    modmta_descriptor.destroy(inst);
    modmta_test_host_free(other);
}

/* A limiter that cannot say (the shared state unreachable) refuses with
 * 454 4.7.0: before the exchange, after wrong credentials and after
 * right ones (the client may be locked). */
static void
test_lockout_store_error(void **state)
{
    struct t *t = *state;
    modmta_ctx *ctx;
    char out[256];

    ctx = session(t, "198.51.100.2", 1);
    check_down = 1;
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw==", "", out, 256),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(ctx), 454);
    assert_string_equal(modmta_test_reply_esc(ctx), "4.7.0");
    fail_down = 1;
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBubw==", "", out, 256),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(ctx), 454);
    fail_down = 0;
    check_down = 2;
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw==", "", out, 256),
                     MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(ctx), 454);
    assert_null(modmta_auth_user(ctx));
    assert_int_equal(check_down, 0);
    assert_int_equal(run(t, ctx, "PLAIN AGJvYgBwdw==", "", out, 256),
                     MODMTA_ACCEPT);
    modmta_test_ctx_free(ctx);
}

/* An AUTH whose exchange is still running, in a thread. */
struct bg {
    struct t *t;
    modmta_ctx *ctx;
    modmta_test_conn *tc;
    modmta_verdict v;
};

static void *
bg_run(void *arg)
{
    struct bg *b = arg;

    modmta_test_enter(b->ctx, MODMTA_PHASE_VERB, &modmta_descriptor,
                      b->t->inst);
    b->v = modmta_descriptor.commands[0].handler(
        b->t->inst, b->ctx, modmta_test_conn_get(b->tc), "PLAIN");
    return NULL;
}

/* Session B passes the lock check, session A then gets the client locked,
 * then B answers with `response`: B must get 421 whatever it sent. */
static void
race(struct t *t, const char *ip, const char *response)
{
    struct bg b = {.t = t, .ctx = session(t, ip, 1),
                   .tc = modmta_test_conn_new(NULL)};
    modmta_ctx *a = session(t, ip, 1);
    pthread_t th;
    char out[256];
    int i;

    pthread_create(&th, NULL, bg_run, &b);
    assert_string_equal(modmta_test_conn_read_line(b.tc), "334 \r\n");
    for (i = 0; i < 3; i++)
        run(t, a, "PLAIN AGJvYgBubw==", "", out, 256);
    assert_int_equal(modmta_test_reply_code(a), 421);
    modmta_test_conn_send(b.tc, response);
    pthread_join(th, NULL);
    modmta_test_conn_free(b.tc);
    assert_int_equal(b.v, MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(b.ctx), 421);
    assert_null(modmta_auth_user(b.ctx));
    modmta_test_ctx_free(a);
    modmta_test_ctx_free(b.ctx);
}

static void
test_lockout_parallel(void **state)
{
    struct t *t = *state;

    race(t, "192.0.2.30", "AGJvYgBubw==\r\n"); /* a wrong password */
    race(t, "192.0.2.31", "AGJvYgBwdw==\r\n"); /* the right one */
}

static void
test_config_errors(void **state)
{
    modmta_host *h = modmta_test_host_new("auth", NULL);
    json_t *c = json_pack("{s:s, s:s, s:[s]}", "module", "auth_sasl",
                          "passdb", "saslauthd:/run/x", "mechanisms",
                          "CRAM-MD5");
    modmta_err err;

    assert_null(modmta_descriptor.create(c, h, &err));
    assert_string_equal(err.path, "$.modules[0].mechanisms");
    json_decref(c);
    c = json_pack("{s:s}", "module", "auth_sasl");
    assert_null(modmta_descriptor.create(c, h, &err));
    json_decref(c);
    c = json_pack("{s:s, s:s, s:I}", "module", "auth_sasl", "passdb",
                  "saslauthd:/run/x", "lockout", (json_int_t)1 << 32);
    assert_null(modmta_descriptor.create(c, h, &err));
    assert_string_equal(err.path, "$.modules[0].lockout");
    json_decref(c);
    modmta_test_host_free(h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_challenge_and_errors,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_and_cram, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_needs_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout_success_no_reset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cram_unknown_user, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lockout_ipv6_prefix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lockout_survives_reload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lockout_store_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lockout_parallel, setup,
                                        teardown),
        cmocka_unit_test(test_config_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
