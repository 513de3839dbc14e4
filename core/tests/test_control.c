/*
 * Unit tests of the control socket (core/control.c): request parsing, the
 * mailq listing, show, hold/release/delete, stats, reload, and one round
 * trip over the real socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "sched_fixture.h"

#define ARRIVAL ((time_t)1700000000)   /* Tue Nov 14 22:13:20 2023 UTC */

static void
expect_response(queue *q, scheduler *s, const struct control_ops *ops,
                const char *req, const char *want)
{
    char *resp = control_execute(q, s, ops, req);

    assert_non_null(resp);
    assert_string_equal(resp, want);
    free(resp);
}

static scheduler *
sched(struct fix *fx)
{
    modmta_err err;
    scheduler *s = scheduler_new(fx->q, 0, &err);

    assert_non_null(s);
    assert_int_equal(scheduler_start(s), 0);
    return s;
}

static void
test_parse(void **state)
{
    struct fix *fx = *state;
    scheduler *s = sched(fx);

    expect_response(fx->q, s, NULL, "bogus",
                    "error: unknown command \"bogus\"\n");
    expect_response(fx->q, s, NULL, "", "error: unknown command \"\"\n");
    expect_response(fx->q, s, NULL, "show", "error: show needs a queue ID\n");
    expect_response(fx->q, s, NULL, "show ../../etc/passwd",
                    "error: invalid queue ID\n");
    expect_response(fx->q, s, NULL, "delete a/b", "error: invalid queue ID\n");
    expect_response(fx->q, s, NULL, "queue now",
                    "error: queue takes no argument\n");
    expect_response(fx->q, s, NULL, "QUEUE",
                    "error: unknown command \"QUEUE\"\n");
    expect_response(fx->q, NULL, NULL, "flush",
                    "error: the scheduler is not running\n");
    expect_response(fx->q, s, NULL, "flush", "ok\n");
    expect_response(fx->q, s, NULL, "reload",
                    "error: reload is not available\n");
    scheduler_free(s);
}

static void
test_queue_empty(void **state)
{
    struct fix *fx = *state;

    expect_response(fx->q, NULL, NULL, "queue", "ok\nMail queue is empty\n");
}

/* The mailq format: held flag, sizes, pending recipients only, the
 * deferral reason before the recipients it concerns, the total. */
static void
test_queue_listing(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m1 = {.sender = "alice@example.org",
                         .rcpts = {"bob@example.net", "carol@example.net"},
                         .status = {"4.4.1 connection refused",
                                    "4.4.1 connection refused"},
                         .arrival = ARRIVAL};
    struct fix_msg m2 = {.sender = "", .rcpts = {"dave@example.org"},
                         .arrival = ARRIVAL + 60, .held = 1};
    char id1[QUEUE_ID_MAX], id2[QUEUE_ID_MAX], want[2048];

    fix_put(fx, &m1, id1);
    fix_put(fx, &m2, id2);
    snprintf(want, sizeof(want),
        "ok\n"
        "-Queue ID-            --Size-- ----Arrival Time---- "
        "-Sender/Recipient-------\n"
        "%-20s        %zu Tue Nov 14 22:13:20  alice@example.org\n"
        "(4.4.1 connection refused)\n"
        "%52sbob@example.net\n"
        "%52scarol@example.net\n"
        "\n"
        "%-20s!       %zu Tue Nov 14 22:14:20  MAILER-DAEMON\n"
        "%52sdave@example.org\n"
        "\n"
        "-- 2 Kbytes in 2 Requests.\n",
        id1, strlen(FIX_BODY), "", "", id2, strlen(FIX_BODY), "");
    expect_response(fx->q, NULL, NULL, "queue", want);
}

static void
test_show(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"bob@example.net"}};
    char id[QUEUE_ID_MAX], req[64], want[128], *resp;
    json_error_t jerr;
    json_t *env;
    char *end;

    fix_put(fx, &m, id);
    snprintf(req, sizeof(req), "show %s", id);
    resp = control_execute(fx->q, NULL, NULL, req);
    assert_non_null(resp);
    assert_memory_equal(resp, "ok\n{\n", 5);
    /* the JSON ends at the first blank line; the headers follow */
    end = strstr(resp, "\n\n");
    assert_non_null(end);
    assert_string_equal(end + 2, "From: a@example.org\nSubject: hi\n");
    env = json_loadb(resp + 3, (size_t)(end - resp - 3), 0, &jerr);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "sender")),
                        "alice@example.org");
    json_decref(env);
    free(resp);

    queue_new_id(id);
    snprintf(req, sizeof(req), "show %s", id);
    snprintf(want, sizeof(want), "error: %s: no such message\n", id);
    expect_response(fx->q, NULL, NULL, req, want);
}

