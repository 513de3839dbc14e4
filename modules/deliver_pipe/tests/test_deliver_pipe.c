/*
 * Unit tests of the deliver_pipe module under the SDK fakes: create()
 * (every key's errors with its JSON path, root refused), which
 * recipients it claims at RCPT and routes ("domains", "users",
 * mailbox_command mode, the recipient delimiter, alias command
 * recipients a client names itself), and deliver_msg() running real
 * commands as "nobody": the exit status, the output in the result, the
 * size limit, the loop check, an alias command from its note. The
 * daemon end to end: tests/e2e/test_pipe.py.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <modmta/modmta.h>
#include <fake.h>

#include "pipe_alias.h"

extern const modmta_module modmta_descriptor;

struct fx {
    modmta_host *host;
    void *inst;
    modmta_ctx *ctx;
    char msg[64];
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    int fd;

    if (fx == NULL)
        return -1;
    fx->host = modmta_test_host_new("deliver_pipe", "localhost",
                                    "example.com", NULL);
    snprintf(fx->msg, sizeof(fx->msg), "/tmp/test_deliver_pipe.XXXXXX");
    fd = mkstemp(fx->msg);
    if (fd < 0 || write(fd, "Subject: t\r\n\r\nbody\r\n", 20) != 20)
        return -1;
    close(fd);
    chmod(fx->msg, 0600); /* read by the daemon, never by the command */
    *state = fx;
    return fx->host == NULL;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    modmta_test_release(&modmta_descriptor, fx->inst, fx->ctx, fx->host);
    unlink(fx->msg);
    free(fx);
    return 0;
}

