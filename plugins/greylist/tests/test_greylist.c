/*
 * greylist's unit tests: the module's hooks through libmodmta-test's
 * fakes and the process's memory store, on a clock the test sets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <fake.h>

#include "greylist.h"

extern const modmta_module modmta_descriptor;

static long long test_now = 1000000000; /* seconds */

static long long
test_clock(void)
{
    return test_now * 1000;
}

struct t {
    modmta_host *h;
    modmta_ctx *ctx;
    struct greylist *gl;
};

static struct t
t_new(const char *conf, const char *client)
{
    struct t t;

    t.h = modmta_test_host_new("greylist", "example.com", NULL);
    t.gl = modmta_test_create_ok(&modmta_descriptor, conf, t.h);
    t.gl->now_ms = test_clock;
    t.ctx = modmta_test_ctx_new(t.h, client);
    modmta_test_set_sender(t.ctx, "Q1", "Sender@Remote.TEST");
    return t;
}

static int
t_rcpt(struct t *t, const char *rcpt)
{
    modmta_test_enter(t->ctx, MODMTA_PHASE_RCPT, &modmta_descriptor, t->gl);
    return modmta_descriptor.on_rcpt(t->gl, t->ctx, rcpt);
}

static void
t_free(struct t *t)
{
    modmta_test_release(&modmta_descriptor, t->gl, t->ctx, t->h);
}

