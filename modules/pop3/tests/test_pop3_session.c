/*
 * pop3 sessions through serve(), on the SDK fakes: a thread serves one
 * end of a socketpair, the test speaks POP3 on the other, with a file
 * passdb and an mbox in a directory of the test's and the process's
 * memory store as the shared state. What the shared state says at QUIT
 * (the lease taken by another session, the store down) and when a
 * LOGIN-DELAY window starts (a login refused [IN-USE] or [SYS/TEMP]
 * starts none; one that cannot be recorded refuses the login). Each
 * test has an instance name of its own, so its keys are its own; the
 * module's modmta_shared_set is wrapped (-Wl,--wrap).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <modmta/modmta.h>
#include <fake.h>
#include <files.h>

extern const modmta_module modmta_descriptor;

/* The module's modmta_shared_set, wrapped at link time: fails while
 * fail_set is on (the store failing between two calls of a login). */
int __real_modmta_shared_set(modmta_shared *s, const char *key,
                             const char *value, long ttl_ms);
int __wrap_modmta_shared_set(modmta_shared *s, const char *key,
                             const char *value, long ttl_ms);
static atomic_int fail_set;

int
__wrap_modmta_shared_set(modmta_shared *s, const char *key,
                         const char *value, long ttl_ms)
{
    if (fail_set)
        return MODMTA_E_TEMP;
    return __real_modmta_shared_set(s, key, value, ttl_ms);
}

#define MBOX "From a@example.org Mon Nov 24 12:00:00 2025\n" \
             "Subject: one\n\nfirst\n\n" \
             "From a@example.org Mon Nov 24 12:01:00 2025\n" \
             "Subject: two\n\nsecond\n"

struct fx {
    char dir[256];
    char box[300];
    char name[32];
    modmta_host *h;
    void *inst;
};

/* A session: serve() on its thread, the client's end. */
struct sess {
    struct fx *fx;
    modmta_ctx *ctx;
    modmta_conn *conn;
    pthread_t thread;
    FILE *in;
    int fd;
};

static int
setup(void **state)
{
    static unsigned n;
    struct fx *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), "test_pop3_session");
    snprintf(fx->box, sizeof(fx->box), "%s/bob", fx->dir);
    snprintf(fx->name, sizeof(fx->name), "p%u", ++n);
    fx->h = modmta_test_host_new(fx->name, NULL);
    *state = fx;
    return fx->h == NULL;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    modmta_test_release(&modmta_descriptor, fx->inst, NULL, fx->h);
    modmta_test_rmtree(fx->dir);
    free(fx);
    return 0;
}

/* The instance, with options (JSON members, may be "") after the
 * directory and the passdb; bob's mailbox holds two messages. */
static void
create(struct fx *fx, const char *options)
{
    char path[300], conf[1024];

    snprintf(path, sizeof(path), "%s/passwd", fx->dir);
    modmta_test_write_file(path, "bob:{PLAIN}pw\n");
    modmta_test_write_file(fx->box, MBOX);
    snprintf(conf, sizeof(conf), "{\"directory\": \"%s\", "
             "\"passdb\": \"file:%s\"%s%s}", fx->dir, path,
             options[0] != '\0' ? ", " : "", options);
    fx->inst = modmta_test_create_ok(&modmta_descriptor, conf, fx->h);
}

static void *
serve_thread(void *arg)
{
    struct sess *s = arg;

    modmta_descriptor.serve(s->fx->inst, s->ctx, s->conn);
    return NULL;
}

/* A session from 127.0.0.1 (plaintext logins allowed), past the
 * greeting. */
static void
open_sess(struct fx *fx, struct sess *s, const char *id)
{
    struct timeval tv = {20, 0};
    char line[512];
    int sv[2];

    memset(s, 0, sizeof(*s));
    s->fx = fx;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    s->fd = sv[0];
    s->in = fdopen(dup(sv[0]), "r");
    assert_non_null(s->in);
    s->conn = modmta_test_conn_from_fd(sv[1]);
    assert_non_null(s->conn);
    s->ctx = modmta_test_ctx_new(fx->h, "127.0.0.1");
    assert_non_null(s->ctx);
    modmta_test_set_session_id(s->ctx, id);
    modmta_test_enter(s->ctx, MODMTA_PHASE_SERVE, &modmta_descriptor,
                      fx->inst);
    assert_int_equal(pthread_create(&s->thread, NULL, serve_thread, s), 0);
    assert_non_null(fgets(line, sizeof(line), s->in));
    assert_true(strncmp(line, "+OK", 3) == 0);
}

