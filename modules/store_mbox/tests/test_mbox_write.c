/* Unit tests of the mbox writer: quoting, CRLF, locks, truncation on
 * failure, mailbox safety, loop check and dedup. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <modmta/err.h>
#include <files.h>

#include "hdr_scan.h"
#include "mbox_group.h"
#include "mbox_write.h"

struct fx {
    char dir[512];
    char mbox[PATH_MAX];
    char lock[PATH_MAX];
    char msg[PATH_MAX];
    mbox_write_req req;
    char why[512];
};

static const char msg_basic[] =
    "Received: from a.example by mx.test with ESMTP\r\n"
    "\tid QID1; Thu, 1 Jan 1970 00:00:00 +0000\r\n"
    "Subject: hi\r\n"
    "\r\n"
    "From the start\r\n"
    ">From quoted\r\n"
    ">>From deep\r\n"
    "Fromage\r\n"
    " From not at start\r\n"
    "From\r\n"
    "last line";

static const char mbox_basic[] =
    "From sender@a.example Thu Jan  1 00:00:00 1970\n"
    "Return-Path: <sender@a.example>\n"
    "Delivered-To: bob@example.com\n"
    "Received: from a.example by mx.test with ESMTP\n"
    "\tid QID1; Thu, 1 Jan 1970 00:00:00 +0000\n"
    "Subject: hi\n"
    "\n"
    ">From the start\n"
    ">>From quoted\n"
    ">>>From deep\n"
    "Fromage\n"
    " From not at start\n"
    "From\n"
    "last line\n"
    "\n";

static void
write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* Whole file as a NUL-terminated string (NULL if it does not exist). */
static int
exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), "mbox_write");
    snprintf(fx->mbox, sizeof(fx->mbox), "%s/bob", fx->dir);
    snprintf(fx->lock, sizeof(fx->lock), "%s/bob.lock", fx->dir);
    snprintf(fx->msg, sizeof(fx->msg), "%s/msg", fx->dir);
    write_file(fx->msg, msg_basic, strlen(msg_basic));
    fx->req.mailbox = fx->mbox;
    fx->req.message = fx->msg;
    fx->req.sender = "sender@a.example";
    fx->req.rcpt = "bob@example.com";
    fx->req.date = 0;
    fx->req.fsync = 1;
    fx->req.lock_timeout_ms = 200;
    fx->req.stale_lock_s = 300;
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    modmta_test_rmtree(fx->dir);
    free(fx);
    return 0;
}

static int
append(struct fx *fx)
{
    return mbox_write_append(&fx->req, fx->why, sizeof(fx->why));
}

static void
test_quoting_crlf_and_end(void **state)
{
    struct fx *fx = *state;
    char *got;

    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    got = modmta_test_read_file(fx->mbox, NULL);
    assert_non_null(got);
    assert_string_equal(got, mbox_basic);
    assert_null(strchr(got, '\r'));
    free(got);
    assert_false(exists(fx->lock));
}

/* The recipient before rewriting goes in X-Original-To, above
 * Delivered-To, as Postfix's local(8) writes them. */
static void
test_original_recipient(void **state)
{
    struct fx *fx = *state;
    char *got, *xo, *dt;

    fx->req.orcpt = "list@example.org";
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    got = modmta_test_read_file(fx->mbox, NULL);
    xo = strstr(got, "\nX-Original-To: list@example.org\n");
    dt = strstr(got, "\nDelivered-To: ");
    assert_non_null(xo);
    assert_non_null(dt);
    assert_true(xo < dt);
    free(got);
}

static void
test_null_sender(void **state)
{
    struct fx *fx = *state;
    char *got;

    fx->req.sender = "";
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    got = modmta_test_read_file(fx->mbox, NULL);
    assert_non_null(got);
    assert_memory_equal(got, "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"
                             "Return-Path: <>\n", 60);
    free(got);
}

