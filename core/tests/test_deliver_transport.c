/*
 * Message-level delivery (ABI 1.3) end to end in the core: a real
 * generation whose chain holds the scripted transport test module
 * (core/tests/modules/transport.c) and a scripted local deliverer:
 * routing and grouping, results into the envelope (mailq text, the reply
 * kept for DSNs), route() verdicts, then the dispatcher: concurrency per
 * destination, a destination marked down, shutdown.
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
#include <unistd.h>

#include <files.h>

#include "deliver.h"
#include "generation.h"
#include "sched_fixture.h"

static char logpath[160];

/* A generation with `modules` (JSON, single quotes for double) and
 * `qopts` (extra JSON members of "queue", may be ""). */
static void
gen_install(struct fix *fx, const char *modules, const char *qopts)
{
    struct config_errors errs = {0};
    char path[128], *json = NULL, *q;
    generation *g;
    FILE *f;

    snprintf(logpath, sizeof(logpath), "%s/transport.log", fx->dir);
    if (asprintf(&json, "{\"hostname\": \"mx.test.example\", \"spool\": "
                 "\"%s\", \"module_path\": [\"%s\"], \"listen\": "
                 "[{\"name\": \"smtp\", \"address\": \"127.0.0.1:2525\"}],"
                 " \"queue\": {\"lifetime\": 3600%s%s}, \"modules\": %s}\n",
                 fx->spool, getenv("MODULE_DIR"), *qopts ? ", " : "", qopts,
                 modules) < 0)
        fail();
    for (q = json; *q != '\0'; q++)
        if (*q == '\'')
            *q = '"';
    snprintf(path, sizeof(path), "%s/modmta.json", fx->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    free(json);
    g = generation_build(path, 0, &errs);
    if (g == NULL)
        fail_msg("generation_build: %s", errs.n ? errs.msgs[0] : "?");
    generation_install(g);
}

static queue_env *
load(struct fix *fx, const char *id)
{
    queue_env *env = NULL;

    assert_int_equal(queue_load(fx->q, id, &env), 0);
    return env;
}

/* The transport's log, in one string. */
static char *
log_text(void)
{
    char *s;

    if (access(logpath, F_OK) != 0)
        return strdup("");
    s = modmta_test_read_file(logpath, NULL);
    assert_non_null(s);
    return s;
}

/* The transport's modules entry with the given log, routes, results. */
#define TRANSPORT(routes, extra)                                          \
    "{'module': 'transport', 'log': '%s', 'route': " routes extra "}"

static char *
modules_json(const char *fmt)
{
    char *s = NULL;

    if (asprintf(&s, fmt, logpath) < 0)
        fail();
    return s;
}

static void
setup_chain(struct fix *fx, const char *fmt, const char *qopts)
{
    char *m;

    /* logpath is known once the fixture's dir is */
    snprintf(logpath, sizeof(logpath), "%s/transport.log", fx->dir);
    m = modules_json(fmt);
    gen_install(fx, m, qopts);
    free(m);
}

/* Recipients go to the transport grouped by destination, the local one
 * to the deliver() module, in one attempt; all delivered, removed. */
static void
test_groups(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"a@x.test", "b@x.test", "c@y.test",
                                  "d@local.test"},
                        .notify = {QNOTIFY_SUCCESS | QNOTIFY_FAILURE}};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX], *log;

    setup_chain(fx, "[{'module': 'script', 'name': 'local', 'deliver': "
                "{'d@local.test': 'delivered', '*': 'declined'}}, "
                TRANSPORT("{'@x.test': 'dest:x', '@y.test': 'dest:'}",
                          ", 'results': {'*': ['relayed', 250, '2.0.0', "
                          "'end of DATA', 'Ok: queued']}") "]", "");
    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_REMOVED);
    assert_int_equal(out.delivered, 4);
    log = log_text();
    /* with the client's NOTIFY, rebuilt from the envelope */
    assert_non_null(strstr(log, "begin x <alice@example.org> "
                                "a@x.test/SUCCESS,FAILURE,b@x.test\n"));
    /* no destination named: the recipient's domain */
    assert_non_null(strstr(log, "begin y.test <alice@example.org> "
                                "c@y.test\n"));
    assert_null(strstr(log, "d@local.test"));
    free(log);
}

