/*
 * The shared-state API (sdk/modmta/shared.h) against the memory backend:
 * keys with and without TTLs, fixed-window counters, leases, publish and
 * subscribe, argument checks, the prefix. Each case runs on a
 * modmta_shared made by shared_open(), so that the Redis backend can run
 * the same cases against a redis-server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include "shared_priv.h"

static modmta_shared *
shared_open(const char *prefix)
{
    json_t *redis = NULL;
    modmta_err err;
    modmta_shared *s;

    if (prefix != NULL)
        redis = json_pack("{s:s}", "prefix", prefix);
    s = modmta_shared_new(redis, &err);
    json_decref(redis);
    if (s == NULL)
        fail_msg("modmta_shared_new: %s", err.msg);
    return s;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void
test_keys(void **state)
{
    modmta_shared *s = shared_open("t1:");
    char *v;

    (void)state;
    assert_int_equal(modmta_shared_get(s, "k", &v), 0);
    assert_null(v);
    assert_int_equal(modmta_shared_set(s, "k", "one", 0), 0);
    assert_int_equal(modmta_shared_get(s, "k", &v), 1);
    assert_string_equal(v, "one");
    modmta_free(v);
    assert_int_equal(modmta_shared_get(s, "k", NULL), 1);
    assert_int_equal(modmta_shared_set(s, "k", "two", 0), 0);
    assert_int_equal(modmta_shared_get(s, "k", &v), 1);
    assert_string_equal(v, "two");
    modmta_free(v);
    assert_int_equal(modmta_shared_del(s, "k"), 1);
    assert_int_equal(modmta_shared_del(s, "k"), 0);
    assert_int_equal(modmta_shared_get(s, "k", NULL), 0);
    modmta_shared_free(s);
}

static void
test_ttl(void **state)
{
    modmta_shared *s = shared_open("t2:");

    (void)state;
    assert_int_equal(modmta_shared_set(s, "short", "x", 100), 0);
    assert_int_equal(modmta_shared_set(s, "long", "x", 60000), 0);
    assert_int_equal(modmta_shared_get(s, "short", NULL), 1);
    for (int i = 0; i < 200 && modmta_shared_get(s, "short", NULL) == 1;
         i++)
        sleep_ms(20);
    assert_int_equal(modmta_shared_get(s, "short", NULL), 0);
    assert_int_equal(modmta_shared_get(s, "long", NULL), 1);
    modmta_shared_del(s, "long");
    modmta_shared_free(s);
}

/* A fixed window: counts from its first increment, starts afresh after
 * window_s. */
