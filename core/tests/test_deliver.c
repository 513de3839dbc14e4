/*
 * Delivery of one message (core/deliver.c) end to end, with a real
 * generation whose chain has no deliver module: every recipient is
 * deferred ("no module delivers"), which drives the back-off, expiry,
 * DSN and removal rules. Then the scheduler's workers on the same setup.
 * The DSN cases use a chain with the scripted test module (MODULE_DIR),
 * which delivers, fails or defers by recipient.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <files.h>

#include "deliver.h"
#include "generation.h"
#include "sched_fixture.h"
#include "scheduler.h"

#define LIFETIME 3600
#define DELAY_WARNING 600

/* Install a generation of this spool: modules (a JSON array) found in
 * module_dir, the queue settings extended with queue_extra. */
static void
install(struct fix *fx, const char *module_dir, const char *modules,
        const char *queue_extra)
{
    struct config_errors errs = {0};
    char path[128];
    generation *g;
    FILE *f;

    snprintf(path, sizeof(path), "%s/modmta.json", fx->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"hostname\": \"mx.test.example\", \"spool\": \"%s\","
            " \"module_path\": [\"%s\"],"
            " \"listen\": [{\"name\": \"smtp\", \"address\":"
            " \"127.0.0.1:2525\", \"protocol\": \"smtp\"}],"
            " \"modules\": %s, \"queue\": {\"lifetime\": %d,"
            " \"retry_min\": 300, \"retry_max\": 4000%s}}\n", fx->spool,
            module_dir, modules, LIFETIME, queue_extra);
    fclose(f);
    g = generation_build(path, 0, &errs);
    if (g == NULL)
        fail_msg("generation_build: %s", errs.n ? errs.msgs[0] : "?");
    generation_install(g);
}

static int
gen_setup(void **state)
{
    fix_setup(state);
    install(*state, "/nonexistent", "[]", "");
    return 0;
}

/* A generation whose chain delivers local@ (to a mailbox: the script
 * module says delivered), fails gone@ and defers everything else; delay
 * warnings after DELAY_WARNING seconds. */
static int
script_setup(void **state)
{
    const char *dir = getenv("MODULE_DIR");
    char extra[64];

    assert_non_null(dir);
    fix_setup(state);
    snprintf(extra, sizeof(extra), ", \"delay_warning\": %d",
             DELAY_WARNING);
    install(*state, dir,
            "[{\"module\": \"script\", \"deliver\":"
            " {\"local@mx.test.example\": \"delivered\","
            " \"gone@mx.test.example\": \"failed\", \"*\": \"deferred\"}}]",
            extra);
    return 0;
}

static queue_env *
load(struct fix *fx, const char *id)
{
    queue_env *env = NULL;

    assert_int_equal(queue_load(fx->q, id, &env), 0);
    return env;
}

/* Each deferral counts an attempt and doubles the wait. */
static void
test_deferred(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"bob@example.net", "carol@example.net"}};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX];
    queue_env *env;
    time_t before, after;

    fix_put(fx, &m, id);
    before = time(NULL);
    deliver_message(fx->q, id, &out);
    after = time(NULL);
    assert_int_equal(out.result, DELIVER_RETRY);
    assert_int_equal(out.deferred, 2);
    assert_int_equal(out.delivered + out.bounced + out.dsn_sent, 0);
    assert_true(out.next_retry >= before + 300);
    assert_true(out.next_retry <= after + 300);
    env = load(fx, id);
    assert_int_equal(env->attempts, 1);
    assert_int_equal(env->next_retry, out.next_retry);
    assert_int_equal(env->rcpts[0].state, QRCPT_PENDING);
    assert_string_equal(env->rcpts[0].status,
                        "4.3.5 no module delivers this recipient");
    queue_env_free(env);

    before = time(NULL);
    deliver_message(fx->q, id, &out);
    after = time(NULL);
    assert_int_equal(out.result, DELIVER_RETRY);
    assert_true(out.next_retry >= before + 600);
    assert_true(out.next_retry <= after + 600);
    env = load(fx, id);
    assert_int_equal(env->attempts, 2);
    queue_env_free(env);
}