/* One transaction, three outcomes: the replies are kept per recipient,
 * mailq's text names the server and the command. */
static void
test_mixed_results(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"ok@x.test", "later@x.test",
                                  "nouser@x.test"}};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX];
    queue_env *env;

    setup_chain(fx, "[" TRANSPORT("{'*': 'dest:x'}",
                ", 'remote': ['mx1.x.test', '192.0.2.1', 25], 'results': "
                "{'ok@x.test': ['relayed', 250, '2.0.0', 'end of DATA', "
                "'Ok'], 'later@x.test': ['deferred', 451, '4.3.0', "
                "'RCPT TO', 'try later'], 'nouser@x.test': ['failed', 550, "
                "'5.1.1', 'RCPT TO', 'no such user\\nhere']}") "]", "");
    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_RETRY);
    assert_int_equal(out.delivered, 1);
    assert_int_equal(out.deferred, 1);
    assert_int_equal(out.bounced, 1);
    assert_int_equal(out.dsn_sent, 1);
    env = load(fx, id);
    assert_int_equal(env->rcpts[0].state, QRCPT_DELIVERED);
    assert_int_equal(env->rcpts[0].relayed, 1);
    assert_int_equal(env->rcpts[1].state, QRCPT_PENDING);
    assert_string_equal(env->rcpts[1].status,
                        "host mx1.x.test[192.0.2.1] said: 451 4.3.0 try "
                        "later (in reply to RCPT TO command)");
    assert_int_equal(env->rcpts[1].code, 451);
    assert_string_equal(env->rcpts[1].esc, "4.3.0");
    assert_string_equal(env->rcpts[1].remote, "mx1.x.test");
    assert_string_equal(env->rcpts[1].remote_addr, "192.0.2.1:25");
    assert_string_equal(env->rcpts[1].stage, "RCPT TO");
    assert_int_equal(env->rcpts[2].state, QRCPT_FAILED);
    /* the reply's lines are kept; mailq shows one line */
    assert_string_equal(env->rcpts[2].text, "no such user\nhere");
    assert_non_null(strstr(env->rcpts[2].status, "no such user here"));
    assert_int_equal(env->rcpts[2].dsn_sent, 1);
    queue_env_free(env);
}

/* A recipient the transport reports nothing for is deferred; a
 * connection failure (no reply) keeps the local reason as mailq text. */
static void
test_no_result(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"none@x.test", "refused@x.test"}};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX];
    queue_env *env;

    setup_chain(fx, "[" TRANSPORT("{'*': 'dest:x'}",
                ", 'results': {'none@x.test': ['none'], 'refused@x.test': "
                "['deferred', 0, '4.4.1', null, 'connect to "
                "mx1.x.test[192.0.2.1]:25: Connection refused']}") "]", "");
    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.deferred, 2);
    env = load(fx, id);
    assert_string_equal(env->rcpts[0].status,
                        "4.3.0 no result from the transport");
    assert_string_equal(env->rcpts[1].status, "connect to "
                        "mx1.x.test[192.0.2.1]:25: Connection refused");
    assert_int_equal(env->rcpts[1].code, 0);
    assert_null(env->rcpts[1].remote);
    queue_env_free(env);
}