static void
write_message(struct fx *fx, const char *text)
{
    FILE *f = fopen(fx->msg, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void
create(struct fx *fx, const char *conf)
{
    if (fx->inst != NULL)
        modmta_descriptor.destroy(fx->inst);
    fx->inst = modmta_test_create_ok(&modmta_descriptor, conf, fx->host);
}

static modmta_ctx *
new_ctx(struct fx *fx, modmta_phase phase)
{
    if (fx->ctx != NULL)
        modmta_test_ctx_free(fx->ctx);
    fx->ctx = modmta_test_ctx_new(fx->host, NULL);
    assert_non_null(fx->ctx);
    modmta_test_set_delivery(fx->ctx, "QID1", "alice@remote.test", 0);
    modmta_test_set_message(fx->ctx, fx->msg);
    modmta_test_enter(fx->ctx, phase, &modmta_descriptor, fx->inst);
    return fx->ctx;
}

/* rcpt: the verdict at RCPT, and the destination route() gives (NULL:
 * not routed). */
static void
claims(struct fx *fx, const char *rcpt, modmta_verdict at_rcpt,
       const char *dest)
{
    modmta_ctx *ctx = new_ctx(fx, MODMTA_PHASE_RCPT);
    modmta_verdict v = modmta_descriptor.on_rcpt(fx->inst, ctx, rcpt);

    if (v != at_rcpt)
        fail_msg("<%s>: verdict %d at RCPT, expected %d", rcpt, v, at_rcpt);
    ctx = new_ctx(fx, MODMTA_PHASE_ROUTE);
    v = modmta_descriptor.route(fx->inst, ctx, rcpt);
    if (dest == NULL) {
        if (v != MODMTA_CONTINUE)
            fail_msg("<%s>: route verdict %d", rcpt, v);
        return;
    }
    if (v != MODMTA_ACCEPT)
        fail_msg("<%s>: route verdict %d, expected ACCEPT", rcpt, v);
    assert_string_equal(modmta_test_route(ctx), dest);
}

/* ---- create() ---- */

#define CMD "\"command\": [\"/bin/true\"], \"user\": \"nobody\""

static const struct bad_conf {
    const char *conf;
    const char *path; /* after "$.modules[0]" */
    const char *what;
} bad_confs[] = {
    { "{\"user\": \"nobody\"}", ".command", "required" },
    { "{\"command\": \"/bin/true\", \"user\": \"nobody\"}", ".command", "" },
    { "{\"command\": [], \"user\": \"nobody\"}", ".command[0]",
      "absolute path" },
    { "{\"command\": [\"true\"], \"user\": \"nobody\"}", ".command[0]",
      "absolute path" },
    { "{\"command\": [\"/bin/${user}\"], \"user\": \"nobody\"}",
      ".command[0]", "cannot come from a macro" },
    { "{\"command\": [\"/bin/x\", \"${client}\"], \"user\": \"nobody\"}",
      ".command[1]", "unknown macro \"client\"" },
    { "{\"command\": [\"/bin/x\", \"a$\"], \"user\": \"nobody\"}",
      ".command[1]", "$$" },
    { "{\"command\": [\"/bin/true\"]}", ".user", "required" },
    { "{\"command\": [\"/bin/true\"], \"user\": \"root\"}", ".user",
      "never run as root" },
    { "{\"command\": [\"/bin/true\"], \"user\": \"no-such-user-x\"}",
      ".user", "no such user" },
    { "{" CMD ", \"time_limit\": 0}", ".time_limit", "out of range 1s..1d" },
    { "{" CMD ", \"time_limit\": 86401}", ".time_limit", "out of range" },
    { "{" CMD ", \"time_limit\": \"1500ms\"}", ".time_limit", "" },
    { "{" CMD ", \"size_limit\": -1}", ".size_limit", "" },
    { "{" CMD ", \"size_limit\": \"10 M\"}", ".size_limit", "" },
    { "{" CMD ", \"domains\": []}", ".domains", "leave the key out" },
    { "{" CMD ", \"domains\": [\"a b.test\"]}", ".domains[0]",
      "domain name" },
    { "{" CMD ", \"recipient_delimiter\": \"\"}", ".recipient_delimiter",
      "1 to 8" },
    { "{" CMD ", \"recipient_delimiter\": \"@\"}", ".recipient_delimiter",
      "1 to 8" },
    { "{" CMD ", \"headers\": 1}", ".headers", "" },
    { "{" CMD ", \"users\": \"file:/nonexistent/users\"}", ".users", "" },
    { "{" CMD ", \"bogus\": 1}", ".bogus", "unknown key" },
};

static void
test_create_errors(void **state)
{
    struct fx *fx = *state;
    char path[100];
    size_t i;

    if (geteuid() != 0)
        skip(); /* "user" needs root to name another account */
    for (i = 0; i < sizeof(bad_confs) / sizeof(bad_confs[0]); i++) {
        snprintf(path, sizeof(path), "$.modules[0]%s", bad_confs[i].path);
        modmta_test_create_fails_with(&modmta_descriptor, bad_confs[i].conf,
                                      fx->host, path, bad_confs[i].what);
    }
    create(fx, "{\"alias_commands\": true, \"user\": \"nobody\"}");
    create(fx, "{" CMD ", \"time_limit\": 86400, \"size_limit\": 0}");
    create(fx, "{" CMD ", \"time_limit\": \"2m\", \"size_limit\": \"10M\"}");
}

/* A daemon that dropped privileges (the child, as nobody) runs commands
 * as itself only with allow_daemon_user; exit status 0: as expected. */
static int
create_as_daemon_user(const modmta_host *h)
{
    struct passwd *pw = getpwnam("nobody");
    modmta_err err;
    void *inst;

    if (pw == NULL || setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0)
        return 10;
    memset(&err, 0, sizeof(err));
    inst = modmta_test_create(&modmta_descriptor, "{" CMD "}", h, &err);
    if (inst != NULL || strcmp(err.path, "$.modules[0].user") != 0 ||
        strstr(err.msg, "the daemon's own user \"nobody\"") == NULL ||
        strstr(err.msg, "allow_daemon_user") == NULL)
        return 11;
    inst = modmta_test_create(&modmta_descriptor, "{\"command\": "
                              "[\"/bin/true\"]}", h, &err);
    if (inst != NULL)
        return 12;
    inst = modmta_test_create(&modmta_descriptor, "{\"command\": "
                              "[\"/bin/true\"], \"allow_daemon_user\": "
                              "true}", h, &err);
    if (inst == NULL)
        return 13;
    modmta_descriptor.destroy(inst);
    return 0;
}

static void
test_create_daemon_user(void **state)
{
    struct fx *fx = *state;
    int ws;
    pid_t pid;

    if (geteuid() != 0)
        skip(); /* the child must become another user */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(create_as_daemon_user(fx->host));
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

/* ---- recipients ---- */

static void
test_claims_local(void **state)
{
    struct fx *fx = *state;

    if (geteuid() != 0)
        skip();
    /* mailbox_command mode: every local recipient */
    create(fx, "{" CMD "}");
    claims(fx, "bob@example.com", MODMTA_ACCEPT, "command");
    claims(fx, "bob@LOCALHOST", MODMTA_ACCEPT, "command");
    claims(fx, "postmaster", MODMTA_ACCEPT, "command");
    claims(fx, "bob@remote.test", MODMTA_CONTINUE, NULL);
    /* alias command recipients are not the command's */
    claims(fx, "alias-command-0123456789abcdef@alias-command.invalid",
           MODMTA_CONTINUE, NULL);
    /* its domains only */
    create(fx, "{" CMD ", \"domains\": [\"Tickets.Test\"]}");
    claims(fx, "help@tickets.test", MODMTA_ACCEPT, "command");
    claims(fx, "bob@example.com", MODMTA_CONTINUE, NULL);
}

static void
test_claims_users(void **state)
{
    struct fx *fx = *state;

    if (geteuid() != 0)
        skip();
    /* local accounts only, the extension cut off */
    create(fx, "{" CMD ", \"users\": \"system\", "
               "\"recipient_delimiter\": \"+\"}");
    claims(fx, "nobody@example.com", MODMTA_ACCEPT, "command");
    claims(fx, "Nobody+lists@example.com", MODMTA_ACCEPT, "command");
    claims(fx, "no-such-user-x@example.com", MODMTA_CONTINUE, NULL);
    /* a map: address, address without extension, local part, user */
    create(fx, "{" CMD ", \"recipient_delimiter\": \"+-\", \"users\": "
               "{\"help\": \"\", \"sales@example.com\": \"\"}}");
    claims(fx, "help@example.com", MODMTA_ACCEPT, "command");
    claims(fx, "help-desk@example.com", MODMTA_ACCEPT, "command");
    claims(fx, "sales@example.com", MODMTA_ACCEPT, "command");
    claims(fx, "sales+x@example.com", MODMTA_ACCEPT, "command");
    claims(fx, "sales@localhost", MODMTA_CONTINUE, NULL);
    claims(fx, "sales+x@localhost", MODMTA_CONTINUE, NULL);
    claims(fx, "bob@example.com", MODMTA_CONTINUE, NULL);
    /* the core's recipient_delimiter, unless the instance has its own */
    assert_int_equal(modmta_test_host_set_delimiter(fx->host, "+"), 0);
    create(fx, "{" CMD ", \"users\": {\"help\": \"\"}}");
    claims(fx, "help+x@example.com", MODMTA_ACCEPT, "command");
    /* a local part needing quotes is not cut, as relay_access does not */
    claims(fx, "\"help+a b\"@example.com", MODMTA_CONTINUE, NULL);
    claims(fx, "\"help+a@b\"@example.com", MODMTA_CONTINUE, NULL);
    create(fx, "{" CMD ", \"recipient_delimiter\": \"-\", \"users\": "
               "{\"help\": \"\"}}");
    claims(fx, "help+x@example.com", MODMTA_CONTINUE, NULL);
    claims(fx, "help-x@example.com", MODMTA_ACCEPT, "command");
    assert_int_equal(modmta_test_host_set_delimiter(fx->host, NULL), 0);
}

/* A client naming an alias command recipient itself gets it refused;
 * an instance without alias_commands leaves them alone. */
static void
test_alias_recipient_from_client(void **state)
{
    struct fx *fx = *state;
    const char *r = "alias-command-0123456789abcdef@alias-command.invalid";
    modmta_ctx *ctx;

    if (geteuid() != 0)
        skip();
    create(fx, "{\"alias_commands\": true, \"user\": \"nobody\"}");
    ctx = new_ctx(fx, MODMTA_PHASE_RCPT);
    assert_int_equal(modmta_descriptor.on_rcpt(fx->inst, ctx, r),
                     MODMTA_REJECT);
    assert_int_equal(modmta_test_reply_code(ctx), 550);
    assert_string_equal(modmta_test_reply_esc(ctx), "5.1.1");
    /* nothing else is this instance's */
    claims(fx, "bob@example.com", MODMTA_CONTINUE, NULL);
}

/* ---- delivery ---- */

/* rcpt (whose client address was orig, NULL: unknown) delivered: the
 * result wanted, text a part of its text. */
static void
delivers_orig(struct fx *fx, const char *rcpt, const char *orig,
              modmta_dstatus want, int code, const char *esc,
              const char *text)
{
    const char *rcpts[] = { rcpt };
    const char *got_esc = NULL, *got_text = NULL;
    modmta_dstatus st;
    modmta_ctx *ctx = fx->ctx;
    int got_code = 0;

    if (ctx == NULL || modmta_test_route(ctx) != NULL)
        ctx = new_ctx(fx, MODMTA_PHASE_DELIVER);
    modmta_test_enter(ctx, MODMTA_PHASE_DELIVER, &modmta_descriptor,
                      fx->inst);
    modmta_test_set_dlv_group(ctx, rcpts, 1);
    if (orig != NULL)
        modmta_test_set_dlv_param(ctx, 0, "original", orig);
    modmta_descriptor.deliver_msg(fx->inst, ctx, "command");
    assert_int_equal(modmta_test_dlv_result(ctx, 0, &st, &got_code,
                                            &got_esc, NULL, &got_text), 1);
    if (st != want || got_code != code || strcmp(got_esc, esc) != 0 ||
        strstr(got_text, text) == NULL)
        fail_msg("<%s>: %d %d %s \"%s\", expected %d %d %s \"%s\"", rcpt,
                 st, got_code, got_esc, got_text, want, code, esc, text);
}

static void
delivers(struct fx *fx, const char *rcpt, modmta_dstatus want, int code,
         const char *esc, const char *text)
{
    delivers_orig(fx, rcpt, NULL, want, code, esc, text);
}

#define SH(script) \
    "{\"command\": [\"/bin/sh\", \"-c\", \"" script "\", \"sh\", " \
    "\"${recipient}\"], \"user\": \"nobody\"}"

static void
test_deliver_status(void **state)
{
    struct fx *fx = *state;

    if (geteuid() != 0)
        skip();
    create(fx, SH("cat >/dev/null; exit 0"));
    fx->ctx = NULL;
    delivers(fx, "bob@example.com", MODMTA_DELIVERED, 250, "2.0.0",
             "delivered to command");
    create(fx, SH("echo no such user $$1; exit 67"));
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, "bob@example.com", MODMTA_FAILED, 550, "5.1.1",
             "EX_NOUSER: user unknown: no such user bob@example.com");
    create(fx, SH("echo try later >&2; exit 75"));
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, "bob@example.com", MODMTA_DEFERRED, 451, "4.3.0",
             "EX_TEMPFAIL: temporary failure: try later");
    create(fx, SH("exit 77"));
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, "bob@example.com", MODMTA_FAILED, 550, "5.7.0",
             "EX_NOPERM");
    create(fx, SH("kill -TERM $$$$"));
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, "bob@example.com", MODMTA_DEFERRED, 451, "4.3.0",
             "killed by signal 15");
}