/* Wait for serve() to end (the client's end closed first). */
static void
close_sess(struct sess *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    fclose(s->in);
    close(s->fd);
    modmta_test_conn_close(s->conn);
    modmta_test_ctx_free(s->ctx);
}

/* Send a command; the first line of its answer, without CRLF. */
static const char *
cmd(struct sess *s, const char *line)
{
    static char buf[512];
    size_t n;

    assert_true(write(s->fd, line, strlen(line)) == (ssize_t)strlen(line));
    assert_true(write(s->fd, "\r\n", 2) == 2);
    if (fgets(buf, sizeof(buf), s->in) == NULL)
        return "(closed)";
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    return buf;
}

static void
expect(struct sess *s, const char *line, const char *start)
{
    const char *got = cmd(s, line);

    if (strncmp(got, start, strlen(start)) != 0)
        fail_msg("%s: expected \"%s...\", got \"%s\"", line, start, got);
}

/* USER bob, PASS pw: the answer's first line. */
static const char *
login(struct sess *s)
{
    expect(s, "USER bob", "+OK");
    return cmd(s, "PASS pw");
}

/* The key "pop3:<instance>:<what>:bob". */
static const char *
key(const struct fx *fx, const char *what)
{
    static char buf[128];

    snprintf(buf, sizeof(buf), "pop3:%s:%s:bob", fx->name, what);
    return buf;
}

/* Messages in bob's mailbox (its "From " lines). */
static int
messages(const struct fx *fx)
{
    char line[512];
    FILE *f = fopen(fx->box, "r");
    int n = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL)
        n += strncmp(line, "From ", 5) == 0;
    fclose(f);
    return n;
}

/* ---- QUIT ---- */

/* The session's lease was lost (it expired while the store was out of
 * reach, and another session took it) since the renewer last looked:
 * QUIT renews it itself, finds it taken and deletes nothing. */
static void
test_quit_lease_taken(void **state)
{
    struct fx *fx = *state;
    modmta_shared *sh = modmta_host_shared(fx->h);
    struct sess s;

    create(fx, "");
    open_sess(fx, &s, "S1");
    assert_true(strncmp(login(&s), "+OK", 3) == 0);
    expect(&s, "DELE 1", "+OK");
    assert_int_equal(modmta_shared_del(sh, key(fx, "lease")), 1);
    assert_int_equal(modmta_shared_lease(sh, key(fx, "lease"),
                                         "other.test/S9", 60000), 1);
    expect(&s, "QUIT", "-ERR [IN-USE] Mailbox taken by another session, "
                       "nothing deleted");
    close_sess(&s);
    assert_int_equal(messages(fx), 2);
    /* the other session's lease was left alone */
    assert_int_equal(modmta_shared_lease(sh, key(fx, "lease"),
                                         "other.test/S9", 60000), 1);
}

/* The store down at QUIT: nothing deleted, [SYS/TEMP]; a QUIT with
 * nothing to delete needs no lease and says +OK. Then with the store
 * back, deletions are applied. */