/* queue.destination_recipients cuts a destination's group. */
static void
test_recipient_limit(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"1@x.test", "2@x.test", "3@x.test",
                                  "4@x.test", "5@x.test"}};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX], *log;

    setup_chain(fx, "[" TRANSPORT("{'*': 'dest:x'}",
                ", 'results': {'*': ['delivered', 250, null, null, 'ok']}")
                "]", "'destination_recipients': 2");
    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_REMOVED);
    log = log_text();
    assert_non_null(strstr(log, "begin x <alice@example.org> "
                                "1@x.test,2@x.test\n"));
    assert_non_null(strstr(log, "begin x <alice@example.org> "
                                "3@x.test,4@x.test\n"));
    assert_non_null(strstr(log, "begin x <alice@example.org> 5@x.test\n"));
    free(log);
}

/* route() verdicts decide at once; RELAYED_DSN leaves nothing to notify;
 * a transport after a declining deliver() module still gets its turn. */
static void
test_route_verdicts(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"rej@x.test", "tmp@x.test", "dis@x.test",
                                  "dsn@x.test", "other@z.test"}};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX];
    queue_env *env;

    setup_chain(fx, "[{'module': 'script', 'deliver': {'*': 'declined'}}, "
                TRANSPORT("{'rej@x.test': 'reject', 'tmp@x.test': "
                          "'tempfail', 'dis@x.test': 'discard', "
                          "'dsn@x.test': 'dest:x'}",
                          ", 'results': {'*': ['relayed_dsn', 250, null, "
                          "null, 'ok']}") "]", "");
    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    env = load(fx, id);
    assert_int_equal(env->rcpts[0].state, QRCPT_FAILED);
    assert_string_equal(env->rcpts[0].status, "5.0.0 delivery failed");
    assert_int_equal(env->rcpts[1].state, QRCPT_PENDING);
    assert_string_equal(env->rcpts[1].status, "4.3.0 temporary failure");
    assert_int_equal(env->rcpts[2].state, QRCPT_DELIVERED);
    assert_int_equal(env->rcpts[2].dsn_sent, 1);
    assert_int_equal(env->rcpts[3].state, QRCPT_DELIVERED);
    assert_int_equal(env->rcpts[3].dsn_sent, 1);
    assert_int_equal(env->rcpts[3].relayed, 0);
    /* nobody claims z.test: a configuration problem, deferred */
    assert_int_equal(env->rcpts[4].state, QRCPT_PENDING);
    assert_string_equal(env->rcpts[4].status,
                        "4.3.5 no module delivers this recipient");
    queue_env_free(env);
}

/* ---- through the dispatcher ---- */

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    struct deliver_outcome last;
};

static void
waiter_done(void *arg, const char *id, const struct deliver_outcome *out)
{
    struct waiter *w = arg;

    (void)id;
    pthread_mutex_lock(&w->lock);
    w->done++;
    w->last = *out;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void
waiter_wait(struct waiter *w, int n)
{
    pthread_mutex_lock(&w->lock);
    while (w->done < n)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

/* Never more than destination_concurrency deliveries of one destination
 * at once, while another destination goes on beside it. */
static void
test_concurrency(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"a@x.test", "b@y.test"}};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                       0, {0}};
    char id[QUEUE_ID_MAX], *log, *p;
    int cur = 0, max = 0, ys = 0;
    modmta_err err;
    dispatch *d;

    setup_chain(fx, "[" TRANSPORT("{'@x.test': 'dest:x', '@y.test': "
                "'dest:y'}", ", 'sleep_ms': 50, 'results': {'*': "
                "['delivered', 250, null, null, 'ok']}") "]",
                "'destination_concurrency': 2");
    d = dispatch_new(8, &err);
    assert_non_null(d);
    for (int i = 0; i < 8; i++) {
        fix_put(fx, &m, id);
        deliver_start(fx->q, d, id, waiter_done, &w);
    }
    waiter_wait(&w, 8);
    dispatch_free(d);
    log = log_text();
    for (p = log; (p = strstr(p, " x")) != NULL; p++) {
        if (p - log >= 5 && strncmp(p - 5, "begin", 5) == 0)
            max = ++cur > max ? cur : max;
        else if (p - log >= 3 && strncmp(p - 3, "end", 3) == 0)
            cur--;
    }
    for (p = log; (p = strstr(p, "begin y ")) != NULL; p++)
        ys++;
    free(log);
    assert_true(max >= 1);
    assert_true(max <= 2);
    assert_int_equal(ys, 8);
}