/* The environment, the account and the input the command sees. */
static void
test_deliver_environment(void **state)
{
    struct fx *fx = *state;

    if (geteuid() != 0)
        skip();
    create(fx, "{\"command\": [\"/bin/sh\", \"-c\", \"echo $$(id -un) "
               "$$SENDER $$RECIPIENT $$LOCAL $$EXTENSION $$DOMAIN $$USER "
               "$$PATH; "
               "head -2; exit 64\"], \"user\": \"nobody\", "
               "\"recipient_delimiter\": \"+\"}");
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, "bob+x@example.com", MODMTA_FAILED, 550, "5.3.0",
             "EX_USAGE: command line usage error: nobody "
             "alice@remote.test bob+x@example.com bob+x x example.com "
             "nobody /usr/bin:/bin Return-Path: <alice@remote.test> "
             "Delivered-To: bob+x@example.com");
}

/* What precedes the message: From_ line, Return-Path, X-Original-To,
 * Delivered-To, as local(8) writes them; none with both keys false. */
static void
test_deliver_prefix(void **state)
{
    struct fx *fx = *state;

    if (geteuid() != 0)
        skip();
    create(fx, "{\"command\": [\"/bin/sh\", \"-c\", \"head -5; exit 65\"], "
               "\"user\": \"nobody\", \"from_line\": true}");
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers_orig(fx, "bob@example.com", "list@example.com", MODMTA_FAILED,
                  550, "5.6.0", " Return-Path: <alice@remote.test> "
                  "X-Original-To: list@example.com "
                  "Delivered-To: bob@example.com Subject: t");
    delivers_orig(fx, "bob@example.com", NULL, MODMTA_FAILED, 550, "5.6.0",
                  "EX_DATAERR: data format error: From alice@remote.test ");
    /* the longest sender, written twice */
    {
        char sender[MODMTA_ADDR_PATH_MAX + 1], want[MODMTA_ADDR_PATH_MAX + 20];

        memset(sender, 'a', 64);
        snprintf(sender + 64, sizeof(sender) - 64, "@%0*d.test",
                 MODMTA_ADDR_PATH_MAX - 64 - 7, 0);
        new_ctx(fx, MODMTA_PHASE_DELIVER);
        modmta_test_set_delivery(fx->ctx, "QID1", sender, 0);
        snprintf(want, sizeof(want), "Return-Path: <%s> ", sender);
        delivers_orig(fx, "bob@example.com", "list@example.com",
                      MODMTA_FAILED, 550, "5.6.0", want);
    }
    /* addresses the SDK would refuse still stay on their line */
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    modmta_test_set_delivery(fx->ctx, "QID1", "e v@x.test\nX-Injected: 1",
                             0);
    delivers_orig(fx, "bob@example.com", "l@x.test\r\nX-Injected: 2",
                  MODMTA_FAILED, 550, "5.6.0",
                  "From e_v@x.test_X-Injected:_1 ");
    delivers_orig(fx, "bob@example.com", "l@x.test\r\nX-Injected: 2",
                  MODMTA_FAILED, 550, "5.6.0",
                  " Return-Path: <e v@x.test_X-Injected: 1> "
                  "X-Original-To: l@x.test__X-Injected: 2 "
                  "Delivered-To: bob@example.com Subject: t");
    create(fx, "{\"command\": [\"/bin/sh\", \"-c\", \"head -1; exit 65\"], "
               "\"user\": \"nobody\", \"headers\": false}");
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, "bob@example.com", MODMTA_FAILED, 550, "5.6.0",
             "EX_DATAERR: data format error: Subject: t");
}

