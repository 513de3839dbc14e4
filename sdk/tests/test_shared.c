/*
 * The shared-state API (sdk/modmta/shared.h): keys with and without
 * TTLs, fixed-window counters, leases, publish and subscribe, argument
 * checks, the prefix. Every case runs twice: on the memory backend, then
 * on the Redis backend against a redis-server the test starts on a UNIX
 * socket (shared_open() makes the store of the group that runs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/modmta.h>

#include <files.h>

#include "shared_priv.h"
#include "shared_test.h"

/* The "redis" object of the case that runs; NULL: the memory backend. */
static json_t *shared_redis;

static modmta_shared *
shared_open(const char *prefix)
{
    json_t *redis;
    modmta_err err;
    modmta_shared *s;

    if (shared_redis == NULL) {
        s = shared_new_mem(prefix, &err);
    } else {
        redis = json_deep_copy(shared_redis);
        json_object_set_new(redis, "prefix", json_string(prefix));
        s = modmta_shared_new(redis, &err);
        json_decref(redis);
    }
    if (s == NULL)
        fail_msg("shared store: %s", err.msg);
    assert_int_equal(modmta_shared_is_cluster(s), shared_redis != NULL);
    return s;
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

/* A TTL long enough that a loaded machine reads the key before it ends,
 * then polled for (at most 10 s) until it has. */
static void
test_ttl(void **state)
{
    modmta_shared *s = shared_open("t2:");

    (void)state;
    assert_int_equal(modmta_shared_set(s, "short", "x", 2000), 0);
    assert_int_equal(modmta_shared_set(s, "long", "x", 60000), 0);
    assert_int_equal(modmta_shared_get(s, "short", NULL), 1);
    for (int i = 0; i < 500 && modmta_shared_get(s, "short", NULL) == 1;
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
    /* ... until a window is given: then it gets one (the Redis script
     * must do that without EXPIRE NX, which Redis 6 does not have) */
    assert_int_equal(modmta_shared_incr(s, "forever", 1, 1, &v), 0);
    assert_int_equal(v, 7);
    for (int i = 0; i < 300 && v != 0; i++) {
        sleep_ms(20);
        assert_int_equal(modmta_shared_incr(s, "forever", 0, 1, &v), 0);
    }
    assert_int_equal(v, 0);
    /* a string is not a counter */
    assert_int_equal(modmta_shared_set(s, "str", "abc", 0), 0);
    assert_true(modmta_shared_incr(s, "str", 1, 0, &v) < 0);
    modmta_shared_del(s, "c");
    modmta_shared_del(s, "forever");
    modmta_shared_del(s, "str");
    modmta_shared_free(s);
}

/* A give-back: only into a counter that exists, which goes at 0. */
static void
test_decr(void **state)
{
    modmta_shared *s = shared_open("t8:");
    long long v = -1;

    (void)state;
    /* never made: nothing is created */
    assert_int_equal(modmta_shared_decr(s, "c", 1), 0);
    assert_int_equal(modmta_shared_get(s, "c", NULL), 0);
    assert_int_equal(modmta_shared_incr(s, "c", 3, 60, &v), 0);
    assert_int_equal(modmta_shared_decr(s, "c", 1), 1);
    assert_int_equal(modmta_shared_incr(s, "c", 0, 60, &v), 0);
    assert_int_equal(v, 2);
    /* brought to 0 (or below): deleted, and stays so */
    assert_int_equal(modmta_shared_decr(s, "c", 2), 1);
    assert_int_equal(modmta_shared_get(s, "c", NULL), 0);
    assert_int_equal(modmta_shared_decr(s, "c", 1), 0);
    assert_int_equal(modmta_shared_get(s, "c", NULL), 0);
    assert_int_equal(modmta_shared_incr(s, "d", 1, 60, &v), 0);
    assert_int_equal(modmta_shared_decr(s, "d", 5), 1);
    assert_int_equal(modmta_shared_get(s, "d", NULL), 0);
    /* its window over: the give-back starts no new one */
    assert_int_equal(modmta_shared_incr(s, "w", 1, 1, &v), 0);
    for (int i = 0; i < 300 && modmta_shared_get(s, "w", NULL) == 1; i++)
        sleep_ms(20);
    assert_int_equal(modmta_shared_decr(s, "w", 1), 0);
    assert_int_equal(modmta_shared_get(s, "w", NULL), 0);
    /* a string is not a counter, and is left as it was */
    assert_int_equal(modmta_shared_set(s, "str", "abc", 0), 0);
    assert_int_equal(modmta_shared_decr(s, "str", 1), MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_get(s, "str", NULL), 1);
    assert_int_equal(modmta_shared_decr(s, "c", 0), MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_decr(s, "c", -1), MODMTA_E_INVAL);
    modmta_shared_del(s, "str");
    modmta_shared_free(s);
}

/* Members join up to max, renew past it, leave; a member not renewed
 * stops counting when its TTL ends; the last one takes the key along. */
static void
test_gauges(void **state)
{
    modmta_shared *s = shared_open("t9:");
    long long n = -1;

    (void)state;
    assert_int_equal(modmta_shared_gauge_join(s, "g", "n1/a", 2, 60000, &n),
                     1);
    assert_int_equal(n, 1);
    assert_int_equal(modmta_shared_gauge_join(s, "g", "n2/b", 2, 60000, &n),
                     1);
    assert_int_equal(n, 2);
    assert_int_equal(modmta_shared_gauge_join(s, "g", "n1/c", 2, 60000, &n),
                     0);
    assert_int_equal(n, 2);
    /* a member in is renewed, full or not, and counted once */
    assert_int_equal(modmta_shared_gauge_join(s, "g", "n1/a", 2, 60000, &n),
                     1);
    assert_int_equal(n, 2);
    assert_int_equal(modmta_shared_gauge_join(s, "g", "n1/a", 1, 60000,
                                              NULL), 1);
    assert_int_equal(modmta_shared_gauge_leave(s, "g", "n1/c"), 0);
    assert_int_equal(modmta_shared_gauge_leave(s, "g", "n2/b"), 1);
    assert_int_equal(modmta_shared_gauge_join(s, "g", "n1/c", 2, 60000, &n),
                     1);
    assert_int_equal(n, 2);
    /* max 0: no limit */
    assert_int_equal(modmta_shared_gauge_join(s, "g", "n3/d", 0, 60000, &n),
                     1);
    assert_int_equal(n, 3);
    assert_int_equal(modmta_shared_gauge_leave(s, "g", "n1/a"), 1);
    assert_int_equal(modmta_shared_gauge_leave(s, "g", "n1/c"), 1);
    assert_int_equal(modmta_shared_gauge_leave(s, "g", "n3/d"), 1);
    assert_int_equal(modmta_shared_gauge_leave(s, "g", "n3/d"), 0);
    assert_int_equal(modmta_shared_del(s, "g"), 0);
    /* a holder that died: its member expires, the live one stays */
    assert_int_equal(modmta_shared_gauge_join(s, "g", "dead/a", 2, 1500, &n),
                     1);
    assert_int_equal(modmta_shared_gauge_join(s, "g", "live/b", 2, 60000,
                                              &n), 1);
    assert_int_equal(modmta_shared_gauge_join(s, "g", "new/c", 2, 60000, &n),
                     0);
    for (int i = 0; i < 500 && modmta_shared_gauge_join(s, "g", "new/c", 2,
                                                       60000, &n) == 0;
         i++)
        sleep_ms(20);
    assert_int_equal(n, 2);
    assert_int_equal(modmta_shared_gauge_leave(s, "g", "dead/a"), 0);
    /* every member gone by its TTL: so is the key */
    assert_int_equal(modmta_shared_gauge_leave(s, "g", "live/b"), 1);
    assert_int_equal(modmta_shared_gauge_leave(s, "g", "new/c"), 1);
    assert_int_equal(modmta_shared_gauge_join(s, "g", "last/d", 0, 1000, &n),
                     1);
    assert_int_equal(n, 1);
    for (int i = 0; i < 500 && modmta_shared_get(s, "g", NULL) != 0; i++)
        sleep_ms(20);
    assert_int_equal(modmta_shared_get(s, "g", NULL), 0);
    /* not a gauge; bad arguments */
    assert_int_equal(modmta_shared_set(s, "str", "abc", 0), 0);
    assert_int_equal(modmta_shared_gauge_join(s, "str", "m", 0, 1000, &n),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_gauge_leave(s, "str", "m"),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_gauge_join(s, "g", "a b", 0, 1000, &n),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_gauge_join(s, "g", "m", -1, 1000, &n),
                     MODMTA_E_INVAL);
    assert_int_equal(modmta_shared_gauge_join(s, "g", "m", 0, 0, &n),
                     MODMTA_E_INVAL);
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

static void
test_pubsub(void **state)
{
    modmta_shared *s = shared_open("t6:");
    struct inbox a = INBOX_INIT, b = INBOX_INIT;
    modmta_shared_sub *sa, *sb;

    (void)state;
    assert_int_equal(modmta_shared_publish(s, "ctl", "nobody"), 0);
    assert_int_equal(modmta_shared_subscribe(s, "ctl", inbox_cb, &a, &sa),
                     0);
    assert_int_equal(modmta_shared_subscribe(s, "ctl", inbox_cb, &b, &sb),
                     0);
    /* Redis counts the connections subscribed: one per store */
    assert_int_equal(modmta_shared_publish(s, "ctl", "reload"),
                     modmta_shared_is_cluster(s) ? 1 : 2);
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

/* A callback that unsubscribes itself: it returns (the call does not
 * wait for the callback that makes it) and gets nothing more. */
struct self_unsub {
    modmta_shared_sub *sub;
    struct inbox in;
};

static void
self_unsub_cb(void *arg, const char *channel, const char *msg)
{
    struct self_unsub *u = arg;

    modmta_shared_unsubscribe(u->sub);
    inbox_cb(&u->in, channel, msg);
}

static void
test_unsubscribe_from_callback(void **state)
{
    modmta_shared *s = shared_open("t8:");
    struct self_unsub u = {NULL, INBOX_INIT};
    struct inbox b = INBOX_INIT;
    modmta_shared_sub *sb;

    (void)state;
    assert_int_equal(modmta_shared_subscribe(s, "ctl", self_unsub_cb, &u,
                                             &u.sub), 0);
    assert_int_equal(modmta_shared_publish(s, "ctl", "one"), 1);
    inbox_wait(&u.in, 1);
    assert_int_equal(modmta_shared_subscribe(s, "ctl", inbox_cb, &b, &sb),
                     0);
    assert_true(modmta_shared_publish(s, "ctl", "two") >= 1);
    assert_true(modmta_shared_publish(s, "ctl", "three") >= 1);
    /* one thread delivers in order: "two" went to everyone by now */
    inbox_wait(&b, 2);
    assert_int_equal(u.in.n, 1);
    modmta_shared_unsubscribe(sb);
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

/* The memory store holds at most so many keys (here 50, not the
 * million of the daemon): a new key past that is refused with
 * MODMTA_E_TEMP, keys there work on, and room comes back as keys go
 * (deleted, given back to 0, expired). */
static void
test_mem_full(void **state)
{
    modmta_shared *s = shared_open("t10:");
    modmta_shared *other = shared_open("t10b:");
    char key[32];
    long long v;
    int i, made = 0;

    (void)state;
    shared_mem_set_max(50);
    for (i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        if (modmta_shared_incr(s, key, 1, i < 10 ? 1 : 600, &v) == 0)
            made++;
        else
            break;
    }
    /* other keys of the process (earlier tests') count too */
    assert_true(made > 0 && made <= 50);
    assert_int_equal(modmta_shared_incr(s, "more", 1, 600, &v),
                     MODMTA_E_TEMP);
    assert_int_equal(modmta_shared_set(other, "more", "x", 0),
                     MODMTA_E_TEMP);
    assert_int_equal(modmta_shared_lease(s, "more", "o", 1000),
                     MODMTA_E_TEMP);
    assert_int_equal(modmta_shared_gauge_join(s, "more", "o", 0, 1000, &v),
                     MODMTA_E_TEMP);
    /* a key there works on */
    assert_int_equal(modmta_shared_incr(s, "k20", 1, 600, &v), 0);
    assert_int_equal(v, 2);
    /* a key given back to 0 makes room */
    assert_int_equal(modmta_shared_decr(s, "k20", 2), 1);
    assert_int_equal(modmta_shared_incr(s, "more", 1, 600, &v), 0);
    assert_int_equal(modmta_shared_incr(s, "more2", 1, 600, &v),
                     MODMTA_E_TEMP);
    /* so do keys that expire (k0..k9, a window of 1 s) */
    for (i = 0; i < 500 &&
                modmta_shared_incr(s, "more2", 1, 600, &v) < 0; i++)
        sleep_ms(20);
    assert_int_equal(modmta_shared_get(s, "more2", NULL), 1);
    for (i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        modmta_shared_del(s, key);
    }
    modmta_shared_del(s, "more");
    modmta_shared_del(s, "more2");
    shared_mem_set_max(SHARED_MEM_KEYS_MAX);
    modmta_shared_free(other);
    modmta_shared_free(s);
}

static char shared_dir[256];
static struct redis_server shared_server;
static json_t *shared_redis_cfg;

static int
group_setup(void **state)
{
    (void)state;
    modmta_test_tmpdir(shared_dir, sizeof(shared_dir), "test_shared");
    redis_server_start(&shared_server, shared_dir, "redis", 0, NULL);
    shared_redis_cfg = json_pack("{s:s}", "address", shared_server.address);
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    json_decref(shared_redis_cfg);
    redis_server_stop(&shared_server, 0);
    modmta_test_rmtree(shared_dir);
    return 0;
}

static int
use_memory(void **state)
{
    (void)state;
    shared_redis = NULL;
    return 0;
}

static int
use_redis(void **state)
{
    (void)state;
    shared_redis = shared_redis_cfg;
    return 0;
}

/* Each case on both backends. */
#define SHARED_BOTH(f) \
    {"memory: " #f, f, use_memory, NULL, NULL}, \
    {"redis: " #f, f, use_redis, NULL, NULL}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        SHARED_BOTH(test_keys),
        SHARED_BOTH(test_ttl),
        SHARED_BOTH(test_counters),
        SHARED_BOTH(test_leases),
        SHARED_BOTH(test_bad_arguments),
        SHARED_BOTH(test_prefix),
        SHARED_BOTH(test_pubsub),
        SHARED_BOTH(test_unsubscribe_from_callback),
        SHARED_BOTH(test_concurrent_counter),
        SHARED_BOTH(test_decr),
        SHARED_BOTH(test_gauges),
        cmocka_unit_test_setup(test_mem_full, use_memory),
    };

    signal(SIGPIPE, SIG_IGN);           /* as the daemon: see redis_priv.h */
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