static void
test_quit_store_down(void **state)
{
    struct fx *fx = *state;
    struct sess s;

    create(fx, "");
    open_sess(fx, &s, "S1");
    assert_true(strncmp(login(&s), "+OK", 3) == 0);
    expect(&s, "DELE 2", "+OK");
    assert_int_equal(modmta_test_host_fail_shared(fx->h, 1), 0);
    expect(&s, "QUIT", "-ERR [SYS/TEMP] Mailbox lease unconfirmed");
    close_sess(&s);
    assert_int_equal(messages(fx), 2);
    assert_int_equal(modmta_test_host_fail_shared(fx->h, 0), 0);
    /* the lease of the session before expires by itself: drop it */
    (void)modmta_shared_del(modmta_host_shared(fx->h), key(fx, "lease"));
    open_sess(fx, &s, "S2");
    assert_true(strncmp(login(&s), "+OK", 3) == 0);
    assert_int_equal(modmta_test_host_fail_shared(fx->h, 1), 0);
    expect(&s, "QUIT", "+OK Bye, 0 messages deleted");
    close_sess(&s);
    assert_int_equal(modmta_test_host_fail_shared(fx->h, 0), 0);
    (void)modmta_shared_del(modmta_host_shared(fx->h), key(fx, "lease"));
    open_sess(fx, &s, "S3");
    assert_true(strncmp(login(&s), "+OK", 3) == 0);
    expect(&s, "DELE 2", "+OK");
    expect(&s, "QUIT", "+OK Bye, 1 messages deleted");
    close_sess(&s);
    assert_int_equal(messages(fx), 1);
}

/* ---- LOGIN-DELAY ---- */

/* Right passwords refused for [IN-USE] (another node's session has the
 * mailbox) and [SYS/TEMP] (the mailbox cannot be opened) start no
 * window; the first login that succeeds does. */
static void
test_login_delay_after_success_only(void **state)
{
    struct fx *fx = *state;
    modmta_shared *sh = modmta_host_shared(fx->h);
    struct sess s;

    create(fx, "\"login_delay\": 300");
    assert_int_equal(modmta_shared_lease(sh, key(fx, "lease"),
                                         "other.test/S9", 60000), 1);
    open_sess(fx, &s, "S1");
    assert_string_equal(login(&s), "-ERR [IN-USE] Mailbox already in use");
    close_sess(&s);
    assert_int_equal(modmta_shared_release(sh, key(fx, "lease"),
                                           "other.test/S9"), 1);
    assert_int_equal(modmta_shared_get(sh, key(fx, "delay"), NULL), 0);
    /* the mailbox is a directory: it cannot be opened */
    assert_int_equal(unlink(fx->box), 0);
    assert_int_equal(mkdir(fx->box, 0700), 0);
    open_sess(fx, &s, "S2");
    assert_string_equal(login(&s), "-ERR [SYS/TEMP] Cannot open mailbox");
    close_sess(&s);
    assert_int_equal(rmdir(fx->box), 0);
    modmta_test_write_file(fx->box, MBOX);
    assert_int_equal(modmta_shared_get(sh, key(fx, "delay"), NULL), 0);
    open_sess(fx, &s, "S3");
    assert_string_equal(login(&s), "+OK Logged in, 2 messages");
    expect(&s, "QUIT", "+OK");
    close_sess(&s);
    /* that login started the window */
    open_sess(fx, &s, "S4");
    assert_string_equal(login(&s), "-ERR [LOGIN-DELAY] Logged in less than "
                                   "300 seconds ago");
    close_sess(&s);
}

/* A window that cannot be recorded (the store fails after the lease
 * was taken) refuses the login, and gives the lease back: an outage
 * never lifts the limit. */
static void
test_login_delay_unrecorded(void **state)
{
    struct fx *fx = *state;
    modmta_shared *sh = modmta_host_shared(fx->h);
    struct sess s;

    create(fx, "\"login_delay\": 300");
    fail_set = 1;
    open_sess(fx, &s, "S1");
    assert_string_equal(login(&s), "-ERR [SYS/TEMP] Temporary "
                                   "authentication failure");
    close_sess(&s);
    fail_set = 0;
    assert_int_equal(modmta_shared_get(sh, key(fx, "delay"), NULL), 0);
    open_sess(fx, &s, "S2");
    assert_string_equal(login(&s), "+OK Logged in, 2 messages");
    expect(&s, "QUIT", "+OK");
    close_sess(&s);
    assert_int_equal(modmta_shared_get(sh, key(fx, "delay"), NULL), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_quit_lease_taken, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quit_store_down, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_login_delay_after_success_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_delay_unrecorded, setup,
                                        teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