static void
test_deliver_limits(void **state)
{
    struct fx *fx = *state;

    if (geteuid() != 0)
        skip();
    create(fx, "{\"command\": [\"/bin/true\"], \"user\": \"nobody\", "
               "\"size_limit\": 10}");
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, "bob@example.com", MODMTA_FAILED, 552, "5.2.3",
             "message too large");
    create(fx, "{\"command\": [\"/bin/sleep\", \"30\"], \"user\": "
               "\"nobody\", \"time_limit\": 1}");
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, "bob@example.com", MODMTA_DEFERRED, 451, "4.3.0",
             "time limit exceeded");
    /* a Delivered-To in the queued header already naming the
     * recipient: a loop; in the body it is not */
    create(fx, "{\"command\": [\"/bin/true\"], \"user\": \"nobody\"}");
    write_message(fx, "Delivered-To: other@example.com\r\nSubject: t\r\n"
                      "\r\nDelivered-To: bob@example.com\r\n");
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, "bob@example.com", MODMTA_DELIVERED, 250, "2.0.0", "");
    write_message(fx, "Subject: t\r\nDelivered-To:  Bob@example.com\r\n"
                      "\r\nbody\r\n");
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, "bob@example.com", MODMTA_FAILED, 554, "5.4.6", "loop");
}

/* An alias command: from its note, through /bin/sh -c; without the
 * note nothing runs. */
static void
test_deliver_alias(void **state)
{
    struct fx *fx = *state;
    char addr[64], note[64];
    const char *cmd = "read line; echo got \"$line\" for $ORIGINAL_RECIPIENT;"
                      " exit 67";

    if (geteuid() != 0)
        skip();
    pipe_alias_names(cmd, addr, note);
    create(fx, "{\"alias_commands\": true, \"user\": \"nobody\"}");
    new_ctx(fx, MODMTA_PHASE_DELIVER);
    delivers(fx, addr, MODMTA_FAILED, 550, "5.1.1", "no such alias command");
    new_ctx(fx, MODMTA_PHASE_RCPT);
    assert_int_equal(modmta_note_set_str(fx->ctx, note, cmd), 0);
    delivers(fx, addr, MODMTA_FAILED, 550, "5.1.1",
             "got Return-Path: <alice@remote.test> for");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_daemon_user, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_create_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_claims_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_recipient_from_client,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_status, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_environment, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_prefix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_limits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deliver_alias, setup,
                                        teardown),
    };

    signal(SIGPIPE, SIG_IGN); /* as the daemon (core/main.c) */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
