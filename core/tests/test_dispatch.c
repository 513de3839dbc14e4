/*
 * The outbound dispatcher alone (core/dispatch.c), with jobs that record
 * what happened to them: FIFO per destination, the concurrency limit,
 * destinations taking turns, down marks and flush, the waiting bound,
 * and stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"

#define JOBS_MAX 128

/* What the jobs of one test saw, under one lock. */
struct record {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char order[JOBS_MAX * 8];    /* "r:a1 s:a2 c:b1 " ... */
    int ended;
    int running[26], max_running[26];  /* per destination index */
    int total;                   /* jobs running now, all destinations */
    int hold;                    /* run() waits while set */
};

struct job {
    struct record *rec;
    char name[8];                /* "a1": destination a, job 1 */
    int dest;                    /* index: name[0] - 'a' */
};

static void
job_note(struct job *j, const char *what)
{
    struct record *r = j->rec;

    pthread_mutex_lock(&r->lock);
    strcat(r->order, what);
    strcat(r->order, j->name);
    strcat(r->order, " ");
    r->ended++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    free(j);
}

static void
job_run(void *arg)
{
    struct job *j = arg;
    struct record *r = j->rec;

    pthread_mutex_lock(&r->lock);
    if (++r->running[j->dest] > r->max_running[j->dest])
        r->max_running[j->dest] = r->running[j->dest];
    r->total++;
    pthread_cond_broadcast(&r->cond);
    while (r->hold)
        pthread_cond_wait(&r->cond, &r->lock);
    r->total--;
    r->running[j->dest]--;
    pthread_mutex_unlock(&r->lock);
    job_note(j, "r:");
}

static void
job_skip(void *arg, const char *reason)
{
    assert_string_equal(reason, "connection refused");
    job_note(arg, "s:");
}

static void
job_cancel(void *arg)
{
    job_note(arg, "c:");
}

static const struct dispatch_ops ops = {job_run, job_skip, job_cancel};

static void
submit(dispatch *d, struct record *rec, const char *name, int limit,
       int expect)
{
    struct job *j = calloc(1, sizeof(*j));
    char key[16];

    assert_non_null(j);
    j->rec = rec;
    snprintf(j->name, sizeof(j->name), "%s", name);
    j->dest = name[0] - 'a';
    snprintf(key, sizeof(key), "t/%c.test", name[0]);
    assert_int_equal(dispatch_submit(d, key, limit, &ops, j), expect);
    if (expect != 0)
        free(j);
}

static void
wait_ended(struct record *r, int n)
{
    pthread_mutex_lock(&r->lock);
    while (r->ended < n)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

static void
release(struct record *r)
{
    pthread_mutex_lock(&r->lock);
    r->hold = 0;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* Wait (up to 20 s) until a job of destination `dest` runs. */
static void
wait_running(struct record *r, int dest)
{
    for (int i = 0; i < 2000; i++) {
        int n;

        pthread_mutex_lock(&r->lock);
        n = r->max_running[dest];
        pthread_mutex_unlock(&r->lock);
        if (n > 0)
            return;
        usleep(10000);
    }
    fail_msg("no job of destination %d ran", dest);
}

static struct record *
record_new(void)
{
    struct record *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    return r;
}

/* One thread, limit 1: jobs of a destination run in the order they came,
 * and two destinations take turns. */
static void
test_fifo_and_turns(void **state)
{
    struct record *r = record_new();
    modmta_err err;
    dispatch *d = dispatch_new(1, &err);

    (void)state;
    assert_non_null(d);
    r->hold = 1;
    submit(d, r, "a1", 1, 0);   /* the thread takes it and waits */
    submit(d, r, "a2", 1, 0);
    submit(d, r, "a3", 1, 0);
    submit(d, r, "b1", 1, 0);
    submit(d, r, "b2", 1, 0);
    release(r);
    wait_ended(r, 5);
    /* a1 ran first; after each job, its destination goes to the back of
     * the line: b, a, b, a */
    assert_string_equal(r->order, "r:a1 r:b1 r:a2 r:b2 r:a3 ");
    dispatch_free(d);
    free(r);
}

/* Many threads: never more than the limit of one destination at once. */
static void
test_limit(void **state)
{
    struct record *r = record_new();
    modmta_err err;
    dispatch *d = dispatch_new(8, &err);
    char name[8];

    (void)state;
    assert_non_null(d);
    r->hold = 1;
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        submit(d, r, name, 3, 0);
    }
    submit(d, r, "b0", 3, 0);
    /* b's job runs although a holds three threads */
    wait_running(r, 1);
    release(r);
    wait_ended(r, 11);
    assert_int_equal(r->max_running[1], 1);
    assert_true(r->max_running[0] >= 1);
    assert_true(r->max_running[0] <= 3);
    dispatch_free(d);
    free(r);
}

/* Threads left idle by earlier work: a burst of jobs for twenty
 * destinations runs side by side (a signalled thread is not counted as
 * idle twice, and the one that takes a job wakes or starts the next). */
static void
test_idle_threads_burst(void **state)
{
    struct record *r = record_new();
    modmta_err err;
    dispatch *d;
    char name[8];
    int total;

    (void)state;
    d = dispatch_new(32, &err);
    assert_non_null(d);
    submit(d, r, "a0", 5, 0);
    wait_ended(r, 1);               /* one thread, idle now */
    r->hold = 1;
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "%c1", 'b' + i);
        submit(d, r, name, 5, 0);
    }
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < 200 && r->total < 20; i++) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    total = r->total;
    pthread_mutex_unlock(&r->lock);
    assert_int_equal(total, 20);
    release(r);
    wait_ended(r, 21);
    dispatch_free(d);
    free(r);
}

