/*
 * Unit tests of the scheduler's index (core/scheduler.c) and of the retry
 * back-off (core/deliver.c). The scheduler runs with 0 workers: the tests
 * claim and give back messages themselves, with a clock they choose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_fixture.h"
#include "scheduler_priv.h"

#define T0 ((time_t)1700000000)

static scheduler *
sched_start(struct fix *fx)
{
    modmta_err err;
    scheduler *s = scheduler_new(fx->q, 0, &err);

    if (s == NULL)
        fail_msg("scheduler_new: %s", err.msg);
    assert_int_equal(scheduler_start(s), 0);
    return s;
}

static struct deliver_outcome
outcome(enum deliver_result r, time_t next)
{
    struct deliver_outcome o;

    memset(&o, 0, sizeof(o));
    o.result = r;
    o.next_retry = next;
    return o;
}

static void
give_back(scheduler *s, const char *id, enum deliver_result r, time_t next)
{
    struct deliver_outcome o = outcome(r, next);

    scheduler_done(s, id, &o);
}

static void
expect_take(scheduler *s, time_t now, const char *want)
{
    char id[QUEUE_ID_MAX];

    assert_int_equal(scheduler_take(s, now, id), 1);
    assert_string_equal(id, want);
}

static void
expect_nothing(scheduler *s, time_t now)
{
    char id[QUEUE_ID_MAX];

    assert_int_equal(scheduler_take(s, now, id), 0);
}

static void
test_backoff(void **state)
{
    assert_int_equal(deliver_backoff(1, 300, 4000), 300);
    assert_int_equal(deliver_backoff(2, 300, 4000), 600);
    assert_int_equal(deliver_backoff(3, 300, 4000), 1200);
    assert_int_equal(deliver_backoff(4, 300, 4000), 2400);
    assert_int_equal(deliver_backoff(5, 300, 4000), 4000);
    assert_int_equal(deliver_backoff(1000000, 300, 4000), 4000);
    /* the minimum wins over a smaller maximum, and 0 means 1 second */
    assert_int_equal(deliver_backoff(3, 300, 100), 300);
    assert_int_equal(deliver_backoff(1, 0, 10), 1);
    assert_int_equal(deliver_backoff(0, 60, 4000), 60);
}

/* Held and quarantined messages are loaded but never handed out. */
static void
test_load(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "a@example.org",
                        .rcpts = {"b@example.org"}};
    struct scheduler_stats st;
    char plain[QUEUE_ID_MAX], held[QUEUE_ID_MAX], quar[QUEUE_ID_MAX];
    char later[QUEUE_ID_MAX];
    scheduler *s;

    fix_put(fx, &m, plain);
    m.held = 1;
    fix_put(fx, &m, held);
    m.held = 0;
    m.quarantine = "virus";
    fix_put(fx, &m, quar);
    m.quarantine = NULL;
    m.next_retry = T0 + 500;
    fix_put(fx, &m, later);

    s = sched_start(fx);
    scheduler_get_stats(s, &st);
    assert_int_equal(st.in_queue, 4);
    expect_take(s, T0, plain);
    expect_nothing(s, T0 + 499);
    expect_take(s, T0 + 500, later);
    expect_nothing(s, T0 + 1000000);
    scheduler_get_stats(s, &st);
    assert_int_equal(st.active, 2);
    scheduler_free(s);
}

/* One worker per message; FIFO among messages due at the same time. */
static void
test_fifo_and_single_claim(void **state)
{
    struct fix *fx = *state;
    scheduler *s = sched_start(fx);
    struct scheduler_stats st;

    scheduler_submit(s, "AAAA");
    scheduler_submit(s, "BBBB");
    scheduler_submit(s, "CCCC");
    expect_take(s, T0, "AAAA");
    scheduler_submit(s, "AAAA");        /* busy: no second copy */
    expect_take(s, T0, "BBBB");
    expect_take(s, T0, "CCCC");
    expect_nothing(s, T0);
    scheduler_get_stats(s, &st);
    assert_int_equal(st.received, 3);
    assert_int_equal(st.in_queue, 3);
    assert_int_equal(st.active, 3);
    scheduler_free(s);
}