/* Past the lifetime: 4.4.7, one DSN to the sender, message removed. */
static void
test_expired(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"bob@example.net", "carol@example.net"},
                        .status = {"4.4.1 connection refused"},
                        .arrival = time(NULL) - LIFETIME - 10};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX];
    queue_env *dsn;

    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_REMOVED);
    assert_int_equal(out.bounced, 2);
    assert_int_equal(out.dsn_sent, 1);
    assert_false(fix_exists(fx, id));
    assert_true(queue_id_valid(out.dsn_id));
    dsn = load(fx, out.dsn_id);
    assert_string_equal(dsn->sender, "");
    assert_int_equal(dsn->nrcpts, 1);
    assert_string_equal(dsn->rcpts[0].addr, "alice@example.org");
    queue_env_free(dsn);
}

/* Never bounce a bounce: an expired DSN just goes. */
static void
test_expired_null_sender(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "", .rcpts = {"bob@example.net"},
                        .arrival = time(NULL) - LIFETIME - 10};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX];

    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_REMOVED);
    assert_int_equal(out.bounced, 1);
    assert_int_equal(out.dsn_sent, 0);
    assert_string_equal(out.dsn_id, "");
    assert_false(fix_exists(fx, id));
}

/* A failure left without its DSN (a crash) is reported; delivered and
 * failed recipients are not tried again. */
static void
test_pending_dsn_after_crash(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"bob@example.net", "carol@example.net",
                                  "dan@example.net"},
                        .status = {"5.1.1 no such user", "2.0.0 ok"},
                        .state = {QRCPT_FAILED, QRCPT_DELIVERED,
                                  QRCPT_PENDING}};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX];
    queue_env *env;

    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_RETRY);
    assert_int_equal(out.deferred, 1);
    assert_int_equal(out.dsn_sent, 1);
    assert_true(fix_exists(fx, out.dsn_id));
    env = load(fx, id);
    assert_int_equal(env->rcpts[0].dsn_sent, 1);
    assert_string_equal(env->rcpts[0].status, "5.1.1 no such user");
    assert_string_equal(env->rcpts[1].status, "2.0.0 ok");
    assert_int_equal(env->rcpts[2].state, QRCPT_PENDING);
    queue_env_free(env);

    deliver_message(fx->q, id, &out);
    assert_int_equal(out.dsn_sent, 0);           /* not twice */
}

static void
test_not_deliverable(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"bob@example.net"}, .held = 1};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX];
    queue_env *env;

    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_HELD);
    m.held = 0;
    m.quarantine = "virus found";
    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_QUARANTINED);
    env = load(fx, id);
    assert_int_equal(env->attempts, 0);
    assert_null(env->rcpts[0].status);
    queue_env_free(env);

    queue_new_id(id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_GONE);
}

/* Set the RCPT parameters the fixture cannot: NOTIFY per recipient. */
static void
set_notify(struct fix *fx, const char *id, const unsigned *notify)
{
    queue_env *env = load(fx, id);

    for (size_t i = 0; i < env->nrcpts; i++)
        env->rcpts[i].notify = notify[i];
    assert_int_equal(queue_update(fx->q, env), 0);
    queue_env_free(env);
}

/* The DSN an attempt queued, its content read back. */
static char *
dsn_text(struct fix *fx, const struct deliver_outcome *out)
{
    char path[512];
    char *text;

    assert_true(queue_id_valid(out->dsn_id));
    assert_int_equal(queue_content_path(fx->q, out->dsn_id, path,
                                        sizeof(path)), 0);
    text = modmta_test_read_file(path, NULL);
    assert_non_null(text);
    return text;
}

/* NOTIFY=SUCCESS: a local delivery gets a success notice; without it,
 * nothing. */
static void
test_dsn_success_local(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"local@mx.test.example"}};
    const unsigned success[] = {QNOTIFY_SUCCESS | QNOTIFY_FAILURE};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX], *text;

    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_REMOVED);
    assert_int_equal(out.delivered, 1);
    assert_int_equal(out.dsn_sent, 0);

    fix_put(fx, &m, id);
    set_notify(fx, id, success);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_REMOVED);
    assert_int_equal(out.delivered, 1);
    assert_int_equal(out.dsn_sent, 1);
    text = dsn_text(fx, &out);
    assert_non_null(strstr(text, "Subject: Successful Mail Delivery "
                                 "Report\r\n"));
    assert_non_null(strstr(text, "\r\nFinal-Recipient: rfc822; "
                                 "local@mx.test.example\r\nAction: "
                                 "delivered\r\nStatus: 2.0.0\r\n"));
    free(text);
}

/* A failure is silent with NOTIFY=NEVER, and with a NOTIFY that leaves
 * FAILURE out; it is reported without NOTIFY or with FAILURE. */
