/*
 * Unit tests of deliver_pipe's parts: template checks and expansion
 * (address data stays inside its argument, whatever it holds), the
 * environment, the recipient delimiter, the sysexits.h mapping, and
 * pipe_run with real /bin/sh children (input with LF line ends, output
 * captured and bounded, the time limit killing the process group).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pipe_argv.h"
#include "pipe_run.h"
#include "pipe_status.h"

static const struct pipe_vars vars = {
    .sender = "alice@remote.test",
    .recipient = "bob+lists@example.com",
    .original_recipient = "Bob+Lists@example.com",
    .mailbox = "bob+lists",
    .user = "bob",
    .extension = "lists",
    .domain = "example.com",
    .nexthop = "example.com",
    .queue_id = "QID1",
    .size = "123",
    .logname = "nobody",
    .home = "/nonexistent",
    .shell = "/bin/sh",
};

static void
expands(const char *t, const struct pipe_vars *v, const char *want)
{
    char *got = pipe_tmpl_expand(t, v);

    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void
test_tmpl_check(void **state)
{
    static const char *const good[] = {
        "", "plain", "${recipient}", "$recipient", "-d${user}", "$$",
        "a$$b", "${sender}:${extension}", "$original_recipient",
        "${mailbox}${domain}${nexthop}${queue_id}${size}",
    };
    static const char *const bad[] = {
        "$", "a$", "${}", "${recipient", "${Recipient}", "$1",
        "${client_address}", "$bogus", "${recipient }", "$-",
    };
    char why[300];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (pipe_tmpl_check(good[i], why, sizeof(why)) != 0)
            fail_msg("\"%s\" refused: %s", good[i], why);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (pipe_tmpl_check(bad[i], why, sizeof(why)) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
    assert_int_equal(pipe_tmpl_check("${client}", why, sizeof(why)), -1);
    assert_non_null(strstr(why, "unknown macro \"client\""));
}

static void
test_tmpl_expand(void **state)
{
    (void)state;
    expands("${recipient}", &vars, "bob+lists@example.com");
    expands("$recipient", &vars, "bob+lists@example.com");
    expands("-a${extension}", &vars, "-alists");
    expands("$user@$domain", &vars, "bob@example.com");
    expands("${mailbox}/${nexthop}", &vars, "bob+lists/example.com");
    expands("$$HOME $$$sender", &vars, "$HOME $alice@remote.test");
    expands("${original_recipient} ${queue_id} ${size}", &vars,
            "Bob+Lists@example.com QID1 123");
    expands("no macros", &vars, "no macros");
}

/* Shell syntax in an address is data: one argument, unchanged. */
static void
test_hostile_address(void **state)
{
    struct pipe_vars v = vars;
    char *const tmpl[] = { "/usr/bin/cmd", "-f", "${sender}", "--",
                           "${recipient}", NULL };
    char **argv;

    (void)state;
    v.sender = "\"$(touch /tmp/x); `id` | rm -rf / ; a b\"@evil.test";
    v.recipient = "-oQ/tmp/x\n$(reboot)@example.com";
    argv = pipe_argv_new(tmpl, &v);
    assert_non_null(argv);
    assert_string_equal(argv[0], "/usr/bin/cmd");
    assert_string_equal(argv[1], "-f");
    assert_string_equal(argv[2], v.sender);
    assert_string_equal(argv[3], "--");
    assert_string_equal(argv[4], v.recipient);
    assert_null(argv[5]);
    pipe_strv_free(argv);
    /* a value with "$" is not expanded again */
    v.user = "${recipient}";
    expands("${user}", &v, "${recipient}");
}

static void
test_tmpl_too_long(void **state)
{
    struct pipe_vars v = vars;
    char *big = malloc(PIPE_ARG_MAX + 2);

    (void)state;
    assert_non_null(big);
    memset(big, 'x', PIPE_ARG_MAX + 1);
    big[PIPE_ARG_MAX + 1] = '\0';
    v.recipient = big;
    assert_null(pipe_tmpl_expand("${recipient}", &v));
    big[PIPE_ARG_MAX] = '\0';
    v.recipient = big;
    free(pipe_tmpl_expand("${recipient}", &v));
    assert_null(pipe_tmpl_expand("a${recipient}", &v));
    free(big);
}