/* Down: waiting and new jobs are skipped with the reason; flush lifts the
 * mark. */
static void
test_down(void **state)
{
    struct record *r = record_new();
    modmta_err err;
    dispatch *d = dispatch_new(1, &err);
    struct dispatch_stats st;

    (void)state;
    assert_non_null(d);
    r->hold = 1;
    submit(d, r, "a1", 1, 0);
    submit(d, r, "a2", 1, 0);
    wait_running(r, 0);
    dispatch_mark_down(d, "t/a.test", 60, "connection refused");
    dispatch_get_stats(d, &st);
    assert_int_equal(st.down, 1);
    release(r);
    wait_ended(r, 2);
    submit(d, r, "a3", 1, 0);
    wait_ended(r, 3);
    assert_string_equal(r->order, "r:a1 s:a2 s:a3 ");
    dispatch_flush(d);
    submit(d, r, "a4", 1, 0);
    wait_ended(r, 4);
    assert_string_equal(r->order, "r:a1 s:a2 s:a3 r:a4 ");
    dispatch_get_stats(d, &st);
    assert_int_equal(st.down, 0);
    dispatch_free(d);
    free(r);
}

/* A destination with 100 jobs per unit of its limit waiting takes no
 * more. */
static void
test_waiting_bound(void **state)
{
    struct record *r = record_new();
    modmta_err err;
    dispatch *d = dispatch_new(1, &err);
    char name[8];

    (void)state;
    assert_non_null(d);
    r->hold = 1;
    submit(d, r, "a0", 1, 0);
    wait_running(r, 0);
    for (int i = 0; i < 50; i++) {       /* key "t/a.test" */
        snprintf(name, sizeof(name), "a%d", i + 1);
        submit(d, r, name, 1, 0);
    }
    /* 50 wait; the bound is 100 for limit 1: still room */
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "a%d", i + 51);
        submit(d, r, name, 1, 0);
    }
    submit(d, r, "a101", 1, MODMTA_E_LIMIT);
    release(r);
    wait_ended(r, 101);
    dispatch_free(d);
    free(r);
}

/* Stop: what waits is cancelled, what runs finishes, nothing is taken
 * afterwards. */
static void
test_stop(void **state)
{
    struct record *r = record_new();
    modmta_err err;
    dispatch *d = dispatch_new(1, &err);

    (void)state;
    assert_non_null(d);
    r->hold = 1;
    submit(d, r, "a1", 1, 0);
    submit(d, r, "a2", 1, 0);
    submit(d, r, "b1", 1, 0);
    wait_running(r, 0);
    release(r);
    dispatch_stop(d);
    wait_ended(r, 3);
    assert_non_null(strstr(r->order, "r:a1 "));
    assert_int_equal(r->ended, 3);
    submit(d, r, "a3", 1, MODMTA_E_STATE);
    assert_int_equal(*dispatch_interrupt(d), 1);
    dispatch_free(d);
    free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_turns),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_idle_threads_burst),
        cmocka_unit_test(test_down),
        cmocka_unit_test(test_waiting_bound),
        cmocka_unit_test(test_stop),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