/* A job that reports its destination down: the destination's next jobs
 * are deferred without a call, with the reason; a flush lifts it. */
static void
test_dest_down(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"a@x.test"}};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                       0, {0}};
    char id1[QUEUE_ID_MAX], id2[QUEUE_ID_MAX], *log;
    modmta_err err;
    queue_env *env;
    dispatch *d;

    setup_chain(fx, "[" TRANSPORT("{'*': 'dest:x'}",
                ", 'down': true, 'results': {'*': ['deferred', 0, '4.4.1', "
                "null, 'connect to mx1.x.test[192.0.2.1]:25: Connection "
                "refused']}") "]", "");
    d = dispatch_new(2, &err);
    assert_non_null(d);
    fix_put(fx, &m, id1);
    deliver_start(fx->q, d, id1, waiter_done, &w);
    waiter_wait(&w, 1);
    fix_put(fx, &m, id2);
    deliver_start(fx->q, d, id2, waiter_done, &w);
    waiter_wait(&w, 2);
    log = log_text();
    /* one call only: the second job was skipped */
    assert_non_null(strstr(log, "begin x"));
    assert_null(strstr(strstr(log, "begin x") + 1, "begin x"));
    free(log);
    env = load(fx, id2);
    assert_string_equal(env->rcpts[0].status, "delivery temporarily "
                        "suspended: connect to mx1.x.test[192.0.2.1]:25: "
                        "Connection refused");
    assert_int_equal(env->attempts, 1);
    queue_env_free(env);
    /* flush: tried again */
    dispatch_flush(d);
    deliver_start(fx->q, d, id2, waiter_done, &w);
    waiter_wait(&w, 3);
    log = log_text();
    assert_non_null(strstr(strstr(log, "begin x") + 1, "begin x"));
    free(log);
    dispatch_free(d);
}

/* Stopping: a waiting job is cancelled; its message keeps its recipient
 * pending with no attempt counted. */
static void
test_stop_cancels(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"a@x.test"}};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                       0, {0}};
    char id1[QUEUE_ID_MAX], id2[QUEUE_ID_MAX];
    modmta_err err;
    queue_env *env;
    dispatch *d;

    setup_chain(fx, "[" TRANSPORT("{'*': 'dest:x'}",
                ", 'sleep_ms': 300, 'results': {'*': ['delivered', 250, "
                "null, null, 'ok']}") "]", "'destination_concurrency': 1");
    d = dispatch_new(2, &err);
    assert_non_null(d);
    fix_put(fx, &m, id1);
    fix_put(fx, &m, id2);
    deliver_start(fx->q, d, id1, waiter_done, &w);
    deliver_start(fx->q, d, id2, waiter_done, &w);
    /* one runs (and sleeps), the other waits behind it */
    for (int i = 0; i < 2000 && access(logpath, F_OK) != 0; i++)
        usleep(10000);
    dispatch_stop(d);
    waiter_wait(&w, 2);
    /* whichever ran was delivered; the other was cancelled */
    assert_int_equal(fix_exists(fx, id1) + fix_exists(fx, id2), 1);
    env = load(fx, fix_exists(fx, id1) ? id1 : id2);
    assert_int_equal(env->rcpts[0].state, QRCPT_PENDING);
    assert_null(env->rcpts[0].status);
    assert_int_equal(env->attempts, 0);
    queue_env_free(env);
    dispatch_free(d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_groups, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_mixed_results, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_no_result, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_recipient_limit, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_route_verdicts, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_dest_down, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_stop_cancels, fix_setup,
                                        fix_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