static const char *
env_get(char **env, const char *name)
{
    size_t n = strlen(name);

    for (; *env != NULL; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

static void
test_env(void **state)
{
    char **env = pipe_env_new(&vars);
    struct pipe_vars v = vars;

    (void)state;
    assert_non_null(env);
    assert_string_equal(env_get(env, "PATH"), "/usr/bin:/bin");
    assert_string_equal(env_get(env, "SENDER"), "alice@remote.test");
    assert_string_equal(env_get(env, "RECIPIENT"), "bob+lists@example.com");
    assert_string_equal(env_get(env, "ORIGINAL_RECIPIENT"),
                        "Bob+Lists@example.com");
    assert_string_equal(env_get(env, "LOCAL"), "bob+lists");
    assert_string_equal(env_get(env, "EXTENSION"), "lists");
    assert_string_equal(env_get(env, "DOMAIN"), "example.com");
    assert_string_equal(env_get(env, "USER"), "nobody");
    assert_string_equal(env_get(env, "LOGNAME"), "nobody");
    assert_string_equal(env_get(env, "HOME"), "/nonexistent");
    assert_string_equal(env_get(env, "SHELL"), "/bin/sh");
    assert_string_equal(env_get(env, "QUEUE_ID"), "QID1");
    /* nothing of the daemon's own environment */
    assert_null(env_get(env, "LD_PRELOAD"));
    pipe_strv_free(env);
    v.sender = "";
    v.extension = NULL;
    env = pipe_env_new(&v);
    assert_string_equal(env_get(env, "SENDER"), "");
    assert_string_equal(env_get(env, "EXTENSION"), "");
    pipe_strv_free(env);
}

static void
maps(int ws, modmta_dstatus st, int code, const char *esc, const char *what)
{
    struct pipe_outcome o;

    pipe_status_map(ws, &o);
    assert_int_equal(o.status, st);
    assert_int_equal(o.code, code);
    assert_string_equal(o.esc, esc);
    if (strstr(o.what, what) == NULL)
        fail_msg("\"%s\" lacks \"%s\"", o.what, what);
}

#define EXITED(n) ((n) << 8)

static void
test_status_map(void **state)
{
    (void)state;
    maps(EXITED(0), MODMTA_DELIVERED, 250, "2.0.0", "delivered");
    maps(EXITED(75), MODMTA_DEFERRED, 451, "4.3.0", "EX_TEMPFAIL");
    maps(EXITED(71), MODMTA_DEFERRED, 451, "4.3.0", "EX_OSERR");
    maps(EXITED(74), MODMTA_DEFERRED, 451, "4.3.0", "EX_IOERR");
    maps(EXITED(67), MODMTA_FAILED, 550, "5.1.1", "EX_NOUSER");
    maps(EXITED(68), MODMTA_FAILED, 550, "5.1.2", "EX_NOHOST");
    maps(EXITED(65), MODMTA_FAILED, 550, "5.6.0", "EX_DATAERR");
    maps(EXITED(77), MODMTA_FAILED, 550, "5.7.0", "EX_NOPERM");
    maps(EXITED(73), MODMTA_FAILED, 550, "5.2.0", "EX_CANTCREAT");
    maps(EXITED(78), MODMTA_FAILED, 550, "5.3.5", "EX_CONFIG");
    maps(EXITED(64), MODMTA_FAILED, 550, "5.3.0", "EX_USAGE");
    maps(EXITED(1), MODMTA_FAILED, 550, "5.3.0", "with status 1");
    maps(EXITED(127), MODMTA_FAILED, 550, "5.3.0", "with status 127");
    maps(SIGKILL, MODMTA_DEFERRED, 451, "4.3.0", "signal 9");
    maps(SIGSEGV | 0x80, MODMTA_DEFERRED, 451, "4.3.0", "signal 11");
}

/* ---- pipe_run with /bin/sh ---- */

static int
message_fd(const char *text)
{
    char path[] = "/tmp/test_pipe_argv.XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static int
run_sh(const char *script, const char *msg, const char *prefix,
       long long limit_ms, struct pipe_result *r)
{
    char *const argv[] = { "/bin/sh", "-c", (char *)script, NULL };
    char *const envp[] = { "PATH=/usr/bin:/bin", "SENDER=a@b.test", NULL };
    struct pipe_job j;
    int fd = message_fd(msg), rc;

    memset(&j, 0, sizeof(j));
    j.argv = argv;
    j.envp = envp;
    j.cwd = "/";
    j.input_fd = fd;
    j.prefix = prefix;
    j.time_limit_ms = limit_ms;
    rc = pipe_run(&j, r);
    close(fd);
    return rc;
}

static void
test_run_input_output(void **state)
{
    static struct pipe_result r;

    (void)state;
    /* CRLF becomes LF, a lone CR stays; the prefix comes first */
    assert_int_equal(run_sh("tr '\\r\\n' RN; echo; echo \"$SENDER\" >&2",
                            "Subject: x\r\n\r\nbody\rcr\r\n",
                            "P: 1\n", 10000, &r), 0);
    assert_true(WIFEXITED(r.ws) && WEXITSTATUS(r.ws) == 0);
    assert_int_equal(r.timed_out, 0);
    assert_non_null(strstr(r.output, "P: 1NSubject: xNNbodyRcrN\n"));
    assert_non_null(strstr(r.output, "a@b.test"));
    /* the exit status comes back as is */
    assert_int_equal(run_sh("cat >/dev/null; exit 67", "x\r\n", "", 10000,
                            &r), 0);
    assert_int_equal(WEXITSTATUS(r.ws), 67);
    /* a command that reads nothing of a large message still ends */
    {
        size_t n = 1024 * 1024;
        char *big = malloc(n + 1);

        assert_non_null(big);
        memset(big, 'a', n);
        big[n] = '\0';
        assert_int_equal(run_sh("exit 0", big, "", 10000, &r), 0);
        assert_true(WIFEXITED(r.ws) && WEXITSTATUS(r.ws) == 0);
        free(big);
    }
}

static void
test_run_output_bounded(void **state)
{
    static struct pipe_result r;

    (void)state;
    assert_int_equal(run_sh("cat >/dev/null; i=0; while [ $i -lt 2000 ]; "
                            "do echo 0123456789; i=$((i+1)); done; exit 75",
                            "x\r\n", "", 20000, &r), 0);
    assert_int_equal(WEXITSTATUS(r.ws), 75);
    assert_int_equal(r.outlen, PIPE_OUTPUT_MAX);
    assert_int_equal(r.truncated, 1);
    assert_int_equal(strlen(r.output), PIPE_OUTPUT_MAX);
}

/* Past the time limit the process group is killed: the command and
 * what it started. */
static void
test_run_time_limit(void **state)
{
    static struct pipe_result r;
    char pidfile[] = "/tmp/test_pipe_argv.pidXXXXXX";
    char script[200];
    FILE *f;
    int fd = mkstemp(pidfile), pid = 0, i;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    snprintf(script, sizeof(script), "sleep 300 & echo $! > %s; "
             "echo started; wait", pidfile);
    assert_int_equal(run_sh(script, "x\r\n", "", 500, &r), 0);
    assert_int_equal(r.timed_out, 1);
    assert_true(WIFSIGNALED(r.ws));
    assert_non_null(strstr(r.output, "started"));
    f = fopen(pidfile, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    unlink(pidfile);
    /* the background sleep is gone too (allow its reaping by init) */
    for (i = 0; i < 200 && kill(pid, 0) == 0; i++)
        usleep(50000);
    assert_int_not_equal(kill(pid, 0), 0);
}

/* 1 when pid is gone or a zombie waiting for its reaper. */
static int
process_gone(pid_t pid)
{
    char path[64], stat[256];
    FILE *f;
    char *p;

    if (kill(pid, 0) < 0)
        return 1;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 1;
    p = fgets(stat, sizeof(stat), f);
    fclose(f);
    return p == NULL ||
           ((p = strrchr(stat, ')')) != NULL && strncmp(p, ") Z", 3) == 0);
}

/* A command that exits normally: what it left in the background is
 * killed with its process group. */
static void
test_run_background_killed(void **state)
{
    static struct pipe_result r;
    pid_t pid;

    (void)state;
    assert_int_equal(run_sh("sleep 1000 >/dev/null 2>&1 </dev/null & "
                            "echo $!; exit 0", "x\r\n", "", 60000, &r), 0);
    assert_true(WIFEXITED(r.ws) && WEXITSTATUS(r.ws) == 0);
    pid = (pid_t)atoi(r.output);
    assert_true(pid > 1);
    /* SIGKILL is sent before pipe_run returns; its delivery and the
     * reaping by init take a moment on a busy machine */
    for (int i = 0; i < 600 && !process_gone(pid); i++)
        usleep(50 * 1000);
    assert_true(process_gone(pid));
}

static void
test_run_exec_fails(void **state)
{
    static struct pipe_result r;
    char *const argv[] = { "/nonexistent/cmd", NULL };
    char *const envp[] = { NULL };
    struct pipe_job j;
    int fd = message_fd("x\r\n");

    (void)state;
    memset(&j, 0, sizeof(j));
    j.argv = argv;
    j.envp = envp;
    j.cwd = "/";
    j.input_fd = fd;
    j.time_limit_ms = 10000;
    assert_int_equal(pipe_run(&j, &r), 0);
    close(fd);
    assert_int_equal(WEXITSTATUS(r.ws), 71);
    assert_non_null(strstr(r.output, "cannot execute /nonexistent/cmd"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tmpl_check),
        cmocka_unit_test(test_tmpl_expand),
        cmocka_unit_test(test_hostile_address),
        cmocka_unit_test(test_tmpl_too_long),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_status_map),
        cmocka_unit_test(test_run_input_output),
        cmocka_unit_test(test_run_output_bounded),
        cmocka_unit_test(test_run_time_limit),
        cmocka_unit_test(test_run_background_killed),
        cmocka_unit_test(test_run_exec_fails),
    };

    signal(SIGPIPE, SIG_IGN); /* as the daemon (core/main.c) */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