static void
test_hold_release_delete(void **state)
{
    struct fix *fx = *state;
    struct fix_msg m = {.sender = "alice@example.org",
                        .rcpts = {"bob@example.net"}};
    char id[QUEUE_ID_MAX], req[64], want[128], *resp;
    scheduler *s = sched(fx);
    queue_env *env;

    fix_put(fx, &m, id);
    snprintf(req, sizeof(req), "hold %s", id);
    snprintf(want, sizeof(want), "ok\n%s: held\n", id);
    expect_response(fx->q, s, NULL, req, want);
    assert_int_equal(queue_load(fx->q, id, &env), 0);
    assert_int_equal(env->held, 1);
    queue_env_free(env);
    resp = control_execute(fx->q, s, NULL, "queue");
    assert_non_null(strstr(resp, "!"));
    free(resp);

    snprintf(req, sizeof(req), "release %s", id);
    snprintf(want, sizeof(want), "ok\n%s: released\n", id);
    expect_response(fx->q, s, NULL, req, want);
    assert_int_equal(queue_load(fx->q, id, &env), 0);
    assert_int_equal(env->held, 0);
    queue_env_free(env);

    snprintf(req, sizeof(req), "delete %s", id);
    snprintf(want, sizeof(want), "ok\n%s: deleted\n", id);
    expect_response(fx->q, s, NULL, req, want);
    assert_false(fix_exists(fx, id));
    snprintf(want, sizeof(want), "error: %s: no such message\n", id);
    expect_response(fx->q, s, NULL, req, want);
    snprintf(req, sizeof(req), "hold %s", id);
    expect_response(fx->q, s, NULL, req, want);
    expect_response(fx->q, s, NULL, "queue", "ok\nMail queue is empty\n");
    scheduler_free(s);
}

static void
stats_cb(void *arg, json_t *obj)
{
    json_object_set_new(obj, "sessions", json_integer(*(int *)arg));
}

static int
reload_fail(void *arg, char **errors_r)
{
    *errors_r = strdup("$.limits.foo: unknown key\n$.spool: not a directory");
    return MODMTA_E_CONFIG;
}

static int
reload_ok(void *arg, char **errors_r)
{
    (*(int *)arg)++;
    return 0;
}

static void
test_stats_reload(void **state)
{
    struct fix *fx = *state;
    int sessions = 7, reloads = 0;
    struct control_ops ops = {.stats = stats_cb, .reload = reload_fail,
                              .arg = &sessions};
    scheduler *s = sched(fx);
    json_error_t jerr;
    json_t *o;
    char *resp;

    scheduler_submit(s, "AAAA");
    resp = control_execute(fx->q, s, &ops, "stats");
    assert_memory_equal(resp, "ok\n", 3);
    o = json_loads(resp + 3, 0, &jerr);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "received")), 1);
    assert_int_equal(json_integer_value(json_object_get(o, "in_queue")), 1);
    assert_int_equal(json_integer_value(json_object_get(o, "sessions")), 7);
    assert_non_null(json_object_get(o, "bounced"));
    json_decref(o);
    free(resp);

    expect_response(fx->q, s, &ops, "reload",
                    "error: reload failed, the running configuration stays\n"
                    "$.limits.foo: unknown key\n$.spool: not a directory\n");
    ops.reload = reload_ok;
    ops.arg = &reloads;
    expect_response(fx->q, s, &ops, "reload", "ok\nconfiguration reloaded\n");
    assert_int_equal(reloads, 1);
    scheduler_free(s);
}

static char *
roundtrip(const char *path, const char *req)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    static char buf[65536];
    size_t len = 0;
    ssize_t n;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    return buf;
}

static void
test_socket(void **state)
{
    struct fix *fx = *state;
    char path[96];
    struct stat st;
    modmta_err err;
    control *c;
    int fd;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    snprintf(path, sizeof(path), "%s/control.sock", fx->dir);

    /* something that is not a socket is left alone */
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_null(control_start(path, fx->q, NULL, NULL, &err));
    assert_non_null(strstr(err.msg, "not a socket"));
    unlink(path);

    /* a stale socket (its daemon died) is replaced */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);

    c = control_start(path, fx->q, NULL, NULL, &err);
    if (c == NULL)
        fail_msg("control_start: %s", err.msg);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a second daemon on the same path is refused */
    assert_null(control_start(path, fx->q, NULL, NULL, &err));
    assert_non_null(strstr(err.msg, "already running"));

    assert_string_equal(roundtrip(path, "queue\n"),
                        "ok\nMail queue is empty\n");
    assert_string_equal(roundtrip(path, "queue\r\n"),
                        "ok\nMail queue is empty\n");
    assert_string_equal(roundtrip(path, "nope\n"),
                        "error: unknown command \"nope\"\n");
    control_stop(c);
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_queue_empty, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_queue_listing, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_show, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_hold_release_delete, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_stats_reload, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_socket, fix_setup, fix_teardown),
    };

    /* the listing shows local times: make them known */
    setenv("TZ", "UTC", 1);
    tzset();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