static void
test_first_retry_pass(void **state)
{
    struct t t = t_new("{\"delay\": \"5m\"}", "192.0.2.10");

    (void)state;
    assert_int_equal(t_rcpt(&t, "a@example.com"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(t.ctx), 450);
    assert_string_equal(modmta_test_reply_esc(t.ctx), "4.7.1");
    assert_non_null(strstr(modmta_test_reply_text(t.ctx), "try again"));
    /* before the delay: 450 again, and the timer is not reset */
    test_now += 299;
    assert_int_equal(t_rcpt(&t, "a@example.com"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(t.ctx), 450);
    test_now += 1;
    assert_int_equal(t_rcpt(&t, "a@example.com"), MODMTA_CONTINUE);
    /* remembered, from a neighbour in the /24 too, any case */
    t_free(&t);
    t = t_new("{\"delay\": \"5m\"}", "192.0.2.200");
    assert_int_equal(t_rcpt(&t, "A@Example.COM"), MODMTA_CONTINUE);
    /* another recipient is another triplet */
    assert_int_equal(t_rcpt(&t, "b@example.com"), MODMTA_TEMPFAIL);
    t_free(&t);
    /* another network too */
    t = t_new("{\"delay\": \"5m\"}", "192.0.3.10");
    assert_int_equal(t_rcpt(&t, "a@example.com"), MODMTA_TEMPFAIL);
    t_free(&t);
}

static void
test_ipv6_network(void **state)
{
    struct t t = t_new("{\"delay\": 10, \"expire\": \"1h\"}",
                       "2001:db8:1:2::5");

    (void)state;
    assert_int_equal(t_rcpt(&t, "e@example.com"), MODMTA_TEMPFAIL);
    test_now += 10;
    assert_int_equal(t_rcpt(&t, "e@example.com"), MODMTA_CONTINUE);
    t_free(&t);
    /* same /64 */
    t = t_new("{\"delay\": 10, \"expire\": \"1h\"}", "2001:db8:1:2:ffff::1");
    assert_int_equal(t_rcpt(&t, "e@example.com"), MODMTA_CONTINUE);
    t_free(&t);
}

static void
test_exempt_and_auth(void **state)
{
    struct t t = t_new("{\"exempt\": [\"198.51.100.0/24\", \"::1\"]}",
                       "198.51.100.7");

    (void)state;
    assert_int_equal(t_rcpt(&t, "x@example.com"), MODMTA_CONTINUE);
    t_free(&t);
    t = t_new("{\"exempt\": [\"198.51.100.0/24\"]}", "::ffff:198.51.100.8");
    assert_int_equal(t_rcpt(&t, "x@example.com"), MODMTA_CONTINUE);
    t_free(&t);
    t = t_new("{\"exempt\": [\"198.51.100.0/24\"]}", "203.0.113.1");
    modmta_test_set_auth(t.ctx, "alice");
    assert_int_equal(t_rcpt(&t, "x@example.com"), MODMTA_CONTINUE);
    modmta_test_set_auth(t.ctx, NULL);
    assert_int_equal(t_rcpt(&t, "x@example.com"), MODMTA_TEMPFAIL);
    t_free(&t);
}

static void
test_mapped_exempt(void **state)
{
    /* a network written in the IPv4-mapped form exempts IPv4 clients */
    struct t t = t_new("{\"exempt\": [\"::ffff:198.51.100.0/120\"]}",
                       "198.51.100.9");

    (void)state;
    assert_int_equal(t_rcpt(&t, "m@example.com"), MODMTA_CONTINUE);
    t_free(&t);
    t = t_new("{\"exempt\": [\"::ffff:198.51.100.0/120\"]}",
              "::ffff:198.51.100.10");
    assert_int_equal(t_rcpt(&t, "m@example.com"), MODMTA_CONTINUE);
    t_free(&t);
}

static void
test_stored_value_distrusted(void **state)
{
    struct t t = t_new("{\"delay\": 10}", "203.0.113.60");
    modmta_shared *s = modmta_host_shared(t.h);
    char key[GREYLIST_KEY_MAX];

    (void)state;
    assert_int_equal(greylist_key("203.0.113.0/24", "sender@remote.test",
                                  "f@example.com", key, sizeof(key)), 0);
    /* a first-seen time ahead of this node's clock, an overflowing one,
     * and a counter: each starts over (450), none passes at once nor
     * defers for longer than the delay */
    const char *bad[] = {"99999999999999999999", "4000000000000000", "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(modmta_shared_set(s, key, bad[i], 60000), 0);
        assert_int_equal(t_rcpt(&t, "f@example.com"), MODMTA_TEMPFAIL);
        test_now += 10;
        assert_int_equal(t_rcpt(&t, "f@example.com"), MODMTA_CONTINUE);
    }
    assert_int_equal(modmta_shared_del(s, key), 1);
    assert_int_equal(modmta_shared_incr(s, key, 1, 60, NULL), 0);
    assert_int_equal(t_rcpt(&t, "f@example.com"), MODMTA_TEMPFAIL);
    test_now += 10;
    assert_int_equal(t_rcpt(&t, "f@example.com"), MODMTA_CONTINUE);
    t_free(&t);
}

static void
test_null_sender_greylisted(void **state)
{
    struct t t = t_new("{}", "203.0.113.50");

    (void)state;
    modmta_test_set_sender(t.ctx, "Q2", "");
    assert_int_equal(t_rcpt(&t, "n@example.com"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(t.ctx), 450);
    t_free(&t);
}

static void
test_store_down(void **state)
{
    struct t t = t_new("{}", "203.0.113.60");

    (void)state;
    assert_int_equal(modmta_test_host_fail_shared(t.h, 1), 0);
    assert_int_equal(t_rcpt(&t, "d@example.com"), MODMTA_TEMPFAIL);
    assert_int_equal(modmta_test_reply_code(t.ctx), 451);
    t_free(&t);
    t = t_new("{\"on_error\": \"continue\"}", "203.0.113.60");
    assert_int_equal(modmta_test_host_fail_shared(t.h, 1), 0);
    assert_int_equal(t_rcpt(&t, "d@example.com"), MODMTA_CONTINUE);
    t_free(&t);
}

static void
test_key_bounded(void **state)
{
    char big[300], key[GREYLIST_KEY_MAX], key2[GREYLIST_KEY_MAX];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(greylist_key("2001:db8:1:2::/64", big, big, key,
                                  sizeof(key)), 0);
    assert_true(strlen(key) < MODMTA_SHARED_KEY_MAX);
    assert_null(strchr(key, ' '));
    /* the separator counts: ("ab", "c") is not ("a", "bc") */
    assert_int_equal(greylist_key("n", "ab", "c", key, sizeof(key)), 0);
    assert_int_equal(greylist_key("n", "a", "bc", key2, sizeof(key2)), 0);
    assert_string_not_equal(key, key2);
    assert_int_equal(greylist_key("n", "\"a b\"@X", "C", key, sizeof(key)),
                     0);
    assert_int_equal(greylist_key("n", "\"a b\"@x", "c", key2, sizeof(key2)),
                     0);
    assert_string_equal(key, key2);
}

static void
test_config_errors(void **state)
{
    modmta_host *h = modmta_test_host_new("greylist", NULL);

    (void)state;
    modmta_test_create_fails(&modmta_descriptor, "{\"delay\": \"5x\"}", h,
                             "$.modules[0].delay");
    modmta_test_create_fails(&modmta_descriptor, "{\"delay\": 0}", h,
                             "$.modules[0].delay");
    modmta_test_create_fails(&modmta_descriptor, "{\"delay\": true}", h,
                             "$.modules[0].delay");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"delay\": \"2h\", \"expire\": \"1h\"}", h,
                             "$.modules[0].expire");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"expire\": \"99999999999d\"}", h,
                             "$.modules[0].expire");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"exempt\": [\"::1\", \"10.0.0.1/24\"]}", h,
                             "$.modules[0].exempt[1]");
    modmta_test_create_fails(&modmta_descriptor,
                             "{\"exempt\": [\"nowhere\"]}", h,
                             "$.modules[0].exempt[0]");
    modmta_test_create_fails(&modmta_descriptor, "{\"on_error\": \"pass\"}",
                             h, "$.modules[0].on_error");
    modmta_test_create_fails(&modmta_descriptor, "{\"bogus\": 1}", h,
                             "$.modules[0].bogus");
    modmta_test_host_free(h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_retry_pass),
        cmocka_unit_test(test_ipv6_network),
        cmocka_unit_test(test_exempt_and_auth),
        cmocka_unit_test(test_mapped_exempt),
        cmocka_unit_test(test_stored_value_distrusted),
        cmocka_unit_test(test_null_sender_greylisted),
        cmocka_unit_test(test_store_down),
        cmocka_unit_test(test_key_bounded),
        cmocka_unit_test(test_config_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