static void
test_envelope_control_chars(void **state)
{
    struct fx *fx = *state;
    char *got;

    fx->req.sender = "a b\nX-Evil: 1@a.example";
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    got = modmta_test_read_file(fx->mbox, NULL);
    assert_non_null(got);
    assert_non_null(strstr(got, "From a_b_X-Evil:_1@a.example Thu"));
    assert_non_null(strstr(got, "Return-Path: <a b_X-Evil: 1@a.example>\n"));
    assert_null(strstr(got, "\nX-Evil"));
    free(got);
}

static void
test_append_keeps_previous(void **state)
{
    struct fx *fx = *state;
    static const char old[] = "From x@y Thu Jan  1 00:00:00 1970\n\nold\n\n";
    char *got;
    size_t len;

    write_file(fx->mbox, old, strlen(old));
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    got = modmta_test_read_file(fx->mbox, &len);
    assert_int_equal(len, strlen(old) + 2 * strlen(mbox_basic));
    assert_memory_equal(got, old, strlen(old));
    assert_memory_equal(got + strlen(old), mbox_basic, strlen(mbox_basic));
    assert_string_equal(got + strlen(old) + strlen(mbox_basic), mbox_basic);
    free(got);
}

static void
test_message_ending_with_crlf(void **state)
{
    struct fx *fx = *state;
    static const char msg[] = "Subject: x\r\n\r\nbody\r\n";
    char *got;
    size_t len;

    write_file(fx->msg, msg, strlen(msg));
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    got = modmta_test_read_file(fx->mbox, &len);
    assert_true(len > 8);
    assert_string_equal(got + len - 8, "\n\nbody\n\n");
    free(got);
}