static void
test_retry_and_flush(void **state)
{
    struct fix *fx = *state;
    scheduler *s = sched_start(fx);
    struct deliver_outcome o = outcome(DELIVER_RETRY, T0 + 300);
    struct scheduler_stats st;

    scheduler_submit(s, "AAAA");
    expect_take(s, T0, "AAAA");
    o.deferred = 2;
    o.delivered = 1;
    scheduler_done(s, "AAAA", &o);
    expect_nothing(s, T0 + 299);
    scheduler_flush(s);
    expect_take(s, T0, "AAAA");
    give_back(s, "AAAA", DELIVER_RETRY, T0 + 300);
    expect_take(s, T0 + 300, "AAAA");
    scheduler_get_stats(s, &st);
    assert_int_equal(st.deferred, 2);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.active, 1);
    scheduler_free(s);
}

/* A flush during delivery makes the message due as soon as it is back. */
static void
test_flush_while_busy(void **state)
{
    struct fix *fx = *state;
    scheduler *s = sched_start(fx);

    scheduler_submit(s, "AAAA");
    expect_take(s, T0, "AAAA");
    scheduler_flush(s);
    give_back(s, "AAAA", DELIVER_RETRY, T0 + 4000);
    expect_take(s, T0, "AAAA");
    give_back(s, "AAAA", DELIVER_RETRY, T0 + 4000);
    expect_nothing(s, T0);              /* the kick was used up */
    scheduler_free(s);
}

static void
test_removed_and_dsn(void **state)
{
    struct fix *fx = *state;
    scheduler *s = sched_start(fx);
    struct deliver_outcome o = outcome(DELIVER_REMOVED, 0);
    struct scheduler_stats st;

    scheduler_submit(s, "AAAA");
    expect_take(s, T0, "AAAA");
    strcpy(o.dsn_id, "DSN1");
    o.bounced = 1;
    o.dsn_sent = 1;
    scheduler_done(s, "AAAA", &o);
    scheduler_get_stats(s, &st);
    assert_int_equal(st.in_queue, 1);
    assert_int_equal(st.bounced, 1);
    assert_int_equal(st.dsn_sent, 1);
    assert_int_equal(st.active, 0);
    expect_take(s, T0, "DSN1");
    give_back(s, "DSN1", DELIVER_GONE, 0);
    scheduler_get_stats(s, &st);
    assert_int_equal(st.in_queue, 0);
    expect_nothing(s, T0 + 1000000);
    scheduler_free(s);
}

/* A worker that finds the message held or quarantined parks it. */
static void
test_parked_by_worker(void **state)
{
    struct fix *fx = *state;
    scheduler *s = sched_start(fx);

    scheduler_submit(s, "AAAA");
    scheduler_submit(s, "BBBB");
    expect_take(s, T0, "AAAA");
    expect_take(s, T0, "BBBB");
    give_back(s, "AAAA", DELIVER_HELD, 0);
    give_back(s, "BBBB", DELIVER_QUARANTINED, 0);
    scheduler_flush(s);
    scheduler_submit(s, "AAAA");
    expect_nothing(s, T0 + 1000000);
    scheduler_free(s);
}

/* hold/release change the envelope on disk and the index together. */
static void
test_hold_release(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "a@example.org",
                        .rcpts = {"b@example.org"}};
    char id[QUEUE_ID_MAX], other[QUEUE_ID_MAX];
    queue_env *env;
    scheduler *s;

    fix_put(fx, &m, id);
    s = sched_start(fx);
    assert_int_equal(scheduler_hold(s, id, 1), 0);
    assert_int_equal(queue_load(fx->q, id, &env), 0);
    assert_int_equal(env->held, 1);
    queue_env_free(env);
    expect_nothing(s, T0);

    assert_int_equal(scheduler_hold(s, id, 0), 0);
    assert_int_equal(queue_load(fx->q, id, &env), 0);
    assert_int_equal(env->held, 0);
    queue_env_free(env);
    expect_take(s, T0, id);
    give_back(s, id, DELIVER_RETRY, T0 + 100);

    queue_new_id(other);
    assert_int_equal(scheduler_hold(s, other, 1), MODMTA_E_NOTFOUND);
    scheduler_free(s);
}