static void
test_counters(void **state)
{
    modmta_shared *s = shared_open("t3:");
    long long v = -1;

    (void)state;
    assert_int_equal(modmta_shared_incr(s, "c", 1, 1, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(modmta_shared_incr(s, "c", 5, 1, &v), 0);
    assert_int_equal(v, 6);
    assert_int_equal(modmta_shared_incr(s, "c", -2, 1, &v), 0);
    assert_int_equal(v, 4);
    for (int i = 0; i < 300 && v != 1; i++) {
        sleep_ms(20);
        assert_int_equal(modmta_shared_incr(s, "c", 0, 1, &v), 0);
        if (v == 0)
            assert_int_equal(modmta_shared_incr(s, "c", 1, 1, &v), 0);
    }
    assert_int_equal(v, 1);
    /* no window: kept */
    assert_int_equal(modmta_shared_incr(s, "forever", 3, 0, &v), 0);
    assert_int_equal(modmta_shared_incr(s, "forever", 3, 0, NULL), 0);
    assert_int_equal(modmta_shared_incr(s, "forever", 0, 0, &v), 0);
    assert_int_equal(v, 6);
    /* a string is not a counter */
    assert_int_equal(modmta_shared_set(s, "str", "abc", 0), 0);
    assert_true(modmta_shared_incr(s, "str", 1, 0, &v) < 0);
    modmta_shared_del(s, "c");
    modmta_shared_del(s, "forever");
    modmta_shared_del(s, "str");
    modmta_shared_free(s);
}

static void
test_leases(void **state)
{
    modmta_shared *s = shared_open("t4:");

    (void)state;
    assert_int_equal(modmta_shared_lease(s, "box", "node1/a", 60000), 1);
    assert_int_equal(modmta_shared_lease(s, "box", "node2/b", 60000), 0);
    assert_int_equal(modmta_shared_lease(s, "box", "node1/a", 60000), 1);
    assert_int_equal(modmta_shared_release(s, "box", "node2/b"), 0);
    assert_int_equal(modmta_shared_release(s, "box", "node1/a"), 1);
    assert_int_equal(modmta_shared_lease(s, "box", "node2/b", 100), 1);
    /* a holder that stops renewing loses it */
    for (int i = 0; i < 200 &&
                    modmta_shared_lease(s, "box", "node1/a", 60000) == 0;
         i++)
        sleep_ms(20);
    assert_int_equal(modmta_shared_lease(s, "box", "node2/b", 60000), 0);
    assert_int_equal(modmta_shared_release(s, "box", "node1/a"), 1);
    modmta_shared_free(s);
}

static void
test_bad_arguments(void **state)
{
    modmta_shared *s = shared_open("t5:");
    char big[MODMTA_SHARED_KEY_MAX + 2];
    long long v;

    (void)state;
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(modmta_shared_set(s, "", "x", 0), MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_set(s, "a b", "x", 0), MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_set(s, "a\r\nb", "x", 0),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_set(s, big, "x", 0), MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_set(s, "k", "x", -1), MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_get(s, NULL, NULL), MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_incr(s, "k", 1, -1, &v), MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_lease(s, "k", "o", 0), MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_lease(s, "k", "an owner", 10),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_publish(s, "c h", "x"), MODMTA_E_INVAL);
    modmta_shared_free(s);
}

/* Two stores with different prefixes do not see each other's keys. */
static void
test_prefix(void **state)
{
    modmta_shared *a = shared_open("pa:"), *b = shared_open("pb:");

    (void)state;
    assert_int_equal(modmta_shared_set(a, "k", "a", 0), 0);
    assert_int_equal(modmta_shared_get(b, "k", NULL), 0);
    assert_int_equal(modmta_shared_del(a, "k"), 1);
    modmta_shared_free(a);
    modmta_shared_free(b);
}

struct inbox {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;
    char last[64];
    char channel[64];
    pthread_t thread;
};

static void
inbox_cb(void *arg, const char *channel, const char *msg)
{
    struct inbox *in = arg;

    pthread_mutex_lock(&in->lock);
    in->n++;
    snprintf(in->last, sizeof(in->last), "%s", msg);
    snprintf(in->channel, sizeof(in->channel), "%s", channel);
    in->thread = pthread_self();
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->lock);
}

static void
inbox_wait(struct inbox *in, int n)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&in->lock);
    while (in->n < n &&
           pthread_cond_timedwait(&in->cond, &in->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&in->lock);
    assert_int_equal(in->n, n);
}

static void
test_pubsub(void **state)
{
    modmta_shared *s = shared_open("t6:");
    struct inbox a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      0, "", "", 0};
    struct inbox b = a;
    modmta_shared_sub *sa, *sb;

    (void)state;
    assert_int_equal(modmta_shared_publish(s, "ctl", "nobody"), 0);
    assert_int_equal(modmta_shared_subscribe(s, "ctl", inbox_cb, &a, &sa),
                     0);
    assert_int_equal(modmta_shared_subscribe(s, "ctl", inbox_cb, &b, &sb),
                     0);
    assert_int_equal(modmta_shared_publish(s, "ctl", "reload"), 2);
    inbox_wait(&a, 1);
    inbox_wait(&b, 1);
    assert_string_equal(a.last, "reload");
    assert_string_equal(a.channel, "ctl");   /* without the prefix */
    /* not on the publisher's thread */
    assert_false(pthread_equal(a.thread, pthread_self()));
    modmta_shared_unsubscribe(sb);
    assert_int_equal(modmta_shared_publish(s, "ctl", "again"), 1);
    inbox_wait(&a, 2);
    assert_int_equal(b.n, 1);
    assert_int_equal(modmta_shared_publish(s, "other", "x"), 0);
    modmta_shared_unsubscribe(sa);
    modmta_shared_free(s);
}

/* Many threads counting at once lose no increment. */
static void *
counter_thread(void *arg)
{
    modmta_shared *s = arg;

    for (int i = 0; i < 1000; i++)
        if (modmta_shared_incr(s, "race", 1, 60, NULL) < 0)
            return (void *)1;
    return NULL;
}

static void
test_concurrent_counter(void **state)
{
    modmta_shared *s = shared_open("t7:");
    pthread_t t[8];
    long long v = 0;
    void *ret;

    (void)state;
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, counter_thread, s), 0);
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(modmta_shared_incr(s, "race", 0, 60, &v), 0);
    assert_int_equal(v, 8000);
    modmta_shared_del(s, "race");
    modmta_shared_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_leases),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_pubsub),
        cmocka_unit_test(test_concurrent_counter),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