static void
test_new_mailbox_mode_0600(void **state)
{
    struct fx *fx = *state;
    struct stat st;
    mode_t old = umask(022);

    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    umask(old);
    assert_int_equal(stat(fx->mbox, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

static void
test_symlink_refused(void **state)
{
    struct fx *fx = *state;
    char target[PATH_MAX], *got;

    snprintf(target, sizeof(target), "%s/target", fx->dir);
    write_file(target, "precious\n", 9);
    assert_int_equal(symlink(target, fx->mbox), 0);
    assert_int_equal(append(fx), MODMTA_E_PERM);
    assert_non_null(strstr(fx->why, "symbolic link"));
    got = modmta_test_read_file(target, NULL);
    assert_string_equal(got, "precious\n");
    free(got);
    assert_false(exists(fx->lock));
}

static void
test_dangling_symlink_refused(void **state)
{
    struct fx *fx = *state;
    char target[PATH_MAX];

    snprintf(target, sizeof(target), "%s/nowhere", fx->dir);
    assert_int_equal(symlink(target, fx->mbox), 0);
    assert_int_equal(append(fx), MODMTA_E_PERM);
    assert_false(exists(target));
}

static void
test_hard_link_refused(void **state)
{
    struct fx *fx = *state;
    char other[PATH_MAX], *got;

    snprintf(other, sizeof(other), "%s/other", fx->dir);
    write_file(other, "precious\n", 9);
    assert_int_equal(link(other, fx->mbox), 0);
    assert_int_equal(append(fx), MODMTA_E_PERM);
    assert_non_null(strstr(fx->why, "links"));
    got = modmta_test_read_file(other, NULL);
    assert_string_equal(got, "precious\n");
    free(got);
}

static void
test_fifo_refused(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(mkfifo(fx->mbox, 0600), 0);
    assert_int_equal(append(fx), MODMTA_E_PERM);
    assert_non_null(strstr(fx->why, "not a regular file"));
}

static void
test_dotlock_held_times_out(void **state)
{
    struct fx *fx = *state;

    write_file(fx->lock, "", 0);
    assert_int_equal(append(fx), MODMTA_E_TIMEOUT);
    assert_non_null(strstr(fx->why, "locked"));
    assert_false(exists(fx->mbox));
    /* someone else's lock is left alone */
    assert_true(exists(fx->lock));
}

static void
test_zero_timeout_tries_once(void **state)
{
    struct fx *fx = *state;

    fx->req.lock_timeout_ms = 0;
    write_file(fx->lock, "", 0);
    assert_int_equal(append(fx), MODMTA_E_TIMEOUT);
    assert_int_equal(unlink(fx->lock), 0);
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
}

static void
test_stale_dotlock_removed(void **state)
{
    struct fx *fx = *state;
    struct timeval tv[2];

    write_file(fx->lock, "", 0);
    tv[0].tv_sec = tv[1].tv_sec = time(NULL) - 600;
    tv[0].tv_usec = tv[1].tv_usec = 0;
    assert_int_equal(utimes(fx->lock, tv), 0);
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    assert_false(exists(fx->lock));
}

static void
write_pid_lock(const char *path, long pid, time_t mtime)
{
    char buf[32];
    struct timeval tv[2];
    int n = snprintf(buf, sizeof(buf), "%ld\n", pid);

    write_file(path, buf, (size_t)n);
    tv[0].tv_sec = tv[1].tv_sec = mtime;
    tv[0].tv_usec = tv[1].tv_usec = 0;
    assert_int_equal(utimes(path, tv), 0);
}

/* A daemon killed with -9 leaves its dot-lock: the process it names is
 * gone, so the lock is broken at once, not after stale_lock_s. */
static void
test_dead_writer_dotlock_removed(void **state)
{
    struct fx *fx = *state;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    write_pid_lock(fx->lock, (long)pid, time(NULL));
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    assert_false(exists(fx->lock));
}

static void
test_live_writer_dotlock_kept(void **state)
{
    struct fx *fx = *state;

    write_pid_lock(fx->lock, (long)getppid(), time(NULL));
    assert_int_equal(append(fx), MODMTA_E_TIMEOUT);
    assert_true(exists(fx->lock));
}

/* Our own PID in a lock older than this process's first delivery: an
 * earlier daemon that had the same PID (containers restart at PID 1). */
static void
test_own_pid_earlier_process_removed(void **state)
{
    struct fx *fx = *state;

    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    write_pid_lock(fx->lock, (long)getpid(), time(NULL) - 100);
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    assert_false(exists(fx->lock));
    write_pid_lock(fx->lock, (long)getpid(), time(NULL) + 1);
    assert_int_equal(append(fx), MODMTA_E_TIMEOUT);
    assert_true(exists(fx->lock));
}

/* kill -9 in the middle of an append: the dead writer's lock recorded
 * the mailbox size before it; the next append cuts the half message. */
static void
test_dead_writer_half_message_cut(void **state)
{
    struct fx *fx = *state;
    static const char half[] = "From x Mon Jan  1 00:00:00 2024\nHALFWRITTEN";
    char lock[64];
    size_t before, after;
    char *got;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    got = modmta_test_read_file(fx->mbox, &before);
    free(got);
    write_file(fx->mbox, mbox_basic, strlen(mbox_basic));
    assert_int_equal(before, strlen(mbox_basic));
    {
        int fd = open(fx->mbox, O_WRONLY | O_APPEND);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, half, strlen(half)), (ssize_t)strlen(half));
        close(fd);
    }
    snprintf(lock, sizeof(lock), "%ld %zu\n", (long)pid, before);
    write_file(fx->lock, lock, strlen(lock));
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    assert_non_null(strstr(fx->why, "repaired"));
    got = modmta_test_read_file(fx->mbox, &after);
    assert_int_equal(after, 2 * before);
    assert_null(strstr(got, "HALFWRITTEN"));
    assert_memory_equal(got + before, mbox_basic, before);
    free(got);
    assert_false(exists(fx->lock));
}

/* A lock planted by another user of a shared mail directory, claiming a
 * dead writer and a size of 0, must not empty the mailbox. */
static void
test_planted_lock_cuts_nothing(void **state)
{
    struct fx *fx = *state;
    size_t before, after;
    char *got;

    if (geteuid() != 0)
        skip();
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    free(modmta_test_read_file(fx->mbox, &before));
    write_file(fx->lock, "999999 0\n", 9);
    assert_int_equal(chown(fx->lock, 65534, 65534), 0);
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    got = modmta_test_read_file(fx->mbox, &after);
    assert_int_equal(after, 2 * before);
    free(got);
}

static void
test_fcntl_lock_held_times_out(void **state)
{
    struct fx *fx = *state;
    int ready[2], release[2], status;
    char c;
    pid_t pid;

    write_file(fx->mbox, "", 0);
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(release), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* a classic fcntl lock, as mutt or Dovecot takes it */
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        int fd = open(fx->mbox, O_RDWR);

        close(ready[0]);
        close(release[1]);
        if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        (void)!read(release[0], &c, 1); /* until the parent closes */
        _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(append(fx), MODMTA_E_TIMEOUT);
    assert_non_null(strstr(fx->why, "locked"));
    assert_false(exists(fx->lock)); /* our dot-lock was removed */
    close(release[1]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ready[0]);
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
}

/* A write that fails half way (file size limit: EFBIG) leaves the mailbox
 * byte for byte as it was. */
/* Messages "<i>" for rcpt i, one file each, for the batch tests. */
#define BATCH_N 8

struct batch {
    char msg[BATCH_N][PATH_MAX];
    char rcpt[BATCH_N][32];
    mbox_write_req req[BATCH_N];
    char why[BATCH_N][256];
    struct mbox_job job[BATCH_N];
};

static void
batch_init(struct fx *fx, struct batch *b)
{
    char body[64];
    size_t i;

    memset(b, 0, sizeof(*b));
    for (i = 0; i < BATCH_N; i++) {
        snprintf(b->msg[i], sizeof(b->msg[i]), "%s/msg%zu", fx->dir, i);
        snprintf(body, sizeof(body), "Subject: %zu\r\n\r\nbody %zu\r\n", i,
                 i);
        write_file(b->msg[i], body, strlen(body));
        snprintf(b->rcpt[i], sizeof(b->rcpt[i]), "r%zu@example.com", i);
        b->req[i] = fx->req;
        b->req[i].message = b->msg[i];
        b->req[i].rcpt = b->rcpt[i];
        b->job[i].req = &b->req[i];
        b->job[i].why = b->why[i];
        b->job[i].whylen = sizeof(b->why[i]);
        b->job[i].rc = -1;
    }
}

/* The mailbox holds exactly the messages marked in want, each once,
 * each whole. */
static void
assert_batch_mailbox(struct fx *fx, const int *want)
{
    char *got = modmta_test_read_file(fx->mbox, NULL), line[64];
    const char *p;
    size_t i;

    assert_non_null(got);
    for (i = 0; i < BATCH_N; i++) {
        snprintf(line, sizeof(line), "Subject: %zu\n\nbody %zu\n\n", i, i);
        p = strstr(got, line);
        if (!want[i]) {
            assert_null(p);
            continue;
        }
        assert_non_null(p);
        assert_null(strstr(p + 1, line));
        snprintf(line, sizeof(line), "Delivered-To: r%zu@example.com\n", i);
        assert_non_null(strstr(got, line));
    }
    free(got);
}

/* One batch: every job appended under one lock; a job whose message is
 * gone fails alone and leaves nothing behind. */
static void
test_batch_one_failure(void **state)
{
    struct fx *fx = *state;
    struct batch *b = malloc(sizeof(*b));
    struct mbox_job *jobs[BATCH_N];
    struct timespec deadline;
    int want[BATCH_N];
    size_t i;

    assert_non_null(b);
    batch_init(fx, b);
    assert_int_equal(unlink(b->msg[3]), 0);
    for (i = 0; i < BATCH_N; i++) {
        jobs[i] = &b->job[i];
        want[i] = i != 3;
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 5;
    mbox_write_batch(jobs, BATCH_N, &deadline);
    for (i = 0; i < BATCH_N; i++)
        assert_int_equal(b->job[i].rc, i == 3 ? MODMTA_E_IO
                                              : MBOX_WRITE_DONE);
    assert_non_null(strstr(b->why[3], "cannot open message"));
    assert_batch_mailbox(fx, want);
    assert_int_equal(access(fx->lock, F_OK), -1);
    free(b);
}

/* A dedup job in a batch finds its message appended by a crashed
 * delivery and is not appended twice; the others are. */
static void
test_batch_dedup(void **state)
{
    static const char dup[] = "Received: by x\r\n\tid QID5; now\r\n"
                              "Subject: 5\r\n\r\nbody 5\r\n";
    struct fx *fx = *state;
    struct batch *b = malloc(sizeof(*b));
    struct mbox_job *jobs[BATCH_N];
    struct timespec deadline;
    int want[BATCH_N];
    size_t i;

    assert_non_null(b);
    batch_init(fx, b);
    write_file(b->msg[5], dup, strlen(dup));
    b->req[5].queue_id = "QID5";
    assert_int_equal(mbox_write_append(&b->req[5], NULL, 0),
                     MBOX_WRITE_DONE);
    b->req[5].dedup = 1;
    for (i = 0; i < BATCH_N; i++) {
        jobs[i] = &b->job[i];
        want[i] = 1; /* 5 too: once, from the first append */
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 5;
    mbox_write_batch(jobs, BATCH_N, &deadline);
    for (i = 0; i < BATCH_N; i++)
        assert_int_equal(b->job[i].rc, i == 5 ? MBOX_WRITE_DUPLICATE
                                              : MBOX_WRITE_DONE);
    assert_batch_mailbox(fx, want);
    free(b);
}

static void *
batch_thread(void *arg)
{
    struct mbox_job *job = arg;

    job->rc = mbox_write_append(job->req, job->why, job->whylen);
    return NULL;
}

/* Threads appending to one mailbox at once (grouped or not, however
 * they meet): every message lands once, whole, and each is told so. */
static void
test_concurrent_appends(void **state)
{
    struct fx *fx = *state;
    struct batch *b = malloc(sizeof(*b));
    pthread_t t[BATCH_N];
    int want[BATCH_N];
    size_t i;

    assert_non_null(b);
    batch_init(fx, b);
    for (i = 0; i < BATCH_N; i++) {
        b->req[i].lock_timeout_ms = 60000;
        want[i] = 1;
        assert_int_equal(pthread_create(&t[i], NULL, batch_thread,
                                        &b->job[i]), 0);
    }
    for (i = 0; i < BATCH_N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(b->job[i].rc, MBOX_WRITE_DONE);
    }
    assert_batch_mailbox(fx, want);
    free(b);
}

static void
test_truncate_on_failure(void **state)
{
    struct fx *fx = *state;
    static const char old[] = "From x@y Thu Jan  1 00:00:00 1970\n\nold\n\n";
    size_t big = 300000, len, i;
    char *msg = malloc(big), *got;
    int status;
    pid_t pid;

    assert_non_null(msg);
    memcpy(msg, "Subject: big\r\n\r\n", 16);
    for (i = 16; i < big; i++)
        msg[i] = (i % 70 == 0) ? '\n' : 'a';
    write_file(fx->msg, msg, big);
    free(msg);
    write_file(fx->mbox, old, strlen(old));
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl;
        int rc;

        rl.rlim_cur = rl.rlim_max = strlen(old) + 70000;
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
            _exit(2);
        rc = append(fx);
        _exit(rc == MODMTA_E_LIMIT && strstr(fx->why, "too large") ? 0
                                                                     : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    got = modmta_test_read_file(fx->mbox, &len);
    assert_int_equal(len, strlen(old));
    assert_memory_equal(got, old, len);
    free(got);
    assert_false(exists(fx->lock));
}

static void
test_missing_message(void **state)
{
    struct fx *fx = *state;

    fx->req.message = "/nonexistent/message";
    assert_int_equal(append(fx), MODMTA_E_IO);
    assert_non_null(strstr(fx->why, "message"));
    assert_false(exists(fx->lock));
}

static void
test_loop_check(void **state)
{
    struct fx *fx = *state;
    static const char hit[] =
        "Received: x\r\nDelivered-To: <Bob@Example.COM>\r\n\r\nbody\r\n";
    static const char folded[] =
        "Delivered-To:\r\n bob@example.com \r\nSubject: x\r\n\r\nbody\r\n";
    static const char other[] =
        "Delivered-To: bobby@example.com\r\n\r\n"
        "Delivered-To: bob@example.com\r\n";
    static const char no_body[] = "Delivered-To: bob@example.com";

    write_file(fx->msg, hit, strlen(hit));
    assert_int_equal(hdr_scan_has_loop(fx->msg, "bob@example.com"), 1);
    write_file(fx->msg, folded, strlen(folded));
    assert_int_equal(hdr_scan_has_loop(fx->msg, "bob@example.com"), 1);
    write_file(fx->msg, other, strlen(other));
    assert_int_equal(hdr_scan_has_loop(fx->msg, "bob@example.com"), 0);
    write_file(fx->msg, no_body, strlen(no_body));
    assert_int_equal(hdr_scan_has_loop(fx->msg, "bob@example.com"), 1);
    assert_int_equal(hdr_scan_has_loop("/nonexistent", "bob@example.com"),
                     MODMTA_E_IO);
}

static void
test_dedup(void **state)
{
    struct fx *fx = *state;
    char *before, *after;
    size_t blen, alen;

    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    fx->req.dedup = 1;
    fx->req.queue_id = "QID1";
    before = modmta_test_read_file(fx->mbox, &blen);
    assert_int_equal(append(fx), MBOX_WRITE_DUPLICATE);
    after = modmta_test_read_file(fx->mbox, &alen);
    assert_int_equal(alen, blen);
    assert_memory_equal(after, before, blen);
    free(after);
    free(before);
    assert_false(exists(fx->lock));

    /* another queue ID (even a prefix of this one) is another message */
    fx->req.queue_id = "QID";
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    /* the same message for another recipient is not a duplicate */
    fx->req.queue_id = "QID1";
    fx->req.rcpt = "alice@example.com";
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    after = modmta_test_read_file(fx->mbox, &alen);
    assert_int_equal(alen, 3 * strlen(mbox_basic) + 2);
    free(after);
}

static void
test_dedup_ignores_body(void **state)
{
    struct fx *fx = *state;
    static const char msg[] =
        "Subject: x\r\n\r\nid QID9\r\nDelivered-To: bob@example.com\r\n";

    write_file(fx->msg, msg, strlen(msg));
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
    fx->req.dedup = 1;
    fx->req.queue_id = "QID9";
    assert_int_equal(append(fx), MBOX_WRITE_DONE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_quoting_crlf_and_end, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_null_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_original_recipient, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_envelope_control_chars, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_append_keeps_previous, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_message_ending_with_crlf, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_mailbox_mode_0600, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_symlink_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dangling_symlink_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hard_link_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fifo_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotlock_held_times_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_zero_timeout_tries_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_dotlock_removed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dead_writer_dotlock_removed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_writer_dotlock_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_own_pid_earlier_process_removed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_writer_half_message_cut,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_planted_lock_cuts_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_fcntl_lock_held_times_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_one_failure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_appends, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_truncate_on_failure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_ignores_body, setup,
                                        teardown),
    };

    setenv("TZ", "UTC", 1);
    tzset();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