/* Release lifts a quarantine, on disk too. */
static void
test_release_quarantine(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "a@example.org",
                        .rcpts = {"b@example.org"}, .quarantine = "spam"};
    char id[QUEUE_ID_MAX];
    queue_env *env;
    scheduler *s;

    fix_put(fx, &m, id);
    s = sched_start(fx);
    expect_nothing(s, T0);
    assert_int_equal(scheduler_hold(s, id, 0), 0);
    assert_int_equal(queue_load(fx->q, id, &env), 0);
    assert_null(env->quarantine);
    queue_env_free(env);
    expect_take(s, T0, id);
    scheduler_free(s);
}

static void
test_delete(void **state)
{
    struct fix *fx = *state;
    scheduler *s = sched_start(fx);
    struct scheduler_stats st;

    scheduler_submit(s, "AAAA");
    scheduler_submit(s, "BBBB");
    assert_int_equal(scheduler_delete(s, "AAAA"), 0);
    assert_int_equal(scheduler_delete(s, "AAAA"), MODMTA_E_NOTFOUND);
    expect_take(s, T0, "BBBB");
    expect_nothing(s, T0);
    scheduler_get_stats(s, &st);
    assert_int_equal(st.in_queue, 1);
    /* BBBB's attempt is under way: delete and hold give up after a
     * while (the control socket must not wait for a slow destination)
     * and change nothing */
    assert_int_equal(scheduler_delete(s, "BBBB"), MODMTA_E_TEMP);
    assert_int_equal(scheduler_hold(s, "BBBB", 1), MODMTA_E_TEMP);
    give_back(s, "BBBB", DELIVER_RETRY, T0);
    expect_take(s, T0, "BBBB");
    scheduler_free(s);
}

/* queue.active_limit: no more messages are handed out while that many
 * attempts are under way. */
static void
test_active_limit(void **state)
{
    struct fix *fx = *state;
    scheduler *s = sched_start(fx);

    scheduler_set_active_limit(s, 1);
    scheduler_submit(s, "AAAA");
    scheduler_submit(s, "BBBB");
    expect_take(s, T0, "AAAA");
    expect_nothing(s, T0);
    give_back(s, "AAAA", DELIVER_REMOVED, 0);
    expect_take(s, T0, "BBBB");
    scheduler_free(s);
}

/* Many messages with scattered retry times come out in time order. */
static void
test_order(void **state)
{
    struct fix *fx = *state;
    scheduler *s = sched_start(fx);
    enum { N = 2000 };
    char id[QUEUE_ID_MAX];
    unsigned long x = 12345;
    time_t last = 0;
    int n = 0;

    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "M%05d", i);
        scheduler_submit(s, id);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(scheduler_take(s, T0, id), 1);
        x = x * 1103515245 + 12345;
        give_back(s, id, DELIVER_RETRY, T0 + 1 + (time_t)(x % 100000));
        if (i % 7 == 0)
            assert_int_equal(scheduler_delete(s, id), 0);
    }
    expect_nothing(s, T0);
    while (scheduler_take(s, T0 + 200000, id)) {
        char want[QUEUE_ID_MAX];
        int i = atoi(id + 1);
        time_t due;

        /* recompute the due time this ID was given */
        x = 12345;
        for (int j = 0; j <= i; j++)
            x = x * 1103515245 + 12345;
        due = T0 + 1 + (time_t)(x % 100000);
        snprintf(want, sizeof(want), "M%05d", i);
        assert_string_equal(id, want);
        assert_true(due >= last);
        assert_true(i % 7 != 0);
        last = due;
        n++;
    }
    assert_int_equal(n, N - (N + 6) / 7);
    scheduler_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test_setup_teardown(test_load, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_fifo_and_single_claim,
                                        fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_retry_and_flush, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_flush_while_busy, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_removed_and_dsn, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_parked_by_worker, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_hold_release, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_release_quarantine, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_delete, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_active_limit, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_order, fix_setup, fix_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