static void
test_dsn_failure_notify(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"gone@mx.test.example"}};
    static const struct {
        unsigned notify;
        unsigned long dsns;
    } cases[] = {
        {QNOTIFY_NEVER, 0}, {QNOTIFY_SUCCESS, 0},
        {QNOTIFY_SUCCESS | QNOTIFY_DELAY, 0}, {0, 1}, {QNOTIFY_FAILURE, 1},
    };
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fix_put(fx, &m, id);
        set_notify(fx, id, &cases[i].notify);
        deliver_message(fx->q, id, &out);
        assert_int_equal(out.result, DELIVER_REMOVED);
        assert_int_equal(out.bounced, 1);
        if (out.dsn_sent != cases[i].dsns)
            fail_msg("notify %#x: %lu DSNs", cases[i].notify, out.dsn_sent);
    }
}

/* queue.delay_warning: once the message is older, one warning about
 * the recipients still pending, never a second; the failure later is
 * reported all the same. Delivered and failed recipients of the same
 * attempt are in the same report. */
static void
test_dsn_delay_warning(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"slow@mx.test.example",
                                  "local@mx.test.example",
                                  "gone@mx.test.example"},
                        .arrival = time(NULL) - DELAY_WARNING - 10};
    const unsigned notify[] = {0, QNOTIFY_SUCCESS, 0};
    struct deliver_outcome out;
    char id[QUEUE_ID_MAX], *text;
    queue_env *env;

    fix_put(fx, &m, id);
    set_notify(fx, id, notify);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.result, DELIVER_RETRY);
    assert_int_equal(out.dsn_sent, 1);      /* one report, three actions */
    text = dsn_text(fx, &out);
    assert_non_null(strstr(text, "Subject: Undelivered Mail Returned to "
                                 "Sender\r\n"));
    assert_non_null(strstr(text, "slow@mx.test.example\r\nAction: "
                                 "delayed\r\n"));
    assert_non_null(strstr(text, "local@mx.test.example\r\nAction: "
                                 "delivered\r\n"));
    assert_non_null(strstr(text, "gone@mx.test.example\r\nAction: "
                                 "failed\r\n"));
    assert_non_null(strstr(text, "\r\nWill-Retry-Until: "));
    free(text);
    env = load(fx, id);
    assert_int_equal(env->rcpts[0].delay_sent, 1);
    assert_int_equal(env->rcpts[0].dsn_sent, 0);
    assert_int_equal(env->rcpts[1].dsn_sent, 1);
    assert_int_equal(env->rcpts[2].dsn_sent, 1);
    queue_env_free(env);

    deliver_message(fx->q, id, &out);       /* still deferred */
    assert_int_equal(out.result, DELIVER_RETRY);
    assert_int_equal(out.deferred, 1);
    assert_int_equal(out.dsn_sent, 0);      /* warned once only */

    /* a younger message is not warned about */
    m.arrival = time(NULL);
    m.rcpts[1] = m.rcpts[2] = NULL;
    fix_put(fx, &m, id);
    deliver_message(fx->q, id, &out);
    assert_int_equal(out.dsn_sent, 0);
}

/* The workers pick up what is queued at start and what is submitted. */
static void
test_workers(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "", .rcpts = {"bob@example.net"},
                        .arrival = time(NULL) - LIFETIME - 10};
    struct scheduler_stats st;
    char id1[QUEUE_ID_MAX], id2[QUEUE_ID_MAX];
    modmta_err err;
    scheduler *s;

    fix_put(fx, &m, id1);
    s = scheduler_new(fx->q, 2, &err);
    assert_non_null(s);
    assert_int_equal(scheduler_start(s), 0);
    fix_put(fx, &m, id2);
    scheduler_submit(s, id2);
    /* no timing assumption: wait (up to a minute) for the work to end */
    for (int i = 0; i < 6000; i++) {
        scheduler_get_stats(s, &st);
        if (st.in_queue == 0)
            break;
        usleep(10000);
    }
    scheduler_stop(s);
    scheduler_get_stats(s, &st);
    assert_int_equal(st.in_queue, 0);
    assert_int_equal(st.bounced, 2);
    assert_int_equal(st.received, 1);
    assert_int_equal(st.active, 0);
    assert_false(fix_exists(fx, id1));
    assert_false(fix_exists(fx, id2));
    scheduler_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deferred, gen_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_expired, gen_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_expired_null_sender, gen_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_pending_dsn_after_crash,
                                        gen_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_not_deliverable, gen_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_workers, gen_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_dsn_success_local,
                                        script_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_dsn_failure_notify,
                                        script_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_dsn_delay_warning,
                                        script_setup, fix_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
